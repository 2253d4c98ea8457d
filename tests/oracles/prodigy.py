"""Prodigy, Mishchenko & Defazio (2024) Algorithm 4 (Adam form), with the
authors' decoupled weight decay; r and s as printed (not rescaled).

The estimate d couples all parameters, so this oracle steps them together:
``step_all(params, grads, states, lr, t)``.
"""

import numpy as np


class ProdigyOracle:
    def __init__(
        self,
        beta_1=0.9,
        beta_2=0.999,
        beta_3=None,
        epsilon=1e-8,
        d0=1e-6,
        weight_decay=0.0,
        bias_correction=False,
        coupled_weight_decay=0.0,
        weight_decay_mask=None,
        cautious_weight_decay=False,
    ):
        self.b1, self.b2 = beta_1, beta_2
        self.b3 = np.sqrt(beta_2) if beta_3 is None else beta_3
        self.eps, self.wd = epsilon, weight_decay
        self.corrected = bias_correction
        self.l2 = coupled_weight_decay
        #: Per parameter: whether weight_decay and coupled_weight_decay
        #: apply (to all by default).
        self.mask = weight_decay_mask
        #: Chen et al. 2025: the decay only where the step and the weight
        #: agree in sign.
        self.cautious_decay = cautious_weight_decay
        self.d, self.r = d0, 0.0

    def init(self, param):
        zeros = np.zeros_like(param)
        return {"m": zeros, "v": zeros.copy(), "s": zeros.copy(), "x0": None}

    def step_all(self, params, grads, states, lr, t):
        d = self.d
        if self.corrected:
            lr = lr * np.sqrt(1 - self.b2**t) / (1 - self.b1**t)
        mask = self.mask or [True] * len(params)
        inner, new = 0.0, []
        for p, g, st, decays in zip(params, grads, states, mask):
            if decays:
                g = g + self.l2 * p
            if st["x0"] is None:
                st["x0"] = p.copy()
            inner += float(np.sum(g * (st["x0"] - p)))
            st["m"] = self.b1 * st["m"] + (1 - self.b1) * d * g
            st["v"] = self.b2 * st["v"] + (1 - self.b2) * d * d * g * g
            st["s"] = self.b3 * st["s"] + (1 - self.b3) * lr * d * d * g
            step = st["m"] / (np.sqrt(st["v"]) + d * self.eps)
            if decays:
                agree = (step * p >= 0) if self.cautious_decay else 1.0
                step = step + self.wd * agree * p
            new.append(p - lr * d * step)
        self.r = self.b3 * self.r + (1 - self.b3) * lr * d * d * inner
        norm = sum(float(np.sum(np.abs(st["s"]))) for st in states)
        if norm > 0:
            self.d = max(d, self.r / norm)
        return new
