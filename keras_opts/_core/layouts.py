"""What Keras' layer structure tells of a variable's layout, read from
the paths and shapes of the variables an optimizer is built with: which
variables belong to one attention layer, and where its heads are.

Adam-mini cuts its blocks along these axes and Muon takes its matrices
from them. ``MultiHeadAttention`` (and KerasHub's Llama) lays a query,
key or value kernel out as ``(d, heads, head_dim)``; Gemma as ``(heads,
d, head_dim)``: the facts of the layer's other variables tell which
(:func:`head_axis`).
"""

from __future__ import annotations

import re
from typing import Any


def variable_path(variable) -> str:
    """A variable's path (``dense/kernel``), or its name where it has no
    path (a raw ``tf.Variable``)."""
    if hasattr(variable, "path"):
        return variable.path
    return str(variable.name).split(":")[0]


ATTENTION = re.compile(
    r"^(?P<layer>.*?)(?:^|/)(?P<role>query|key|value|attention_output)/"
    r"(?P<name>kernel|bias|lora_kernel_a|lora_kernel_b)$"
)


def attention_facts(variables) -> dict[str, dict[str, Any]]:
    """What the variables of each attention layer tell of its layout, by
    the layer's path: ``width``, the model width ``d`` (the output
    projection's last axis, of its kernel or LoRA factor B); ``heads``, by
    projection, the head counts (the output projection's first axis for
    the queries, a rank-2 bias's first axis, ``(heads, head_dim)``);
    ``inputs``, the first two axes of each rank-3 query, key or value
    kernel or LoRA factor A."""
    facts: dict[str, dict[str, Any]] = {}
    for path, shape in variables:
        match = ATTENTION.match(path)
        if match is None:
            continue
        role, name = match["role"], match["name"]
        layer = facts.setdefault(
            match["layer"], {"width": None, "heads": {}, "inputs": []}
        )
        rank = len(shape)
        if role == "attention_output":
            if name in ("kernel", "lora_kernel_b") and rank >= 2:
                layer["width"] = shape[-1]
            if name in ("kernel", "lora_kernel_a") and rank == 3:
                layer["heads"]["query"] = shape[0]
        elif name == "bias" and rank == 2:
            layer["heads"][role] = shape[0]
        elif name in ("kernel", "lora_kernel_a") and rank == 3:
            layer["inputs"].append(tuple(shape[:2]))
    return facts


def head_axis(role, shape, layer) -> int | None:
    """The head axis (0 or 1) of a rank-3 query, key or value kernel (or
    LoRA factor A) of ``shape``: ``(d, heads, ...)`` (``MultiHeadAttention``,
    Llama) or ``(heads, d, ...)`` (Gemma), from the facts of its layer
    (:func:`attention_facts`), or None where they cannot tell."""
    if layer is None:
        return None
    a, b = shape[:2]
    votes = set()
    width, heads = layer["width"], layer["heads"].get(role)
    for known in (width, None), (None, heads):
        d, h = known
        if a != b and (d == a or h == b):
            votes.add(1)
        if a != b and (d == b or h == a):
            votes.add(0)
    if not votes and width is None:
        # No width and no head count: the input axis is the one whose
        # length all the projections share (self-attention), where the
        # other differs (grouped-query attention's fewer key/value heads).
        inputs = layer["inputs"]
        shared = [len({x[i] for x in inputs}) == 1 for i in (0, 1)]
        if shared == [True, False]:
            votes.add(1)
        elif shared == [False, True]:
            votes.add(0)
    return votes.pop() if len(votes) == 1 else None
