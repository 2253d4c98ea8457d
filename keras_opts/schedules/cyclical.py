"""Cyclical learning rates (Smith 2017) and the one-cycle policy."""

from __future__ import annotations

import math
from typing import Annotated

import keras
from keras import ops

from keras_opts._core import checks, config
from keras_opts.schedules._base import Schedule, anneal_weight, remaining

MODES = ("triangular", "triangular2", "exp_range")
ANNEAL = ("cos", "linear")


@keras.saving.register_keras_serializable(package="keras_opts")
class Cyclical(Schedule):
    r"""Cyclical learning rate (Smith, 2017), tensorflow-addons' four
    classes and torch's ``CyclicLR`` in one.

    The rate climbs linearly from $\eta_{lo}$ to $\eta_{hi}$
    over ``step_size`` steps, falls back over as many, and repeats, with
    the amplitude scaled by ``mode``. With $s$ = ``step``,
    $c = \lfloor 1 + s / (2\,\text{step\_size}) \rfloor$ (the cycle,
    from 1) and $x = |s / \text{step\_size} - 2c + 1|$:

    $$
    \eta(s) = \eta_{lo} + (\eta_{hi} - \eta_{lo})
        \max(0, 1 - x)\, a
    $$

    with $a = 1$ (``"triangular"``), $a = 2^{1-c}$
    (``"triangular2"``) or $a = \gamma^{s}$ (``"exp_range"``).

    Reproducing other libraries: tensorflow-addons'
    ``TriangularCyclicalLearningRate(lo, hi, step_size)``,
    ``Triangular2CyclicalLearningRate`` and
    ``ExponentialCyclicalLearningRate(..., gamma)`` are the three modes;
    ``torch.optim.lr_scheduler.CyclicLR(opt, base_lr=lo, max_lr=hi,
    step_size_up=n, mode=m, gamma=g)`` is ``Cyclical(lo, hi, n, mode=m,
    gamma=g)``.

    Args:
        initial_learning_rate: $\eta_{lo} > 0$.
        maximal_learning_rate: $\eta_{hi} \ge \eta_{lo}$.
        step_size: steps of half a cycle, positive int.
        mode: ``"triangular"`` (default), ``"triangular2"`` or
            ``"exp_range"``.
        gamma: $\gamma$ in (0, 1] for ``"exp_range"``. Default 1.

    >>> import keras_opts
    >>> s = keras_opts.schedules.Cyclical(0.1, 0.5, step_size=2)
    >>> [round(float(s(step)), 3) for step in range(6)]
    [0.1, 0.3, 0.5, 0.3, 0.1, 0.3]

    References:
        Smith, "Cyclical Learning Rates for Training Neural Networks",
        WACV 2017, https://arxiv.org/abs/1506.01186
    """

    def __init__(
        self,
        initial_learning_rate: checks.Positive,
        maximal_learning_rate: checks.Positive,
        step_size: Annotated[int, checks.at_least(1)],
        mode: Annotated[str, checks.one_of(*MODES)] = "triangular",
        gamma: Annotated[
            float, checks.in_range(low=0.0, high=1.0, low_open=True)
        ] = 1.0,
    ) -> None:
        super().__init__(**config.given(locals()))

    def _check_arguments(self, arguments):
        checks.real(
            "maximal_learning_rate",
            arguments["maximal_learning_rate"],
            low=arguments["initial_learning_rate"],
        )

    def __call__(self, step):
        s = ops.cast(step, "float32")
        half = float(self.step_size)
        cycle = ops.floor(1.0 + s / (2.0 * half))
        x = ops.abs(s / half - 2.0 * cycle + 1.0)
        height = ops.maximum(0.0, 1.0 - x)
        if self.mode == "triangular2":
            height = height * ops.power(2.0, 1.0 - cycle)
        elif self.mode == "exp_range":
            height = height * ops.exp(s * math.log(self.gamma))
        low, high = self.initial_learning_rate, self.maximal_learning_rate
        return low + (high - low) * height


@keras.saving.register_keras_serializable(package="keras_opts")
class OneCycle(Schedule):
    r"""The one-cycle policy (Smith & Topin, 2019), as torch's
    ``OneCycleLR``.

    From $\eta_{max} / d$ (``div_factor`` $d$) the rate rises
    to $\eta_{max}$ over the first ``pct_start`` of ``total_steps``,
    then anneals to $\eta_{max} / (d f)$ (``final_div_factor``
    $f$). With ``three_phase`` it first falls back to
    $\eta_{max} / d$ over as many steps, then anneals to the
    minimum. Each phase runs from $a$ to $b$ over its steps,
    with $p$ the fraction done: ``"cos"``
    $b + (a - b)(1 + \cos \pi p)/2$, ``"linear"``
    $a + (b - a) p$. Phase ends are at steps
    $\text{pct\_start}\,T - 1$ (and $2\,\text{pct\_start}\,T
    - 2$) and $T - 1$, as torch places them; past $T - 1$ the
    rate stays at its final value (torch raises there).

    ``torch.optim.lr_scheduler.OneCycleLR(opt, max_lr, total_steps,
    pct_start, anneal_strategy, div_factor=d, final_div_factor=f,
    three_phase=t)`` is ``OneCycle`` with the same arguments.

    Args:
        maximal_learning_rate: $\eta_{max} > 0$.
        total_steps: $T \ge 2$.
        pct_start: fraction of the steps spent rising, in (0, 1). Default
            0.3.
        anneal_strategy: ``"cos"`` (default) or ``"linear"``.
        div_factor: $d > 0$. Default 25.
        final_div_factor: $f > 0$. Default 1e4.
        three_phase: default False.

    >>> import keras_opts
    >>> s = keras_opts.schedules.OneCycle(1.0, total_steps=11, pct_start=0.5,
    ...     anneal_strategy="linear", div_factor=10.0, final_div_factor=1.0)
    >>> [round(float(s(step)), 3) for step in (0, 2, 4.5, 7, 10)]
    [0.1, 0.5, 1.0, 0.591, 0.1]

    References:
        Smith & Topin, "Super-Convergence: Very Fast Training of Neural
        Networks Using Large Learning Rates", 2019,
        https://arxiv.org/abs/1708.07120
    """

    def __init__(
        self,
        maximal_learning_rate: checks.Positive,
        total_steps: Annotated[int, checks.at_least(2)],
        pct_start: Annotated[
            float,
            checks.in_range(low=0.0, high=1.0, low_open=True, high_open=True),
        ] = 0.3,
        anneal_strategy: Annotated[str, checks.one_of(*ANNEAL)] = "cos",
        div_factor: checks.Positive = 25.0,
        final_div_factor: checks.Positive = 1e4,
        three_phase: checks.Flag = False,
    ) -> None:
        super().__init__(**config.given(locals()))

    def _phases(self):
        """(end step, start rate, end rate) per phase, as torch builds them."""
        top = self.maximal_learning_rate
        initial = top / self.div_factor
        minimum = initial / self.final_div_factor
        rise_end = self.pct_start * self.total_steps - 1.0
        last = self.total_steps - 1.0
        if self.three_phase:
            fall_end = 2.0 * self.pct_start * self.total_steps - 2.0
            return [
                (rise_end, initial, top),
                (fall_end, top, initial),
                (last, initial, minimum),
            ]
        return [(rise_end, initial, top), (last, top, minimum)]

    def _anneal(self, start, end, q):
        shape = "cosine" if self.anneal_strategy == "cos" else "linear"
        return end + (start - end) * anneal_weight(shape, q)

    def __call__(self, step):
        s = ops.cast(step, "float32")
        phases = self._phases()
        begins = [0.0] + [end for end, _, _ in phases[:-1]]
        values = [
            self._anneal(a, b, remaining(s, begin, end))
            for (end, a, b), begin in zip(phases, begins)
        ]
        # torch takes the first phase whose end the step has not passed.
        rate = values[-1]
        for (end, _, _), value in zip(phases[-2::-1], values[-2::-1]):
            rate = ops.where(s <= end, value, rate)
        return rate
