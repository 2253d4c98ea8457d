"""Adadelta, Zeiler (2012) Algorithm 1, times a learning rate (1 = paper)."""

import numpy as np


class AdadeltaOracle:
    def __init__(self, rho=0.95, epsilon=1e-6, coupled_weight_decay=0.0):
        self.rho, self.eps = rho, epsilon
        self.l2 = coupled_weight_decay

    def init(self, param):
        return {"Eg2": np.zeros_like(param), "Edx2": np.zeros_like(param)}

    def step(self, param, grad, state, lr, t):
        g = grad + self.l2 * param
        rho, eps = self.rho, self.eps
        state["Eg2"] = rho * state["Eg2"] + (1 - rho) * g**2  # step 4
        # step 5: dx = -RMS[dx]_{t-1} / RMS[g]_t * g
        dx = -np.sqrt(state["Edx2"] + eps) / np.sqrt(state["Eg2"] + eps) * g
        state["Edx2"] = rho * state["Edx2"] + (1 - rho) * dx**2  # step 6
        return param + lr * dx  # step 7
