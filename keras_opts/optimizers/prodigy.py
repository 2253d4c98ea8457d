"""Prodigy: Adam that estimates its own step size."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import keras
from keras import initializers, ops

from keras_opts._core import checks, config, formulas
from keras_opts._core.base import Optimizer
from keras_opts._core.step import Capabilities


@keras.saving.register_keras_serializable(package="keras_opts")
class Prodigy(Optimizer):
    r"""Prodigy (Mishchenko & Defazio, 2024), Algorithm 4 (the Adam form).

    Adam's best learning rate scales with the distance $D$ from the start
    to the solution, which is unknown. Prodigy estimates it as it goes:
    $d_k$ is a lower bound on $D$ built from how far the weights have moved
    along the gradients, $\langle g, \theta_0 - \theta_k \rangle$, over the
    length of the weighted gradient sum. It only grows, and the step is
    Adam's with learning rate $\gamma d_k$, so ``learning_rate`` is a
    multiplier (1.0, or a schedule around it) rather than a tuned value.

    Symbols: $\gamma_k$ = ``learning_rate``, $\beta_1, \beta_2$ =
    ``beta_1, beta_2``, $\beta_3$ = ``beta_3`` (default
    $\sqrt{\beta_2}$), $\epsilon$ = ``epsilon``, $d_0$ = ``d0``,
    $\lambda$ = ``weight_decay``, $m_0 = v_0 = s_0 = 0$, $r_0 = 0$; sums
    and norms run over every variable.

    $$
    \begin{aligned}
    m_{k+1} &= \beta_1 m_k + (1 - \beta_1)\, d_k g_k \\
    v_{k+1} &= \beta_2 v_k + (1 - \beta_2)\, d_k^2 g_k^2 \\
    r_{k+1} &= \beta_3 r_k + (1 - \beta_3)\, \gamma_k d_k^2
        \langle g_k, \theta_0 - \theta_k \rangle \\
    s_{k+1} &= \beta_3 s_k + (1 - \beta_3)\, \gamma_k d_k^2 g_k \\
    d_{k+1} &= \max\big(d_k,\; r_{k+1} / \|s_{k+1}\|_1\big) \\
    \theta_{k+1} &= \theta_k - \gamma_k d_k
        \Big(\frac{m_{k+1}}{\sqrt{v_{k+1}} + d_k \epsilon}
        + \lambda \theta_k\Big)
    \end{aligned}
    $$

    $r$ and $s$ are kept divided by $(1 - \beta_3) d_0$ (the ratio is
    unchanged; their float32 magnitudes stay near 1), per variable, so
    the estimate needs no pass over all variables beyond two numbers each.
    The current estimate is ``optimizer.d``. With ``bias_correction=True``
    $\gamma_k$ is multiplied by $\sqrt{1 - \beta_2^{k+1}} /
    (1 - \beta_1^{k+1})$. $\theta_0$ is the value at the first step.
    ``weight_decay`` (decoupled, scaled by $\gamma_k d_k$ as the authors'
    code does) belongs to the algorithm, so Keras' own decay is not applied
    on top; ``exclude_from_weight_decay`` still exempts variables.
    Variables must be float32 or float64 (float16 ones are refused at
    build: $d_k^2$ underflows there); Keras' mixed precision keeps them
    float32.

    Args:
        learning_rate: float, ``LearningRateSchedule`` or callable: the
            multiplier $\gamma$. Default 1.0.
        beta_1: momentum in [0, 1). Default 0.9.
        beta_2: second-moment decay in [0, 1). Default 0.999.
        beta_3: decay of $r$ and $s$ in [0, 1), or None for
            $\sqrt{\beta_2}$. Default None.
        epsilon: positive stabiliser. Default 1e-8.
        d0: the initial estimate $d_0$, positive. Default 1e-6.
        weight_decay: $\lambda$, at least 0, or a schedule of the step.
            Default 0.
        bias_correction: Adam's bias correction in $\gamma_k$. Default
            False.
        coupled_weight_decay: L2 coefficient added to the gradient.
            Default 0.
        **kwargs: the ``keras.optimizers.Optimizer`` arguments.

    Reproducing other libraries (they put $d_{k+1}$ instead of $d_k$ in
    the denominator's $d \epsilon$, so they agree with the paper at
    ``epsilon=0``):

    - the authors' ``prodigyopt.Prodigy(params, lr, betas=(b1, b2),
      eps=0)`` = ``Prodigy(lr, b1, b2, epsilon=0)``;
    - ``optax.contrib.prodigy(lr, betas=(b1, b2), eps=0)`` =
      ``Prodigy(lr, b1, b2, epsilon=0, bias_correction=True)``.

    Example:

    >>> import keras, keras_opts
    >>> w = keras.Variable([1.0, -2.0])
    >>> opt = keras_opts.Prodigy()
    >>> for _ in range(3):
    ...     opt.apply([keras.ops.convert_to_tensor([0.5, -3.0])], [w])
    >>> f"{float(opt.d):.3g}"
    '4.92e-06'

    References:
        Mishchenko & Defazio, "Prodigy: An Expeditiously Adaptive
        Parameter-Free Learner", ICML 2024,
        https://arxiv.org/abs/2306.06101; authors' code:
        https://github.com/konstmish/prodigy
    """

    capabilities = Capabilities(
        decay_in_kernel=True,
        kernel_cautious_decay=True,
        elementwise=False,
        square_slots=("velocity",),
        full_precision_slots=("initial",),
    )
    _scalar_slot_names = ("numerator", "gradient_sum_norm")

    def __init__(
        self,
        learning_rate: Any = 1.0,
        beta_1: checks.DecayRate = 0.9,
        beta_2: checks.DecayRate = 0.999,
        beta_3: checks.OptionalDecayRate = None,
        epsilon: checks.NonNegative = 1e-8,
        d0: checks.Positive = 1e-6,
        weight_decay: checks.WeightDecay = 0.0,
        bias_correction: checks.Flag = False,
        coupled_weight_decay: checks.NonNegative = 0.0,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**config.given(locals()))

    @property
    def _beta_3(self) -> float:
        if self.beta_3 is None:
            return math.sqrt(self.beta_2)
        return self.beta_3

    @property
    def d(self):
        """The current estimate $d_k$ (a float32 scalar variable)."""
        return self._d

    def build(self, variables):
        if self.built:
            return
        for variable in variables:
            if variable.dtype in ("float16", "bfloat16"):
                raise ValueError(
                    "Prodigy needs float32 or float64 variables: its second "
                    "moment scales with d**2 (1e-12 at the default d0), "
                    "which underflows in half precision. Under Keras' mixed "
                    "precision the variables are float32 and this does not "
                    f"arise. Received: variable {variable.path!r} of dtype "
                    f"{variable.dtype}."
                )
        super().build(variables)
        self._d = self.add_variable(
            shape=(),
            initializer=initializers.Constant(self.d0),
            dtype="float32",
            name="d",
        )

    def _slot_names(self):
        return ("momentum", "velocity", "gradient_sum", "initial")

    def _coefficients(self, learning_rate, t):
        d = ops.cast(self._d, t.dtype)
        rate = learning_rate
        if self.bias_correction:
            rate = (
                rate
                * ops.sqrt(formulas.bias_correction(self.beta_2, t))
                / formulas.bias_correction(self.beta_1, t)
            )
        return ProdigyCoefficients(
            first=t == 1.0,
            step_size=rate * d,
            estimate_weight=rate * d * d / self.d0,
            momentum_weight=(1.0 - self.beta_1) * d,
            velocity_weight=(1.0 - self.beta_2) * d * d,
            denominator_epsilon=self.epsilon * d,
        )

    def _kernel(self, k, p, g, s, c):
        x0 = k.copy_(s.initial, p, when=c.first)  # theta_0 at step 1
        beta_3 = self._beta_3
        numerator = beta_3 * k.read(s.numerator) + c.estimate_weight * k.dot(
            g, k.sub(x0, p)
        )
        k.write_(s.numerator, numerator)
        total = k.add_(k.mul_(s.gradient_sum, beta_3), g, c.estimate_weight)
        k.write_(s.gradient_sum_norm, k.abs_sum(total))
        m = k.add_(k.mul_(s.momentum, self.beta_1), g, c.momentum_weight)
        v = k.addcmul_(k.mul_(s.velocity, self.beta_2), g, g, c.velocity_weight)
        if self.weight_decay:
            # Cautious: only where the step (along m) and p agree in sign.
            decayed = p
            if self.cautious_weight_decay:
                decayed = k.mul_(k.agreeing(m, p), p)
            k.sub_(p, k.scale(decayed, c.step_size * c.weight_decay))
        p = k.update_begins(p)  # cautious masks the step, not the decay
        d = k.add_(k.sqrt(v), c.denominator_epsilon)
        k.addcdiv_(p, m, d, -c.step_size)

    def _end_update(self):
        def total(name):
            values = [ops.cast(x, "float32") for x in self._slots[name]]
            return ops.sum(ops.stack(values))

        numerator = total("numerator")
        denominator = total("gradient_sum_norm")
        safe = ops.where(denominator > 0, denominator, 1.0)
        estimate = ops.where(denominator > 0, numerator / safe, 0.0)
        self._d.assign(ops.maximum(self._d, estimate))


class ProdigyCoefficients(NamedTuple):
    """The scalars of Prodigy's step ``k`` (``gamma_k`` the learning rate,
    with Adam's bias correction if asked)."""

    #: The first step, which records ``theta_0``.
    first: Any
    #: ``gamma_k d_k``.
    step_size: Any
    #: ``gamma_k d_k^2 / d_0``: the weight of this step's terms in ``r``
    #: and ``s``, both kept divided by ``(1 - beta_3) d_0``.
    estimate_weight: Any
    #: ``(1 - beta_1) d_k``.
    momentum_weight: Any
    #: ``(1 - beta_2) d_k^2``.
    velocity_weight: Any
    #: ``epsilon d_k``, the epsilon of the denominator.
    denominator_epsilon: Any
    #: This variable's ``weight_decay`` (0 where it is excluded).
    weight_decay: Any = 0.0
