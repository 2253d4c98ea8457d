"""AdaBelief, Zhuang et al. (2020) Algorithm 2; the rectified variant as
the authors' code computes it (RAdam's step with s_t for v_t); with amsgrad
the running maximum of s_t (uncorrected) replaces s_t in both, then the
bias correction, as tensorflow-addons computes it."""

import math

import numpy as np


class AdaBeliefOracle:
    def __init__(
        self,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-16,
        amsgrad=False,
        rectify=False,
        rectify_threshold=5.0,
        coupled_weight_decay=0.0,
    ):
        self.b1, self.b2, self.eps = beta_1, beta_2, epsilon
        self.amsgrad = amsgrad
        self.rectify = rectify
        self.threshold = rectify_threshold
        self.l2 = coupled_weight_decay

    def init(self, param):
        zeros = np.zeros_like(param)
        return {"m": zeros, "s": zeros.copy(), "s_max": zeros.copy()}

    def step(self, param, grad, state, lr, t):
        b1, b2, eps = self.b1, self.b2, self.eps
        g = grad + self.l2 * param
        state["m"] = b1 * state["m"] + (1 - b1) * g
        state["s"] = b2 * state["s"] + (1 - b2) * (g - state["m"]) ** 2 + eps
        s = state["s"]
        if self.amsgrad:
            s = state["s_max"] = np.maximum(state["s_max"], s)
        m_hat = state["m"] / (1 - b1**t)
        if not self.rectify:
            s_hat = s / (1 - b2**t)
            return param - lr * m_hat / (np.sqrt(s_hat) + eps)
        rho_inf = 2 / (1 - b2) - 1
        rho_t = rho_inf - 2 * t * b2**t / (1 - b2**t)
        if rho_t <= self.threshold:
            return param - lr * m_hat
        r_t = math.sqrt(
            (rho_t - 4)
            * (rho_t - 2)
            * rho_inf
            / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
        )
        l_t = math.sqrt(1 - b2**t) / (np.sqrt(s) + eps)
        return param - lr * r_t * m_hat * l_t
