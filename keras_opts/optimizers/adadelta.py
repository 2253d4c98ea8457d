"""Adadelta: steps in the units of the parameter, from two running RMS."""

from __future__ import annotations

from typing import Any

import keras

from keras_opts._core import checks, config, formulas
from keras_opts._core.base import Optimizer
from keras_opts._core.step import NO_MOMENTUM, Capabilities


@keras.saving.register_keras_serializable(package="keras_opts")
class Adadelta(Optimizer):
    r"""Adadelta (Zeiler, 2012), Algorithm 1.

    Like RMSprop it divides the gradient by a running RMS of past gradients,
    and it multiplies by a running RMS of past *updates*, so that the step
    has the units of the parameter and no global learning rate is needed.

    Symbols: $\rho$ = ``rho``, $\epsilon$ = ``epsilon``,
    $\eta$ = ``learning_rate`` (the paper has none: 1.0 reproduces
    it), $E[g^2]_0 = E[\Delta x^2]_0 = 0$,
    $\mathrm{RMS}[y] = \sqrt{E[y^2] + \epsilon}$.

    $$
    \begin{aligned}
    E[g^2]_t &= \rho E[g^2]_{t-1} + (1 - \rho) g_t^2 \\
    \Delta x_t &= -\frac{\mathrm{RMS}[\Delta x]_{t-1}}
        {\mathrm{RMS}[g]_t}\, g_t \\
    E[\Delta x^2]_t &= \rho E[\Delta x^2]_{t-1}
        + (1 - \rho) \Delta x_t^2 \\
    x_{t+1} &= x_t + \eta\, \Delta x_t
    \end{aligned}
    $$

    Args:
        learning_rate: float, ``LearningRateSchedule`` or callable. Default
            1.0 (the paper's algorithm).
        rho: decay rate in [0, 1). Default 0.95 (the paper's).
        epsilon: positive constant. Default 1e-6 (the paper's).
        coupled_weight_decay: L2 coefficient added to the gradient
            (torch's ``weight_decay``). Default 0.
        **kwargs: the ``keras.optimizers.Optimizer`` arguments.

    torch.optim.Adadelta, ``keras.optimizers.Adadelta`` and
    ``optax.adadelta`` compute the same update: pass the same ``lr``,
    ``rho`` and ``eps``/``epsilon`` (torch's ``weight_decay`` is
    ``coupled_weight_decay``). Their defaults differ: torch lr 1.0, rho
    0.9, eps 1e-6; Keras lr 0.001, rho 0.95, epsilon 1e-7.

    Example:

    >>> import keras, keras_opts
    >>> w = keras.Variable([1.0, -2.0])
    >>> opt = keras_opts.Adadelta(rho=0.0, epsilon=0.25)
    >>> opt.apply([keras.ops.convert_to_tensor([0.0, 1.2])], [w])
    >>> [round(float(x), 4) for x in w.numpy()]  # -0.5 * 1.2 / 1.3
    [1.0, -2.4615]

    References:
        Zeiler, "ADADELTA: An Adaptive Learning Rate Method", 2012,
        https://arxiv.org/abs/1212.5701
    """

    capabilities = Capabilities(
        cautious_refusal=NO_MOMENTUM,
        square_slots=("accumulated_grad", "accumulated_delta_var"),
    )

    def __init__(
        self,
        learning_rate: Any = 1.0,
        rho: checks.DecayRate = 0.95,
        epsilon: checks.Positive = 1e-6,
        coupled_weight_decay: checks.NonNegative = 0.0,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**config.given(locals()))

    def _slot_names(self):
        return ("accumulated_grad", "accumulated_delta_var")

    def _kernel(self, k, p, g, s, c):
        eg2 = formulas.ema_square_(k, s.accumulated_grad, g, self.rho)
        # delta = sqrt(E[dx^2] + eps) / sqrt(E[g^2] + eps) * g
        delta = k.mul_(
            k.div_(
                k.sqrt_(k.add(s.accumulated_delta_var, self.epsilon)),
                k.sqrt_(k.add(eg2, self.epsilon)),
            ),
            g,
        )
        formulas.ema_square_(k, s.accumulated_delta_var, delta, self.rho)
        k.sub_(p, delta, c.learning_rate)
