"""Adan, Xie et al. (2022) Algorithm 1 in the authors' code convention
(each beta the decay of the old average), with their bias correction."""

import numpy as np


class AdanOracle:
    def __init__(
        self,
        beta_1=0.98,
        beta_2=0.92,
        beta_3=0.99,
        epsilon=1e-8,
        bias_correction=True,
        coupled_weight_decay=0.0,
    ):
        self.b1, self.b2, self.b3, self.eps = beta_1, beta_2, beta_3, epsilon
        self.corrected = bias_correction
        self.l2 = coupled_weight_decay

    def init(self, param):
        zeros = np.zeros_like(param)
        return {"m": zeros, "v": zeros.copy(), "n": zeros.copy(), "g": None}

    def step(self, param, grad, state, lr, t):
        b1, b2, b3 = self.b1, self.b2, self.b3
        g = grad + self.l2 * param
        diff = np.zeros_like(g) if state["g"] is None else g - state["g"]
        state["g"] = g
        state["m"] = b1 * state["m"] + (1 - b1) * g
        state["v"] = b2 * state["v"] + (1 - b2) * diff
        state["n"] = b3 * state["n"] + (1 - b3) * (g + b2 * diff) ** 2
        m, v, n = state["m"], state["v"], state["n"]
        if self.corrected:
            m, v, n = m / (1 - b1**t), v / (1 - b2**t), n / (1 - b3**t)
        return param - lr * (m + b2 * v) / (np.sqrt(n) + self.eps)
