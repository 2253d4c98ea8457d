"""Names -> classes: what :func:`keras_opts.get` and Keras' ``compile``
look up.

Every optimizer that :mod:`keras_opts.optimizers` exports is found by its
registry name (its class name in lower case), by its class name and by its
aliases, in any case, with ``-`` read as ``_``. Nothing is listed twice: a
new optimizer module is registered by ``tools/generate.py``, which writes
the package's export lists. What the tests and the docs know of an
optimizer (papers, references, test settings) lives with the tests, in
``tests/specs.py``.
"""

from __future__ import annotations

from keras_opts import optimizers


def registry_name(cls: type) -> str:
    """The name an optimizer class is registered under: ``"radam"`` for
    ``RAdam``."""
    return cls.__name__.lower()


#: Registry name -> class, for every optimizer of keras_opts.optimizers.
OPTIMIZERS: dict[str, type] = {
    registry_name(cls): cls
    for cls in sorted(
        (getattr(optimizers, name) for name in optimizers.__all__),
        key=registry_name,
    )
}

#: Other names users know an optimizer by -> its registry name.
ALIASES: dict[str, str] = {
    "rectified_adam": "radam",
    "rectifiedadam": "radam",
    "kron": "psgdkron",
    "psgd_kron": "psgdkron",
}


def aliases(name: str) -> tuple[str, ...]:
    """The aliases of the optimizer registered as ``name``."""
    return tuple(alias for alias, to in ALIASES.items() if to == name)


def names(name: str) -> tuple[str, ...]:
    """Every name that finds the optimizer registered as ``name``."""
    return (name, OPTIMIZERS[name].__name__, *aliases(name))


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
