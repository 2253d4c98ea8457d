"""What every keras_opts schedule shares: its configuration, the
conversion of the optimizer's step counter into epochs, and the shapes of
an annealing phase."""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

from keras_opts._core.config import (
    checked_config,
    declared_config,
    take_declared,
)


class Schedule(keras.optimizers.schedules.LearningRateSchedule):
    """Base class: a subclass declares its arguments in its signature, each
    annotated with its rule (``steps_per_epoch: Annotated[int,
    checks.at_least(1)] = 1``), passes them on
    (``super().__init__(**config.given(locals()))``), which checks them,
    sets them as attributes and saves them (``keras_opts._core.config``),
    and writes ``__call__(step)`` with ``keras.ops`` only (safe under
    ``tf.function``, XLA and ``jax.jit``). ``step`` is the optimizer's
    ``iterations``: 0 at the first update."""

    def __init__(self, **given: Any) -> None:
        super().__init__()
        arguments = take_declared(type(self), given)
        self._check_arguments(arguments)
        for key, value in arguments.items():
            setattr(self, key, value)

    def _check_arguments(self, arguments: dict[str, Any]) -> None:
        """Checks of several arguments together (each is checked alone
        already)."""

    def get_config(self) -> dict[str, Any]:
        return declared_config(self)

    @classmethod
    def from_config(cls, config: dict[str, Any]):
        """Keras' convention, ``cls(**config)``: a missing argument takes
        its default; unknown keys and bad values fail as in ``__init__``."""
        return cls(**checked_config(cls, config))


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
