"""Schedule-free AdamW: Adam's step, a schedule replaced by averaging."""

from __future__ import annotations

from typing import Annotated, Any

import keras
from keras import ops

from keras_opts._core import checks, config, formulas, schedule_free

BIAS_CORRECTIONS = ("learning_rate", "second_moment")


@keras.saving.register_keras_serializable(package="keras_opts")
class ScheduleFreeAdamW(schedule_free.ScheduleFree):
    r"""Schedule-free AdamW (Defazio et al., 2024), Algorithm 1.

    AdamW with a cosine or linear-decay schedule needs the number of
    training steps in advance. Schedule-free AdamW keeps the rate constant
    after a warm-up and gets the effect of the schedule from averaging: $z$
    takes Adam-normalised steps without momentum, $x$ is a weighted average
    of the $z$'s (the model to evaluate, at any step), and the gradient is
    taken at $y$, an interpolation of the two that plays the role of Adam's
    first moment. It keeps one slot fewer than AdamW ($z$ and $v$).

    Symbols: $\gamma$ = ``learning_rate``, $\beta_1, \beta_2$ =
    ``beta_1, beta_2``, $\epsilon$ = ``epsilon``, $\lambda$ =
    ``weight_decay``, $T_w$ = ``warmup_steps``, $r$ = ``r``, $p$ =
    ``weight_lr_power``; $x_1 = z_1$ = the weights at the first step,
    $v_0 = 0$, $t = 1, 2, \dots$.

    $$
    \begin{aligned}
    y_t &= (1 - \beta_1) z_t + \beta_1 x_t \\
    g_t &= \nabla f(y_t) \\
    v_t &= \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
    \gamma_t &= \gamma \sqrt{1 - \beta_2^t} \min(1, t / T_w) \\
    z_{t+1} &= z_t - \gamma_t \frac{g_t}{\sqrt{v_t} + \epsilon}
        - \gamma_t \lambda y_t \\
    c_{t+1} &= \frac{t^r (\max_{i \le t} \gamma_i)^p}
        {\sum_{j=1}^{t} j^r (\max_{i \le j} \gamma_i)^p} \\
    x_{t+1} &= (1 - c_{t+1}) x_t + c_{t+1} z_{t+1}
    \end{aligned}
    $$

    With the default $r = 0$, $p = 2$ this is the paper's
    $c_{t+1} = \gamma_t^2 / \sum_{i \le t} \gamma_i^2$ ($\gamma_t$ only
    grows under the warm-up and the bias correction).

    ``bias_correction_in`` says where Adam's bias correction goes:
    ``"learning_rate"`` (default, the paper's Algorithm 1 and the authors'
    ``AdamWScheduleFreePaper``): in $\gamma_t$ as above, so it also scales
    the decay and the averaging weights; ``"second_moment"`` (the authors'
    ``AdamWScheduleFree``, Keras' ``ScheduleFreeAdamW``):
    $\gamma_t = \gamma \min(1, t / T_w)$ and $z$'s step is
    $\gamma_t g_t / (\sqrt{v_t / (1 - \beta_2^t)} + \epsilon)$. The authors
    recommend the second: the first weighs the early iterates very little
    (the bias correction is $\sqrt{1 - 0.999} \approx 0.03$ at step 1),
    which can be unstable on some problems.

    **What the variables hold.** During training the model's variables hold
    $y_t$; $z$ is a slot and $x = (y - (1 - \beta_1) z) / \beta_1$. Evaluate,
    predict and save the model for inference inside
    ``with optimizer.averaged():``, which swaps $x$ in and $y$ back out
    exactly, or let ``keras_opts.callbacks.ScheduleFreeEvaluation`` do it
    during ``fit``. A model saved outside the block holds $y$ and resumes
    training bit for bit. BatchNormalization's moving statistics are
    gathered at $y$: ``keras_opts.callbacks.recompute_batchnorm_statistics``
    recomputes them at $x$.

    ``weight_decay`` is the algorithm's $\lambda$, taken at $y$ and applied
    to $z$ (not Keras' decoupled shrinking of the variables);
    ``exclude_from_weight_decay`` applies.

    Args:
        learning_rate: float, ``LearningRateSchedule`` or callable: $\gamma$.
            Default 0.0025 (the authors' and Keras'; often 1 to 10 times
            AdamW's tuned rate).
        beta_1: $\beta_1$ in (0, 1), the interpolation between $z$ and $x$.
            Default 0.9.
        beta_2: second-moment decay in [0, 1). Default 0.999.
        epsilon: positive stabiliser. Default 1e-8.
        weight_decay: $\lambda \ge 0$, or a schedule of the step. Default 0.
        warmup_steps: $T_w$, an integer >= 0. Default 0 (none).
        r: $r \ge 0$, the power of $t$ in the averaging weights. Default 0.
        weight_lr_power: $p \ge 0$, the power of the rate in the averaging
            weights. Default 2.
        bias_correction_in: ``"learning_rate"`` or ``"second_moment"``, see
            above.
        coupled_weight_decay: L2 coefficient added to the gradient. Default
            0.
        **kwargs: the ``keras.optimizers.Optimizer`` arguments (not
            ``weight_decay``, which is the algorithm's).

    Reproducing other libraries (their parameters in train mode hold $y$,
    as ours do):

    - ``schedulefree.AdamWScheduleFreePaper(params, lr, betas=(b1, b2),
      eps=e, weight_decay=w, warmup_steps=T, r=r, weight_lr_power=p)`` =
      ``ScheduleFreeAdamW(lr, b1, b2, e, weight_decay=w, warmup_steps=T,
      r=r, weight_lr_power=p)``;
    - ``schedulefree.AdamWScheduleFree`` with the same arguments = the same
      with ``bias_correction_in="second_moment"``; its ``eval()`` is
      ``averaged()``;
    - ``keras.optimizers.ScheduleFreeAdamW(lr, b1, b2, e, warmup_steps=T)``
      = ``ScheduleFreeAdamW(lr, b1, b2, e, warmup_steps=T,
      bias_correction_in="second_moment", weight_lr_power=0)`` (it averages
      uniformly, $c_{t+1} = 1/t$). Its ``weight_decay`` is Keras'
      decoupled decay of the variables, which shrinks $y$ alone and has no
      counterpart here. It offers no way to evaluate at $x$.

    Example:

    >>> import keras, keras_opts
    >>> w = keras.Variable([1.0, -2.0])
    >>> opt = keras_opts.ScheduleFreeAdamW(
    ...     learning_rate=0.1, bias_correction_in="second_moment"
    ... )
    >>> g = keras.ops.convert_to_tensor([0.5, -3.0])
    >>> for _ in range(2):  # z: [0.9, -1.9], then [0.8, -1.8]
    ...     opt.apply([g], [w])
    >>> [round(float(v), 4) for v in w.numpy()]  # y = 0.1 z + 0.9 x
    [0.845, -1.845]
    >>> with opt.averaged():  # x = (z_2 + z_3) / 2
    ...     [round(float(v), 4) for v in w.numpy()]
    [0.85, -1.85]

    References:
        Defazio, Yang, Mehta, Mishchenko, Khaled & Cutkosky, "The Road Less
        Scheduled", NeurIPS 2024, https://arxiv.org/abs/2405.15682;
        authors' code: https://github.com/facebookresearch/schedule_free
    """

    def __init__(
        self,
        learning_rate: Any = 0.0025,
        beta_1: schedule_free.Beta = 0.9,
        beta_2: checks.DecayRate = 0.999,
        epsilon: checks.Positive = 1e-8,
        weight_decay: checks.WeightDecay = 0.0,
        warmup_steps: Annotated[int, checks.at_least(0)] = 0,
        r: checks.NonNegative = 0.0,
        weight_lr_power: checks.NonNegative = 2.0,
        bias_correction_in: Annotated[
            str, checks.one_of(*BIAS_CORRECTIONS)
        ] = "learning_rate",
        coupled_weight_decay: checks.NonNegative = 0.0,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**config.given(locals()))

    capabilities = schedule_free.ScheduleFree.capabilities.replace(
        square_slots=("velocity",)
    )

    def _slot_names(self):
        return ("z", "velocity")

    def _learning_rate_in_effect(self, learning_rate, t):
        rate = learning_rate * schedule_free.warmup_factor(self.warmup_steps, t)
        if self.bias_correction_in == "learning_rate":
            rate = rate * ops.sqrt(formulas.bias_correction(self.beta_2, t))
        return rate

    def _coefficients(self, learning_rate, t):
        c = super()._coefficients(learning_rate, t)
        if self.bias_correction_in == "learning_rate":
            return c
        return c._replace(
            second_moment_correction=formulas.bias_correction(self.beta_2, t)
        )

    def _kernel(self, k, p, g, s, c):
        v = formulas.ema_square_(k, s.velocity, g, self.beta_2)
        u = k.div(g, second_moment_denominator(k, v, c, self.epsilon))
        u = schedule_free.with_decay(k, p, u, c, bool(self.weight_decay))
        schedule_free.step_(k, p, s.z, u, c)


def second_moment_denominator(k, v, c, epsilon):
    """``sqrt(v / c.second_moment_correction) + epsilon`` (a new
    temporary); the division is skipped where the correction is 1."""
    if isinstance(c.second_moment_correction, float):
        return k.add_(k.sqrt(v), epsilon)
    return k.add_(k.sqrt_(k.div(v, c.second_moment_correction)), epsilon)
