"""SGD with momentum, Sutskever et al. (2013)."""

import numpy as np


class SGDOracle:
    def __init__(
        self,
        momentum=0.0,
        dampening=0.0,
        nesterov=False,
        momentum_form="gradient",
        dampen_first_step=True,
        coupled_weight_decay=0.0,
    ):
        self.mu = momentum
        self.tau = dampening
        self.nesterov = nesterov
        self.form = momentum_form
        self.dampen_first = dampen_first_step
        self.l2 = coupled_weight_decay

    def init(self, param):
        return {"v": np.zeros_like(param)}

    def step(self, param, grad, state, lr, t):
        g = grad + self.l2 * param
        if self.mu == 0:  # no velocity: plain gradient descent
            return param - lr * g
        tau = self.tau if (t > 1 or self.dampen_first) else 0.0
        if self.form == "step":
            # v_t = mu v_{t-1} - lr (1 - tau) g_t ; theta += v_t
            state["v"] = self.mu * state["v"] - lr * (1.0 - tau) * g
            if self.nesterov:
                return param + self.mu * state["v"] - lr * g
            return param + state["v"]
        state["v"] = self.mu * state["v"] + (1.0 - tau) * g
        if self.nesterov:
            return param - lr * (g + self.mu * state["v"])
        return param - lr * state["v"]
