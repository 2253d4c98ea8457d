"""Small helpers that the optimizers' updates share, so that each kernel
reads like its paper's algorithm box: pure ``keras.ops`` math on the step's
scalars (bias corrections, RAdam's rectifier, the scalars of an Adam-type
step as a ``NamedTuple``), and short compositions of kernel ops ``k``
(``keras_opts._core.kernels``), which update in place where their name ends
in ``_``.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, NamedTuple

from keras import ops

from keras_opts._core import checks

EPSILON_MODES = ("corrected", "uncorrected", "inside_sqrt")
ROOT_EPSILON_MODES = ("inside_sqrt", "outside_sqrt")
#: ``epsilon_mode`` of an Adam-type optimizer (:func:`denominator`).
EpsilonMode = Annotated[str, checks.one_of(*EPSILON_MODES)]
#: ``epsilon_mode`` of a root-of-a-sum step (Adagrad, RMSprop).
RootEpsilonMode = Annotated[str, checks.one_of(*ROOT_EPSILON_MODES)]


def ema_(k, average, value, decay, weight=None):
    """``average <- decay * average + weight * value`` in place, with the
    kernel ops ``k`` (``keras_opts._core.kernels``); ``weight`` is
    ``1 - decay`` (see :func:`ema_weight`)."""
    return k.lerp_(average, value, ema_weight(decay, weight))


def ema_square_(k, average, value, decay, weight=None):
    """``average <- decay * average + weight * value**2`` in place;
    ``weight`` is ``1 - decay`` (see :func:`ema_weight`)."""
    weight = ema_weight(decay, weight)
    return k.addcmul_(k.mul_(average, decay), value, value, weight)


def ema_weight(decay, weight=None):
    """``1 - decay`` from a Python float ``decay``, or ``weight`` if given.

    A ``decay`` that is a tensor (one that depends on the step) needs its
    ``weight`` formed by the caller from Python floats: ``1 - decay`` in
    float32 keeps only the digits of ``decay`` that float32 holds, so
    ``1 - float32(0.9999)`` is off by 1.7e-4 relative, and an EMA with it
    drifts from its float64 value by about that much.
    """
    if weight is not None:
        return weight
    if not isinstance(decay, (int, float)):
        raise TypeError(
            "`decay` is a tensor: pass its `weight` (1 - decay), formed "
            f"from Python floats. Received: decay={decay!r}"
        )
    return 1.0 - decay


def bias_correction(decay, t):
    """``1 - decay ** t``: the mass an EMA started at zero has gathered.

    Computed as ``-expm1(t * log(decay))`` with ``log(decay)`` taken in
    double precision: ``1 - decay ** t`` in float32 loses about five
    digits in early steps when ``decay`` is close to 1 (0.999 ** 1 rounds
    to 0.99900001, so 1 - it is off by 1.3e-5 relative).
    """
    if decay == 0.0:
        return ops.ones_like(t)
    return -ops.expm1(t * math.log(decay))


def denominator(k, v, epsilon, mode):
    """``sqrt(v + eps)`` for ``mode == "inside_sqrt"``, else
    ``sqrt(v) + eps``, written with the kernel ops ``k`` (one new temporary).

    With ``c2 = 1 - beta_2^t``, the adaptive factor ``1 / sqrt(v_hat)`` of
    an Adam-type method is ``sqrt(c2) / denominator(v, eps', mode)`` in
    each of the three places epsilon goes (``EPSILON_MODES``):

    - ``"corrected"``: ``1 / (sqrt(v / c2) + eps)`` (Adam paper, Algorithm 1;
      torch.optim.Adam, optax, tensorflow-addons' RectifiedAdam), which is
      ``sqrt(c2) / (sqrt(v) + eps sqrt(c2))``: ``eps' = eps sqrt(c2)``;
    - ``"uncorrected"``: ``sqrt(c2) / (sqrt(v) + eps)``, the "epsilon hat"
      of the Adam paper's section 2 (Keras' built-in Adam,
      torch.optim.RAdam): ``eps' = eps``;
    - ``"inside_sqrt"``: ``sqrt(c2 / (v + eps))``: ``eps' = eps``.

    So ``sqrt(c2)`` folds into the step size (:func:`adam_coefficients`).
    """
    if mode == "inside_sqrt":
        return k.sqrt_(k.add(v, epsilon))
    return k.add_(k.sqrt(v), epsilon)


def _denominator_epsilon(epsilon, sqrt_correction_2, mode):
    """``eps'`` of :func:`denominator` for ``mode``."""
    if mode == "corrected":
        return epsilon * sqrt_correction_2
    return epsilon


def _sma_ratio(y):
    """``g(y) = 1/y - 2/expm1(2y) = 1 + 1/y - coth(y)`` for ``y > 0``.

    Below ``y = 1/2`` the two terms nearly cancel, so the Taylor series
    ``1 - y/3 + y^3/45 - 2y^5/945 + y^7/4725 - 2y^9/93555`` is used there
    (its next term is under 1e-9 at ``y = 1/2``).
    """
    small = ops.minimum(y, 0.5)
    y2 = small * small
    series = 1.0 - small * (
        1.0 / 3.0
        - y2
        * (
            1.0 / 45.0
            - y2 * (2.0 / 945.0 - y2 * (1.0 / 4725.0 - y2 * (2.0 / 93555.0)))
        )
    )
    large = ops.maximum(y, 0.5)
    direct = 1.0 / large - 2.0 / ops.expm1(2.0 * large)
    return ops.where(y < 0.5, series, direct)


def radam_sma_length(beta_2, t):
    """``rho_t = rho_inf - 2 t beta_2^t / (1 - beta_2^t)`` of RAdam.

    The direct formula subtracts two numbers near ``rho_inf`` (1999 for
    ``beta_2 = 0.999``) to get one near ``t``, so in float32 it is off by
    up to 0.02 in early steps, where the rectifier is most sensitive. With
    ``u = -log(beta_2) / 2`` it equals ``t g(t u) + 1 - g(u)`` (``g`` of
    ``_sma_ratio``; ``rho_inf = coth(u)``), which has no cancellation.
    """
    if beta_2 == 0.0:  # rho_inf = 1 and every rho_t = 1
        return ops.ones_like(t)
    u = -math.log(beta_2) / 2.0
    g_u = 1.0 / u - 2.0 / math.expm1(2.0 * u)
    return t * _sma_ratio(t * u) + (1.0 - g_u)


def radam_rectification(beta_2, rho_t):
    """``r_t`` of Liu et al. (2019), eq. 7, clamped at 0 below ``rho_t = 4``.

    The clamp only keeps the unused branch of a ``where`` finite; callers use
    ``r_t`` only where ``rho_t`` passes their threshold (at least 4).
    """
    rho_inf = 2.0 / (1.0 - beta_2) - 1.0
    # Three factors of at most about 1: the products of the paper's form,
    # (rho_t - 4)(rho_t - 2) rho_inf and (rho_inf - 4)(rho_inf - 2) rho_t,
    # reach 8e9 at beta_2 = 0.999, beyond float16's 65504 (a NaN step for
    # float16 variables).
    ratio = (
        (rho_t - 4.0)
        / (rho_inf - 4.0)
        * ((rho_t - 2.0) / (rho_inf - 2.0))
        * (rho_inf / rho_t)
    )
    return ops.sqrt(ops.maximum(ratio, 0.0))


class AdamCoefficients(NamedTuple):
    """The scalars of a bias-corrected Adam-type step
    ``p <- p - step_size * m / denominator(v, epsilon, mode)``."""

    #: ``lr sqrt(1 - beta_2^t) / (1 - beta_1^t)``.
    step_size: Any
    #: The ``epsilon`` of :func:`denominator` (``epsilon * sqrt(1 -
    #: beta_2^t)`` in the ``"corrected"`` mode, since the step size holds
    #: the correction).
    denominator_epsilon: Any


def adam_coefficients(
    learning_rate, t, beta_1, beta_2, epsilon, mode
) -> AdamCoefficients:
    """:class:`AdamCoefficients` at step ``t`` (see :func:`denominator`)."""
    sqrt_c2 = ops.sqrt(bias_correction(beta_2, t))
    return AdamCoefficients(
        step_size=learning_rate * sqrt_c2 / bias_correction(beta_1, t),
        denominator_epsilon=_denominator_epsilon(epsilon, sqrt_c2, mode),
    )


class RectifiedCoefficients(NamedTuple):
    """The scalars of RAdam's step (:func:`rectified_update`)."""

    #: ``lr r_t sqrt(1 - beta_2^t) / (1 - beta_1^t)`` once rectified, else
    #: ``lr / (1 - beta_1^t)``.
    step_size: Any
    #: The ``epsilon`` of :func:`denominator` (see
    #: :class:`AdamCoefficients`).
    denominator_epsilon: Any
    #: ``rho_t > threshold``: the variance of the adaptive step is
    #: tractable, and it is taken rectified.
    rectified: Any


def rectified_coefficients(
    learning_rate, t, beta_1, beta_2, epsilon, mode, threshold
) -> RectifiedCoefficients:
    """:class:`RectifiedCoefficients` at step ``t``: Liu et al. (2019),
    Algorithm 2, with ``rho_t`` from :func:`radam_sma_length`."""
    sqrt_c2 = ops.sqrt(bias_correction(beta_2, t))
    rho_t = radam_sma_length(beta_2, t)
    rectified = rho_t > threshold
    scale = ops.where(
        rectified, radam_rectification(beta_2, rho_t) * sqrt_c2, 1.0
    )
    return RectifiedCoefficients(
        step_size=learning_rate * scale / bias_correction(beta_1, t),
        denominator_epsilon=_denominator_epsilon(epsilon, sqrt_c2, mode),
        rectified=rectified,
    )


def rectified_update(k, p, m, v, c, mode):
    """RAdam's update, the paper's branch as a ``where``: once ``rho_t``
    passes the threshold the rectified adaptive step
    ``p <- p - step_size * m / D(v)``, before it the momentum step
    ``p <- p - step_size * m`` (``c.step_size`` holds each branch's
    scalar). The two differ only in the denominator, ``D(v)`` or 1, so the
    ``where`` picks that and one fused update follows: a ``where`` between
    the two whole updates would cost torch's multi-tensor path a separate
    division into a new tensor per step."""
    adaptive = denominator(k, v, c.denominator_epsilon, mode)
    k.addcdiv_(p, m, k.where(c.rectified, adaptive, 1.0), -c.step_size)
