"""Names -> classes: what :func:`keras_opts.get` and Keras' ``compile``
look up.

Each optimizer is found by its name here, by its class name and by its
aliases, in any case, with ``-`` read as ``_``. What the tests and the docs
know of an optimizer (papers, references, test settings) lives with the
tests, in ``tests/specs.py``.
"""

from __future__ import annotations

from keras_opts.optimizers import (
    ADOPT,
    LARS,
    MADGRAD,
    SGD,
    AdaBelief,
    Adadelta,
    Adagrad,
    Adam,
    AdamW,
    Adan,
    AdEMAMix,
    Nadam,
    NovoGrad,
    Prodigy,
    RAdam,
    RMSprop,
    Yogi,
)

#: Registry name -> class, in the order of the docs.
OPTIMIZERS: dict[str, type] = {
    "sgd": SGD,
    "adam": Adam,
    "radam": RAdam,
    "adagrad": Adagrad,
    "rmsprop": RMSprop,
    "adadelta": Adadelta,
    "adamw": AdamW,
    "nadam": Nadam,
    "yogi": Yogi,
    "adabelief": AdaBelief,
    "adopt": ADOPT,
    "ademamix": AdEMAMix,
    "adan": Adan,
    "novograd": NovoGrad,
    "lars": LARS,
    "madgrad": MADGRAD,
    "prodigy": Prodigy,
}

#: Other names users know an optimizer by.
ALIASES: dict[str, str] = {
    "rectified_adam": "radam",
    "rectifiedadam": "radam",
}


def names(name: str) -> tuple[str, ...]:
    """Every name that finds the optimizer registered as ``name``."""
    cls = OPTIMIZERS[name]
    extra = tuple(alias for alias, to in ALIASES.items() if to == name)
    return (name, cls.__name__, *extra)


def lookup(name: str) -> type:
    """The class for a registry name, class name or alias (any case)."""
    key = name.lower().replace("-", "_")
    key = ALIASES.get(key, key)
    if key not in OPTIMIZERS:
        known = sorted({*OPTIMIZERS, *ALIASES})
        raise ValueError(
            f"Unknown keras_opts optimizer {name!r}. "
            f"Known names: {', '.join(known)}."
        )
    return OPTIMIZERS[key]
