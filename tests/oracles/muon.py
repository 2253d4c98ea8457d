"""Muon, Jordan et al. (2024): the momentum of a matrix replaced by the
Newton-Schulz approximation of its orthogonal factor (the post's
``zeropower_via_newtonschulz5``; Amsel et al. 2025, Algorithm 1, for the
Polar Express), scaled by the shape of the matrix; AdamW for the tensors
of rank 0 and 1. A tensor of rank 3 or more is the matrix of its last axis
against all the others (a convolution kernel ``(..., in, out)``).
Written from the papers in float64; shares nothing with the Keras code."""

import importlib

import numpy as np

QUINTIC = [(3.4445, -4.7750, 2.0315)]
POLAR_EXPRESS_RAW = [
    (8.28721201814563, -23.595886519098837, 17.300387312530933),
    (4.107059111542203, -2.9478499167379106, 0.5448431082926601),
    (3.9486908534822946, -2.908902115962949, 0.5518191394370137),
    (3.3184196573706015, -2.488488024314874, 0.51004894012372),
    (2.300652019954817, -1.6689039845747493, 0.4188073119525673),
    (1.891301407787398, -1.2679958271945868, 0.37680408948524835),
    (1.8750014808534479, -1.2500016453999487, 0.3750001645474248),
    (1.875, -1.25, 0.375),
]
# The paper's safety factor: every polynomial but the last.
POLAR_EXPRESS = [
    (a / 1.01, b / 1.01**3, c / 1.01**5) for a, b, c in POLAR_EXPRESS_RAW[:-1]
] + [POLAR_EXPRESS_RAW[-1]]


def newton_schulz(matrix, coefficients, steps, epsilon, rho):
    x = np.array(matrix, np.float64)
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    x = x / (rho * np.linalg.norm(x) + epsilon)
    for k in range(steps):
        a, b, c = coefficients[min(k, len(coefficients) - 1)]
        gram = x @ x.T
        x = a * x + b * gram @ x + c * gram @ gram @ x
    return x.T if tall else x


class MuonOracle:
    def __init__(
        self,
        momentum=0.95,
        nesterov=True,
        ns_coefficients="quintic",
        ns_steps=5,
        epsilon=1e-7,
        adjust_learning_rate="match_rms_adamw",
        rms_rate=0.2,
        bias_correction=False,
        weight_decay=0.0,
        adam_beta_1=0.9,
        adam_beta_2=0.999,
        adam_epsilon=1e-8,
        adam_epsilon_mode="corrected",
        adam_weight_decay=0.0,
        adam_lr_ratio=1.0,
        coupled_weight_decay=0.0,
        cautious_weight_decay=False,
        fallback=None,
        **layout,  # the layout options: no effect on unnamed tensors
    ):
        self.mu, self.nesterov = momentum, nesterov
        if ns_coefficients == "quintic":
            self.coefficients, self.rho = QUINTIC, 1.0
        elif ns_coefficients == "polar_express":
            self.coefficients, self.rho = POLAR_EXPRESS, 1.01
        else:
            self.coefficients, self.rho = list(ns_coefficients), 1.0
            if np.ndim(ns_coefficients) == 1:
                self.coefficients = [tuple(ns_coefficients)]
        self.steps, self.eps = ns_steps, epsilon
        self.adjust, self.rms_rate = adjust_learning_rate, rms_rate
        self.corrected = bias_correction
        self.wd, self.adam_wd = weight_decay, adam_weight_decay
        self.b1, self.b2 = adam_beta_1, adam_beta_2
        self.adam_eps, self.adam_mode = adam_epsilon, adam_epsilon_mode
        self.ratio, self.l2 = adam_lr_ratio, coupled_weight_decay
        self.cautious_decay = cautious_weight_decay
        self.fallback = None
        if fallback is not None:  # {"class_name": "keras_opts>Yogi", ...}
            name = fallback["class_name"].split(">")[-1]
            settings = dict(fallback.get("config", {}))
            # Keras' decoupled decay, applied here as the harness does.
            self.adam_wd = settings.pop("weight_decay", None) or 0.0
            module = importlib.import_module(f"tests.oracles.{name.lower()}")
            self.fallback = getattr(module, f"{name}Oracle")(**settings)

    def init(self, param):
        if self.fallback is not None and param.ndim < 2:
            return self.fallback.init(param)
        return {"m": np.zeros_like(param), "v": np.zeros_like(param)}

    def step(self, param, grad, state, lr, t):
        g = grad + self.l2 * param
        if param.ndim < 2 and self.fallback is not None:
            return self._fallback(param, g, state, lr * self.ratio, t)
        if param.ndim < 2 or param.size == 0:  # vectors; nothing to update
            return self._adamw(param, g, state, lr * self.ratio, t)
        x0 = param
        mu = self.mu
        state["m"] = mu * state["m"] + (1 - mu) * g
        c, c_next = 1.0, 1.0
        if self.corrected:
            c, c_next = 1 - mu**t, 1 - mu ** (t + 1)
        if self.nesterov:
            b = (1 - mu) * g / c + mu * state["m"] / c_next
        else:
            b = state["m"] / c
        rows, cols = int(np.prod(param.shape[:-1])), param.shape[-1]
        x = newton_schulz(
            b.reshape(rows, cols),
            self.coefficients,
            self.steps,
            self.eps,
            self.rho,
        )
        x = self._normalized(x, state, t)
        if self.adjust == "original":
            scale = np.sqrt(max(1.0, cols / rows))
        elif self.adjust == "match_rms_adamw":
            scale = self.rms_rate * np.sqrt(max(rows, cols))
        else:
            scale = 1.0
        update = scale * x.reshape(param.shape)
        return x0 - lr * self._decay(self.wd, update, x0) - lr * update

    def _decay(self, rate, update, x):
        """The decoupled decay term; with ``cautious_weight_decay`` only
        where the update and the weight agree in sign (Chen et al. 2025)."""
        if self.cautious_decay:
            return rate * (update * x >= 0) * x
        return rate * x

    def _normalized(self, x, state, t):
        return x

    def _fallback(self, param, g, state, lr, t):
        """The fallback optimizer's step after Keras' decoupled decay (or,
        cautious, the decay after it where its step and the weight agree
        in sign)."""
        if not self.cautious_decay:
            decayed = param - lr * self.adam_wd * param
            return self.fallback.step(decayed, g, state, lr, t)
        new = self.fallback.step(param, g, state, lr, t)
        return new - lr * self._decay(self.adam_wd, param - new, param)

    def _adamw(self, param, g, state, lr, t):
        b1, b2 = self.b1, self.b2
        state["m"] = b1 * state["m"] + (1 - b1) * g
        state["v"] = b2 * state["v"] + (1 - b2) * g * g
        m_hat = state["m"] / (1 - b1**t)
        v_hat = state["v"] / (1 - b2**t)
        if self.adam_mode == "corrected":  # Algorithm 1
            denominator = np.sqrt(v_hat) + self.adam_eps
        elif self.adam_mode == "uncorrected":  # epsilon before correcting
            denominator = np.sqrt(v_hat) + self.adam_eps / np.sqrt(1 - b2**t)
        else:  # inside the root
            denominator = np.sqrt(v_hat + self.adam_eps / (1 - b2**t))
        update = m_hat / denominator
        return (
            param
            - lr * self._decay(self.adam_wd, update, param)
            - (lr * update)
        )


class NorMuonOracle(MuonOracle):
    """Li et al. (2025), Algorithm 1: per output neuron (a column of the
    ``(fan-in, fan-out)`` matrix) a running mean of the squares of its
    column of the orthogonalized matrix; each column divided by its root,
    then the matrix brought back to the norm it had (the authors' code) or
    to ``sqrt(min(m, n))`` (the orthogonal norm: with Moonlight's scale,
    the paper's RMS of 0.2)."""

    def __init__(
        self,
        beta_2=0.95,
        normalization_epsilon=1e-10,
        rescale="preserve",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.beta_2, self.eps_2, self.rescale = (
            beta_2,
            normalization_epsilon,
            rescale,
        )

    def _normalized(self, x, state, t):
        v = state.get("neurons", np.zeros((1, x.shape[1])))
        v = self.beta_2 * v + (1 - self.beta_2) * np.mean(
            x * x, axis=0, keepdims=True
        )
        state["neurons"] = v
        y = x / (np.sqrt(v) + self.eps_2)
        if self.rescale == "preserve":
            target = np.linalg.norm(x)
        else:
            target = np.sqrt(min(x.shape))
        return y * target / (np.linalg.norm(y) + self.eps_2)


class AdaMuonOracle(MuonOracle):
    """Si et al. (2025), Algorithm 1: an Adam-like second moment of each
    entry of the orthogonalized matrix, bias-corrected, then the matrix
    rescaled to the orthogonal norm ``sqrt(min(m, n))`` (the authors' code)
    before Muon's scale."""

    def __init__(self, beta_2=0.999, normalization_epsilon=1e-8, **kwargs):
        super().__init__(**kwargs)
        self.beta_2, self.eps_2 = beta_2, normalization_epsilon

    def _normalized(self, x, state, t):
        v = state.get("entries", np.zeros_like(x))
        v = self.beta_2 * v + (1 - self.beta_2) * x * x
        state["entries"] = v
        y = x / (np.sqrt(v / (1 - self.beta_2**t)) + self.eps_2)
        return y * np.sqrt(min(x.shape)) / (np.linalg.norm(y) + self.eps_2)
