"""Linear warm-up to a peak, then linear decay to a floor."""

from __future__ import annotations

import keras
from keras import ops

from keras_opts._core import checks
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

    _config_keys = (
        "learning_rate",
        "total_steps",
        "warmup_proportion",
        "min_lr",
        "name",
    )

    def __init__(
        self,
        learning_rate: float,
        total_steps: int,
        warmup_proportion: float = 0.1,
        min_lr: float = 0.0,
        name: str | None = None,
    ) -> None:
        super().__init__()
        self.learning_rate = checks.positive("learning_rate", learning_rate)
        self.total_steps = checks.integer("total_steps", total_steps, 1)
        self.warmup_proportion = checks.real(
            "warmup_proportion", warmup_proportion, low=0.0, high=1.0
        )
        self.min_lr = checks.non_negative("min_lr", min_lr)
        self.name = name

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
