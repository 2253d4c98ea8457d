"""Nadam: Adam with Nesterov momentum and Dozat's momentum schedule."""

from __future__ import annotations

from typing import Any, NamedTuple

import keras
from keras import ops

from keras_opts._core import checks, config, formulas
from keras_opts._core.base import Optimizer
from keras_opts._core.step import Capabilities


@keras.saving.register_keras_serializable(package="keras_opts")
class Nadam(Optimizer):
    r"""Nadam (Dozat, 2016): Nesterov-accelerated Adam.

    Nesterov momentum evaluates the step after first moving along the
    momentum; Dozat folds that look-ahead into Adam by mixing the current
    gradient and the next step's momentum into the update. The momentum
    coefficient follows a warming schedule $\mu_t$, and the bias
    correction uses the product of all the $\mu$ so far.

    Symbols: $\eta$ = ``learning_rate``, $\beta_1, \beta_2$
    = ``beta_1, beta_2``, $\psi$ = ``momentum_decay``,
    $\epsilon$ = ``epsilon``, $t = 1, 2, \dots$.

    $$
    \begin{aligned}
    \mu_t &= \beta_1 \left(1 - \tfrac12\, 0.96^{t\psi}\right) \\
    m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
    v_t &= \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
    \theta_t &= \theta_{t-1} - \eta \left(
        \frac{(1 - \mu_t)\, g_t}{1 - \prod_{i \le t} \mu_i}
        + \frac{\mu_{t+1}\, m_t}{1 - \prod_{i \le t+1} \mu_i}
        \right) \frac{1}{\sqrt{v_t / (1 - \beta_2^t)} + \epsilon}
    \end{aligned}
    $$

    $\psi = 0.004$ is the paper's $0.96^{t/250}$. With
    $\psi = 1$ it is Keras' built-in Nadam. A very large
    $\psi$ (1e6) makes $\mu_t = \beta_1$ constant, the
    simplified form of the paper's section 3 that ``optax.nadam``
    implements; with $\beta_1 = 0$ Nadam is Adam with
    $\beta_1 = 0$.

    The product $\prod_{i \le t} \mu_i$ is kept in one variable of the
    parameters' dtype, as torch and Keras do: in float32, with
    $\mu_t$ close to 1 (large $\psi$ and $\beta_1 = 0.999$), its
    $1 - \prod$ carries a relative error of order $10^{-5}$.

    Args:
        learning_rate: float, ``LearningRateSchedule`` or callable. Default
            0.002 (the paper's and torch's).
        beta_1: in [0, 1). Default 0.9.
        beta_2: in [0, 1). Default 0.999.
        epsilon: positive. Default 1e-8.
        momentum_decay: $\psi \ge 0$. Default 0.004.
        coupled_weight_decay: L2 coefficient added to the gradient
            (torch's ``weight_decay``). Default 0.
        **kwargs: the ``keras.optimizers.Optimizer`` arguments.

    Reproducing other libraries:

    - ``torch.optim.NAdam(lr, betas, eps, weight_decay=w,
      momentum_decay=p)`` = ``Nadam(lr, *betas, eps, momentum_decay=p,
      coupled_weight_decay=w)``; with ``decoupled_weight_decay=True`` use
      ``weight_decay=w``.
    - ``keras.optimizers.Nadam(lr, b1, b2, epsilon)`` =
      ``Nadam(lr, b1, b2, epsilon, momentum_decay=1.0)``.
    - ``optax.nadam(lr, b1, b2, eps)`` =
      ``Nadam(lr, b1, b2, eps, momentum_decay=1e6)``.

    Example:

    >>> import keras, keras_opts
    >>> w = keras.Variable([1.0, -2.0])
    >>> opt = keras_opts.Nadam(learning_rate=0.1, beta_1=0.0)
    >>> opt.apply([keras.ops.convert_to_tensor([0.5, -3.0])], [w])
    >>> [round(float(x), 4) for x in w.numpy()]
    [0.9, -1.9]

    References:
        Dozat, "Incorporating Nesterov Momentum into Adam", ICLR 2016
        workshop, https://openreview.net/forum?id=OM0jvwB8jIp57ZJjtNEZ
    """

    capabilities = Capabilities(square_slots=("velocity",))

    def __init__(
        self,
        learning_rate: Any = 0.002,
        beta_1: checks.DecayRate = 0.9,
        beta_2: checks.DecayRate = 0.999,
        epsilon: checks.Positive = 1e-8,
        momentum_decay: checks.NonNegative = 0.004,
        coupled_weight_decay: checks.NonNegative = 0.0,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**config.given(locals()))

    def _slot_names(self):
        return ("momentum", "velocity")

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        dtype = variables[0].dtype if variables else None
        self._mu_product = self.add_variable(
            (), initializer="ones", dtype=dtype, name="mu_product"
        )

    def _mu(self, t):
        """``mu_t = beta_1 (1 - 0.96 ** (t psi) / 2)``."""
        return self.beta_1 * (
            1.0 - 0.5 * ops.power(0.96, t * self.momentum_decay)
        )

    def _one_minus_mu(self, t):
        """``1 - mu_t = (1 - beta_1) + beta_1 0.96 ** (t psi) / 2``: a sum
        of two positive terms, with ``1 - beta_1`` from the Python float,
        where ``1 - mu_t`` in float32 would lose the digits of ``mu_t``
        that float32 does not hold (1.3e-5 relative at ``mu_t = 0.999``).
        """
        half = 0.5 * self.beta_1 * ops.power(0.96, t * self.momentum_decay)
        return (1.0 - self.beta_1) + half

    def _begin_update(self):
        # The product of the mu_i is one scalar for all variables: advance it
        # once per update, before the variables' updates read it.
        product = self._mu_product
        self.assign(product, product * self._mu(self._t(product.dtype)))

    def _coefficients(self, learning_rate, t):
        mu_next = self._mu(t + 1.0)
        product = ops.cast(self._mu_product, t.dtype)
        sqrt_c2 = ops.sqrt(formulas.bias_correction(self.beta_2, t))
        scale = learning_rate * sqrt_c2
        return NadamCoefficients(
            gradient_step=scale * self._one_minus_mu(t) / (1.0 - product),
            momentum_step=scale * mu_next / (1.0 - product * mu_next),
            denominator_epsilon=self.epsilon * sqrt_c2,
        )

    def _kernel(self, k, p, g, s, c):
        m = formulas.ema_(k, s.momentum, g, self.beta_1)
        v = formulas.ema_square_(k, s.velocity, g, self.beta_2)
        d = formulas.denominator(k, v, c.denominator_epsilon, "corrected")
        p = k.addcdiv_(p, g, d, -c.gradient_step)
        k.addcdiv_(p, m, d, -c.momentum_step)


class NadamCoefficients(NamedTuple):
    """The scalars of Nadam's step ``t`` (``P_t`` the product of the
    ``mu_i`` up to ``t``, ``c_2 = 1 - beta_2^t``)."""

    #: ``lr sqrt(c_2) (1 - mu_t) / (1 - P_t)``: the gradient's step.
    gradient_step: Any
    #: ``lr sqrt(c_2) mu_{t+1} / (1 - P_t mu_{t+1})``: the momentum's step.
    momentum_step: Any
    #: The ``epsilon`` of the denominator, times ``sqrt(c_2)``.
    denominator_epsilon: Any
