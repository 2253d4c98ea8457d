"""Adam, Kingma & Ba (2015) Algorithm 1; AMSGrad, Reddi et al. (2018)."""

import numpy as np


def denominator_factor(v, t, beta_2, epsilon, mode):
    """1 / sqrt(v_hat) with epsilon placed as ``mode`` says."""
    c = 1.0 - beta_2**t
    if mode == "corrected":  # Algorithm 1: m_hat / (sqrt(v_hat) + eps)
        return 1.0 / (np.sqrt(v / c) + epsilon)
    if mode == "uncorrected":  # section 2: alpha_t m / (sqrt(v) + eps_hat)
        return np.sqrt(c) / (np.sqrt(v) + epsilon)
    return np.sqrt(c / (v + epsilon))  # epsilon inside the root


class AdamOracle:
    def __init__(
        self,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        amsgrad=False,
        epsilon_mode="corrected",
        coupled_weight_decay=0.0,
    ):
        self.b1, self.b2, self.eps = beta_1, beta_2, epsilon
        self.amsgrad = amsgrad
        self.mode = epsilon_mode
        self.l2 = coupled_weight_decay

    def init(self, param):
        zeros = np.zeros_like(param)
        return {"m": zeros, "v": zeros.copy(), "v_max": zeros.copy()}

    def step(self, param, grad, state, lr, t):
        g = grad + self.l2 * param
        state["m"] = self.b1 * state["m"] + (1 - self.b1) * g
        state["v"] = self.b2 * state["v"] + (1 - self.b2) * g * g
        v = state["v"]
        if self.amsgrad:
            state["v_max"] = np.maximum(state["v_max"], v)
            v = state["v_max"]
        m_hat = state["m"] / (1 - self.b1**t)
        factor = denominator_factor(v, t, self.b2, self.eps, self.mode)
        return param - lr * m_hat * factor
