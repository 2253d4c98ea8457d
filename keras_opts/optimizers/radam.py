"""RAdam: Adam with the variance of its adaptive step rectified."""

from __future__ import annotations

from typing import Annotated, Any

import keras

from keras_opts._core import checks, config, formulas
from keras_opts._core.base import Optimizer
from keras_opts._core.step import Capabilities


@keras.saving.register_keras_serializable(package="keras_opts")
class RAdam(Optimizer):
    r"""Rectified Adam (Liu et al., 2019), Algorithm 2.

    In its first steps Adam divides by a second-moment estimate made from
    very few gradients, so its adaptive step has a huge variance; that is
    why Adam needs a warm-up. RAdam estimates the length
    $\rho_t$ of the simple moving average that the exponential average
    approximates. While it is too short for the variance to exist it takes
    a plain bias-corrected momentum step; afterwards it multiplies the
    adaptive step by the rectifier $r_t$, which brings the variance
    to that of a converged estimate.

    Symbols: $\eta$ = ``learning_rate``, $\beta_1, \beta_2$ =
    ``beta_1, beta_2``, $\epsilon$ = ``epsilon``, $\rho_\tau$ =
    ``rectify_threshold``, $m_0 = v_0 = 0$, $t = 1, 2, \dots$.

    $$
    \begin{aligned}
    m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
    v_t &= \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
    \hat m_t &= m_t / (1 - \beta_1^t) \\
    \rho_\infty &= 2 / (1 - \beta_2) - 1 \\
    \rho_t &= \rho_\infty - 2 t \beta_2^t / (1 - \beta_2^t) \\
    \text{if } \rho_t > \rho_\tau:\quad
        l_t &= D(v_t), \quad
        r_t = \sqrt{\frac{(\rho_t - 4)(\rho_t - 2)\rho_\infty}
                         {(\rho_\infty - 4)(\rho_\infty - 2)\rho_t}}, \quad
        \theta_t = \theta_{t-1} - \eta\, r_t\, \hat m_t\, l_t \\
    \text{else}:\quad \theta_t &= \theta_{t-1} - \eta\, \hat m_t
    \end{aligned}
    $$

    The paper's $l_t = \sqrt{(1 - \beta_2^t) / v_t}$ has no epsilon;
    ``epsilon_mode`` says where it goes ($c_t = 1 - \beta_2^t$):
    ``"inside_sqrt"`` (default: the paper's $l_t$ with epsilon added to
    $v_t$ under the root) $D(v) = \sqrt{c_t / (v + \epsilon)}$;
    ``"uncorrected"``
    $D(v) = \sqrt{c_t} / (\sqrt{v} + \epsilon)$ (torch.optim.RAdam);
    ``"corrected"`` $D(v) = 1 / (\sqrt{v / c_t} + \epsilon)$
    (tensorflow-addons' RectifiedAdam, optax.radam).

    Args:
        learning_rate: float, ``LearningRateSchedule`` or callable. Default
            0.001.
        beta_1: first-moment decay in [0, 1). Default 0.9.
        beta_2: second-moment decay in [0, 1). Default 0.999.
        epsilon: positive stabiliser. Default 1e-8.
        epsilon_mode: ``"inside_sqrt"``, ``"uncorrected"`` or
            ``"corrected"``, see above.
        rectify_threshold: rectify when $\rho_t$ exceeds it. Default 4
            (the paper: the variance of the adaptive step is finite only
            for $\rho_t > 4$). At least 4.
        coupled_weight_decay: L2 coefficient added to the gradient
            (torch.optim.RAdam's ``weight_decay`` with
            ``decoupled_weight_decay=False``). Default 0.
        **kwargs: the ``keras.optimizers.Optimizer`` arguments; its
            ``weight_decay`` is the decoupled, learning-rate-scaled form.

    Reproducing other libraries:

    - ``torch.optim.RAdam(lr, betas, eps=e, weight_decay=w)`` =
      ``RAdam(lr, *betas, epsilon=e, epsilon_mode="uncorrected",
      rectify_threshold=5, coupled_weight_decay=w)``; with
      ``decoupled_weight_decay=True`` use ``weight_decay=w`` instead of
      ``coupled_weight_decay``.
    - ``tfa.optimizers.RectifiedAdam(lr, b1, b2, epsilon=e, weight_decay=w,
      sma_threshold=s)`` = ``RAdam(lr, b1, b2, epsilon=e,
      epsilon_mode="corrected", rectify_threshold=s, weight_decay=w)``, and
      its ``total_steps``/``warmup_proportion``/``min_lr`` warm-up is
      ``keras_opts.schedules.WarmupLinearDecay``. tensorflow-addons compares
      with ``>=``, keras_opts with ``>``: they differ only if
      $\rho_t$ equals the threshold exactly.
    - ``optax.radam(lr, b1, b2, eps=e, threshold=s)`` = the same settings as
      tensorflow-addons.

    Example:

    >>> import keras, keras_opts
    >>> w = keras.Variable([1.0, -2.0])
    >>> opt = keras_opts.RAdam(learning_rate=0.1)
    >>> opt.apply([keras.ops.convert_to_tensor([0.5, -3.0])], [w])
    >>> [round(float(x), 4) for x in w.numpy()]  # rho_1 = 1: momentum step
    [0.95, -1.7]

    References:
        Liu, Jiang, He, Chen, Liu, Gao, Han, "On the Variance of the Adaptive
        Learning Rate and Beyond", ICLR 2020,
        https://arxiv.org/abs/1908.03265; authors' code:
        https://github.com/LiyuanLucasLiu/RAdam
    """

    capabilities = Capabilities(square_slots=("velocity",))

    def __init__(
        self,
        learning_rate: Any = 0.001,
        beta_1: checks.DecayRate = 0.9,
        beta_2: checks.DecayRate = 0.999,
        epsilon: checks.Positive = 1e-8,
        epsilon_mode: formulas.EpsilonMode = "inside_sqrt",
        rectify_threshold: Annotated[float, checks.in_range(low=4.0)] = 4.0,
        coupled_weight_decay: checks.NonNegative = 0.0,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**config.given(locals()))

    def _slot_names(self):
        return ("momentum", "velocity")

    def _coefficients(self, learning_rate, t):
        return formulas.rectified_coefficients(
            learning_rate,
            t,
            self.beta_1,
            self.beta_2,
            self.epsilon,
            self.epsilon_mode,
            self.rectify_threshold,
        )

    def _kernel(self, k, p, g, s, c):
        m = formulas.ema_(k, s.momentum, g, self.beta_1)
        v = formulas.ema_square_(k, s.velocity, g, self.beta_2)
        # Where rho_t > rectify_threshold: p -= step_size * m / D(v); else
        # p -= step_size * m.
        formulas.rectified_update(k, p, m, v, c, self.epsilon_mode)
