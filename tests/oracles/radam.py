"""RAdam, Liu et al. (2019) Algorithm 2."""

import math

import numpy as np

from tests.oracles.adam import denominator_factor


class RAdamOracle:
    def __init__(
        self,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        epsilon_mode="inside_sqrt",
        rectify_threshold=4.0,
        coupled_weight_decay=0.0,
    ):
        self.b1, self.b2, self.eps = beta_1, beta_2, epsilon
        self.mode = epsilon_mode
        self.threshold = rectify_threshold
        self.l2 = coupled_weight_decay

    def init(self, param):
        return {"m": np.zeros_like(param), "v": np.zeros_like(param)}

    def step(self, param, grad, state, lr, t):
        b1, b2 = self.b1, self.b2
        g = grad + self.l2 * param
        state["m"] = b1 * state["m"] + (1 - b1) * g
        state["v"] = b2 * state["v"] + (1 - b2) * g * g
        m_hat = state["m"] / (1 - b1**t)
        rho_inf = 2 / (1 - b2) - 1
        rho_t = rho_inf - 2 * t * b2**t / (1 - b2**t)
        if rho_t <= self.threshold:
            return param - lr * m_hat
        l_t = denominator_factor(state["v"], t, b2, self.eps, self.mode)
        r_t = math.sqrt(
            (rho_t - 4)
            * (rho_t - 2)
            * rho_inf
            / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
        )
        return param - lr * r_t * m_hat * l_t
