r"""Five learning-rate decays, counted in epochs.

Each takes ``steps_per_epoch`` (1, the default, counts optimizer steps) and
``staircase`` (decay once per whole epoch instead of continuously). With
$e$ = ``step / steps_per_epoch`` (floored if ``staircase``) and
$\eta_0$ = ``learning_rate``:

| schedule | rate |
|---|---|
| `InverseTimeDecay` | $\eta_0 / (1 + k e)$ |
| `ExponentialDecay` | $\eta_0 e^{-k e}$ |
| `GeometricDecay` | $\eta_0 \gamma^{e}$ |
| `StaircaseDecay` | `values[i]` while `boundaries[i-1] <= e < boundaries[i]` |
| `InverseSqrtDecay` | $\eta_0 k / \sqrt{\max(e, 1)}$ |
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import keras
from keras import ops

from keras_opts._core import checks, config
from keras_opts.schedules._base import Schedule, epoch


def _register(cls):
    return keras.saving.register_keras_serializable(package="keras_opts")(cls)


class _RateDecay(Schedule):
    """A decay with a rate ``k``: ``learning_rate``, ``decay_rate``,
    ``steps_per_epoch``, ``staircase``."""

    def __init__(
        self,
        learning_rate: checks.Positive,
        decay_rate: checks.NonNegative,
        steps_per_epoch: Annotated[int, checks.at_least(1)] = 1,
        staircase: checks.Flag = False,
    ) -> None:
        super().__init__(**config.given(locals()))


@_register
class InverseTimeDecay(_RateDecay):
    r"""Epoch-based (inverse time) decay: $\eta_0 / (1 + k e)$.

    Keras' built-in ``InverseTimeDecay(lr, decay_steps=s, decay_rate=k)``
    is this with ``steps_per_epoch=s``.

    Args:
        learning_rate: $\eta_0 > 0$.
        decay_rate: $k \ge 0$.
        steps_per_epoch: optimizer steps per epoch. Default 1.
        staircase: decay at whole epochs only. Default False.

    >>> import keras_opts
    >>> s = keras_opts.schedules.InverseTimeDecay(0.1, decay_rate=1.0,
    ...     steps_per_epoch=10)
    >>> [round(float(s(step)), 4) for step in (0, 10, 30)]
    [0.1, 0.05, 0.025]
    """

    def __call__(self, step):
        return self.learning_rate / (1.0 + self.decay_rate * epoch(self, step))


@_register
class ExponentialDecay(_RateDecay):
    r"""Exponential decay: $\eta_0 e^{-k e}$.

    With a natural exponent. Keras' built-in
    ``ExponentialDecay(lr, decay_steps=s, decay_rate=r)`` is
    $\eta_0 r^{\text{step}/s}$, the same curve with
    ``steps_per_epoch=s`` and $k = -\ln r$; :class:`GeometricDecay`
    takes the base directly.

    Args:
        learning_rate: $\eta_0 > 0$.
        decay_rate: $k \ge 0$.
        steps_per_epoch: optimizer steps per epoch. Default 1.
        staircase: decay at whole epochs only. Default False.

    >>> import keras_opts
    >>> s = keras_opts.schedules.ExponentialDecay(0.1, decay_rate=0.5)
    >>> round(float(s(2)), 5)  # 0.1 * exp(-1)
    0.03679
    """

    def __call__(self, step):
        return self.learning_rate * ops.exp(
            -self.decay_rate * epoch(self, step)
        )


@_register
class GeometricDecay(Schedule):
    r"""Geometric decay: $\eta_0 \gamma^{e}$.

    Geometric (exponential) in the epoch, though $\eta_0 \cdot 0.95^{e}$
    is sometimes called "polynomial decay"; Keras' ``PolynomialDecay`` is
    a different curve, $(\eta_0 - \eta_{end})(1 - t/T)^p +
    \eta_{end}$. torch.optim.lr_scheduler.ExponentialLR(gamma) is this with
    ``steps_per_epoch=1``, and StepLR(step_size, gamma) is this with
    ``steps_per_epoch=step_size, staircase=True``.

    Args:
        learning_rate: $\eta_0 > 0$.
        base: $\gamma$ in (0, 1]. Default 0.95.
        steps_per_epoch: optimizer steps per epoch. Default 1.
        staircase: decay at whole epochs only. Default False.

    >>> import keras_opts
    >>> s = keras_opts.schedules.GeometricDecay(1.0, base=0.5)
    >>> [float(s(step)) for step in (0, 1, 3)]
    [1.0, 0.5, 0.125]
    """

    def __init__(
        self,
        learning_rate: checks.Positive,
        base: Annotated[
            float, checks.in_range(low=0.0, high=1.0, low_open=True)
        ] = 0.95,
        steps_per_epoch: Annotated[int, checks.at_least(1)] = 1,
        staircase: checks.Flag = False,
    ) -> None:
        super().__init__(**config.given(locals()))

    def __call__(self, step):
        log_base = math.log(self.base)
        return self.learning_rate * ops.exp(log_base * epoch(self, step))


@_register
class StaircaseDecay(Schedule):
    r"""Piecewise-constant rates with arbitrary boundaries.

    ``values[0]`` before ``boundaries[0]``, ``values[i]`` from
    ``boundaries[i-1]`` (inclusive) to ``boundaries[i]``, and
    ``values[-1]`` from ``boundaries[-1]`` on; boundaries are in epochs.
    torch.optim.lr_scheduler.MultiStepLR(milestones, gamma) is
    ``StaircaseDecay(milestones, [lr * gamma**i for i in
    range(len(milestones) + 1)])``. Keras' ``PiecewiseConstantDecay``
    switches one step later (after the boundary, not at it).

    Args:
        boundaries: increasing epochs (numbers).
        values: one more rate than boundaries, each positive.
        steps_per_epoch: optimizer steps per epoch. Default 1.

    >>> import keras_opts
    >>> s = keras_opts.schedules.StaircaseDecay([2, 5], [0.1, 0.01, 0.001])
    >>> [round(float(s(step)), 4) for step in (0, 1, 2, 4, 5, 9)]
    [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    """

    def __init__(
        self,
        boundaries: Boundaries,
        values: Values,
        steps_per_epoch: Annotated[int, checks.at_least(1)] = 1,
    ) -> None:
        super().__init__(**config.given(locals()))

    def _check_arguments(self, arguments):
        boundaries, values = arguments["boundaries"], arguments["values"]
        if len(values) != len(boundaries) + 1:
            raise ValueError(
                "`values` needs one more entry than `boundaries`. Received: "
                f"boundaries={boundaries}, values={values}"
            )
        if any(b >= c for b, c in zip(boundaries, boundaries[1:])):
            raise ValueError(
                "`boundaries` must be strictly increasing. Received: "
                f"boundaries={boundaries}"
            )

    def __call__(self, step):
        e = epoch(self, step)
        rate = ops.convert_to_tensor(self.values[0], "float32")
        for boundary, value in zip(self.boundaries, self.values[1:]):
            rate = ops.where(e >= boundary, value, rate)
        return rate


def _as_list(name: str, value: Any) -> list:
    if not isinstance(value, (list, tuple)):
        raise TypeError(
            f"`{name}` must be a list. Received: {name}={value!r} of type "
            f"{type(value).__name__}."
        )
    return list(value)


@_register
class InverseSqrtDecay(Schedule):
    r"""Square-root decay: $\eta_0 k / \sqrt{\max(e, 1)}$.

    The plain $\eta_0 k / \sqrt{e}$ is infinite at epoch 0, so the
    rate is held at $\eta_0 k$ through the first epoch and decays
    from there (the curve is continuous at $e = 1$).

    Args:
        learning_rate: $\eta_0 > 0$.
        scale: $k > 0$. Default 1.
        steps_per_epoch: optimizer steps per epoch. Default 1.
        staircase: decay at whole epochs only. Default False.

    >>> import keras_opts
    >>> s = keras_opts.schedules.InverseSqrtDecay(0.1, steps_per_epoch=10)
    >>> [round(float(s(step)), 4) for step in (0, 9, 10, 40)]
    [0.1, 0.1, 0.1, 0.05]
    """

    def __init__(
        self,
        learning_rate: checks.Positive,
        scale: checks.Positive = 1.0,
        steps_per_epoch: Annotated[int, checks.at_least(1)] = 1,
        staircase: checks.Flag = False,
    ) -> None:
        super().__init__(**config.given(locals()))

    def __call__(self, step):
        e = ops.maximum(epoch(self, step), 1.0)
        return self.learning_rate * self.scale / ops.sqrt(e)


def _listed(check):
    """A rule's check for a list whose every entry ``check`` checks."""

    def checked(name, value):
        return [
            check(f"{name}[{i}]", x)
            for i, x in enumerate(_as_list(name, value))
        ]

    return checked


Boundaries = Annotated[
    "list[float]",
    checks.Rule(
        _listed(lambda name, value: checks.real(name, value, low=0.0)),
        "a list of numbers ≥ 0, strictly increasing",
    ),
]
Values = Annotated[
    "list[float]",
    checks.Rule(
        _listed(checks.positive),
        "a list of numbers > 0, one more than `boundaries`",
    ),
]
