"""Nadam, Dozat (2016), with the momentum schedule mu_t."""

import numpy as np


class NadamOracle:
    def __init__(
        self,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        momentum_decay=0.004,
        coupled_weight_decay=0.0,
    ):
        self.b1, self.b2, self.eps = beta_1, beta_2, epsilon
        self.psi = momentum_decay
        self.l2 = coupled_weight_decay

    def mu(self, t):
        return self.b1 * (1 - 0.5 * 0.96 ** (t * self.psi))

    def init(self, param):
        return {
            "m": np.zeros_like(param),
            "v": np.zeros_like(param),
            "product": 1.0,
        }

    def step(self, param, grad, state, lr, t):
        g = grad + self.l2 * param
        mu, mu_next = self.mu(t), self.mu(t + 1)
        state["product"] *= mu
        product, product_next = state["product"], state["product"] * mu_next
        state["m"] = self.b1 * state["m"] + (1 - self.b1) * g
        state["v"] = self.b2 * state["v"] + (1 - self.b2) * g * g
        m_bar = (1 - mu) * g / (1 - product) + mu_next * state["m"] / (
            1 - product_next
        )
        v_hat = state["v"] / (1 - self.b2**t)
        return param - lr * m_bar / (np.sqrt(v_hat) + self.eps)
