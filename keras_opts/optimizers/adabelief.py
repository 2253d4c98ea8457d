"""AdaBelief: Adam whose step adapts to the belief in the gradient."""

from __future__ import annotations

from typing import Annotated, Any

import keras

from keras_opts._core import checks, config, formulas
from keras_opts._core.base import Optimizer
from keras_opts._core.step import Capabilities


@keras.saving.register_keras_serializable(package="keras_opts")
class AdaBelief(Optimizer):
    r"""AdaBelief (Zhuang et al., 2020), Algorithm 2, with its rectified
    variant.

    Adam divides by the root of the EMA of $g^2$. AdaBelief divides by the
    root of the EMA of $(g - m)^2$: how far the gradient is from its
    prediction $m$. Where the observed gradient agrees with the belief the
    step is large; where it deviates, small.

    Symbols: $\eta$ = ``learning_rate``, $\beta_1, \beta_2$ =
    ``beta_1, beta_2``, $\epsilon$ = ``epsilon``, $m_0 = s_0 = 0$,
    $t = 1, 2, \dots$.

    $$
    \begin{aligned}
    m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
    s_t &= \beta_2 s_{t-1} + (1 - \beta_2)(g_t - m_t)^2 + \epsilon \\
    \theta_t &= \theta_{t-1} - \eta\,
        \frac{m_t / (1 - \beta_1^t)}{\sqrt{s_t / (1 - \beta_2^t)} + \epsilon}
    \end{aligned}
    $$

    With ``amsgrad=True`` (AMSGrad's remedy, Reddi et al. 2018) the
    denominator uses $s^{\max}_t = \max(s^{\max}_{t-1}, s_t)$, the largest
    $s$ so far, in place of $s_t$, bias-corrected by the current
    $1 - \beta_2^t$: the maximum of the uncorrected $s_t$ (which include
    their $\epsilon$), then the correction, as tensorflow-addons and the
    authors' code compute it and as torch.optim.Adam does for $v_t$ (a
    maximum of the corrected $s_t / (1 - \beta_2^t)$ would instead hold on
    to the noisy estimates of the first steps). With ``rectify`` too,
    $s^{\max}_t$ enters the rectified step (tensorflow-addons; the authors'
    code uses $s_t$ there).

    With ``rectify=True`` the step is RAdam's (see ``keras_opts.RAdam``)
    with $s_t$ in place of $v_t$, as the authors' code computes it: while
    $\rho_t \le$ ``rectify_threshold`` a plain momentum step
    $\eta\, m_t / (1 - \beta_1^t)$, then
    $\eta\, r_t \sqrt{1 - \beta_2^t}\, m_t / ((1 - \beta_1^t)
    (\sqrt{s_t} + \epsilon))$.

    Args:
        learning_rate: float, ``LearningRateSchedule`` or callable. Default
            0.001.
        beta_1: first-moment decay in [0, 1). Default 0.9.
        beta_2: belief decay in [0, 1). Default 0.999.
        epsilon: positive stabiliser, added to $s_t$ every step and to the
            denominator. Default 1e-16 (the authors'; their code for
            version 0.2).
        amsgrad: divide by the root of the largest $s_t$ so far. Default
            False.
        rectify: use the rectified step. Default False.
        rectify_threshold: with ``rectify``, rectify when $\rho_t$ exceeds
            it. Default 5 (the authors' code; at least 4).
        coupled_weight_decay: L2 coefficient added to the gradient.
            Default 0.
        **kwargs: the ``keras.optimizers.Optimizer`` arguments; its
            ``weight_decay`` is the decoupled form (the authors'
            ``weight_decouple=True``).

    Reproducing other libraries:

    - ``optax.adabelief(lr, b1, b2, eps=e, eps_root=e)`` =
      ``AdaBelief(lr, b1, b2, epsilon=e)``.

    Example:

    >>> import keras, keras_opts
    >>> w = keras.Variable([1.0, -2.0])
    >>> opt = keras_opts.AdaBelief(learning_rate=0.1)
    >>> opt.apply([keras.ops.convert_to_tensor([0.5, -3.0])], [w])
    >>> [round(float(x), 4) for x in w.numpy()]
    [0.8889, -1.8889]

    References:
        Zhuang, Tang, Ding, Tatikonda, Dvornek, Papademetris & Duncan,
        "AdaBelief Optimizer: Adapting Stepsizes by the Belief in Observed
        Gradients", NeurIPS 2020, https://arxiv.org/abs/2010.07468;
        authors' code: https://github.com/juntang-zhuang/Adabelief-Optimizer
    """

    capabilities = Capabilities(square_slots=("belief", "max_belief"))

    def __init__(
        self,
        learning_rate: Any = 0.001,
        beta_1: checks.DecayRate = 0.9,
        beta_2: checks.DecayRate = 0.999,
        epsilon: checks.Positive = 1e-16,
        amsgrad: checks.Flag = False,
        rectify: checks.Flag = False,
        rectify_threshold: Annotated[float, checks.in_range(low=4.0)] = 5.0,
        coupled_weight_decay: checks.NonNegative = 0.0,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**config.given(locals()))

    def _slot_names(self):
        names = ("momentum", "belief")
        return names + ("max_belief",) if self.amsgrad else names

    def _coefficients(self, learning_rate, t):
        if self.rectify:
            return formulas.rectified_coefficients(
                learning_rate,
                t,
                self.beta_1,
                self.beta_2,
                self.epsilon,
                "uncorrected",
                self.rectify_threshold,
            )
        return formulas.adam_coefficients(
            learning_rate,
            t,
            self.beta_1,
            self.beta_2,
            self.epsilon,
            "corrected",
        )

    def _kernel(self, k, p, g, s, c):
        m = formulas.ema_(k, s.momentum, g, self.beta_1)
        residual = k.sub(g, m)
        belief = formulas.ema_square_(k, s.belief, residual, self.beta_2)
        belief = k.add_(belief, self.epsilon)
        if self.amsgrad:
            belief = k.maximum_(s.max_belief, belief)
        if self.rectify:
            formulas.rectified_update(k, p, m, belief, c, "uncorrected")
            return
        d = formulas.denominator(k, belief, c.denominator_epsilon, "corrected")
        k.addcdiv_(p, m, d, -c.step_size)
