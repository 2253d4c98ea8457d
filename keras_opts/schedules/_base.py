"""What every keras_opts schedule shares: checked arguments kept as a
mapping (attributes and ``get_config`` come from it) and the conversion of
the optimizer's step counter into epochs."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import keras
from keras import ops

from keras_opts._core import checks


class Schedule(keras.optimizers.schedules.LearningRateSchedule):
    """Base class: subclasses pass their checked arguments and write
    ``__call__(step)`` with ``keras.ops`` only (safe under ``tf.function``,
    XLA and ``jax.jit``). ``step`` is the optimizer's ``iterations``: 0 at
    the first update."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__()
        self._config_keys = tuple(config)
        for key, value in config.items():
            setattr(self, key, value)

    def get_config(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in self._config_keys}

    @classmethod
    def from_config(cls, config: dict[str, Any]):
        """Keras' convention, ``cls(**config)``: a missing argument takes
        its default; unknown keys and bad values fail as in ``__init__``."""
        checks.config_dict(cls, config)
        return cls(**config)


def step_count(name: str, value: Any, *, allow_zero: bool = False) -> int:
    """A whole number of steps (an ``int``, not a ``bool``)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise checks.ArgumentTypeError(
            f"`{name}` must be an int. Received: {name}={value!r} of type "
            f"{type(value).__name__}."
        )
    low = 0 if allow_zero else 1
    if value < low:
        raise ValueError(
            f"`{name}` must be at least {low}. Received: {name}={value!r}"
        )
    return value


def epoch_arguments(steps_per_epoch: Any, staircase: Any) -> dict[str, Any]:
    return {
        "steps_per_epoch": step_count("steps_per_epoch", steps_per_epoch),
        "staircase": checks.boolean("staircase", staircase),
    }


def epoch(schedule, step):
    """``step / steps_per_epoch`` as float32, floored if ``staircase``."""
    e = ops.cast(step, "float32") / float(schedule.steps_per_epoch)
    return ops.floor(e) if getattr(schedule, "staircase", False) else e


def remaining(step, begin: float, end: float):
    """``q = (end - step) / (end - begin)`` clipped to [0, 1]: the fraction
    of a phase still to go. Computing it from ``end`` (not ``1 - p``) keeps
    its relative precision as the phase closes, so a rate annealed to a
    value much smaller than its start stays float32-accurate there."""
    return ops.clip((end - step) / (end - begin), 0.0, 1.0)


def anneal_weight(shape: str, q):
    """The weight of the start value when ``q`` of the phase remains:
    ``"linear"`` ``q``; ``"cosine"`` ``(1 + cos(pi (1 - q))) / 2``, written
    ``sin(pi q / 2) ** 2``; ``"sqrt"`` ``1 - sqrt(1 - q)``, written
    ``q / (1 + sqrt(1 - q))``. Each form avoids cancellation near ``q = 0``.
    """
    if shape == "linear":
        return q
    if shape == "cosine":
        return ops.square(ops.sin(0.5 * math.pi * q))
    return q / (1.0 + ops.sqrt(1.0 - q))
