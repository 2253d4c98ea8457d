"""NovoGrad, Ginsburg et al. (2019) Algorithm 1 (v and m initialised from
the first gradient: v_1 = ||g_1||^2, m_1 the first bracket); with
grad_averaging the bracket is scaled by 1 - beta_1 from the second step on,
or from the first with average_first_step (an average started at m_0 = 0).
"""

import numpy as np


class NovoGradOracle:
    def __init__(
        self,
        beta_1=0.95,
        beta_2=0.98,
        epsilon=1e-8,
        weight_decay=0.0,
        grad_averaging=False,
        average_first_step=False,
        coupled_weight_decay=0.0,
    ):
        self.b1, self.b2, self.eps = beta_1, beta_2, epsilon
        self.d = weight_decay
        self.averaging = grad_averaging
        self.average_first = average_first_step
        self.l2 = coupled_weight_decay

    def init(self, param):
        return {"m": np.zeros_like(param), "v": 0.0}

    def step(self, param, grad, state, lr, t):
        g = grad + self.l2 * param
        norm2 = float(np.sum(g * g))
        state["v"] = (
            norm2 if t == 1 else self.b2 * state["v"] + (1 - self.b2) * norm2
        )
        u = g / (np.sqrt(state["v"]) + self.eps) + self.d * param
        if self.averaging and (t > 1 or self.average_first):
            u = (1 - self.b1) * u
        state["m"] = self.b1 * state["m"] + u
        return param - lr * state["m"]
