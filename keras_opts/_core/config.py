"""What every keras_opts class does with its configuration: ``get_config``
lists the arguments a class declares in ``_config_keys`` (each an attribute
of the same name), and ``from_config`` follows Keras' convention,
``cls(**config)``, where a missing argument takes its default and an
unknown one or a bad value fails as in ``__init__``."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from keras_opts._core import checks


def declared_config(obj) -> dict[str, Any]:
    """``{name: obj.name}`` for each name of ``obj._config_keys``."""
    return {name: getattr(obj, name) for name in obj._config_keys}


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
