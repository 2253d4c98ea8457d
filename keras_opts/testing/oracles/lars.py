"""LARS, You, Gitman & Ginsburg (2017) Algorithm 1 (trust ratio 1 where a
norm is 0), with optional Nesterov momentum."""

import numpy as np


class LARSOracle:
    def __init__(
        self,
        momentum=0.9,
        weight_decay=0.0,
        trust_coefficient=0.001,
        epsilon=0.0,
        nesterov=False,
        coupled_weight_decay=0.0,
    ):
        self.mu, self.beta = momentum, weight_decay
        self.eta, self.eps = trust_coefficient, epsilon
        self.nesterov = nesterov
        self.l2 = coupled_weight_decay

    def init(self, param):
        return {"v": np.zeros_like(param)}

    def step(self, param, grad, state, lr, t):
        g = grad + self.l2 * param
        w_norm, g_norm = np.linalg.norm(param), np.linalg.norm(g)
        if w_norm > 0 and g_norm > 0:
            local = self.eta * w_norm / (g_norm + self.beta * w_norm + self.eps)
        else:
            local = 1.0
        u = lr * local * (g + self.beta * param)
        state["v"] = self.mu * state["v"] + u
        if self.nesterov:
            return param - (u + self.mu * state["v"])
        return param - state["v"]
