"""Yogi, Zaheer et al. (2018) Algorithm 2, with optional bias correction."""

import numpy as np


class YogiOracle:
    def __init__(
        self,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-3,
        initial_accumulator_value=1e-6,
        bias_correction=False,
        coupled_weight_decay=0.0,
    ):
        self.b1, self.b2, self.eps = beta_1, beta_2, epsilon
        self.v0 = initial_accumulator_value
        self.corrected = bias_correction
        self.l2 = coupled_weight_decay

    def init(self, param):
        return {"m": np.zeros_like(param), "v": np.full_like(param, self.v0)}

    def step(self, param, grad, state, lr, t):
        g = grad + self.l2 * param
        state["m"] = self.b1 * state["m"] + (1 - self.b1) * g
        v = state["v"]
        state["v"] = v - (1 - self.b2) * np.sign(v - g * g) * g * g
        m, v = state["m"], state["v"]
        if self.corrected:
            m = m / (1 - self.b1**t)
            v = v / (1 - self.b2**t)
        return param - lr * m / (np.sqrt(v) + self.eps)
