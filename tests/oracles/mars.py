"""MARS, Yuan et al. (2024): the approximate MARS-AdamW and MARS-Lion
(Algorithms 1-3 with the previous step's gradient as g_{t-1}) for the
matrices, plain AdamW for the tensors of other ranks (the authors' code:
``len(grad.shape) == 2``) unless ``optimize_1d``; ``higher_rank_mars``
gives the tensors of rank 3 or more the MARS step too."""

import numpy as np


class MARSOracle:
    def __init__(
        self,
        beta_1=0.95,
        beta_2=0.99,
        gamma=0.025,
        mars_type="adamw",
        epsilon=1e-8,
        epsilon_mode="corrected",
        weight_decay=0.0,
        optimize_1d=False,
        learning_rate_1d_scale=1.0,
        beta_1_1d=0.9,
        beta_2_1d=0.95,
        weight_decay_1d=0.1,
        higher_rank_mars=False,
        previous_gradient_init="first",
        coupled_weight_decay=0.0,
        cautious_weight_decay=False,
    ):
        self.b1, self.b2, self.gamma = beta_1, beta_2, gamma
        self.type = mars_type
        self.eps, self.eps_mode = epsilon, epsilon_mode
        self.wd, self.wd_1d = weight_decay, weight_decay_1d
        self.all_mars = optimize_1d
        self.higher_ranks = higher_rank_mars
        self.lr_scale_1d = learning_rate_1d_scale
        self.b1_1d, self.b2_1d = beta_1_1d, beta_2_1d
        self.zeros_first = previous_gradient_init == "zeros"
        self.l2 = coupled_weight_decay
        self.cautious_decay = cautious_weight_decay

    def init(self, param):
        zeros = np.zeros_like(param)
        return {"m": zeros, "v": zeros.copy(), "g": None}

    def _adam(self, m, v, b1, b2, t):
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        eps = self.eps
        if self.eps_mode == "uncorrected":  # eps added before correcting
            eps = self.eps / np.sqrt(1 - b2**t)
        return m_hat / (np.sqrt(v_hat) + eps)

    def step(self, param, grad, state, lr, t):
        g = grad + self.l2 * param
        mars = param.ndim == 2 or (self.higher_ranks and param.ndim > 2)
        if not (self.all_mars or mars):  # AdamW
            lr = lr * self.lr_scale_1d
            b1, b2 = self.b1_1d, self.b2_1d
            state["m"] = b1 * state["m"] + (1 - b1) * g
            state["v"] = b2 * state["v"] + (1 - b2) * g * g
            update = self._adam(state["m"], state["v"], b1, b2, t)
            return param - lr * (
                update + self._decay(self.wd_1d, update, param)
            )
        b1, b2 = self.b1, self.b2
        previous = state["g"]
        if previous is None:
            previous = np.zeros_like(g) if self.zeros_first else g
        state["g"] = g
        c = g + self.gamma * b1 / (1 - b1) * (g - previous)
        norm = np.sqrt(np.sum(c * c))
        if norm > 1:
            c = c / norm
        state["m"] = b1 * state["m"] + (1 - b1) * c
        if self.type == "lion":
            update = np.sign(state["m"])
        else:
            state["v"] = b2 * state["v"] + (1 - b2) * c * c
            update = self._adam(state["m"], state["v"], b1, b2, t)
        return param - lr * (update + self._decay(self.wd, update, param))

    def _decay(self, rate, update, param):
        """Chen et al. 2025 under ``cautious_weight_decay``: only where the
        update and the weight agree in sign."""
        if self.cautious_decay:
            return rate * (update * param >= 0) * param
        return rate * param
