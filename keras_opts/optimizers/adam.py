"""Adam: adaptive moment estimation."""

from __future__ import annotations

from typing import Any

import keras

from keras_opts._core import checks, config, foreach, formulas
from keras_opts._core.base import Optimizer
from keras_opts._core.step import Capabilities


@keras.saving.register_keras_serializable(package="keras_opts")
class Adam(Optimizer):
    r"""Adam (Kingma & Ba, 2015), with optional AMSGrad.

    Adam keeps exponential moving averages of the gradient (first moment)
    and of its square (second moment), corrects both for their start at
    zero, and steps along the first moment divided by the root of the
    second, so each coordinate gets a step of about ``learning_rate``
    whatever the scale of its gradient. AMSGrad (Reddi et al., 2018) divides
    by the running maximum of the second moment instead, so the effective
    step size never grows.

    Symbols: $\eta$ = ``learning_rate``, $\beta_1$ = ``beta_1``,
    $\beta_2$ = ``beta_2``, $\epsilon$ = ``epsilon``,
    $m_0 = v_0 = 0$, $t = 1, 2, \dots$.

    $$
    \begin{aligned}
    m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
    v_t &= \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
    \hat v_t &= \max(\hat v_{t-1}, v_t) \text{ if AMSGrad, else } v_t \\
    \theta_t &= \theta_{t-1} - \eta\,\frac{m_t}{1 - \beta_1^t}\,
        D(\hat v_t)
    \end{aligned}
    $$

    where $D$ places epsilon by ``epsilon_mode``
    ($c_t = 1 - \beta_2^t$):

    - ``"corrected"`` (default, the paper's Algorithm 1):
      $D(v) = 1 / (\sqrt{v / c_t} + \epsilon)$;
    - ``"uncorrected"`` (the paper's "epsilon hat", Keras' built-in Adam):
      $D(v) = \sqrt{c_t} / (\sqrt{v} + \epsilon)$;
    - ``"inside_sqrt"``: $D(v) = \sqrt{c_t / (v + \epsilon)}$.

    Args:
        learning_rate: float, ``LearningRateSchedule`` or callable. Default
            0.001.
        beta_1: first-moment decay in [0, 1). Default 0.9.
        beta_2: second-moment decay in [0, 1). Default 0.999.
        epsilon: positive stabiliser. Default 1e-8 (the paper's).
        amsgrad: use AMSGrad. Default False.
        epsilon_mode: ``"corrected"``, ``"uncorrected"`` or ``"inside_sqrt"``.
        coupled_weight_decay: L2 coefficient added to the gradient
            (torch.optim.Adam's ``weight_decay``). Default 0.
        **kwargs: the ``keras.optimizers.Optimizer`` arguments.

    Reproducing other libraries:

    - ``torch.optim.Adam(lr, betas=(b1, b2), eps=e, weight_decay=w,
      amsgrad=a)`` = ``Adam(lr, b1, b2, e, amsgrad=a,
      coupled_weight_decay=w)``;
    - ``keras.optimizers.Adam(lr, b1, b2, e, amsgrad=a)`` =
      ``Adam(lr, b1, b2, e, amsgrad=a, epsilon_mode="uncorrected")``;
    - ``optax.adam(lr, b1, b2, e)`` = ``Adam(lr, b1, b2, e)``.

    Example:

    >>> import keras, keras_opts
    >>> w = keras.Variable([1.0, -2.0])
    >>> opt = keras_opts.Adam(learning_rate=0.1)
    >>> opt.apply([keras.ops.convert_to_tensor([0.5, -3.0])], [w])
    >>> [round(float(x), 4) for x in w.numpy()]
    [0.9, -1.9]

    References:
        Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015,
        https://arxiv.org/abs/1412.6980. Reddi, Kale & Kumar, "On the
        Convergence of Adam and Beyond", ICLR 2018,
        https://openreview.net/forum?id=ryQu7f-RZ
    """

    capabilities = Capabilities(square_slots=("velocity", "velocity_hat"))

    def __init__(
        self,
        learning_rate: Any = 0.001,
        beta_1: checks.DecayRate = 0.9,
        beta_2: checks.DecayRate = 0.999,
        epsilon: checks.Positive = 1e-8,
        amsgrad: checks.Flag = False,
        epsilon_mode: formulas.EpsilonMode = "corrected",
        coupled_weight_decay: checks.NonNegative = 0.0,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**config.given(locals()))

    def _slot_names(self):
        names = ("momentum", "velocity")
        return names + ("velocity_hat",) if self.amsgrad else names

    def _coefficients(self, learning_rate, t):
        return formulas.adam_coefficients(
            learning_rate,
            t,
            self.beta_1,
            self.beta_2,
            self.epsilon,
            self.epsilon_mode,
        )

    def _fused(self, p, g, s, learning_rate, t, l2):
        # torch's fused Adam is Algorithm 1 with epsilon outside the
        # corrected root: our "corrected" mode.
        if self.epsilon_mode != "corrected" or not foreach.fusable(p):
            return False
        import torch

        torch._fused_adam_(
            p,
            g,
            s.momentum,
            s.velocity,
            s.velocity_hat if self.amsgrad else [],
            [t] * len(p),
            lr=learning_rate,
            beta1=self.beta_1,
            beta2=self.beta_2,
            weight_decay=l2,
            eps=self.epsilon,
            amsgrad=self.amsgrad,
            maximize=False,
        )
        return True

    def _kernel(self, k, p, g, s, c):
        m = formulas.ema_(k, s.momentum, g, self.beta_1)
        v = formulas.ema_square_(k, s.velocity, g, self.beta_2)
        if self.amsgrad:
            v = k.maximum_(s.velocity_hat, v)
        d = formulas.denominator(k, v, c.denominator_epsilon, self.epsilon_mode)
        k.addcdiv_(p, m, d, -c.step_size)
