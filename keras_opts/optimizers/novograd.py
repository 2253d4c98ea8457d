"""NovoGrad: layer-wise normalised gradients with momentum."""

from __future__ import annotations

from typing import Any, NamedTuple

import keras
from keras import ops

from keras_opts._core import checks, config
from keras_opts._core.base import Optimizer
from keras_opts._core.step import Capabilities


@keras.saving.register_keras_serializable(package="keras_opts")
class NovoGrad(Optimizer):
    r"""NovoGrad (Ginsburg et al., 2019), Algorithm 1.

    Adam keeps a second moment per weight; NovoGrad keeps one per layer
    (per variable), the average of the squared gradient *norm*, divides each
    layer's gradient by its root, adds weight decay to that normalised
    gradient and accumulates it in a momentum. The state is one tensor per
    variable plus one number, and the step is invariant to rescaling a
    layer's gradient.

    Symbols: $\eta$ = ``learning_rate``, $\beta_1, \beta_2$ =
    ``beta_1, beta_2``, $\epsilon$ = ``epsilon``, $d$ = ``weight_decay``,
    $\ell$ a variable, $m_0 = 0$, $t = 1, 2, \dots$.

    $$
    \begin{aligned}
    v^\ell_t &= \begin{cases} \|g^\ell_1\|^2 & t = 1 \\
        \beta_2 v^\ell_{t-1} + (1 - \beta_2) \|g^\ell_t\|^2 & t > 1
        \end{cases} \\
    m^\ell_t &= \beta_1 m^\ell_{t-1}
        + \Big(\frac{g^\ell_t}{\sqrt{v^\ell_t} + \epsilon}
        + d\, \theta^\ell_{t-1}\Big) \\
    \theta^\ell_t &= \theta^\ell_{t-1} - \eta\, m^\ell_t
    \end{aligned}
    $$

    That is Algorithm 1 of the paper, whose moment initialisation is
    $m^\ell_1 = g^\ell_1 / \sqrt{v^\ell_1} + d\, \theta^\ell_0$, the
    first bracket. With ``grad_averaging=True`` the bracket is multiplied
    by $1 - \beta_1$ for $t > 1$ (an average instead of a sum) and
    $m^\ell_1$ stays the first bracket, as tensorflow-addons and
    pytorch-optimizer compute it; ``average_first_step=True`` multiplies
    the first bracket too (an average started from $m_0 = 0$, so step
    $t$ is about $1 - \beta_1^t$ times smaller). ``weight_decay`` belongs
    to the algorithm (it enters the momentum), so Keras' decoupled decay
    is not applied on top; ``exclude_from_weight_decay`` still exempts
    variables from it.

    Args:
        learning_rate: float, ``LearningRateSchedule`` or callable. Default
            0.001.
        beta_1: momentum in [0, 1). Default 0.95 (the paper's).
        beta_2: decay of the layer-wise second moment in [0, 1). Default
            0.98 (the paper's).
        epsilon: positive stabiliser. Default 1e-8.
        weight_decay: $d$, at least 0, or a schedule of the step.
            Default 0.
        grad_averaging: scale the bracket by $1 - \beta_1$ from the second
            step on. Default False.
        average_first_step: with ``grad_averaging``, scale the first
            bracket too. Default False.
        coupled_weight_decay: L2 coefficient added to the gradient before
            the norm. Default 0.
        **kwargs: the ``keras.optimizers.Optimizer`` arguments.

    Reproducing other libraries:

    - ``optax.novograd(lr, b1, b2, eps, weight_decay=d)`` =
      ``NovoGrad(lr, b1, b2, eps, weight_decay=d)``.
    - tensorflow-addons' ``NovoGrad(lr, b1, b2, epsilon, weight_decay=d,
      grad_averaging=a)`` = ``NovoGrad(lr, b1, b2, epsilon,
      weight_decay=d, grad_averaging=a)`` under a constant learning rate:
      its momentum accumulates $\eta_t$ times the bracket (Keras' momentum
      kernel), so under a schedule each past bracket keeps the rate of its
      own step.

    Example:

    >>> import keras, keras_opts
    >>> w = keras.Variable([1.0, -2.0])
    >>> opt = keras_opts.NovoGrad(learning_rate=0.1)
    >>> opt.apply([keras.ops.convert_to_tensor([3.0, -4.0])], [w])
    >>> [round(float(x), 4) for x in w.numpy()]
    [0.94, -1.92]

    References:
        Ginsburg, Castonguay, Hrinchuk, Kuchaiev, Lavrukhin, Leary, Li,
        Nguyen, Zhang & Cohen, "Stochastic Gradient Methods with
        Layer-wise Adaptive Moments for Training of Deep Networks",
        https://arxiv.org/abs/1905.11286
    """

    capabilities = Capabilities(decay_in_kernel=True, elementwise=False)
    _scalar_slot_names = ("velocity",)

    def __init__(
        self,
        learning_rate: Any = 0.001,
        beta_1: checks.DecayRate = 0.95,
        beta_2: checks.DecayRate = 0.98,
        epsilon: checks.Positive = 1e-8,
        weight_decay: checks.WeightDecay = 0.0,
        grad_averaging: checks.Flag = False,
        average_first_step: checks.Flag = False,
        coupled_weight_decay: checks.NonNegative = 0.0,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**config.given(locals()))

    def _slot_names(self):
        return ("momentum",)

    def _coefficients(self, learning_rate, t):
        later = ops.cast(t > 1.0, t.dtype)  # v_1 = ||g_1||^2
        weight_1 = 1.0 - self.beta_1 if self.grad_averaging else 1.0
        if self.grad_averaging and not self.average_first_step:
            weight_1 = ops.cast(ops.where(t > 1.0, weight_1, 1.0), t.dtype)
        return NovoGradCoefficients(
            learning_rate=learning_rate,
            weight_1=weight_1,
            decay_2=later * self.beta_2,
            # 1 - beta_2 from the Python float (not 1 - decay_2 in float32).
            weight_2=ops.cast(
                ops.where(t > 1.0, 1.0 - self.beta_2, 1.0), t.dtype
            ),
        )

    def _kernel(self, k, p, g, s, c):
        v = c.decay_2 * k.read(s.velocity) + c.weight_2 * k.norm(g) ** 2
        k.write_(s.velocity, v)
        u = k.scale(g, c.weight_1 / (ops.sqrt(v) + self.epsilon))
        if self.weight_decay:
            u = k.add_(u, k.scale(p, c.weight_1 * c.weight_decay))
        m = k.add_(k.mul_(s.momentum, self.beta_1), u)
        k.sub_(p, m, c.learning_rate)


class NovoGradCoefficients(NamedTuple):
    """The scalars of NovoGrad's step ``t``."""

    learning_rate: Any
    #: The weight of the bracket in the momentum: ``1 - beta_1`` with
    #: ``grad_averaging`` (1 at ``t = 1`` unless ``average_first_step``),
    #: else 1.
    weight_1: Any
    #: ``beta_2``; 0 at ``t = 1``, where ``v_1 = ||g_1||^2``.
    decay_2: Any
    #: ``1 - beta_2``; 1 at ``t = 1``.
    weight_2: Any
    #: This variable's ``weight_decay`` (0 where it is excluded).
    weight_decay: Any = 0.0
