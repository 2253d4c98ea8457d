"""AdEMAMix: Adam with a mixture of a fast and a slow momentum."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import keras
from keras import ops

from keras_opts._core import checks, config, formulas
from keras_opts._core.base import Optimizer
from keras_opts._core.step import Capabilities


@keras.saving.register_keras_serializable(package="keras_opts")
class AdEMAMix(Optimizer):
    r"""AdEMAMix (Pagliardini et al., 2024), Algorithm 1.

    One EMA of the gradient cannot both react to recent gradients and
    remember old ones. AdEMAMix adds to Adam's fast momentum $m_1$ a slow
    one $m_2$ ($\beta_3$ close to 1, remembering ~10,000 steps), weighted
    by $\alpha$. Optional warm-ups raise $\alpha$ linearly and $\beta_3$
    from $\beta_1$ over the first steps, which the paper uses for stability.

    Symbols: $\eta$ = ``learning_rate``, $\beta_1, \beta_2, \beta_3$ =
    ``beta_1, beta_2, beta_3``, $\alpha$ = ``alpha``, $\epsilon$ =
    ``epsilon``, $T_\alpha, T_{\beta_3}$ = ``alpha_warmup_steps,
    beta_3_warmup_steps`` (0: none), $m_{1,0} = m_{2,0} = \nu_0 = 0$,
    $t = 1, 2, \dots$.

    $$
    \begin{aligned}
    \alpha_t &= \alpha \min(1, t / T_\alpha) \\
    \beta_{3,t} &= \min\!\left(\exp\frac{\ln\beta_1 \ln\beta_3}
        {(1 - t/T_{\beta_3})\ln\beta_3 + (t/T_{\beta_3})\ln\beta_1},
        \beta_3\right) \\
    m_{1,t} &= \beta_1 m_{1,t-1} + (1 - \beta_1) g_t \\
    m_{2,t} &= \beta_{3,t} m_{2,t-1} + (1 - \beta_{3,t}) g_t \\
    \nu_t &= \beta_2 \nu_{t-1} + (1 - \beta_2) g_t^2 \\
    \theta_t &= \theta_{t-1} - \eta\,
        \frac{m_{1,t} / (1 - \beta_1^t) + \alpha_t m_{2,t}}
             {\sqrt{\nu_t / (1 - \beta_2^t)} + \epsilon}
    \end{aligned}
    $$

    The paper's $-\eta\lambda\theta$ term is Keras' ``weight_decay``.

    Args:
        learning_rate: float, ``LearningRateSchedule`` or callable. Default
            0.001.
        beta_1: fast momentum decay in (0, 1). Default 0.9.
        beta_2: second-moment decay in [0, 1). Default 0.999.
        beta_3: slow momentum decay in [0, 1). Default 0.9999.
        alpha: weight of the slow momentum, at least 0. Default 5.
        epsilon: positive stabiliser. Default 1e-8.
        alpha_warmup_steps: $T_\alpha$, 0 for none. Default 0.
        beta_3_warmup_steps: $T_{\beta_3}$, 0 for none. Default 0.
        coupled_weight_decay: L2 coefficient added to the gradient.
            Default 0.
        **kwargs: the ``keras.optimizers.Optimizer`` arguments.

    Reproducing other libraries:

    - ``optax.contrib.ademamix(lr, b1, b2, b3, alpha, eps)`` =
      ``AdEMAMix(lr, b1, b2, b3, alpha, eps)`` (without schedulers).

    Example:

    >>> import keras, keras_opts
    >>> w = keras.Variable([1.0, -2.0])
    >>> opt = keras_opts.AdEMAMix(learning_rate=0.1)
    >>> opt.apply([keras.ops.convert_to_tensor([0.5, -3.0])], [w])
    >>> [round(float(x), 4) for x in w.numpy()]
    [0.8999, -1.9]

    References:
        Pagliardini, Ablin & Grangier, "The AdEMAMix Optimizer: Better,
        Faster, Older", ICLR 2025, https://arxiv.org/abs/2409.03137
    """

    capabilities = Capabilities(square_slots=("velocity",))

    def __init__(
        self,
        learning_rate: Any = 0.001,
        beta_1: checks.DecayRate = 0.9,
        beta_2: checks.DecayRate = 0.999,
        beta_3: checks.DecayRate = 0.9999,
        alpha: checks.NonNegative = 5.0,
        epsilon: checks.Positive = 1e-8,
        alpha_warmup_steps: checks.NonNegative = 0,
        beta_3_warmup_steps: checks.NonNegative = 0,
        coupled_weight_decay: checks.NonNegative = 0.0,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**config.given(locals()))

    def _check_arguments(self, arguments):
        beta_1 = arguments["beta_1"]
        if arguments["beta_3_warmup_steps"] and not 0.0 < beta_1:
            raise ValueError(
                "`beta_3_warmup_steps` starts beta_3 at beta_1, which must "
                f"then be in (0, 1). Received: beta_1={beta_1}"
            )

    def _slot_names(self):
        return ("momentum", "slow_momentum", "velocity")

    def _slow_weight(self, t):
        """``1 - beta_3(t)``, as ``-expm1(log beta_3(t))`` while warming
        up: ``1 - beta_3(t)`` formed in float32 from ``beta_3(t)`` near 1
        would keep only the digits float32 holds near 1 (6e-8 absolute,
        6e-3 relative at ``beta_3 = 0.99999``)."""
        if not self.beta_3_warmup_steps or self.beta_3 == 0.0:
            return 1.0 - self.beta_3
        log_1, log_3 = math.log(self.beta_1), math.log(self.beta_3)
        f = ops.minimum(t / self.beta_3_warmup_steps, 1.0)
        log_warm = log_1 * log_3 / ((1.0 - f) * log_3 + f * log_1)
        return ops.maximum(-ops.expm1(log_warm), 1.0 - self.beta_3)

    def _coefficients(self, learning_rate, t):
        alpha = self.alpha
        if self.alpha_warmup_steps:
            alpha = alpha * ops.minimum(t / self.alpha_warmup_steps, 1.0)
        sqrt_c2 = ops.sqrt(formulas.bias_correction(self.beta_2, t))
        scale = learning_rate * sqrt_c2
        return AdEMAMixCoefficients(
            fast_step=scale / formulas.bias_correction(self.beta_1, t),
            slow_step=scale * alpha,
            slow_weight=self._slow_weight(t),
            denominator_epsilon=self.epsilon * sqrt_c2,
        )

    def _kernel(self, k, p, g, s, c):
        fast = formulas.ema_(k, s.momentum, g, self.beta_1)
        slow = k.lerp_(s.slow_momentum, g, c.slow_weight)
        v = formulas.ema_square_(k, s.velocity, g, self.beta_2)
        d = formulas.denominator(k, v, c.denominator_epsilon, "corrected")
        p = k.addcdiv_(p, fast, d, -c.fast_step)
        k.addcdiv_(p, slow, d, -c.slow_step)


class AdEMAMixCoefficients(NamedTuple):
    """The scalars of AdEMAMix's step ``t``."""

    #: ``lr sqrt(1 - beta_2^t) / (1 - beta_1^t)``: the fast EMA's step.
    fast_step: Any
    #: ``lr sqrt(1 - beta_2^t) alpha(t)``: the slow EMA's step.
    slow_step: Any
    #: ``1 - beta_3(t)``: the weight of ``g`` in the slow EMA.
    slow_weight: Any
    #: The ``epsilon`` of the denominator, times ``sqrt(1 - beta_2^t)``.
    denominator_epsilon: Any
