"""Building another library's optimizer from a registry ``Reference``."""

from __future__ import annotations


def optax_transform(name, learning_rate, kwargs):
    """``optax.<name>(learning_rate, **kwargs)``; dotted names reach into
    submodules (``"contrib.adopt"``). A ``scale_by_*`` name (for arguments
    only the scaling transform exposes) is chained with the learning rate:
    ``optax.chain(optax.scale_by_x(**kwargs),
    optax.scale_by_learning_rate(learning_rate))``."""
    import optax

    function = optax
    for part in name.split("."):
        function = getattr(function, part)
    if name.split(".")[-1].startswith("scale_by_"):
        return optax.chain(
            function(**kwargs), optax.scale_by_learning_rate(learning_rate)
        )
    return function(learning_rate=learning_rate, **kwargs)
