"""Keras' ``weight_decay`` as the base class applies it: evaluated at the
step when it is a schedule or a callable, scaled by a subclass'
``_weight_decay_factor``, and applied by Keras before the update, with each
variable's update, or by the algorithm itself (``_decay_in_kernel``)."""

from __future__ import annotations

import numbers
from typing import Any

import keras
from keras import ops

from keras_opts._core import keras_api


def current(optimizer) -> Any:
    """``weight_decay`` at this step: a schedule is evaluated at
    ``iterations`` and a callable called, as Keras does for the learning
    rate."""
    value = optimizer.weight_decay
    if isinstance(value, keras.optimizers.schedules.LearningRateSchedule):
        return value(optimizer.iterations)
    if callable(value):
        return value()
    return value


def for_kernel(optimizer, variable) -> Any:
    """``weight_decay`` for ``variable`` now, where the algorithm applies
    it (a float, or a 0-d tensor of its dtype where it is a schedule), 0
    where ``exclude_from_weight_decay`` exempts the variable."""
    if not optimizer.weight_decay or not keras_api.uses_weight_decay(
        optimizer, variable
    ):
        return 0.0
    value = current(optimizer)
    if isinstance(value, numbers.Real):
        return float(value)
    return ops.cast(value, variable.dtype)


def applied_in_step(optimizer) -> bool:
    """Whether Keras' decoupled decay is applied with each variable's
    update (by ``_run_kernel``) rather than by Keras before all of them:
    under ``lazy_rows`` (untouched rows escape it), for a scheduled
    ``weight_decay`` and for a scaled one (AdamW's
    ``_weight_decay_factor``). Each backend's own decay reads a constant
    ``weight_decay``; the update step runs per variable in TensorFlow's
    distributed update context, where reading the schedule is safe."""
    return bool(
        optimizer.weight_decay
        and not optimizer._decay_in_kernel
        and (
            optimizer.lazy_rows
            or not isinstance(optimizer.weight_decay, numbers.Real)
            or optimizer._weight_decay_factor() != 1.0
        )
    )


def decoupled_coefficient(optimizer, dtype) -> Any:
    """``weight_decay * _weight_decay_factor()`` now, in ``dtype``."""
    value = current(optimizer)
    factor = optimizer._weight_decay_factor()
    if factor != 1.0:
        value = value * factor
    return ops.cast(value, dtype)
