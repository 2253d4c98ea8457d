"""Linear warm-up to a peak, then linear decay to a floor."""

from __future__ import annotations

from typing import Annotated

import keras
from keras import ops

from keras_opts._core import checks, config
from keras_opts.schedules._base import Schedule


@keras.saving.register_keras_serializable(package="keras_opts")
class WarmupLinearDecay(Schedule):
    r"""Linear warm-up over a fraction of training, then linear decay.

    The warm-up that tensorflow-addons built into ``RectifiedAdam``
    (``total_steps``, ``warmup_proportion``, ``min_lr``), as a schedule that
    any optimizer can use. With $s = \text{step} + 1$ (the update
    being made, counting from 1), $T$ = ``total_steps``,
    $W = p T$ ($p$ = ``warmup_proportion``),
    $D = \max(T - W, 1)$, $\eta$ = ``learning_rate``:

    $$
    \eta_s = \begin{cases}
        \eta\, s / W & s \le W \\
        \eta + (\eta_{\min} - \eta) \min(s - W, D) / D & s > W
    \end{cases}
    $$

    After $T$ steps the rate stays at $\eta_{\min}$.

    Args:
        learning_rate: the peak rate, positive.
        total_steps: $T$, a positive integer.
        warmup_proportion: $p$ in [0, 1]. Default 0.1.
        min_lr: the final rate $\eta_{\min} \ge 0$. Default 0.

    Example (tensorflow-addons'
    ``RectifiedAdam(1e-3, total_steps=100, warmup_proportion=0.1,
    min_lr=1e-5)``):

    >>> import keras_opts
    >>> schedule = keras_opts.schedules.WarmupLinearDecay(
    ...     1e-3, total_steps=100, warmup_proportion=0.1, min_lr=1e-5)
    >>> [round(float(schedule(s)), 6) for s in (0, 9, 54, 99, 500)]
    [0.0001, 0.001, 0.000505, 1e-05, 1e-05]
    >>> opt = keras_opts.RAdam(schedule, epsilon=1e-7,
    ...     epsilon_mode="corrected", rectify_threshold=5.0)
    """

    def __init__(
        self,
        learning_rate: checks.Positive,
        total_steps: Annotated[int, checks.at_least(1)],
        warmup_proportion: Annotated[
            float, checks.in_range(low=0.0, high=1.0)
        ] = 0.1,
        min_lr: checks.NonNegative = 0.0,
        name: checks.Name = None,
    ) -> None:
        super().__init__(**config.given(locals()))

    def __call__(self, step):
        s = ops.cast(step, "float32") + 1.0
        peak = self.learning_rate
        warmup = self.total_steps * self.warmup_proportion
        decay_steps = max(self.total_steps - warmup, 1.0)
        rate = (self.min_lr - peak) / decay_steps
        decayed = peak + rate * ops.minimum(s - warmup, decay_steps)
        if warmup == 0.0:
            return decayed
        return ops.where(s <= warmup, peak * (s / warmup), decayed)
