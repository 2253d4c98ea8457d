"""MADGRAD: momentumised, adaptive, dual averaged gradient method."""

from __future__ import annotations

from typing import Any, NamedTuple

import keras
from keras import ops

from keras_opts._core import checks, config
from keras_opts._core.base import Optimizer
from keras_opts._core.step import Capabilities

#: The smallest normal number of each dtype: below any non-zero
#: ``nu^(1/3)`` (at least 4e-3 in float16, 1e-15 in float32).
_TINY = {
    "float16": 2.0**-14,
    "bfloat16": 2.0**-126,
    "float32": 2.0**-126,
    "float64": 2.0**-1022,
}


@keras.saving.register_keras_serializable(package="keras_opts")
class MADGRAD(Optimizer):
    r"""MADGRAD (Defazio & Jelassi, 2021), Algorithm 1.

    A dual-averaging method: instead of moving the current point, each
    step recomputes it from the starting point $\theta_0$ and the weighted
    sum of all gradients so far, scaled by the cube root of the weighted
    sum of squared gradients (AdaGrad-like, but a cube root). The weights
    $\lambda_k = \eta \sqrt{k + 1}$ grow so that late gradients are not
    drowned by early ones; momentum is an average of the iterates.

    Symbols: $\eta$ = ``learning_rate``, $c = 1 - $ ``momentum``,
    $\epsilon$ = ``epsilon``, $s_0 = \nu_0 = 0$, $k = 0, 1, \dots$ (the
    step ``t = k + 1``).

    $$
    \begin{aligned}
    \lambda_k &= \eta \sqrt{k + 1} \\
    s_{k+1} &= s_k + \lambda_k g_k \\
    \nu_{k+1} &= \nu_k + \lambda_k g_k^2 \\
    z_{k+1} &= \theta_0 - \frac{s_{k+1}}{\nu_{k+1}^{1/3} + \epsilon} \\
    \theta_{k+1} &= (1 - c)\, \theta_k + c\, z_{k+1}
    \end{aligned}
    $$

    $\theta_0$ is the value at the first step. With ``momentum=0``,
    $\theta_{k+1} = z_{k+1}$ and $\theta_0$ is not stored: it is recovered
    as $\theta_k + s_k / (\nu_k^{1/3} + \epsilon)$, as the authors' code
    does (two slots instead of three).

    Args:
        learning_rate: float, ``LearningRateSchedule`` or callable. Default
            0.01.
        momentum: in [0, 1). Default 0.9.
        epsilon: added to the cube root, at least 0. Default 1e-6. At 0
            (the authors' package with ``eps=0``) a coordinate whose
            gradients have all been 0 stays where it is (0/0 is taken as
            0).
        coupled_weight_decay: L2 coefficient added to the gradient (the
            authors' ``weight_decay``). Default 0.
        **kwargs: the ``keras.optimizers.Optimizer`` arguments.

    Reproducing other libraries:

    - The authors' ``madgrad.MADGRAD(params, lr, momentum, weight_decay,
      eps)`` adds ``eps`` to ``lr`` "for stability"; with ``eps=0`` it is
      ``MADGRAD(lr, momentum, epsilon=0, coupled_weight_decay=...)``.

    Example:

    >>> import keras, keras_opts
    >>> w = keras.Variable([1.0, -2.0])
    >>> opt = keras_opts.MADGRAD(learning_rate=0.1)
    >>> opt.apply([keras.ops.convert_to_tensor([0.5, -3.0])], [w])
    >>> [round(float(x), 4) for x in w.numpy()]
    [0.9829, -1.9689]

    References:
        Defazio & Jelassi, "Adaptivity without Compromise: A Momentumized,
        Adaptive, Dual Averaged Gradient Method for Stochastic
        Optimization", JMLR 23 (2022), https://arxiv.org/abs/2101.11075;
        authors' code: https://github.com/facebookresearch/madgrad
    """

    capabilities = Capabilities(
        square_slots=("squared_sum",), full_precision_slots=("initial",)
    )

    def __init__(
        self,
        learning_rate: Any = 0.01,
        momentum: checks.DecayRate = 0.9,
        epsilon: checks.NonNegative = 1e-6,
        coupled_weight_decay: checks.NonNegative = 0.0,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**config.given(locals()))

    def _slot_names(self):
        names = ("gradient_sum", "squared_sum")
        return names + ("initial",) if self.momentum else names

    def _coefficients(self, learning_rate, t):
        return MADGRADCoefficients(
            weight=learning_rate * ops.sqrt(t),
            first=t == 1.0,
            tiny=_TINY[keras.backend.standardize_dtype(t.dtype)],
        )

    def _rms(self, k, nu, c):
        """``nu^(1/3) + eps``. With ``epsilon = 0`` it is 0 where every
        gradient so far was 0, and so is ``s``: the floor at ``tiny``
        makes ``s / rms`` 0 there (the coordinate stays at theta_0)
        instead of 0/0."""
        rms = k.pow(nu, 1.0 / 3.0)
        if self.epsilon:
            return k.add_(rms, self.epsilon)
        return k.maximum_(rms, c.tiny)

    def _kernel(self, k, p, g, s, c):
        if self.momentum:
            x0 = k.copy_(s.initial, p, when=c.first)  # theta_0 at step 1
        else:
            x0 = k.add(p, k.div(s.gradient_sum, self._rms(k, s.squared_sum, c)))
        nu = k.addcmul_(s.squared_sum, g, g, c.weight)
        total = k.add_(s.gradient_sum, g, c.weight)
        z = k.sub(x0, k.div(total, self._rms(k, nu, c)))
        if self.momentum:
            k.lerp_(p, z, 1.0 - self.momentum)
        else:
            k.copy_(p, z)


class MADGRADCoefficients(NamedTuple):
    """The scalars of MADGRAD's step ``t``."""

    #: ``lambda_t = lr sqrt(t)``, the weight of ``g_t`` in both sums.
    weight: Any
    #: ``t = 1``: the step that records ``theta_0``.
    first: Any
    #: The smallest positive normal number of the dtype.
    tiny: Any
