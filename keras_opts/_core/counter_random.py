"""Random numbers that every backend draws alike, bit for bit: a
counter-based generator written in ``keras.ops`` integer arithmetic.

``keras.random`` draws other numbers on each backend from the same seed
(and TensorFlow others again under XLA), so a run saved on one backend
and resumed on another would continue with other probes, coins and
roundings. Here each number is a hash of ``(seed, counter, index)``: the
seed and the counter are the state of a ``keras.random.SeedGenerator``
(saved with the optimizer, and advanced by one per call, as
``keras.random`` advances it), the index the position of the number in
the tensor drawn.

**Integers.** Everything is int32 holding the bit pattern of a 32-bit
unsigned integer: addition and multiplication wrap modulo 2^32 on every
backend (two's complement), exclusive or is bitwise, and a logical right
shift is an arithmetic one masked to the bits shifted in. (uint32 lacks
operations on torch, and int64 is int32 in a JAX without
``jax_enable_x64``.) The hash is ``mix(mix(i * G + k1) ^ k2)``, with
``mix`` the finalizer of MurmurHash3 (two rounds of xor-shift and
multiplication by an odd constant, a bijection of 32-bit words in which
each input bit flips each output bit with probability close to 1/2),
``G = floor(2^32 / golden ratio)`` (odd: distinct indices give distinct
words) and the keys ``k1 = mix(mix(seed ^ A) + counter)``,
``k2 = mix(k1 ^ B)``.

**Uniform.** The top 24 bits of a word times 2^-24: a float32 in [0, 1)
on the grid of 2^-24, exact.

**Normal.** Box-Muller from two words ``a`` and ``b``:
``z = sqrt(-2 ln u) cos(2 pi w)`` with ``u = (floor(a / 4) + 1) / 2^30``
in (0, 1] and ``w = b / 2^32``. Floating-point sequences are not
portable bit for bit (XLA fuses ``x * y + z`` into one rounding, and the
backends' ``log`` and ``cos`` differ in the last place), so ``-2 ln u``
and ``cos`` are computed in fixed point, in integers:

- ``ln``: ``u = m 2^-s`` with ``m`` in [1, 2) (``s`` found by a binary
  search on the bits), ``m = c_j (1 + d)`` with ``c_j = 1 + j/64`` from
  the top 6 bits of ``m``'s fraction and ``0 <= d < 1/64``, and
  ``ln m = ln c_j + d - d^2/2 + d^3/3 - d^4/4`` (the series' remainder
  is below ``d^5 / 5 < 2^-32``); ``ln c_j`` and ``1 / c_j`` are tables.
- ``cos``: the top 3 bits of ``b`` pick an octant of the circle, where
  ``cos(2 pi w)`` is ``+-cos`` or ``+-sin`` of an angle ``t`` in
  [0, pi/4], from their Taylor series to ``t^8`` and ``t^9`` (remainders
  below 3e-8 and 2e-9).

Fixed-point numbers carry 30 fraction bits; a product of two of them is
formed from 15-bit halves so that no partial product overflows int32.
The two results are then converted to float32 exactly (or, for
``-2 ln u``, rounded once: a sum whose terms are exact), and the last
steps, a square root and one product, are single IEEE operations,
correctly rounded on every backend. The normal is a float32, within
2^-22 of ``sqrt(-2 ln u) cos(2 pi w)`` relative to ``sqrt(-2 ln u)``,
and smaller in magnitude than ``sqrt(60 ln 2) = 6.45``.
"""

from __future__ import annotations

import math

import keras
from keras import ops

#: MurmurHash3's finalizer constants, the golden-ratio increment, and the
#: two constants that separate the keys.
MIX_1 = 0x85EBCA6B
MIX_2 = 0xC2B2AE35
GOLDEN = 0x9E3779B9
KEY_A = 0x3C6EF372
KEY_B = 0xDAA66D2B

#: Fixed point: 30 fraction bits.
ONE = 1 << 30
LOG_TABLE_BITS = 6


def fixed(x: float) -> int:
    """``x`` in fixed point with 30 fraction bits, rounded to nearest."""
    return int(round(x * ONE))


#: ``ln c_j`` and ``1 / c_j`` for ``c_j = 1 + j / 64``.
LOG_TABLE = tuple(fixed(math.log1p(j / 64)) for j in range(1 << LOG_TABLE_BITS))
INVERSE_TABLE = tuple(
    fixed(1 / (1 + j / 64)) for j in range(1 << LOG_TABLE_BITS)
)
#: ``ln 2`` with 26 fraction bits (``-2 ln u`` is kept with 25).
LN2_26 = int(round(math.log(2) * (1 << 26)))
#: ``pi / 4`` and the Taylor coefficients of ``cos`` and ``sin``.
QUARTER_PI = fixed(math.pi / 4)
COS_COEFFICIENTS = tuple(fixed(1 / math.factorial(n)) for n in (2, 4, 6, 8))
SIN_COEFFICIENTS = tuple(fixed(1 / math.factorial(n)) for n in (3, 5, 7, 9))


def _signed(value: int) -> int:
    """A 32-bit unsigned value as the int32 with its bit pattern."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _int(value: int):
    return ops.convert_to_tensor(_signed(value), "int32")


def _shift_right(x, bits: int):
    """The logical right shift of 32-bit words held in int32."""
    return ops.bitwise_and(
        ops.right_shift(x, _int(bits)), _int((1 << (32 - bits)) - 1)
    )


def _mix(x):
    """MurmurHash3's finalizer."""
    x = ops.bitwise_xor(x, _shift_right(x, 16))
    x = ops.multiply(x, _int(MIX_1))
    x = ops.bitwise_xor(x, _shift_right(x, 13))
    x = ops.multiply(x, _int(MIX_2))
    return ops.bitwise_xor(x, _shift_right(x, 16))


def _next(seed):
    """``seed.next()``: the state ``(seed, counter)`` of the
    ``SeedGenerator`` ``seed``, its counter then advanced by one. Written
    here because Keras builds the increment from a NumPy array, which
    ``torch.compile`` cannot trace."""
    state = seed.state.value * 1  # a copy, before the assignment
    increment = ops.cast(ops.arange(2), seed.state.dtype)  # (0, 1)
    seed.state.assign(ops.add(state, increment))
    return state


def _keys(seed):
    """The two keys of the next call of the ``SeedGenerator`` ``seed``
    (its state ``(seed, counter)``, then advanced)."""
    state = ops.cast(_next(seed), "int32")
    k1 = _mix(ops.add(_mix(ops.bitwise_xor(state[0], _int(KEY_A))), state[1]))
    return k1, _mix(ops.bitwise_xor(k1, _int(KEY_B)))


def _words(keys, count: int, stride: int = 1):
    """The words of indices ``0 .. count * stride - 1``, shaped
    ``(count, stride)``."""
    k1, k2 = keys
    index = ops.arange(count * stride, dtype="int32")
    x = _mix(ops.add(ops.multiply(index, _int(GOLDEN)), k1))
    x = _mix(ops.bitwise_xor(x, k2))
    return ops.reshape(x, (count, stride))


def _size(shape) -> int:
    size = 1
    for d in shape:  # not math.prod: torch.compile cannot trace it
        size *= int(d)
    return size


def bits(shape, seed):
    """Random 32-bit words (int32 bit patterns) of ``shape``, from the
    ``keras.random.SeedGenerator`` ``seed`` (advanced once)."""
    shape = tuple(shape)
    return ops.reshape(_words(_keys(seed), _size(shape)), shape)


def uniform(shape, seed):
    """Uniform float32 numbers in [0, 1), multiples of 2^-24."""
    top = _shift_right(bits(shape, seed), 8)
    return ops.cast(top, "float32") * (2.0**-24)


def _product(a, b):
    """``a b`` of two fixed-point numbers in [0, 1] (30 fraction bits),
    truncated, from their 15-bit halves."""
    low = _int((1 << 15) - 1)
    a1, a0 = ops.right_shift(a, _int(15)), ops.bitwise_and(a, low)
    b1, b0 = ops.right_shift(b, _int(15)), ops.bitwise_and(b, low)
    return (
        a1 * b1
        + ops.right_shift(a1 * b0, _int(15))
        + ops.right_shift(a0 * b1, _int(15))
        + ops.right_shift(a0 * b0, _int(30))
    )


def _horner(x, coefficients):
    """``1 - x (c_0 - x (c_1 - ...))``: every bracket positive for the
    series and arguments here."""
    value = _int(coefficients[-1])
    for c in reversed(coefficients[:-1]):
        value = _int(c) - _product(x, value)
    return _int(ONE) - _product(x, value)


def _minus_two_log(a):
    """``-2 ln u`` for ``u = (floor(a / 4) + 1) / 2^30`` (``a`` a word),
    with 25 fraction bits."""
    m = _shift_right(a, 2) + _int(1)  # in [1, 2^30]
    shift = ops.zeros_like(m)
    for step in (16, 8, 4, 2, 1):  # m scaled into [2^30, 2^31)
        small = ops.less(m, _int(1 << (31 - step)))
        m = ops.where(small, m * _int(1 << step), m)
        shift = shift + ops.where(small, _int(step), _int(0))
    fraction = m - _int(ONE)
    table_bits = 30 - LOG_TABLE_BITS
    j = ops.right_shift(fraction, _int(table_bits))
    rest = ops.bitwise_and(fraction, _int((1 << table_bits) - 1))
    inverse = ops.take(ops.convert_to_tensor(INVERSE_TABLE, "int32"), j)
    d = _product(rest, inverse)
    # ln(1 + d) = d (1 - d (1/2 - d (1/3 - d / 4))).
    series = _int(fixed(1 / 3)) - ops.right_shift(d, _int(2))
    series = _int(ONE // 2) - _product(d, series)
    series = _product(d, _int(ONE) - _product(d, series))
    log_m = ops.take(ops.convert_to_tensor(LOG_TABLE, "int32"), j) + series
    # -2 ln u = 2 (shift ln 2 - ln m): 26 fraction bits of the half.
    value = shift * _int(LN2_26) - ops.right_shift(log_m, _int(4))
    return ops.maximum(value, _int(0))


def _cos_two_pi(b):
    """``cos(2 pi b / 2^32)`` with 24 fraction bits, and its sign."""
    octant = _shift_right(b, 29)
    within = ops.bitwise_and(b, _int((1 << 29) - 1)) * _int(2)
    odd = ops.equal(ops.bitwise_and(octant, _int(1)), _int(1))
    g = ops.where(odd, _int(ONE) - within, within)
    angle = _product(g, _int(QUARTER_PI))
    square = _product(angle, angle)
    cos = _horner(square, COS_COEFFICIENTS)
    sin = _product(angle, _horner(square, SIN_COEFFICIENTS))
    one = _int(1)
    use_sin = ops.equal(
        ops.bitwise_and(ops.right_shift(octant + one, one), one), one
    )
    negative = ops.equal(
        ops.bitwise_and(ops.right_shift(octant + _int(2), _int(2)), one), one
    )
    value = ops.right_shift(ops.where(use_sin, sin, cos), _int(6))
    return value, negative


def _sqrt(x):
    """The correctly rounded square root of a float32 ``x``. torch's
    float32 kernel on the CPU is off by one unit in the last place for
    about one value in seven; its float64 one, rounded to float32, is
    right (a double rounding from 53 bits is innocuous for a square root
    of a 24-bit number: 53 >= 2 * 24 + 2)."""
    if keras.backend.backend() == "torch":
        return ops.cast(ops.sqrt(ops.cast(x, "float64")), "float32")
    return ops.sqrt(x)


def normal(shape, seed, dtype="float32"):
    """Standard normal numbers of ``shape`` (float32 values, cast to
    ``dtype``), from the ``keras.random.SeedGenerator`` ``seed``
    (advanced once): two words per number, Box-Muller's cosine."""
    shape = tuple(shape)
    words = _words(_keys(seed), _size(shape), 2)
    radius = _minus_two_log(words[:, 0])
    # Rounded once to float32: the high part's product is exact.
    high = ops.cast(ops.right_shift(radius, _int(12)), "float32")
    low = ops.cast(ops.bitwise_and(radius, _int(4095)), "float32")
    radius = _sqrt((high * 4096.0 + low) * (2.0**-25))
    cos, negative = _cos_two_pi(words[:, 1])
    z = radius * (ops.cast(cos, "float32") * (2.0**-24))
    z = ops.where(negative, -z, z)
    dtype = keras.backend.standardize_dtype(dtype)
    return ops.cast(ops.reshape(z, shape), dtype)
