"""Lookahead: k steps forward with any optimizer, one step back."""

from __future__ import annotations

from typing import Annotated, Any

import keras
from keras import ops

from keras_opts._core import checks, config
from keras_opts.wrappers import base as wrapper_base
from keras_opts.wrappers.base import read


@keras.saving.register_keras_serializable(package="keras_opts")
class Lookahead(wrapper_base.Wrapper):
    r"""Lookahead (Zhang, Lucas, Hinton & Ba, 2019) around any optimizer.

    The inner optimizer moves the model's weights (the *fast* weights) as
    usual. Lookahead keeps a second copy, the *slow* weights; every
    ``sync_period`` updates of the inner optimizer it moves the slow weights
    a fraction ``slow_step_size`` of the way towards the fast ones and
    restarts the fast weights from there. The slow weights average out the
    oscillations of the fast ones, which lowers the variance of training
    and makes it less sensitive to the inner optimizer's learning rate.
    The inner optimizer's state (moments, ``iterations``) carries on across
    synchronisations, as in the paper's experiments.

    Symbols: $k$ = ``sync_period``, $\alpha$ = ``slow_step_size``,
    $A$ = the inner ``optimizer``'s update, $\theta$ the model's (fast)
    weights, $\phi$ the slow weights, $\phi_0 = \theta_0$ (the model's
    weights at the first step), $t = 1, 2, \dots$ counts the inner
    optimizer's updates.

    $$
    \begin{aligned}
    \theta_t &= \theta_{t-1} + A(g_t, \theta_{t-1}) \\
    \text{if } t \bmod k = 0:\quad
    \phi &\leftarrow \phi + \alpha\,(\theta_t - \phi), \qquad
    \theta_t \leftarrow \phi
    \end{aligned}
    $$

    A step that the inner optimizer skips (a non-finite gradient under
    ``skip_nonfinite`` or ``LossScaleOptimizer``) or only accumulates
    (``gradient_accumulation_steps``) does not count towards $t$. A
    variable's ``constraint`` applies to the synchronised weights (so to
    $\phi$ as well), as Keras applies it after every update. The
    scales and amax histories of a float8-quantized layer are not weights:
    the inner optimizer overwrites them with their "gradient", as Keras
    does, and they have no slow copy.

    Ranger (Wright, 2019) is Lookahead around RAdam with these defaults:
    ``Lookahead(keras_opts.RAdam())``; its later versions add gradient
    centralization: ``Lookahead(keras_opts.RAdam(
    gradient_centralization=True))``.

    Args:
        optimizer: the inner optimizer, any ``keras.optimizers.Optimizer``
            (a Keras built-in or a keras_opts one). Set clipping, weight
            decay, EMA, loss scaling and gradient accumulation on it.
        sync_period: $k$, an integer >= 1. Default 6.
        slow_step_size: $\alpha$ in (0, 1]. Default 0.5. With $\alpha = 1$
            Lookahead is the inner optimizer.
        name: the optimizer's name.

    ``learning_rate`` and ``iterations`` are the inner optimizer's; the slow
    weights, the update count and every variable of the inner optimizer are
    saved with the model and restored by ``keras.models.load_model``.

    Example:

    >>> import keras, keras_opts
    >>> w = keras.Variable([1.0, -2.0])
    >>> opt = keras_opts.Lookahead(
    ...     keras_opts.SGD(learning_rate=0.1), sync_period=2
    ... )
    >>> g = keras.ops.convert_to_tensor([1.0, 1.0])
    >>> opt.apply([g], [w])  # fast weights: [0.9, -2.1]
    >>> opt.apply([g], [w])  # [0.8, -2.2], then halfway back to [1, -2]
    >>> weights = [round(float(x), 4) for x in w.numpy()]
    >>> weights
    [0.9, -2.1]

    References:
        Zhang, Lucas, Hinton & Ba, "Lookahead Optimizer: k steps forward,
        1 step back", NeurIPS 2019, https://arxiv.org/abs/1907.08610;
        authors' code: https://github.com/michaelrzhang/lookahead.
        Wright, "New Deep Learning Optimizer, Ranger: Synergistic
        combination of RAdam + LookAhead for the best of both", 2019,
        https://github.com/lessw2020/Ranger-Deep-Learning-Optimizer
    """

    def __init__(
        self,
        optimizer: keras.optimizers.Optimizer,
        sync_period: Annotated[int, checks.at_least(1)] = 6,
        slow_step_size: Annotated[
            float, checks.in_range(low=0.0, low_open=True, high=1.0)
        ] = 0.5,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**config.given(locals()))

    def _build_state(self, variables):
        self._slow = self.add_optimizer_variables(variables, "slow")

    def _before_inner_step(self, variables):
        # phi_0 = theta_0: the model's weights when training starts.
        first = ops.equal(ops.convert_to_tensor(self._update_count), 0)
        for theta, phi in self._with_slots(self._slow, variables):
            self.assign(phi, ops.where(first, read(theta), phi.value))

    def _after_inner_step(self, variables, advanced, count):
        sync = ops.logical_and(advanced, ops.equal(count % self.sync_period, 0))
        for theta, phi in self._with_slots(self._slow, variables):
            theta_t, phi_t = read(theta), phi.value
            alpha = ops.cast(self.slow_step_size, phi.dtype)
            slow = ops.where(sync, phi_t + alpha * (theta_t - phi_t), phi_t)
            constraint = getattr(theta, "constraint", None)
            if constraint is not None:
                # Keras constrains a variable after each update of it.
                slow = ops.where(sync, constraint(slow), slow)
            self.assign(phi, slow)
            self.assign(theta, ops.where(sync, slow, theta_t))
