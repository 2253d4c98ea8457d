"""Adam-mini, Zhang et al. (2024) Algorithm 1 with the partition of
Algorithm 3 in Keras' layouts: Adam's first moment, and one second moment
per block, the moving average of the block's mean squared gradient.

The oracle sees arrays, not variables: ``names`` gives each parameter's
path, in the order ``init`` meets them (by default ``p0``, ``p1``, ...,
the names of ``tests.helpers.make_variables``)."""

import re

import numpy as np


def _axes(path, rank, block_axes):
    for pattern, axes in (block_axes or {}).items():
        if re.search(pattern, path):
            return tuple(sorted(a % rank for a in axes))
    layer, _, name = path.rpartition("/")
    sublayer = layer.rpartition("/")[2]
    if name in ("bias", "beta"):  # Adam (beta: a normalisation's offset)
        return ()
    if rank == 3 and name == "kernel" and sublayer in ("query", "key"):
        return (0, 2)  # (d_model, heads, head_dim): per head
    if rank == 3 and name == "kernel" and sublayer == "value":
        return (0,)  # per output neuron
    if rank == 2 and name == "embeddings":
        return (1,)  # per token
    if rank >= 2 and name == "kernel":
        return tuple(range(rank - 1))  # per output neuron or channel
    return tuple(range(rank))  # one block


class AdamMiniOracle:
    def __init__(
        self,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        block_axes=None,
        coupled_weight_decay=0.0,
        names=None,
    ):
        self.b1, self.b2, self.eps = beta_1, beta_2, epsilon
        self.block_axes = block_axes
        self.l2 = coupled_weight_decay
        self.names = names
        self.count = 0

    def init(self, param):
        names = self.names
        path = names[self.count] if names else f"p{self.count}"
        self.count += 1
        axes = _axes(path, param.ndim, self.block_axes)
        v_shape = [1 if i in axes else n for i, n in enumerate(param.shape)]
        return {"m": np.zeros_like(param), "v": np.zeros(v_shape), "a": axes}

    def step(self, param, grad, state, lr, t):
        g = grad + self.l2 * param
        square = g * g
        if state["a"] and square.size:
            square = square.mean(axis=state["a"], keepdims=True)
        state["m"] = self.b1 * state["m"] + (1 - self.b1) * g
        state["v"] = self.b2 * state["v"] + (1 - self.b2) * square
        m_hat = state["m"] / (1 - self.b1**t)
        v_hat = state["v"] / (1 - self.b2**t)
        return param - lr * m_hat / (np.sqrt(v_hat) + self.eps)
