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


def _table(signed: bool):
    """:func:`dynamic_map` as a tensor."""
    return ops.convert_to_tensor(_map(signed))


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
        scales, signed = slot.block_scales, slot.signed_codes
        return ops.cast(dequantize(slot, scales, signed), dtype)
    return ops.cast(slot, dtype)


def store_(optimizer, slot, value) -> None:
    """Writes ``value`` (float32) into the 8-bit ``slot``: its codes and
    its scales."""
    codes, scales = quantize(value, slot.signed_codes)
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


def quantize(x, signed: bool):
    """``(codes, scales)`` of the float32 tensor ``x``: codes of ``x``'s
    shape (uint8) in the signed or unsigned map, one scale per block
    (float32)."""
    shape = tuple(x.shape)
    size = math.prod(shape)
    chunks = _in_blocks(ops.cast(x, "float32"))
    scales = ops.max(ops.abs(chunks), axis=1)
    safe = ops.where(scales > 0, scales, ops.ones_like(scales))
    # Times the reciprocal, as bitsandbytes; clipped where that rounds
    # past 1.
    normalized = ops.clip(chunks * (1.0 / safe)[:, None], -1.0, 1.0)
    codes = nearest(ops.reshape(normalized, (-1,)), signed)[:size]
    return ops.cast(ops.reshape(codes, shape), "uint8"), scales


#: :func:`nearest`'s buckets: a magnitude's float32 exponent and the first
#: :data:`_BITS` bits of its fraction, from ``2**_LOWEST`` (below every
#: map value but 0) to 1.
_BITS, _LOWEST = 8, -27
_FIRST = (127 + _LOWEST) << _BITS  # the bits of 2**_LOWEST, shifted
_LAST = -_LOWEST << _BITS  # the bucket of 1.0


@functools.cache
def _below(signed: bool) -> np.ndarray:
    """Per bucket, the code of the largest map value at most the bucket's
    start (codes of non-negative values)."""
    q = _map(signed).astype(np.float64)
    bucket = np.arange(_LAST + 1)
    starts = 2.0 ** (_LOWEST + bucket // 2**_BITS)
    starts *= 1 + (bucket % 2**_BITS) / 2**_BITS
    starts[0] = 0.0
    below = np.searchsorted(q, starts, side="right") - 1
    # No bucket holds two map values (neighbours differ by 0.7% or more of
    # the larger, a bucket spans 2**-_BITS = 0.39% of its start): the
    # value nearest to anything in a bucket is one of three neighbours.
    inside = np.searchsorted(q, starts[1:], side="left") - 1 - below[:-1]
    assert inside.max() <= 1, "a bucket holds two values of the map"
    return below.astype(np.int32)


def _gather(values, indices):
    """``values[indices]``: torch's own indexing, which Keras' ``take``
    on torch runs several times slower, else ``take``."""
    if keras.backend.backend() == "torch":
        return values[indices]
    return ops.take(values, indices)


def nearest(x, signed: bool):
    """The code of the value of the signed or unsigned map nearest to each
    entry of the flat float32 tensor ``x`` in [-1, 1], the lower on a
    tie. Without a search: the bucket of ``|x|``'s bits gives, from
    :func:`_below`, the value just below its start; the nearest value is
    that one's upper neighbour or either of that one's neighbours, chosen
    by distance."""
    table = _table(signed)
    magnitude = ops.abs(x)
    bucket = ops.right_shift(ops.view(magnitude, "int32"), 23 - _BITS)
    bucket = ops.clip(bucket - _FIRST, 0, _LAST)
    below = _gather(ops.convert_to_tensor(_below(signed)), bucket)
    middle = below + 1  # the upper neighbour: neighbours on both sides
    if signed:  # a negative value mirrors its magnitude: 127 holds 0
        middle = ops.where(x < 0, 253 - below, middle)
    middle = ops.clip(middle, 1, 254)
    distances = [
        ops.abs(x - _gather(table, middle + shift)) for shift in (-1, 0, 1)
    ]
    lowest = (distances[0] <= distances[1]) & (distances[0] <= distances[2])
    nearer = ops.where(distances[1] <= distances[2], middle, middle + 1)
    return ops.where(lowest, middle - 1, nearer)


def dequantize(codes, scales, signed: bool):
    """The float32 tensor that ``codes`` and ``scales`` hold."""
    shape = tuple(codes.shape)
    indices = ops.cast(ops.reshape(codes, (-1,)), "int32")
    values = _gather(_table(signed), indices)
    chunks = _in_blocks(values) * scales[:, None]
    return ops.reshape(ops.reshape(chunks, (-1,))[: math.prod(shape)], shape)
