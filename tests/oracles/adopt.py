"""ADOPT, Taniguchi et al. (2024) Algorithms 1 and 2; the first call only
initialises v (the paper's v_0 = g_0^2)."""

import numpy as np


class ADOPTOracle:
    def __init__(
        self,
        beta_1=0.9,
        beta_2=0.9999,
        epsilon=1e-6,
        clipping=True,
        coupled_weight_decay=0.0,
    ):
        self.b1, self.b2, self.eps = beta_1, beta_2, epsilon
        self.clipping = clipping
        self.l2 = coupled_weight_decay

    def init(self, param):
        return {"m": np.zeros_like(param), "v": np.zeros_like(param)}

    def step(self, param, grad, state, lr, t):
        g = grad + self.l2 * param
        if t == 1:
            state["v"] = g * g
            return param
        u = g / np.maximum(np.sqrt(state["v"]), self.eps)
        if self.clipping:
            c = (t - 1) ** 0.25  # the paper's t, counting from v_0
            u = np.clip(u, -c, c)
        state["m"] = self.b1 * state["m"] + (1 - self.b1) * u
        state["v"] = self.b2 * state["v"] + (1 - self.b2) * g * g
        return param - lr * state["m"]
