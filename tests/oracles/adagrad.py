"""Adagrad, Duchi et al. (2011) diagonal form, epsilon in or out of the
root."""

import numpy as np


class AdagradOracle:
    def __init__(
        self,
        initial_accumulator_value=0.0,
        epsilon=1e-7,
        epsilon_mode="inside_sqrt",
        lr_decay=0.0,
        coupled_weight_decay=0.0,
    ):
        self.s0 = initial_accumulator_value
        self.eps = epsilon
        self.inside = epsilon_mode == "inside_sqrt"
        self.lr_decay = lr_decay
        self.l2 = coupled_weight_decay

    def init(self, param):
        return {"s": np.full_like(param, self.s0)}

    def step(self, param, grad, state, lr, t):
        g = grad + self.l2 * param
        state["s"] = state["s"] + g * g
        lr = lr / (1 + (t - 1) * self.lr_decay)
        if self.inside:  # epsilon inside: alpha / sqrt(eps + s_t)
            return param - lr * g / np.sqrt(self.eps + state["s"])
        return param - lr * g / (np.sqrt(state["s"]) + self.eps)
