"""Which variables Muon updates, and as which matrices; and the optimizer
of the others (AdamW, or the ``fallback``).

A kernel of rank 2 is one matrix, a convolution kernel ``(..., in, out)``
the matrix of its fan-in rows, an attention kernel of rank 3 (either
layout, read as Adam-mini reads it: ``keras_opts._core.layouts``) one
matrix or one per head. :func:`views` says, per variable, its
:class:`View` or why the fallback takes it.
"""

from __future__ import annotations

import inspect
import math
import re
from typing import Annotated, Any, NamedTuple

import keras
from keras import ops

from keras_opts._core import checks, config, keras_api, kernels, layouts
from keras_opts._core.base import Optimizer

#: Where the fallback optimizer's slots sit among Muon's: ``fallback_`` and
#: their own name.
FALLBACK = "fallback_"


class Prefixed(kernels.Slots):
    """The slots of ``source`` whose names start with ``prefix``, under
    their names without it, each read through ``source`` (where a widened
    slot reads as its latest value)."""

    def __init__(self, source, prefix):
        names = [n[len(prefix) :] for n in source if n.startswith(prefix)]
        super().__init__(dict.fromkeys(names))
        self._source = source
        self._prefix = prefix

    def __getitem__(self, name):
        return self._source[self._prefix + name]


class View(NamedTuple):
    """How a variable is seen as matrices: its axes permuted by
    ``permutation``, reshaped to ``matrix`` (``(m, n)``, or ``(heads, m,
    n)``), and back."""

    permutation: tuple[int, ...]
    matrix: tuple[int, ...]


def views(optimizer, variables) -> list:
    """Per variable, its :class:`View`, or why AdamW updates it."""
    paths = [layouts.variable_path(v) for v in variables]
    shapes = [tuple(int(d) for d in v.shape) for v in variables]
    facts = layouts.attention_facts(zip(paths, shapes))
    heads = _output_heads(paths, shapes) if optimizer.exclude_output else ()
    views = []
    for variable, path, shape in zip(variables, paths, shapes):
        if len(shape) < 2:
            views.append(f"rank {len(shape)}")
        elif path.rsplit("/", 1)[-1] == "bias":  # an attention's (heads, d)
            views.append("bias")
        elif optimizer.exclude_embeddings and "embedding" in path.lower():
            views.append("embedding")
        elif _excluded(optimizer.exclude_layers, variable, path):
            views.append("exclude_layers")
        elif path in heads:
            views.append("output head")
        elif 0 in shape:
            views.append("empty")
        else:
            views.append(_view(path, shape, facts, optimizer.split_heads))
    return views


def _excluded(exclude_layers, variable, path) -> bool:
    """Whether ``exclude_layers`` (regular expressions, or a callable)
    sends ``variable`` to the fallback."""
    if exclude_layers is None:
        return False
    if callable(exclude_layers):
        return bool(exclude_layers(variable))
    return any(re.search(x, path) for x in exclude_layers)


def fallback_decay(fallback) -> float:
    """The fallback's decoupled decay coefficient (0 for none)."""
    return float(fallback.weight_decay or 0.0) * fallback._weight_decay_factor()


def _output_heads(paths, shapes) -> set[str]:
    """The rank-2 kernels whose outputs no other kernel takes: their last
    dimension is no other kernel's input dimension (its second-to-last)."""
    kernels = [
        (path, shape)
        for path, shape in zip(paths, shapes)
        if len(shape) >= 2 and path.rsplit("/", 1)[-1] == "kernel"
    ]
    heads = set()
    for path, shape in kernels:
        if len(shape) != 2:
            continue
        inputs = {s[-2] for p, s in kernels if p != path} | {
            s[0] for p, s in kernels if p != path
        }
        if shape[-1] not in inputs:
            heads.add(path)
    return heads


def _view(path, shape, facts, split_heads) -> View:
    rank = len(shape)
    every = tuple(range(rank))
    match = layouts.ATTENTION.match(path)
    if rank == 3 and match is not None and match["name"] == "kernel":
        role = match["role"]
        if role == "attention_output":  # (heads, head_dim, d)
            h, d_in = shape[0], shape[1]
            if split_heads:
                return View(every, (h, d_in, shape[2]))
            return View(every, (h * d_in, shape[2]))
        head = layouts.head_axis(role, shape, facts.get(match["layer"]))
        head = 1 if head is None else head  # MultiHeadAttention's layout
        d = 1 - head
        if split_heads:
            return View((head, d, 2), (shape[head], shape[d], shape[2]))
        return View((d, head, 2), (shape[d], shape[head] * shape[2]))
    # A Dense kernel, or a convolution's (..., in, out): one matrix of
    # fan-in rows.
    return View(every, (math.prod(shape[:-1]), shape[-1]))


def to_matrices(view, x):
    """``x`` as the matrices of ``view``: ``view.matrix``."""
    return ops.reshape(ops.transpose(x, view.permutation), view.matrix)


def from_matrices(view, x, shape):
    """The matrices ``x`` of ``view`` back in the variable's ``shape``."""
    permuted = tuple(shape[i] for i in view.permutation)
    inverse = tuple(
        sorted(range(len(shape)), key=lambda i: view.permutation[i])
    )
    return ops.transpose(ops.reshape(x, permuted), inverse)


def _patterns(name, value):
    """None, a list of regular expressions, or a callable (saved as Keras
    saves a function, and read back)."""
    if value is None:
        return None
    if isinstance(value, dict):
        value = keras.saving.deserialize_keras_object(value)
    if callable(value):
        return value
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise checks.ArgumentTypeError(
            f"`{name}` must be a list of regular expressions or a "
            f"callable. Received: {name}={value!r}"
        )
    for pattern in value:
        try:
            re.compile(pattern)
        except (TypeError, re.error) as error:
            raise ValueError(
                f"`{name}` holds {pattern!r}, not a regular expression "
                f"({error}). Received: {name}={value!r}"
            ) from None
    return list(value)


Patterns = Annotated[
    Any,
    checks.Rule(
        _patterns,
        "`None`, a list of regular expressions, or a callable "
        "`(variable) -> bool`",
    ),
]

#: The step options a fallback leaves to Muon, which applies them to all
#: variables: Keras' and keras_opts' own.
_STEP_OPTIONS = (
    "clipnorm",
    "clipvalue",
    "global_clipnorm",
    "use_ema",
    "loss_scale_factor",
    "gradient_accumulation_steps",
    "coupled_weight_decay",
    "skip_nonfinite",
    "gradient_centralization",
    "lazy_rows",
    "cautious",
    "cautious_weight_decay",
    "state_dtype",
)


def _checked_fallback(name, value):
    """None, or a keras_opts optimizer whose step is entry by entry (an
    instance, its registered name or its config), with no step options of
    its own and its default learning rate."""
    if value is None:
        return None
    if isinstance(value, str):
        value = keras.optimizers.get(value)
    elif isinstance(value, dict):
        value = keras.saving.deserialize_keras_object(value)
    cls = type(value).__name__
    if not isinstance(value, Optimizer):
        raise checks.ArgumentTypeError(
            f"`{name}` must be a keras_opts optimizer, its registered name "
            f"or its config. Received: {name}={value!r} of type {cls}."
        )
    kind = type(value)
    able = value.capabilities
    if (
        not able.elementwise
        or able.decay_in_kernel
        or able.full_precision_slots
        or kind._scalar_slot_names
        or any(
            getattr(kind, method) is not getattr(Optimizer, method)
            for method in (
                "build",
                "update_step",
                "_begin_update",
                "_end_update",
            )
        )
    ):
        raise ValueError(
            f"`{name}` must be an optimizer whose step is entry by entry, "
            f"with slots like its variable: {cls}'s step keeps state or "
            f"decays in a way of its own. Received: {name}={value!r}"
        )
    for key in _STEP_OPTIONS:
        if getattr(value, key, None):
            raise ValueError(
                f"`{name}` applies to the fallback's variables only: "
                f"`{key}` belongs to Muon, which applies it to every "
                f"variable. Received: {name}={cls}({key}="
                f"{getattr(value, key)!r})"
            )
    if value.weight_decay is not None and not isinstance(
        value.weight_decay, (int, float)
    ):
        raise ValueError(
            f"The fallback's `weight_decay` must be a number. Received: "
            f"{name}={cls}(weight_decay={value.weight_decay!r})"
        )
    learning_rate = keras_api.stored_learning_rate(value)
    default = inspect.signature(kind.__init__).parameters["learning_rate"]
    if not isinstance(learning_rate, keras.Variable) or (
        config.shortest_float(learning_rate) != default.default
    ):
        raise ValueError(
            f"`{name}` runs at Muon's learning rate times `adam_lr_ratio` "
            "(one schedule drives both): leave its `learning_rate` at its "
            f"default ({default.default!r}) and set `adam_lr_ratio`. "
            f"Received: {name}={cls}(learning_rate={learning_rate!r})"
        )
    return value


Fallback = Annotated[
    Any,
    checks.Rule(
        _checked_fallback,
        "`None` (AdamW), or a keras_opts optimizer whose step is entry by "
        "entry",
    ),
]
