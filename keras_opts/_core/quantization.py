r"""Optimizer state in 8 bits (``state_dtype="int8"``): blockwise dynamic
quantization, Dettmers, Lewis, Shleifer & Zettlemoyer (2022), "8-bit
Optimizers via Block-wise Quantization", https://arxiv.org/abs/2110.02861.

A slot of a float32, bfloat16 or float16 variable (a model in
``dtype="bfloat16"``, as KerasHub's) with at least :data:`SMALLEST`
entries is stored as one byte per entry, a code, and one float32 per block of
:data:`BLOCK` consecutive entries (in the variable's row-major order), the
block's largest magnitude $a$. An entry's value is $a \cdot q[c]$, with
$q$ the 256 values of the *dynamic* data type (:func:`dynamic_map`). Each
step reads the slot (in float32, then in the variable's dtype), runs the
update, and stores it back: per block, $a = \max_i |x_i|$ and each entry
the code of the value of $q$ nearest to $x_i / a$.

**The dynamic data type** (the paper's Section 2.2). Of a code's 8 bits,
the first is the sign (for a first moment; a second moment, never
negative, uses it for precision), then $E$ zeros, which scale the value
by $10^{-E}$, then a 1, the indicator, then the remaining bits, a linear
fraction in $[0.1, 1]$: each of its $2^b$ values is the middle of one of
$2^b$ equal intervals of $[0.1, 1]$. With $E = 0, \dots, 6$ the fraction
keeps $b = 6 - E$ bits (signed) or $7 - E$ (unsigned); 0 and 1 complete
the 256 values. Small values keep as many significant digits as large
ones, relative to their block's maximum, which an EMA of a gradient, with
values over several orders of magnitude, needs; a block bounds the
damage an outlier does to its own 256 entries.

Smaller variables (biases, norms) keep float32 state: they hold few of a
model's parameters and many of its outliers, as the paper notes.
"""

from __future__ import annotations

import functools
import math

import keras
import numpy as np
from keras import ops

from keras_opts._core import keras_api

#: Entries per block, each with its own float32 scale (bitsandbytes'
#: default; the paper used 2048).
BLOCK = 256
#: A variable with fewer entries keeps float32 state.
SMALLEST = 4096


def dynamic_map(signed: bool) -> np.ndarray:
    """The 256 values of the dynamic data type, sorted (see the module
    docstring): a code is an index into them."""
    values = [0.0, 1.0]
    for zeros in range(7):
        bits = 6 - zeros if signed else 7 - zeros
        edges = np.linspace(0.1, 1.0, 2**bits + 1)
        middles = 10.0 ** (-zeros) * (edges[:-1] + edges[1:]) / 2
        values += list(middles)
        if signed:
            values += list(-middles)
    return np.sort(np.array(values, np.float64)).astype(np.float32)


#: The variables' dtypes whose slots take 8 bits (a float64 variable
#: keeps float64 state).
DTYPES = ("float32", "bfloat16", "float16")


def quantized(variable) -> bool:
    """Whether ``variable`` takes 8-bit state: a float32, bfloat16 or
    float16 variable of :data:`SMALLEST` entries or more."""
    return (
        keras.backend.standardize_dtype(variable.dtype) in DTYPES
        and math.prod(variable.shape) >= SMALLEST
    )


def is_codes(slot) -> bool:
    """Whether ``slot`` holds codes (its scales are ``slot.block_scales``)."""
    return keras.backend.standardize_dtype(slot.dtype) == "uint8"


@functools.cache
def _map(signed: bool) -> np.ndarray:
    return dynamic_map(signed)


def table(slot):
    """The dynamic map of ``slot``'s codes, as a tensor."""
    return ops.convert_to_tensor(_map(slot.signed_codes))


def add_slot(optimizer, variable, name, initializer, signed):
    """The 8-bit slot of ``variable`` named ``name``: codes laid out as the
    variable (``slot.block_scales`` holds its float32 scales, a variable
    of the optimizer too), holding the constant ``initializer`` gives."""
    value = _constant(initializer)
    # A constant block: its scale |value|, every code that of 1 (or 0).
    code = int(np.argmin(np.abs(_map(signed) - np.sign(value))))
    slot = optimizer.add_variable(
        shape=variable.shape,
        initializer=keras.initializers.Constant(code),
        dtype="uint8",
        name=name,
        layout=keras_api.layout(variable),
    )
    slot.block_scales = optimizer.add_variable(
        shape=(blocks(variable.shape),),
        initializer=keras.initializers.Constant(abs(value)),
        dtype="float32",
        name=f"{name}_scales",
    )
    slot.signed_codes = signed
    return slot


def _constant(initializer) -> float:
    """The value of a constant initializer (every slot's: zeros, or
    Adagrad's and Yogi's initial accumulator)."""
    found = keras.initializers.get(initializer)
    if isinstance(found, keras.initializers.Zeros):
        return 0.0
    if isinstance(found, keras.initializers.Ones):
        return 1.0
    if (
        isinstance(found, keras.initializers.Constant)
        and np.ndim(found.value) == 0
        and float(found.value) >= 0
    ):
        return float(found.value)
    raise ValueError(
        "state_dtype='int8' starts a slot from a constant at least 0. "
        f"Received: initializer={initializer!r}"
    )


def read(slot, dtype):
    """``slot``'s values in ``dtype``: dequantized where it holds codes,
    else cast."""
    if is_codes(slot):
        return ops.cast(dequantize(slot, slot.block_scales, table(slot)), dtype)
    return ops.cast(slot, dtype)


def store_(optimizer, slot, value) -> None:
    """Writes ``value`` (float32) into the 8-bit ``slot``: its codes and
    its scales."""
    codes, scales = quantize(value, table(slot))
    optimizer.assign(slot, codes)
    optimizer.assign(slot.block_scales, scales)


def blocks(shape) -> int:
    return -(-math.prod(shape) // BLOCK)


def _in_blocks(x):
    """``x`` flattened, zero-padded to whole blocks, as ``(blocks,
    BLOCK)``."""
    flat = ops.reshape(x, (-1,))
    size = int(flat.shape[0])
    pad = blocks((size,)) * BLOCK - size
    if pad:
        flat = ops.concatenate([flat, ops.zeros((pad,), flat.dtype)])
    return ops.reshape(flat, (-1, BLOCK))


def quantize(x, table):
    """``(codes, scales)`` of the float32 tensor ``x``: codes of ``x``'s
    shape (uint8), one scale per block (float32). ``table`` is
    :func:`dynamic_map`'s, as a tensor."""
    shape = tuple(x.shape)
    size = math.prod(shape)
    chunks = _in_blocks(ops.cast(x, "float32"))
    scales = ops.max(ops.abs(chunks), axis=1)
    safe = ops.where(scales > 0, scales, ops.ones_like(scales))
    # Times the reciprocal, as bitsandbytes; clipped where that rounds
    # past 1.
    normalized = ops.clip(chunks * (1.0 / safe)[:, None], -1.0, 1.0)
    normalized = ops.reshape(normalized, (-1,))
    # The nearest value of the table: between the neighbours where the
    # value would be inserted, the closer (the lower one on a tie).
    upper = ops.clip(ops.searchsorted(table, normalized), 1, 255)
    upper = ops.cast(upper, "int32")
    lower = upper - 1
    below = normalized - ops.take(table, lower)
    above = ops.take(table, upper) - normalized
    codes = ops.where(below <= above, lower, upper)[:size]
    return ops.cast(ops.reshape(codes, shape), "uint8"), scales


def dequantize(codes, scales, table):
    """The float32 tensor that ``codes`` and ``scales`` hold."""
    shape = tuple(codes.shape)
    values = ops.take(table, ops.cast(ops.reshape(codes, (-1,)), "int32"))
    chunks = _in_blocks(values) * scales[:, None]
    return ops.reshape(ops.reshape(chunks, (-1,))[: math.prod(shape)], shape)
