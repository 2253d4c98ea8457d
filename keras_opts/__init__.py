"""keras_opts: optimizers for Keras 3 on TensorFlow, JAX and PyTorch.

Importing the package registers every optimizer with Keras, so a model saved
with one loads with ``keras.models.load_model`` and no ``custom_objects``,
and ``model.compile(optimizer="keras_opts>RAdam")`` works. The short names
(``"radam"``, ``"RAdam"``, ``"yogi"``) work in ``compile`` and
``keras.optimizers.get`` too, except those of Keras' own optimizers
(``"adam"``, ``"sgd"``, ``"rmsprop"``, ...), which keep meaning Keras'.
"""

from __future__ import annotations

from typing import Any

import keras

from keras_opts import callbacks as callbacks  # the module, re-exported
from keras_opts import schedules

# generated:exports:begin
# Written by tools/generate.py from the modules of keras_opts/optimizers
# and keras_opts.wrappers.__all__: run it, do not edit these lines.
from keras_opts.optimizers import (
    ADOPT,
    LARS,
    MADGRAD,
    MARS,
    SGD,
    SOAP,
    AdaBelief,
    Adadelta,
    Adagrad,
    Adam,
    AdamMini,
    AdaMuon,
    AdamW,
    Adan,
    AdEMAMix,
    Muon,
    Nadam,
    NorMuon,
    NovoGrad,
    Prodigy,
    PSGDKron,
    RAdam,
    RMSprop,
    ScheduleFreeAdamW,
    ScheduleFreeRAdam,
    ScheduleFreeSGD,
    Shampoo,
    Yogi,
)
from keras_opts.wrappers import SAM, SWA, Lookahead

__all__ = [
    "ADOPT",
    "LARS",
    "MADGRAD",
    "MARS",
    "SAM",
    "SGD",
    "SOAP",
    "SWA",
    "AdaBelief",
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamMini",
    "AdaMuon",
    "AdamW",
    "Adan",
    "AdEMAMix",
    "Lookahead",
    "Muon",
    "Nadam",
    "NorMuon",
    "NovoGrad",
    "Prodigy",
    "PSGDKron",
    "RAdam",
    "RMSprop",
    "ScheduleFreeAdamW",
    "ScheduleFreeRAdam",
    "ScheduleFreeSGD",
    "Shampoo",
    "Yogi",
    "get",
    "schedules",
]
# generated:exports:end

__version__ = "0.1.0"


def get(identifier: Any) -> keras.optimizers.Optimizer | None:
    """Returns an optimizer from a name, a config dict or an instance.

    Like ``keras.optimizers.get``: a registry name or alias (``"radam"``,
    ``"RAdam"``, ``"rectified_adam"``) gives an instance with default
    arguments; a dict from ``keras.saving.serialize_keras_object`` or of the
    form ``{"class_name": "RAdam", "config": {...}}`` is deserialized; an
    optimizer instance is returned unchanged, and None gives None. Unlike
    ``keras.optimizers.get``, ``"adam"`` here is ``keras_opts.Adam``.

    >>> import keras_opts
    >>> type(keras_opts.get("radam")).__name__
    'RAdam'
    """
    from keras_opts import registry

    if identifier is None:
        return None
    if isinstance(identifier, keras.optimizers.Optimizer):
        return identifier
    if isinstance(identifier, str):
        return registry.lookup(identifier)()
    if isinstance(identifier, dict):
        if "module" in identifier or "registered_name" in identifier:
            return keras.saving.deserialize_keras_object(identifier)
        if set(identifier) <= {"class_name", "config"}:
            # The short form is a constructor call: unnamed arguments
            # keep their defaults (a full config goes through from_config).
            cls = registry.lookup(str(identifier.get("class_name")))
            config = dict(identifier.get("config", {}))
            if isinstance(config.get("learning_rate"), dict):
                config["learning_rate"] = keras.saving.deserialize_keras_object(
                    config["learning_rate"]
                )
            return cls(**config)
        raise ValueError(
            "A config dict needs `class_name` and `config` keys. "
            f"Received: identifier={identifier!r}"
        )
    raise TypeError(
        "`identifier` must be a name, a config dict or an optimizer. "
        f"Received: identifier={identifier!r} of type "
        f"{type(identifier).__name__}."
    )


def _register_short_names() -> None:
    """Adds each optimizer's registry name, class name and aliases to
    ``keras.saving.get_custom_objects()``, where ``keras.optimizers.get``
    (and so ``compile``) looks a name up.

    Keras lower-cases a name of one of its own optimizers and then looks it
    up among the custom objects first: a name that Keras has (in any case)
    is left out, so ``keras.optimizers.get("adam")`` stays Keras' Adam. An
    entry already there (the user's) is kept.
    """
    from keras_opts import registry

    keras_names = {name.lower() for name in dir(keras.optimizers)}
    custom = keras.saving.get_custom_objects()
    for name, cls in registry.OPTIMIZERS.items():
        for key in registry.names(name):
            if key.lower() not in keras_names:
                custom.setdefault(key, cls)


_register_short_names()
