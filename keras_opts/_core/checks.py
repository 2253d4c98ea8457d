"""Argument checks shared by every optimizer.

Each check raises before any variable exists, with a message that names the
argument and the value received, e.g.
``ValueError: `beta_1` must be in [0, 1). Received: beta_1=1.5``.

A value of the wrong type raises :class:`ArgumentTypeError`, a
``TypeError`` (Python's convention) that is also a ``ValueError`` (what
Keras' built-in optimizers raise for a bad argument of any kind, e.g.
``keras.optimizers.SGD(momentum=True)``), so code written against either
catches it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Annotated, Any, NamedTuple

import keras


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type (see the module docstring)."""


def _received(name: str, value: Any) -> str:
    return f"Received: {name}={value!r}"


def real(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Returns ``value`` as a float after checking type, finiteness and range.

    ``low``/``high`` bound the value; ``*_open`` excludes that bound.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentTypeError(
            f"`{name}` must be a real number. {_received(name, value)} "
            f"of type {type(value).__name__}."
        )
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"`{name}` must be finite. {_received(name, value)}")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (
        value >= high if high_open else value > high
    )
    if too_low or too_high:
        left = "(" if low_open or low is None else "["
        right = ")" if high_open or high is None else "]"
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        raise ValueError(
            f"`{name}` must be in {left}{lo}, {hi}{right}. "
            f"{_received(name, value)}"
        )
    return value


def decay_rate(name: str, value: Any) -> float:
    """An exponential-average coefficient such as ``beta_1``: in [0, 1)."""
    return real(name, value, low=0.0, high=1.0, high_open=True)


def positive(name: str, value: Any) -> float:
    return real(name, value, low=0.0, low_open=True)


def non_negative(name: str, value: Any) -> float:
    return real(name, value, low=0.0)


def boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ArgumentTypeError(
            f"`{name}` must be a bool. {_received(name, value)} "
            f"of type {type(value).__name__}."
        )
    return value


def choice(name: str, value: Any, options: tuple[str, ...]) -> str:
    if value not in options:
        raise ValueError(
            f"`{name}` must be one of {', '.join(map(repr, options))}. "
            f"{_received(name, value)}"
        )
    return value


def learning_rate(value: Any) -> None:
    """A positive finite number, a ``LearningRateSchedule`` or a callable."""
    schedule = keras.optimizers.schedules.LearningRateSchedule
    if isinstance(value, type):
        raise ArgumentTypeError(
            "`learning_rate` must be a number, a schedule instance or a "
            f"callable, not a class. Received: learning_rate={value!r}"
        )
    if isinstance(value, schedule) or callable(value):
        return
    if isinstance(value, keras.Variable):
        return
    positive("learning_rate", value)


def weight_decay(name: str, value: Any) -> Any:
    """A coefficient of at least 0, or a ``LearningRateSchedule`` instance
    or a callable that gives it (evaluated at the optimizer's
    ``iterations``, as a learning-rate schedule is)."""
    schedule = keras.optimizers.schedules.LearningRateSchedule
    if isinstance(value, type):
        raise ArgumentTypeError(
            f"`{name}` must be a number, a schedule instance or a "
            f"callable, not a class. {_received(name, value)}"
        )
    if isinstance(value, schedule) or callable(value):
        return value
    return non_negative(name, value)


def state_dtype(value: Any) -> str | None:
    """``None`` or a dtype name optimizer slots may be stored in."""
    if value is None:
        return None
    return choice("state_dtype", value, ("bfloat16", "float16", "int8"))


def text(name: str, value: Any) -> str:
    """A string."""
    if not isinstance(value, str):
        raise ArgumentTypeError(
            f"`{name}` must be a string. {_received(name, value)} "
            f"of type {type(value).__name__}."
        )
    return value


def integer(name: str, value: Any, low: int) -> int:
    """An integer (not a bool) that is at least ``low``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ArgumentTypeError(
            f"`{name}` must be an integer. Received: {name}={value!r} "
            f"of type {type(value).__name__}."
        )
    if value < low:
        raise ValueError(
            f"`{name}` must be an integer >= {low}. Received: {name}={value!r}"
        )
    return int(value)


# Rules: a check and the values it allows, as the hyperparameters of an
# optimizer's signature declare them (``beta_1: checks.DecayRate = 0.9``);
# ``keras_opts._core.config.declared`` reads them from the signature, the
# base class applies them, and the docs show ``allowed``.


class Rule(NamedTuple):
    """A check of one argument and the values it allows, in words."""

    check: Callable[[str, Any], Any]
    allowed: str

    def __call__(self, name: str, value: Any) -> Any:
        return self.check(name, value)


def one_of(*options: str) -> Rule:
    """One of the strings ``options``."""
    return Rule(
        lambda name, value: choice(name, value, options),
        "one of " + ", ".join(f'`"{o}"`' for o in options),
    )


def at_least(low: int) -> Rule:
    """An integer of at least ``low``."""
    return Rule(
        lambda name, value: integer(name, value, low), f"integer ≥ {low}"
    )


def in_range(
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> Rule:
    """A real number within the bounds given, each excluded where its
    ``*_open`` says."""
    left = "(" if low_open or low is None else "["
    right = ")" if high_open or high is None else "]"
    lo = "-inf" if low is None else f"{low:g}"
    hi = "inf" if high is None else f"{high:g}"
    return Rule(
        lambda name, value: real(
            name,
            value,
            low=low,
            high=high,
            low_open=low_open,
            high_open=high_open,
        ),
        f"in {left}{lo}, {hi}{right}",
    )


def real_number(name: str, value: Any) -> float:
    """Any finite real number."""
    return real(name, value)


def optional(rule: Rule) -> Rule:
    """``None``, or a value ``rule`` allows."""
    return Rule(
        lambda name, value: None if value is None else rule(name, value),
        f"None or {rule.allowed}",
    )


DECAY_RATE = Rule(decay_rate, "in [0, 1)")
POSITIVE = Rule(positive, "> 0")
NON_NEGATIVE = Rule(non_negative, "≥ 0")
FLAG = Rule(boolean, "`True` or `False`")

DecayRate = Annotated[float, DECAY_RATE]
Positive = Annotated[float, POSITIVE]
NonNegative = Annotated[float, NON_NEGATIVE]
Real = Annotated[float, Rule(real_number, "finite")]
Flag = Annotated[bool, FLAG]
#: Keras' ``weight_decay`` where the algorithm needs one (not None).
WeightDecay = Annotated[
    Any, Rule(weight_decay, "≥ 0, a schedule or a callable")
]
#: A name (a schedule's, saved in its config): a string or None.
Name = Annotated[
    "str | None",
    optional(Rule(lambda name, value: text(name, value), "a string")),
]
OptionalPositive = Annotated["float | None", optional(POSITIVE)]
OptionalDecayRate = Annotated["float | None", optional(DECAY_RATE)]
StateDtype = Annotated[
    "str | None",
    Rule(
        lambda name, value: state_dtype(value),
        '`None`, `"bfloat16"`, `"float16"` or `"int8"`',
    ),
]
