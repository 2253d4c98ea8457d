"""Adan: adaptive Nesterov momentum."""

from __future__ import annotations

from typing import Any, NamedTuple

import keras
from keras import ops

from keras_opts._core import checks, config, formulas
from keras_opts._core.base import Optimizer
from keras_opts._core.step import Capabilities


@keras.saving.register_keras_serializable(package="keras_opts")
class Adan(Optimizer):
    r"""Adan (Xie et al., 2022), Algorithm 1, as the authors' code computes
    it (bias-corrected moments).

    Nesterov momentum evaluates the gradient at an extrapolated point; Adan
    gets the same look-ahead without a second gradient by adding a moving
    average of gradient *differences* $g_t - g_{t-1}$ to the momentum, and
    adapts the step with the second moment of the corrected gradient
    $g_t + \beta_2 (g_t - g_{t-1})$.

    Symbols (the authors' code convention: each $\beta$ is the decay of
    the old average, the paper's $1 - \beta$): $\eta$ = ``learning_rate``,
    $\beta_1, \beta_2, \beta_3$ = ``beta_1, beta_2, beta_3``, $\epsilon$ =
    ``epsilon``, $m_0 = v_0 = n_0 = 0$, $g_0 = g_1$ (no difference at the
    first step), $t = 1, 2, \dots$.

    $$
    \begin{aligned}
    m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
    v_t &= \beta_2 v_{t-1} + (1 - \beta_2)(g_t - g_{t-1}) \\
    n_t &= \beta_3 n_{t-1} + (1 - \beta_3)
        [g_t + \beta_2 (g_t - g_{t-1})]^2 \\
    \theta_t &= \theta_{t-1} - \eta\,
        \frac{m_t / (1 - \beta_1^t) + \beta_2 v_t / (1 - \beta_2^t)}
             {\sqrt{n_t / (1 - \beta_3^t)} + \epsilon}
    \end{aligned}
    $$

    ``bias_correction=False`` drops the three $1 - \beta^t$ divisions
    (the paper's Algorithm 1 as printed). Keras' ``weight_decay`` is the
    authors' ``no_prox=True`` decay.

    Args:
        learning_rate: float, ``LearningRateSchedule`` or callable. Default
            0.001.
        beta_1: momentum decay in [0, 1). Default 0.98.
        beta_2: gradient-difference decay in [0, 1). Default 0.92.
        beta_3: second-moment decay in [0, 1). Default 0.99.
        epsilon: positive stabiliser. Default 1e-8.
        bias_correction: divide the moments by $1 - \beta^t$. Default True.
        coupled_weight_decay: L2 coefficient added to the gradient.
            Default 0.
        **kwargs: the ``keras.optimizers.Optimizer`` arguments.

    Reproducing other libraries:

    - optax.adan weights the difference in $n_t$ and in the step by
      $1 - \beta_2$ where the paper and the authors' code use $\beta_2$
      (the paper's $1 - \beta_2$); the two agree only at $\beta_2 = 0.5$:
      ``optax.adan(lr, b1, 0.5, b3, eps)`` = ``Adan(lr, b1, 0.5, b3,
      eps)``.

    Example:

    >>> import keras, keras_opts
    >>> w = keras.Variable([1.0, -2.0])
    >>> opt = keras_opts.Adan(learning_rate=0.1)
    >>> opt.apply([keras.ops.convert_to_tensor([0.5, -3.0])], [w])
    >>> [round(float(x), 4) for x in w.numpy()]
    [0.9, -1.9]

    References:
        Xie, Zhou, Li, Lin & Yan, "Adan: Adaptive Nesterov Momentum
        Algorithm for Faster Optimizing Deep Models", IEEE TPAMI 2024,
        https://arxiv.org/abs/2208.06677; authors' code:
        https://github.com/sail-sg/Adan
    """

    capabilities = Capabilities(square_slots=("velocity",))

    def __init__(
        self,
        learning_rate: Any = 0.001,
        beta_1: checks.DecayRate = 0.98,
        beta_2: checks.DecayRate = 0.92,
        beta_3: checks.DecayRate = 0.99,
        epsilon: checks.Positive = 1e-8,
        bias_correction: checks.Flag = True,
        coupled_weight_decay: checks.NonNegative = 0.0,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**config.given(locals()))

    def _slot_names(self):
        return ("momentum", "difference", "velocity", "previous_gradient")

    def _coefficients(self, learning_rate, t):
        later = ops.cast(t > 1.0, t.dtype)  # no difference at t = 1
        if not self.bias_correction:
            return AdanCoefficients(
                later=later,
                momentum_step=learning_rate,
                difference_step=learning_rate * self.beta_2,
                denominator_epsilon=self.epsilon,
            )
        sqrt_c3 = ops.sqrt(formulas.bias_correction(self.beta_3, t))
        scale = learning_rate * sqrt_c3
        return AdanCoefficients(
            later=later,
            momentum_step=scale / formulas.bias_correction(self.beta_1, t),
            difference_step=scale
            * self.beta_2
            / formulas.bias_correction(self.beta_2, t),
            denominator_epsilon=self.epsilon * sqrt_c3,
        )

    def _kernel(self, k, p, g, s, c):
        diff = k.mul_(k.sub(g, s.previous_gradient), c.later)
        k.copy_(s.previous_gradient, g)
        m = formulas.ema_(k, s.momentum, g, self.beta_1)
        v = formulas.ema_(k, s.difference, diff, self.beta_2)
        corrected = k.add_(k.mul_(diff, self.beta_2), g)
        n = formulas.ema_square_(k, s.velocity, corrected, self.beta_3)
        d = formulas.denominator(k, n, c.denominator_epsilon, "corrected")
        p = k.addcdiv_(p, m, d, -c.momentum_step)
        k.addcdiv_(p, v, d, -c.difference_step)


class AdanCoefficients(NamedTuple):
    """The scalars of Adan's step ``t``."""

    #: 0 at ``t = 1``, where there is no previous gradient, else 1.
    later: Any
    #: ``lr sqrt(1 - beta_3^t) / (1 - beta_1^t)``: the first moment's step.
    momentum_step: Any
    #: ``lr beta_2 sqrt(1 - beta_3^t) / (1 - beta_2^t)``: the difference
    #: moment's step.
    difference_step: Any
    #: The ``epsilon`` of the denominator, times ``sqrt(1 - beta_3^t)``.
    denominator_epsilon: Any
