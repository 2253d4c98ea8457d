"""Warm-up in front of any schedule, and warmup-stable-decay."""

from __future__ import annotations

from typing import Annotated, Any

import keras
from keras import ops

from keras_opts._core import checks, config
from keras_opts._core.config import checked_config
from keras_opts.schedules._base import Schedule, anneal_weight, remaining

LRSchedule = keras.optimizers.schedules.LearningRateSchedule


@keras.saving.register_keras_serializable(package="keras_opts")
class Warmup(Schedule):
    r"""Linear warm-up from ``start_learning_rate``, then any schedule.

    For $\text{step} < W$ (``warmup_steps``) the rate goes linearly
    from $\eta_s$ (``start_learning_rate``) towards the wrapped
    schedule's first value $S(0)$; from step $W$ on it is the
    wrapped schedule, started afresh: $S(\text{step} - W)$.

    $$
    \eta(\text{step}) = \begin{cases}
        \eta_s + (S(0) - \eta_s)\,\text{step} / W & \text{step} < W \\
        S(\text{step} - W) & \text{otherwise}
    \end{cases}
    $$

    torch's ``SequentialLR([LinearLR(opt, start_factor=f, total_iters=W),
    after], milestones=[W])`` is ``Warmup(after, W, start_learning_rate=
    f * lr)``. tensorflow-addons' RectifiedAdam warm-up is
    ``Warmup(PolynomialDecay(lr, T - W, min_lr), W)`` evaluated one step
    later (it counts updates from 1), which is
    :class:`WarmupLinearDecay`.

    Args:
        schedule: a ``LearningRateSchedule`` or a positive float (a
            constant rate after the warm-up).
        warmup_steps: $W$, a positive int.
        start_learning_rate: $\eta_s \ge 0$. Default 0.

    >>> import keras_opts
    >>> decay = keras_opts.schedules.GeometricDecay(0.1, base=0.5)
    >>> s = keras_opts.schedules.Warmup(decay, warmup_steps=4)
    >>> [round(float(s(step)), 4) for step in range(7)]
    [0.0, 0.025, 0.05, 0.075, 0.1, 0.05, 0.025]
    """

    def __init__(
        self,
        schedule: Annotated[
            LRSchedule | float,
            checks.Rule(_schedule, "a `LearningRateSchedule` or > 0"),
        ],
        warmup_steps: Annotated[int, checks.at_least(1)],
        start_learning_rate: checks.NonNegative = 0.0,
    ) -> None:
        super().__init__(**config.given(locals()))

    def _after(self, step):
        if isinstance(self.schedule, LRSchedule):
            return ops.cast(self.schedule(step), "float32")
        return ops.cast(self.schedule, "float32") + 0.0 * step

    def __call__(self, step):
        step = ops.cast(step, "float32")
        w = float(self.warmup_steps)
        target = self._after(ops.zeros_like(step))
        ramp = self.start_learning_rate + (
            target - self.start_learning_rate
        ) * (step / w)
        after = self._after(ops.maximum(step - w, 0.0))
        return ops.where(step < w, ramp, after)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        if isinstance(self.schedule, LRSchedule):
            config["schedule"] = keras.saving.serialize_keras_object(
                self.schedule
            )
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Warmup:
        """As every schedule's, with the wrapped schedule deserialized."""
        return cls(**checked_config(cls, config, objects=("schedule",)))


DECAY_SHAPES = ("linear", "cosine", "sqrt")


@keras.saving.register_keras_serializable(package="keras_opts")
class WarmupStableDecay(Schedule):
    r"""Warmup-stable-decay (Hu et al. 2024; Hägele et al. 2024).

    Linear warm-up from ``start_learning_rate`` to the peak over
    $W$ steps, the peak held until the last $D$ of the
    $T$ steps, then a decay to ``final_learning_rate`` shaped by
    ``decay_shape`` (with $p$ the fraction of the decay done):
    ``"linear"`` $1 - p$, ``"cosine"`` $(1 + \cos \pi p) / 2$,
    ``"sqrt"`` $1 - \sqrt{p}$. After $T$ steps the rate stays
    at the final value.

    Args:
        learning_rate: the peak, positive.
        total_steps: $T$.
        warmup_steps: $W \ge 0$.
        decay_steps: $D \ge 1$, with $W + D \le T$.
        start_learning_rate: rate at step 0. Default 0.
        final_learning_rate: rate from step $T$ on. Default 0.
        decay_shape: ``"linear"`` (default), ``"cosine"`` or ``"sqrt"``.

    >>> import keras_opts
    >>> s = keras_opts.schedules.WarmupStableDecay(
    ...     1.0, total_steps=10, warmup_steps=2, decay_steps=4)
    >>> [round(float(s(step)), 3) for step in range(11)]
    [0.0, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 0.75, 0.5, 0.25, 0.0]

    References:
        Hu et al., "MiniCPM: Unveiling the Potential of Small Language
        Models with Scalable Training Strategies", 2024,
        https://arxiv.org/abs/2404.06395; Hägele et al., "Scaling Laws and
        Compute-Optimal Training beyond Fixed Training Durations", 2024,
        https://arxiv.org/abs/2405.18392
    """

    def __init__(
        self,
        learning_rate: checks.Positive,
        total_steps: Annotated[int, checks.at_least(1)],
        warmup_steps: Annotated[int, checks.at_least(0)],
        decay_steps: Annotated[int, checks.at_least(1)],
        start_learning_rate: checks.NonNegative = 0.0,
        final_learning_rate: checks.NonNegative = 0.0,
        decay_shape: Annotated[str, checks.one_of(*DECAY_SHAPES)] = "linear",
    ) -> None:
        super().__init__(**config.given(locals()))

    def _check_arguments(self, arguments):
        warmup_steps = arguments["warmup_steps"]
        decay_steps = arguments["decay_steps"]
        total_steps = arguments["total_steps"]
        if warmup_steps + decay_steps > total_steps:
            raise ValueError(
                "`warmup_steps + decay_steps` must not exceed `total_steps`."
                f" Received: warmup_steps={warmup_steps}, decay_steps="
                f"{decay_steps}, total_steps={total_steps}"
            )

    def __call__(self, step):
        step = ops.cast(step, "float32")
        peak, final = self.learning_rate, self.final_learning_rate
        w = float(self.warmup_steps)
        decay_start = float(self.total_steps - self.decay_steps)
        q = remaining(step, decay_start, float(self.total_steps))
        rate = final + (peak - final) * anneal_weight(self.decay_shape, q)
        if w == 0.0:
            return rate
        start = self.start_learning_rate
        ramp = start + (peak - start) * step / w
        return ops.where(step < w, ramp, rate)


def _schedule(name, value):
    """A schedule, or a positive float: the constant rate after warm-up."""
    if isinstance(value, LRSchedule):
        return value
    return checks.positive(name, value)
