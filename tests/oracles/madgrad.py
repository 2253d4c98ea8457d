"""MADGRAD, Defazio & Jelassi (2021) Algorithm 1; theta_0 is the value the
first update starts from (after Keras' decoupled decay, if any)."""

import numpy as np


class MADGRADOracle:
    def __init__(self, momentum=0.9, epsilon=1e-6, coupled_weight_decay=0.0):
        self.c = 1 - momentum
        self.eps = epsilon
        self.l2 = coupled_weight_decay

    def init(self, param):
        zeros = np.zeros_like(param)
        return {"s": zeros, "nu": zeros.copy(), "x0": None}

    def step(self, param, grad, state, lr, t):
        if state["x0"] is None:  # what the first update starts from
            state["x0"] = param.copy()
        g = grad + self.l2 * param
        lam = lr * np.sqrt(t)  # lambda_k = lr sqrt(k + 1), k = t - 1
        state["s"] = state["s"] + lam * g
        state["nu"] = state["nu"] + lam * g * g
        rms = np.cbrt(state["nu"]) + self.eps
        # With eps = 0, s = nu = 0 where every gradient so far was 0: such
        # a coordinate stays at theta_0 (0 / 0 taken as 0).
        ratio = np.divide(
            state["s"], rms, out=np.zeros_like(rms), where=rms > 0
        )
        z = state["x0"] - ratio
        return (1 - self.c) * param + self.c * z
