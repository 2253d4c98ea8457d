"""Stochastic rounding of float32 tensors to bfloat16 or float16, for the
slots ``state_dtype`` stores in a narrower dtype.

Rounding to nearest drops every change smaller than half a unit in the
last place (ulp): an EMA that moves its slot by less each step never moves
it (bfloat16 keeps 8 significant bits, so ``0.999 m + 0.001 g`` rounds
back to ``m``). Stochastic rounding rounds up with probability equal to
the fractional distance to the next representable value and down
otherwise, so the rounded value is unbiased: its expectation is the
float32 value, and small updates accumulate on average.

Written with ``keras.ops`` on the float32 bit pattern
(``keras.ops.view``), so it is the same on every backend:

- bfloat16 is the upper 16 bits of float32. Adding a uniform random
  integer in ``[0, 2^16)`` to the pattern and clearing the lower 16 bits
  rounds the magnitude up exactly when the noise carries past the kept
  bits, with probability (dropped bits) / 2^16; the sign bit is untouched,
  so negative values round symmetrically. Values already representable
  (lower bits zero) never change.
- float16 keeps 10 of float32's 23 fraction bits: the same with 13 bits
  for normal float16 magnitudes (at least 2^-14). Below that float16's
  subnormals are spaced 2^-24 apart: ``|x| * 2^24`` (exact) is rounded up
  with probability its fractional part. Magnitudes that round
  beyond 65504, float16's largest value, become infinite, as rounding to
  nearest makes them from 65520 on.

Infinities stay infinite and NaNs stay NaN.
"""

from __future__ import annotations

from keras import ops

from keras_opts._core import counter_random

#: The dtypes ``state_dtype`` takes.
STATE_DTYPES = ("bfloat16", "float16")

#: Lower bits of a float32 that each dtype drops (normal numbers).
_DROPPED_BITS = {"bfloat16": 16, "float16": 13}

#: float16's smallest normal magnitude, and the spacing of its subnormals.
_FLOAT16_TINY = 2.0**-14
_FLOAT16_SUBNORMAL_STEP = 2.0**-24


def stochastic_round(x, dtype: str, seed):
    """``x`` (float32) in ``dtype`` (``"bfloat16"`` or ``"float16"``),
    rounded stochastically with random bits drawn from ``seed`` (a
    ``keras.random.SeedGenerator``, advanced once).

    The random bits are those of a uniform float32 draw in [0, 1) from
    ``keras_opts._core.counter_random``, the same on every backend (a
    file saved on one resumes on another rounding alike): multiples of
    2^-24 with equal probabilities, so ``floor(u * 2^k)`` is uniform over
    ``[0, 2^k)`` for ``k <= 24``."""
    x = ops.convert_to_tensor(x, "float32")
    if dtype not in _DROPPED_BITS:
        raise ValueError(f"No stochastic rounding to {dtype!r}.")
    dropped = _DROPPED_BITS[dtype]
    uniform = counter_random.uniform(tuple(x.shape), seed)
    noise = ops.cast(ops.floor(uniform * float(1 << dropped)), "int32")
    bits = ops.view(x, "int32")
    kept = ops.view(ops.bitwise_and(bits + noise, -(1 << dropped)), "float32")
    if dtype == "bfloat16":
        return ops.cast(kept, "bfloat16")
    # float16's subnormals: |x| / 2^-24 (exact) rounded up with
    # probability its fractional part (to the 2^-24 grid of the draw).
    scaled = ops.abs(x) * (1.0 / _FLOAT16_SUBNORMAL_STEP)
    floor = ops.floor(scaled)
    up = ops.cast(uniform < scaled - floor, "float32")
    subnormal = ops.sign(x) * (floor + up) * _FLOAT16_SUBNORMAL_STEP
    tiny = ops.abs(x) < _FLOAT16_TINY
    return ops.cast(ops.where(tiny, subnormal, kept), "float16")
