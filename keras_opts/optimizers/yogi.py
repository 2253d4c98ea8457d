"""Yogi: Adam with an additive, sign-controlled second moment."""

from __future__ import annotations

from typing import Any

import keras
from keras import initializers

from keras_opts._core import checks, config, formulas
from keras_opts._core.base import Optimizer
from keras_opts._core.step import Capabilities


@keras.saving.register_keras_serializable(package="keras_opts")
class Yogi(Optimizer):
    r"""Yogi (Zaheer et al., 2018), Algorithm 2.

    Adam's second moment $v$ forgets old gradients at the rate $1 - \beta_2$
    whatever their size, so a burst of small gradients can shrink $v$ fast
    and make the effective step size explode. Yogi changes $v$ by at most
    $(1 - \beta_2) g^2$ per step, in the direction of $g^2$: it grows as fast
    as Adam's but decays only additively.

    Symbols: $\eta$ = ``learning_rate``, $\beta_1, \beta_2$ =
    ``beta_1, beta_2``, $\epsilon$ = ``epsilon``, $m_0 = 0$,
    $v_0$ = ``initial_accumulator_value``, $t = 1, 2, \dots$.

    $$
    \begin{aligned}
    m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
    v_t &= v_{t-1} - (1 - \beta_2)\,\mathrm{sign}(v_{t-1} - g_t^2)\, g_t^2 \\
    \theta_t &= \theta_{t-1} - \eta\, \frac{m_t}{\sqrt{v_t} + \epsilon}
    \end{aligned}
    $$

    With ``bias_correction=True`` the step is
    $\eta\, \hat m_t / (\sqrt{\hat v_t} + \epsilon)$ with
    $\hat m_t = m_t / (1 - \beta_1^t)$, $\hat v_t = v_t / (1 - \beta_2^t)$,
    as optax and tensorflow-addons compute it.

    Args:
        learning_rate: float, ``LearningRateSchedule`` or callable. Default
            0.01 (the paper's).
        beta_1: first-moment decay in [0, 1). Default 0.9.
        beta_2: second-moment rate in [0, 1). Default 0.999.
        epsilon: positive stabiliser. Default 1e-3 (the paper's).
        initial_accumulator_value: $v_0$, at least 0. Default 1e-6
            (tensorflow-addons and optax).
        bias_correction: divide the moments by $1 - \beta^t$ (not in the
            paper's Algorithm 2). Default False.
        coupled_weight_decay: L2 coefficient added to the gradient.
            Default 0.
        **kwargs: the ``keras.optimizers.Optimizer`` arguments.

    Reproducing other libraries:

    - ``optax.yogi(lr, b1, b2, eps, initial_accumulator_value=0.0)`` =
      ``Yogi(lr, b1, b2, eps, initial_accumulator_value=0.0,
      bias_correction=True)`` (optax also starts $m$ at
      ``initial_accumulator_value``; with 0 the two agree exactly).

    Example:

    >>> import keras, keras_opts
    >>> w = keras.Variable([1.0, -2.0])
    >>> opt = keras_opts.Yogi(learning_rate=0.1)
    >>> opt.apply([keras.ops.convert_to_tensor([0.5, -3.0])], [w])
    >>> [round(float(x), 4) for x in w.numpy()]
    [0.7031, -1.6871]

    References:
        Zaheer, Reddi, Sachan, Kale & Kumar, "Adaptive Methods for
        Nonconvex Optimization", NeurIPS 2018,
        https://papers.nips.cc/paper/8186-adaptive-methods-for-nonconvex-optimization
    """

    capabilities = Capabilities(square_slots=("velocity",))

    def __init__(
        self,
        learning_rate: Any = 0.01,
        beta_1: checks.DecayRate = 0.9,
        beta_2: checks.DecayRate = 0.999,
        epsilon: checks.Positive = 1e-3,
        initial_accumulator_value: checks.NonNegative = 1e-6,
        bias_correction: checks.Flag = False,
        coupled_weight_decay: checks.NonNegative = 0.0,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**config.given(locals()))

    def _slot_names(self):
        return ("momentum", "velocity")

    def _slot_initializer(self, name):
        if name == "velocity":
            return initializers.Constant(self.initial_accumulator_value)
        return "zeros"

    def _coefficients(self, learning_rate, t):
        if not self.bias_correction:
            return formulas.AdamCoefficients(learning_rate, self.epsilon)
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
        g2 = k.square(g)
        direction = k.mul_(k.sign(k.sub(s.velocity, g2)), g2)
        v = k.sub_(s.velocity, direction, 1.0 - self.beta_2)
        d = formulas.denominator(k, v, c.denominator_epsilon, "corrected")
        k.addcdiv_(p, m, d, -c.step_size)
