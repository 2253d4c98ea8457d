"""LARS, You, Gitman & Ginsburg (2017) Algorithm 1 (trust ratio 1 where a
norm is 0), with optional Nesterov momentum.

Trust ratio 1 also for a parameter excluded from layer adaptation: of rank
0 or 1 with ``adapt_vectors=False``, or whose name one of the
``exclude_from_layer_adaptation`` patterns finds. The oracle sees arrays,
not variables: it names the i-th parameter it initialises ``p{i}``, as
tests/helpers.py names its variables.
"""

import re

import numpy as np


class LARSOracle:
    def __init__(
        self,
        momentum=0.9,
        weight_decay=0.0,
        trust_coefficient=0.1,  # keras_opts' default; the paper's 0.001
        epsilon=0.0,
        nesterov=False,
        exclude_from_layer_adaptation=None,
        adapt_vectors=True,
        coupled_weight_decay=0.0,
    ):
        self.mu, self.beta = momentum, weight_decay
        self.eta, self.eps = trust_coefficient, epsilon
        self.nesterov = nesterov
        self.excluded = exclude_from_layer_adaptation or []
        self.adapt_vectors = adapt_vectors
        self.l2 = coupled_weight_decay
        self.count = 0

    def init(self, param):
        name = f"p{self.count}"
        self.count += 1
        adapt = self.adapt_vectors or param.ndim > 1
        if any(re.search(pattern, name) for pattern in self.excluded):
            adapt = False
        return {"v": np.zeros_like(param), "adapt": adapt}

    def step(self, param, grad, state, lr, t):
        g = grad + self.l2 * param
        w_norm, g_norm = np.linalg.norm(param), np.linalg.norm(g)
        if state["adapt"] and w_norm > 0 and g_norm > 0:
            local = self.eta * w_norm / (g_norm + self.beta * w_norm + self.eps)
        else:
            local = 1.0
        u = lr * local * (g + self.beta * param)
        state["v"] = self.mu * state["v"] + u
        if self.nesterov:
            return param - (u + self.mu * state["v"])
        return param - state["v"]
