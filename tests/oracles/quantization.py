"""Blockwise dynamic quantization, Dettmers et al. (2022), "8-bit
Optimizers via Block-wise Quantization", Section 2: the dynamic data type
decoded code by code from its bits, and the nearest-value quantizer, in
float64. Shares nothing with the Keras code."""

import numpy as np


def decode(code: int, signed: bool) -> float:
    """The value of the 8-bit ``code``: a sign bit (signed type), then
    ``E`` zeros (a factor ``10**-E``), then the indicator bit 1, then the
    fraction bits, a linear fraction of ``[0.1, 1]`` taken at the middle
    of its interval. All bits zero is 0; the code left without an
    indicator (``-0`` of the signed type, the last exponent of the
    unsigned one) stands for 1, so that a block's largest magnitude is
    kept exactly."""
    sign = 1.0
    bits = 8
    if signed:
        sign = -1.0 if code & 0x80 else 1.0
        code &= 0x7F
        bits = 7
    if code == 0:
        return 1.0 if sign < 0 else 0.0
    zeros = bits - int(code).bit_length()
    fraction_bits = bits - zeros - 1
    if not signed and fraction_bits == 0:
        return 1.0
    fraction = code - (1 << fraction_bits)  # the bits after the indicator
    linear = 0.1 + 0.9 * (fraction + 0.5) / 2**fraction_bits
    return sign * 10.0**-zeros * linear


def dynamic_map(signed: bool) -> np.ndarray:
    """The 256 values, sorted (float64)."""
    return np.sort([decode(c, signed) for c in range(256)])


def quantize(x, signed, block=256):
    """(codes, absmax) of ``x`` (float64 math): per block of ``block``
    entries of the flattened ``x``, its largest magnitude, and each entry
    the index of the nearest value of the sorted map to ``x / absmax``."""
    table = dynamic_map(signed)
    flat = np.asarray(x, np.float64).ravel()
    codes = np.empty(flat.size, np.int64)
    absmax = []
    for start in range(0, flat.size, block):
        chunk = flat[start : start + block]
        top = np.max(np.abs(chunk))
        absmax.append(top)
        scaled = chunk / (top if top > 0 else 1.0)
        codes[start : start + block] = np.argmin(
            np.abs(scaled[:, None] - table[None, :]), axis=1
        )
    return codes.reshape(np.shape(x)), np.array(absmax)


def dequantize(codes, absmax, signed, block=256):
    table = dynamic_map(signed)
    flat = table[np.asarray(codes).ravel()]
    scale = np.repeat(absmax, block)[: flat.size]
    return (flat * scale).reshape(np.shape(codes))


class Quantized:
    """An oracle whose slots are stored as 8-bit codes after each step:
    ``oracle``'s step on the dequantized state, then every state entry of
    ``SMALLEST`` or more values quantized (the unsigned map for the keys
    of ``unsigned``)."""

    def __init__(self, oracle, unsigned=(), smallest=4096):
        self.oracle, self.unsigned, self.smallest = oracle, unsigned, smallest

    def init(self, param):
        return self.oracle.init(param)

    def step(self, param, grad, state, lr, t):
        new = self.oracle.step(param, grad, state, lr, t)
        if param.size >= self.smallest:
            for key, value in state.items():
                if isinstance(value, np.ndarray) and value.shape == param.shape:
                    signed = key not in self.unsigned
                    codes, absmax = quantize(value, signed)
                    state[key] = dequantize(codes, absmax, signed)
        return new
