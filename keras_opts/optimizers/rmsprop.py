"""RMSprop: steps divided by a running root mean square of the gradient."""

from __future__ import annotations

from typing import Annotated, Any

import keras

from keras_opts._core import checks, config, formulas
from keras_opts._core.base import Optimizer
from keras_opts._core.step import Capabilities
from keras_opts.optimizers.sgd import MOMENTUM_FORMS


@keras.saving.register_keras_serializable(package="keras_opts")
class RMSprop(Optimizer):
    r"""RMSprop (Hinton, lecture 6e), centered form of Graves (2013).

    Adagrad's sum of squared gradients only grows, so its steps shrink
    forever; RMSprop replaces the sum with an exponential moving average,
    so the scale adapts to recent gradients. The centered variant divides by
    an estimate of the gradient's standard deviation instead of its root
    mean square. Momentum optionally smooths the normalised steps.

    Symbols: $\eta$ = ``learning_rate``, $\rho$ = ``rho``,
    $\mu$ = ``momentum``, $\epsilon$ = ``epsilon``.

    $$
    \begin{aligned}
    s_t &= \rho s_{t-1} + (1 - \rho) g_t^2 \\
    \bar g_t &= \rho \bar g_{t-1} + (1 - \rho) g_t
        \quad\text{(centered; otherwise } \bar g_t = 0\text{)} \\
    u_t &= g_t / \sqrt{s_t - \bar g_t^2 + \epsilon}
        \quad\text{(}\texttt{"inside\_sqrt"}\text{, Keras)} \\
    u_t &= g_t / (\sqrt{s_t - \bar g_t^2} + \epsilon)
        \quad\text{(}\texttt{"outside\_sqrt"}\text{, torch)} \\
    \theta_t &= \theta_{t-1} - \eta\, u_t \quad (\mu = 0)
    \end{aligned}
    $$

    With momentum, ``momentum_form="gradient"`` (torch) keeps
    $b_t = \mu b_{t-1} + u_t$ and steps
    $\theta_t = \theta_{t-1} - \eta b_t$; ``"step"`` (Keras, optax)
    keeps $b_t = \mu b_{t-1} + \eta u_t$ and steps
    $\theta_t = \theta_{t-1} - b_t$. They differ only when the
    learning rate changes.

    Args:
        learning_rate: float, ``LearningRateSchedule`` or callable. Default
            0.001.
        rho: decay of the squared-gradient average, in [0, 1). Default 0.9.
        momentum: $\mu$ in [0, 1). Default 0.
        epsilon: positive stabiliser. Default 1e-7.
        centered: divide by the centered second moment. Default False.
        epsilon_mode: ``"inside_sqrt"`` (default) or ``"outside_sqrt"``.
        momentum_form: ``"gradient"`` (default) or ``"step"``.
        coupled_weight_decay: L2 coefficient added to the gradient
            (torch's ``weight_decay``). Default 0.
        **kwargs: the ``keras.optimizers.Optimizer`` arguments.

    Reproducing other libraries:

    - ``torch.optim.RMSprop(lr, alpha=a, eps=e, weight_decay=w,
      momentum=m, centered=c)`` = ``RMSprop(lr, rho=a, momentum=m,
      epsilon=e, centered=c, epsilon_mode="outside_sqrt",
      coupled_weight_decay=w)``;
    - ``keras.optimizers.RMSprop(lr, rho, momentum, epsilon, centered)`` and
      ``optax.rmsprop(lr, decay=rho, eps=epsilon, centered=c, momentum=m)``
      = ``RMSprop(lr, rho, momentum, epsilon, centered,
      momentum_form="step")``.

    Example:

    >>> import keras, keras_opts
    >>> w = keras.Variable([1.0, -2.0])
    >>> opt = keras_opts.RMSprop(learning_rate=0.1, rho=0.75)
    >>> opt.apply([keras.ops.convert_to_tensor([0.5, -3.0])], [w])
    >>> [round(float(x), 4) for x in w.numpy()]
    [0.8, -1.8]

    References:
        Tieleman & Hinton, "Lecture 6.5, rmsprop", COURSERA: Neural Networks
        for Machine Learning, 2012,
        https://www.cs.toronto.edu/~tijmen/csc321/slides/lecture_slides_lec6.pdf;
        Graves, "Generating Sequences With Recurrent Neural Networks", 2013,
        https://arxiv.org/abs/1308.0850 (eq. 38-41, centered form)
    """

    capabilities = Capabilities(
        momentum_argument="momentum", square_slots=("velocity",)
    )

    def __init__(
        self,
        learning_rate: Any = 0.001,
        rho: checks.DecayRate = 0.9,
        momentum: checks.DecayRate = 0.0,
        epsilon: checks.Positive = 1e-7,
        centered: checks.Flag = False,
        epsilon_mode: formulas.RootEpsilonMode = "inside_sqrt",
        momentum_form: Annotated[
            str, checks.one_of(*MOMENTUM_FORMS)
        ] = "gradient",
        coupled_weight_decay: checks.NonNegative = 0.0,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**config.given(locals()))

    def _slot_names(self):
        names = ("velocity",)
        if self.momentum:
            names += ("momentum",)
        if self.centered:
            names += ("average_gradient",)
        return names

    def _kernel(self, k, p, g, s, c):
        lr = c.learning_rate
        second = formulas.ema_square_(k, s.velocity, g, self.rho)
        if self.centered:
            mean = formulas.ema_(k, s.average_gradient, g, self.rho)
            second = k.addcmul(second, mean, mean, -1.0)
        d = formulas.denominator(k, second, self.epsilon, self.epsilon_mode)
        if not self.momentum:
            k.addcdiv_(p, g, d, -lr)
            return
        b = k.mul_(s.momentum, self.momentum)
        if self.momentum_form == "step":
            k.sub_(p, k.addcdiv_(b, g, d, lr))
        else:
            k.sub_(p, k.addcdiv_(b, g, d), lr)
