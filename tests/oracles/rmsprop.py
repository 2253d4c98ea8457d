"""RMSprop, Hinton's lecture 6e; centered form, Graves (2013) eq. 38-41."""

import numpy as np


class RMSpropOracle:
    def __init__(
        self,
        rho=0.9,
        momentum=0.0,
        epsilon=1e-7,
        centered=False,
        epsilon_mode="inside_sqrt",
        momentum_form="gradient",
        coupled_weight_decay=0.0,
    ):
        self.rho, self.mu, self.eps = rho, momentum, epsilon
        self.centered = centered
        self.inside = epsilon_mode == "inside_sqrt"
        self.step_form = momentum_form == "step"
        self.l2 = coupled_weight_decay

    def init(self, param):
        zeros = np.zeros_like(param)
        return {"s": zeros, "mean": zeros.copy(), "b": zeros.copy()}

    def step(self, param, grad, state, lr, t):
        g = grad + self.l2 * param
        rho = self.rho
        state["s"] = rho * state["s"] + (1 - rho) * g**2
        variance = state["s"]
        if self.centered:  # Graves: n - g_bar^2
            state["mean"] = rho * state["mean"] + (1 - rho) * g
            variance = state["s"] - state["mean"] ** 2
        if self.inside:
            u = g / np.sqrt(variance + self.eps)
        else:
            u = g / (np.sqrt(variance) + self.eps)
        if self.mu == 0:
            return param - lr * u
        if self.step_form:
            state["b"] = self.mu * state["b"] + lr * u
            return param - state["b"]
        state["b"] = self.mu * state["b"] + u
        return param - lr * state["b"]
