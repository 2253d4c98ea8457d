"""Adagrad: per-coordinate steps scaled by the accumulated squared gradient."""

from __future__ import annotations

from typing import Any

import keras
from keras import initializers

from keras_opts._core import checks, config, foreach, formulas
from keras_opts._core.base import LearningRate, Optimizer
from keras_opts._core.step import NO_MOMENTUM, Capabilities


@keras.saving.register_keras_serializable(package="keras_opts")
class Adagrad(Optimizer):
    r"""Adagrad (Duchi, Hazan & Singer, 2011), diagonal form.

    Each coordinate's step is divided by the root of the sum of all its
    squared gradients so far: coordinates that rarely get gradient keep
    large steps, frequently updated ones slow down.

    Symbols: $\eta$ = ``learning_rate``, $s_0$ =
    ``initial_accumulator_value``, $\delta$ = ``epsilon``,
    $\kappa$ = ``lr_decay``, $t = 1, 2, \dots$.

    $$
    \begin{aligned}
    s_t &= s_{t-1} + g_t^2 \\
    \eta_t &= \eta / (1 + (t - 1)\kappa) \\
    \theta_t &= \theta_{t-1} - \eta_t\, g_t / \sqrt{s_t + \delta}
        \quad\text{(}\texttt{"inside\_sqrt"}\text{, Keras, optax)} \\
    \theta_t &= \theta_{t-1} - \eta_t\, g_t / (\sqrt{s_t} + \delta)
        \quad\text{(}\texttt{"outside\_sqrt"}\text{, the paper, torch)}
    \end{aligned}
    $$

    Args:
        learning_rate: float, ``LearningRateSchedule`` or callable. Default
            0.01.
        initial_accumulator_value: $s_0 \ge 0$. Default 0.
        epsilon: positive $\delta$. Default 1e-7.
        epsilon_mode: ``"inside_sqrt"`` (default) or ``"outside_sqrt"``.
        lr_decay: $\kappa \ge 0$, torch.optim.Adagrad's decay of the
            step size with the update count. Default 0.
        coupled_weight_decay: L2 coefficient added to the gradient
            (torch's ``weight_decay``). Default 0.
        **kwargs: the ``keras.optimizers.Optimizer`` arguments.

    Reproducing other libraries:

    - ``torch.optim.Adagrad(lr, lr_decay=k, weight_decay=w,
      initial_accumulator_value=a, eps=e)`` = ``Adagrad(lr,
      initial_accumulator_value=a, epsilon=e, epsilon_mode="outside_sqrt",
      lr_decay=k, coupled_weight_decay=w)``;
    - ``keras.optimizers.Adagrad(lr, initial_accumulator_value=a,
      epsilon=e)`` and ``optax.adagrad(lr, initial_accumulator_value=a,
      eps=e)`` = ``Adagrad(lr, initial_accumulator_value=a, epsilon=e)``.

    Example:

    >>> import keras, keras_opts
    >>> w = keras.Variable([1.0, -2.0])
    >>> opt = keras_opts.Adagrad(learning_rate=0.1)
    >>> opt.apply([keras.ops.convert_to_tensor([0.5, -3.0])], [w])
    >>> [round(float(x), 4) for x in w.numpy()]
    [0.9, -1.9]

    References:
        Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online
        Learning and Stochastic Optimization", JMLR 12, 2011,
        https://jmlr.org/papers/v12/duchi11a.html
    """

    capabilities = Capabilities(
        cautious_refusal=NO_MOMENTUM, square_slots=("accumulator",)
    )

    def __init__(
        self,
        learning_rate: Any = 0.01,
        initial_accumulator_value: checks.NonNegative = 0.0,
        epsilon: checks.Positive = 1e-7,
        epsilon_mode: formulas.RootEpsilonMode = "inside_sqrt",
        lr_decay: checks.NonNegative = 0.0,
        coupled_weight_decay: checks.NonNegative = 0.0,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**config.given(locals()))

    def _slot_names(self):
        return ("accumulator",)

    def _slot_initializer(self, name):
        return initializers.Constant(self.initial_accumulator_value)

    def _coefficients(self, learning_rate, t):
        if self.lr_decay:  # eta_t
            learning_rate = learning_rate / (1.0 + (t - 1.0) * self.lr_decay)
        return LearningRate(learning_rate)

    def _fused(self, p, g, s, learning_rate, t, l2):
        # torch's fused Adagrad puts epsilon outside the root.
        if self.epsilon_mode != "outside_sqrt" or not foreach.fusable(p):
            return False
        import torch

        torch._fused_adagrad_(
            p,
            g,
            s.accumulator,
            [t] * len(p),
            lr=learning_rate,
            lr_decay=self.lr_decay,
            weight_decay=l2,
            eps=self.epsilon,
            maximize=False,
        )
        return True

    def _kernel(self, k, p, g, s, c):
        acc = k.addcmul_(s.accumulator, g, g)
        d = formulas.denominator(k, acc, self.epsilon, self.epsilon_mode)
        k.addcdiv_(p, g, d, -c.learning_rate)
