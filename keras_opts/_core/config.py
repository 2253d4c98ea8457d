"""What every keras_opts class does with its configuration: its
hyperparameters are declared once, in the signature of its ``__init__``
(:func:`declared`), checked and set as attributes of the same names by its
base class, and saved by ``get_config`` (:func:`declared_config`);
``from_config`` follows Keras' convention, ``cls(**config)``, where a
missing argument takes its default and an unknown one or a bad value fails
as in ``__init__``."""

from __future__ import annotations

import functools
import inspect
import typing
from typing import Any, NamedTuple

import keras
import numpy as np

from keras_opts._core import checks


def declared_config(obj) -> dict[str, Any]:
    """``{name: obj.name}`` for each hyperparameter ``obj``'s class
    declares (:func:`declared`)."""
    return {name: getattr(obj, name) for name in declared(type(obj))}


def checked_config(
    cls: type,
    config: Any,
    *,
    required: tuple[str, ...] = (),
    objects: tuple[str, ...] = (),
    custom_objects: Any = None,
) -> dict[str, Any]:
    """A copy of ``config`` for ``cls(**config)``: checked to be a dict
    holding every key of ``required``, with the serialized Keras objects
    under the keys of ``objects`` (a wrapped optimizer or model, a
    schedule) deserialized."""
    if not isinstance(config, dict):
        raise checks.ArgumentTypeError(
            f"`config` of {cls.__name__} must be a dict. "
            f"Received: config={config!r}"
        )
    missing = sorted(set(required) - set(config))
    if missing:
        raise ValueError(
            f"`config` of {cls.__name__} is missing {', '.join(missing)}. "
            f"Received: config={config!r}"
        )
    config = dict(config)
    for key in objects:
        if isinstance(config.get(key), dict):
            config[key] = keras.saving.deserialize_keras_object(
                config[key], custom_objects=custom_objects
            )
    return config


def shortest_float(variable) -> float:
    """The shortest decimal that rounds to ``variable``'s stored value
    (NumPy prints a scalar of each dtype that way): 0.001, not float32's
    0.0010000000474974513."""
    return float(str(np.asarray(keras.ops.convert_to_numpy(variable))[()]))


# Hyperparameters, written once: in the signature of an optimizer's
# ``__init__``, each annotated with its rule (``beta_1: checks.DecayRate =
# 0.9``). The base class checks them, sets them as attributes and saves
# them in ``get_config``; the docs build their table of arguments from them.


class Hyperparameter(NamedTuple):
    """One argument an optimizer declares: its rule and its default."""

    rule: checks.Rule
    default: Any


@functools.cache
def declared(cls: type) -> dict[str, Hyperparameter]:
    """The hyperparameters of ``cls`` in the order its signature gives
    them, then those of its base classes: each argument of an ``__init__``
    in the MRO whose annotation carries a :class:`keras_opts._core.checks.Rule`
    (the first ``__init__`` that names an argument gives its default)."""
    found: dict[str, Hyperparameter] = {}
    defaults: dict[str, Any] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass.__module__.startswith("keras."):
            continue
        try:
            hints = typing.get_type_hints(init, include_extras=True)
        except NameError:  # an annotation naming what its module lacks
            hints = dict(init.__annotations__)
        for name, parameter in inspect.signature(init).parameters.items():
            if parameter.default is not inspect.Parameter.empty:
                defaults.setdefault(name, parameter.default)
            rules = [
                x
                for x in getattr(hints.get(name), "__metadata__", ())
                if isinstance(x, checks.Rule)
            ]
            if rules and name not in found:
                found[name] = Hyperparameter(rules[0], None)
    return {
        name: Hyperparameter(h.rule, defaults.get(name))
        for name, h in found.items()
    }


def take_declared(cls: type, given: dict[str, Any]) -> dict[str, Any]:
    """Each hyperparameter ``cls`` declares, taken out of ``given`` (its
    default where missing) and checked by its rule."""
    return {
        key: h.rule(key, given.pop(key, h.default))
        for key, h in declared(cls).items()
    }


def given(arguments: dict[str, Any]) -> dict[str, Any]:
    """The arguments of an ``__init__`` call from its ``locals()``, its
    ``**kwargs`` merged in, ready for ``super().__init__(**...)``."""
    given = {
        name: value
        for name, value in arguments.items()
        if name not in ("self", "__class__", "kwargs")
    }
    given.update(arguments.get("kwargs", {}))
    return given
