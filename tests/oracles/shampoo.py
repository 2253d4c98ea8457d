"""Shampoo, Gupta, Koren & Singer (2018) Algorithm 1 for a matrix, with the
grafting, blocking, start step and infrequent roots of Anil et al. (2020)
(Algorithm 2 and section 3), in NumPy float64.

Blocks are cut out of the matrix one by one (the last ones shorter), each
with its own statistics, as the paper describes; a variable of rank above
2 is the matrix of its last dimension against the others; a vector takes
the graft's update.
"""

import numpy as np


def _inverse_fourth_root(a, epsilon):
    values, vectors = np.linalg.eigh(a + epsilon * np.eye(len(a)))
    return (vectors * np.maximum(values, 0.0) ** -0.25) @ vectors.T


class ShampooOracle:
    def __init__(
        self,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-6,
        grafting="adam",
        graft_epsilon=1e-8,
        block_size=512,
        precondition_frequency=20,
        start_preconditioning_step=10,
        preconditioner_dtype="float32",
        coupled_weight_decay=0.0,
    ):
        self.b1, self.b2, self.eps = beta_1, beta_2, epsilon
        self.w = 1.0 if beta_2 == 1.0 else 1.0 - beta_2
        self.grafting, self.graft_eps = grafting, graft_epsilon
        self.block = block_size
        self.freq = precondition_frequency
        self.start = start_preconditioning_step
        self.l2 = coupled_weight_decay

    def _cuts(self, size):
        return [
            slice(i, min(i + self.block, size))
            for i in range(0, size, self.block)
        ]

    def init(self, param):
        state = {"m": np.zeros_like(param), "a": np.zeros_like(param)}
        if param.ndim >= 2 and param.size:
            rows, cols = int(np.prod(param.shape[:-1])), param.shape[-1]
            state["blocks"] = [
                {
                    "rows": r,
                    "cols": c,
                    "L": np.zeros((r.stop - r.start,) * 2),
                    "R": np.zeros((c.stop - c.start,) * 2),
                }
                for r in self._cuts(rows)
                for c in self._cuts(cols)
            ]
        return state

    def _graft(self, g, state, t):
        if self.grafting == "sgd":
            return g
        if self.grafting == "adagrad":
            state["a"] = state["a"] + g * g
            return g / (np.sqrt(state["a"]) + self.graft_eps)
        if self.grafting == "adam":
            state["a"] = self.b2 * state["a"] + (1 - self.b2) * g * g
            v_hat = state["a"] / (1 - self.b2**t)
            return g / (np.sqrt(v_hat) + self.graft_eps)
        # None: one-dimensional Shampoo, the diagonal of its statistics.
        state["a"] = self.b2 * state["a"] + self.w * g * g
        return g / np.sqrt(state["a"] + self.eps)

    def step(self, param, grad, state, lr, t):
        if param.size == 0:
            return param
        g = grad + self.l2 * param
        graft = self._graft(g, state, t)
        u = graft
        if "blocks" in state:
            matrix = g.reshape(-1, g.shape[-1])
            graft_matrix = graft.reshape(matrix.shape)
            shampoo = np.zeros_like(matrix)
            refresh = (t - 1) % self.freq == 0 or t == self.start
            for block in state["blocks"]:
                r, c = block["rows"], block["cols"]
                G = matrix[r, c]
                block["L"] = self.b2 * block["L"] + self.w * G @ G.T
                block["R"] = self.b2 * block["R"] + self.w * G.T @ G
                if refresh:
                    block["PL"] = _inverse_fourth_root(block["L"], self.eps)
                    block["PR"] = _inverse_fourth_root(block["R"], self.eps)
                S = block["PL"] @ G @ block["PR"]
                if self.grafting is not None:
                    norm = np.linalg.norm(S)
                    target = np.linalg.norm(graft_matrix[r, c])
                    S = S * (target / norm) if norm > 0 else 0.0 * S
                shampoo[r, c] = S
            if t >= self.start:
                u = shampoo.reshape(param.shape)
        state["m"] = self.b1 * state["m"] + (1 - self.b1) * u
        return param - lr * state["m"]
