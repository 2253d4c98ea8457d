"""Building another library's optimizer from a registry ``Reference``."""

from __future__ import annotations


def optax_transform(name, learning_rate, kwargs):
    """``optax.<name>(learning_rate, **kwargs)``; dotted names reach into
    submodules (``"contrib.adopt"``). A ``scale_by_*`` name (for arguments
    only the scaling transform exposes) is chained with the learning rate:
    ``optax.chain(optax.scale_by_x(**kwargs),
    optax.scale_by_learning_rate(learning_rate))``."""
    import optax

    function = optax
    for part in name.split("."):
        function = getattr(function, part)
    if name.split(".")[-1].startswith("scale_by_"):
        return optax.chain(
            function(**kwargs), optax.scale_by_learning_rate(learning_rate)
        )
    return function(learning_rate=learning_rate, **kwargs)


class TensorflowAddonsNovoGrad:
    """tensorflow-addons 0.23's ``NovoGrad`` (no ``amsgrad``), written in
    NumPy float64 from its published update, with the oracles' interface
    (``init``, ``step``; ``t`` counts updates from 1).

    Per variable: ``v_1 = ||g_1||^2``, then ``v_t = beta_2 v_{t-1} +
    (1 - beta_2) ||g_t||^2``; ``u_t = g_t / (sqrt(v_t) + epsilon) +
    weight_decay * w``, times ``1 - beta_1`` when ``grad_averaging`` except
    at the first step; then Keras' momentum kernel, which accumulates the
    learning-rate-scaled step: ``a_t = beta_1 a_{t-1} - lr_t u_t``,
    ``w <- w + a_t``.
    """

    def __init__(
        self,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-7,
        weight_decay=0.0,
        grad_averaging=False,
    ):
        self.b1, self.b2, self.eps = beta_1, beta_2, epsilon
        self.d = weight_decay
        self.averaging = grad_averaging

    def init(self, param):
        import numpy as np

        return {"accumulator": np.zeros_like(param), "v": 0.0}

    def step(self, param, grad, state, lr, t):
        import numpy as np

        g2 = float(np.sum(grad * grad))
        if t == 1:
            state["v"] = g2
        else:
            state["v"] = self.b2 * state["v"] + (1 - self.b2) * g2
        u = grad / (np.sqrt(state["v"]) + self.eps)
        if self.d > 0:
            u = u + self.d * param
        if self.averaging and t > 1:
            u = u * (1 - self.b1)
        state["accumulator"] = self.b1 * state["accumulator"] - lr * u
        return param + state["accumulator"]
