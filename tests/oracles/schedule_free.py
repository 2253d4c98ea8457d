"""Schedule-free SGD, AdamW and RAdam, Defazio et al. (2024), Algorithm 1,
in NumPy float64, in the paper's three sequences: z is kept, x (the
average) is read from the weights y = (1 - beta_1) z + beta_1 x, and each
step returns the new y, what the model's variables hold during training;
``state["x"]`` is the new x.

The averaging weight is c_{t+1} = w_t / sum_{i <= t} w_i with
w_t = t^r (max_{i <= t} gamma_t)^p, gamma_t the learning rate in effect.
Each parameter's state keeps its own copy of the running maximum and the
sum; every parameter sees the same learning rates, so the copies agree.
RAdam's rho_t and r_t are written directly from Liu et al. (2019), eq. 7.
"""

import numpy as np


class _ScheduleFreeOracle:
    def __init__(
        self,
        beta_1=0.9,
        weight_decay=0.0,
        r=0.0,
        weight_lr_power=2.0,
        coupled_weight_decay=0.0,
    ):
        self.b1, self.wd = beta_1, weight_decay
        self.r, self.p = r, weight_lr_power
        self.l2 = coupled_weight_decay

    def init(self, param):
        return {"x": None, "z": None, "lr_max": 0.0, "weight_sum": 0.0}

    def _direction(self, g, state, t):
        """(u_t without the decay, the factor of the rate at step t)."""
        raise NotImplementedError

    def step(self, param, grad, state, lr, t):
        if state["z"] is None:  # x_1 = z_1 = the weights at the first step
            state["z"] = param.copy()
        # The variables hold y = (1 - beta_1) z + beta_1 x: x is read from
        # them, so that a change made to them between steps (Keras' EMA
        # overwriting the weights) moves x, as it does in Keras.
        y, z = param, state["z"]
        x = (y - (1 - self.b1) * z) / self.b1
        g = grad + self.l2 * y
        direction, factor = self._direction(g, state, t)
        gamma = lr * factor
        state["lr_max"] = max(state["lr_max"], gamma)
        weight = t**self.r * state["lr_max"] ** self.p
        state["weight_sum"] += weight
        c = weight / state["weight_sum"] if state["weight_sum"] > 0 else 0.0
        z = z - gamma * direction - gamma * self.wd * y
        x = (1 - c) * x + c * z
        state["x"], state["z"] = x, z
        return (1 - self.b1) * z + self.b1 * x


def _warmup(warmup_steps, t):
    return min(1.0, t / warmup_steps) if warmup_steps else 1.0


class ScheduleFreeSGDOracle(_ScheduleFreeOracle):
    def __init__(self, warmup_steps=0, **kwargs):
        super().__init__(**kwargs)
        self.warmup = warmup_steps

    def _direction(self, g, state, t):
        return g, _warmup(self.warmup, t)


class ScheduleFreeAdamWOracle(_ScheduleFreeOracle):
    def __init__(
        self,
        beta_2=0.999,
        epsilon=1e-8,
        warmup_steps=0,
        bias_correction_in="learning_rate",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.b2, self.eps, self.warmup = beta_2, epsilon, warmup_steps
        self.in_rate = bias_correction_in == "learning_rate"

    def init(self, param):
        return {**super().init(param), "v": np.zeros_like(param)}

    def _direction(self, g, state, t):
        state["v"] = self.b2 * state["v"] + (1 - self.b2) * g * g
        correction = 1 - self.b2**t
        if self.in_rate:  # gamma_t = gamma sqrt(1 - beta_2^t) min(1, t/T)
            factor = np.sqrt(correction) * _warmup(self.warmup, t)
            return g / (np.sqrt(state["v"]) + self.eps), factor
        u = g / (np.sqrt(state["v"] / correction) + self.eps)
        return u, _warmup(self.warmup, t)


class ScheduleFreeRAdamOracle(_ScheduleFreeOracle):
    def __init__(
        self, beta_2=0.999, epsilon=1e-8, silent_sgd_phase=True, **kwargs
    ):
        super().__init__(**kwargs)
        self.b2, self.eps, self.silent = beta_2, epsilon, silent_sgd_phase

    def init(self, param):
        return {**super().init(param), "v": np.zeros_like(param)}

    def _direction(self, g, state, t):
        state["v"] = self.b2 * state["v"] + (1 - self.b2) * g * g
        correction = 1 - self.b2**t
        rho_inf = 2 / (1 - self.b2) - 1
        rho = rho_inf - 2 * t * self.b2**t / correction
        if rho > 4:
            rect = np.sqrt(
                (rho - 4)
                * (rho - 2)
                * rho_inf
                / ((rho_inf - 4) * (rho_inf - 2) * rho)
            )
            return g / (np.sqrt(state["v"] / correction) + self.eps), rect
        return g, 0.0 if self.silent else 1.0
