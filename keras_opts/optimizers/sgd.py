"""Stochastic gradient descent with heavy-ball or Nesterov momentum."""

from __future__ import annotations

from typing import Annotated, Any, NamedTuple

import keras
from keras import ops

from keras_opts._core import checks, config, foreach
from keras_opts._core.base import Optimizer
from keras_opts._core.step import Capabilities

MOMENTUM_FORMS = ("gradient", "step")


@keras.saving.register_keras_serializable(package="keras_opts")
class SGD(Optimizer):
    r"""Gradient descent with optional momentum, dampening and Nesterov.

    Momentum keeps a velocity, an exponentially weighted sum of past
    gradients, and steps along it: directions on which successive gradients
    agree accelerate, oscillating directions cancel. Nesterov's variant
    (Sutskever et al., 2013) looks one velocity step ahead before applying
    the current gradient. ``dampening`` scales how much of each new gradient
    enters the velocity.

    Symbols: $\eta$ = ``learning_rate``, $\mu$ = ``momentum``,
    $\tau$ = ``dampening``, $g_t$ the gradient at step
    $t = 1, 2, \dots$, $v_0 = 0$.

    With ``momentum_form="gradient"`` (default; torch.optim):

    $$
    \begin{aligned}
    v_t &= \mu v_{t-1} + (1 - \tau) g_t \\
    \theta_t &= \theta_{t-1} - \eta\,(g_t + \mu v_t)
        \quad\text{(Nesterov)} \\
    \theta_t &= \theta_{t-1} - \eta\, v_t \quad\text{(otherwise)}
    \end{aligned}
    $$

    With ``momentum_form="step"`` (Sutskever et al. 2013, Keras' built-in
    SGD) the velocity holds learning-rate-scaled steps, which differs from
    the above only when the learning rate changes over time:

    $$
    \begin{aligned}
    v_t &= \mu v_{t-1} - \eta (1 - \tau) g_t \\
    \theta_t &= \theta_{t-1} + \mu v_t - \eta g_t
        \quad\text{(Nesterov)} \\
    \theta_t &= \theta_{t-1} + v_t \quad\text{(otherwise)}
    \end{aligned}
    $$

    Args:
        learning_rate: float, ``LearningRateSchedule`` or callable. Default
            0.01.
        momentum: $\mu$ in [0, 1], as Keras' SGD. Default 0 (plain gradient
            descent).
        dampening: $\tau$ in [0, 1). Default 0. Without momentum
            there is no velocity and it has no effect (as in torch.optim).
        nesterov: use Nesterov momentum. Default False. (torch.optim
            refuses it without momentum or with dampening; here both are
            defined by the formulas above, and with ``momentum=0`` it is
            plain gradient descent.)
        momentum_form: ``"gradient"`` or ``"step"``, see above.
        dampen_first_step: if False the first velocity is the raw gradient,
            $v_1 = g_1$, as torch.optim.SGD does. Default True
            ($v_1 = (1 - \tau) g_1$). Only matters when
            ``dampening > 0``.
        coupled_weight_decay: L2 coefficient added to the gradient
            (torch.optim.SGD's ``weight_decay``). Default 0.
        **kwargs: the ``keras.optimizers.Optimizer`` arguments
            (``weight_decay``, ``clipnorm``, ``use_ema``, ...).

    Reproducing other libraries (same ``learning_rate``):

    - ``torch.optim.SGD(momentum=m, dampening=d, nesterov=n, weight_decay=w)``
      = ``SGD(momentum=m, dampening=d, nesterov=n, dampen_first_step=False,
      coupled_weight_decay=w)``;
    - ``keras.optimizers.SGD(momentum=m, nesterov=n)`` =
      ``SGD(momentum=m, nesterov=n, momentum_form="step")``;
    - ``optax.sgd(lr, momentum=m, nesterov=n)`` =
      ``SGD(momentum=m, nesterov=n)``.

    Example:

    >>> import keras, keras_opts
    >>> w = keras.Variable([1.0, -2.0])
    >>> opt = keras_opts.SGD(learning_rate=0.1, momentum=0.9)
    >>> opt.apply([keras.ops.convert_to_tensor([1.0, 1.0])], [w])
    >>> [round(float(x), 4) for x in w.numpy()]
    [0.9, -2.1]

    References:
        Polyak, "Some methods of speeding up the convergence of iteration
        methods", 1964. Sutskever, Martens, Dahl, Hinton, "On the importance
        of initialization and momentum in deep learning", ICML 2013,
        https://proceedings.mlr.press/v28/sutskever13.html
    """

    capabilities = Capabilities(momentum_argument="momentum")

    def __init__(
        self,
        learning_rate: Any = 0.01,
        momentum: Annotated[float, checks.in_range(low=0.0, high=1.0)] = 0.0,
        dampening: checks.DecayRate = 0.0,
        nesterov: checks.Flag = False,
        momentum_form: Annotated[
            str, checks.one_of(*MOMENTUM_FORMS)
        ] = "gradient",
        dampen_first_step: checks.Flag = True,
        coupled_weight_decay: checks.NonNegative = 0.0,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**config.given(locals()))

    def _slot_names(self):
        return ("velocity",) if self.momentum else ()

    def _coefficients(self, learning_rate, t):
        weight = 1.0 - self.dampening
        if not self.dampen_first_step and self.dampening:
            weight = ops.cast(ops.where(t == 1.0, 1.0, weight), t.dtype)
        return SGDCoefficients(learning_rate, gradient_weight=weight)

    def _fused(self, p, g, s, learning_rate, t, l2):
        # torch's fused SGD is the gradient form; with is_first_step=False
        # it dampens the first step too (our dampen_first_step=True).
        if self.momentum_form != "gradient" or not foreach.fusable(p):
            return False
        if self.dampening and not self.dampen_first_step and self.momentum:
            return False
        import torch

        torch._fused_sgd_(
            p,
            g,
            s.velocity if self.momentum else [],
            weight_decay=l2,
            momentum=self.momentum,
            lr=learning_rate,
            dampening=self.dampening if self.momentum else 0.0,
            nesterov=self.nesterov,
            maximize=False,
            is_first_step=False,
        )
        return True

    def _kernel(self, k, p, g, s, c):
        lr, mu = c.learning_rate, self.momentum
        if not mu:
            k.sub_(p, g, lr)
            return
        v = k.mul_(s.velocity, mu)
        if self.momentum_form == "step":
            v = k.sub_(v, g, lr * c.gradient_weight)
            if self.nesterov:  # p += mu v - lr g
                k.sub_(k.add_(p, v, mu), g, lr)
            else:
                k.add_(p, v)
            return
        v = k.add_(v, g, c.gradient_weight)
        if self.nesterov:
            k.sub_(p, k.add(g, v, mu), lr)
        else:
            k.sub_(p, v, lr)


class SGDCoefficients(NamedTuple):
    """The scalars of SGD's step ``t``."""

    learning_rate: Any
    #: ``1 - dampening``, the weight of the gradient in the velocity (1 at
    #: ``t = 1`` without ``dampen_first_step``).
    gradient_weight: Any
