"""AdamW, Loshchilov & Hutter (2019) Algorithm 2."""

from tests.oracles.adam import AdamOracle


class AdamWOracle:
    def __init__(
        self,
        weight_decay=0.01,
        weight_decay_scaling="learning_rate",
        base_learning_rate=None,
        **adam_kwargs,
    ):
        self.wd = weight_decay
        self.scaling = weight_decay_scaling
        self.alpha = base_learning_rate
        self.adam = AdamOracle(**adam_kwargs)

    def init(self, param):
        return self.adam.init(param)

    def step(self, param, grad, state, lr, t):
        # Line 12: theta_t = theta_{t-1} - eta_t (alpha * adam + lambda
        # theta_{t-1}), with lr_t = alpha eta_t; "learning_rate" scaling
        # multiplies lambda by lr_t instead of eta_t.
        if self.alpha is None:  # a constant rate is its own alpha
            self.alpha = lr
        eta = lr / self.alpha if self.scaling == "schedule" else lr
        decayed = param - eta * self.wd * param
        return self.adam.step(decayed, grad, state, lr, t)
