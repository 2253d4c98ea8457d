"""AdEMAMix, Pagliardini et al. (2024) Algorithm 1, with its warm-ups."""

import math

import numpy as np


class AdEMAMixOracle:
    def __init__(
        self,
        beta_1=0.9,
        beta_2=0.999,
        beta_3=0.9999,
        alpha=5.0,
        epsilon=1e-8,
        alpha_warmup_steps=0,
        beta_3_warmup_steps=0,
        coupled_weight_decay=0.0,
    ):
        self.b1, self.b2, self.b3, self.eps = beta_1, beta_2, beta_3, epsilon
        self.alpha = alpha
        self.t_alpha, self.t_beta_3 = alpha_warmup_steps, beta_3_warmup_steps
        self.l2 = coupled_weight_decay

    def init(self, param):
        zeros = np.zeros_like(param)
        return {"m1": zeros, "m2": zeros.copy(), "nu": zeros.copy()}

    def step(self, param, grad, state, lr, t):
        b1, b2 = self.b1, self.b2
        alpha, b3 = self.alpha, self.b3
        if self.t_alpha:
            alpha = min(t * alpha / self.t_alpha, alpha)
        if self.t_beta_3 and b3 > 0:
            f = min(t / self.t_beta_3, 1.0)
            l1, l3 = math.log(b1), math.log(b3)
            b3 = min(math.exp(l1 * l3 / ((1 - f) * l3 + f * l1)), b3)
        g = grad + self.l2 * param
        state["m1"] = b1 * state["m1"] + (1 - b1) * g
        state["m2"] = b3 * state["m2"] + (1 - b3) * g
        state["nu"] = b2 * state["nu"] + (1 - b2) * g * g
        m1_hat = state["m1"] / (1 - b1**t)
        nu_hat = state["nu"] / (1 - b2**t)
        update = (m1_hat + alpha * state["m2"]) / (np.sqrt(nu_hat) + self.eps)
        return param - lr * update
