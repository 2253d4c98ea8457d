"""Schedule-free SGD: momentum as interpolation, a schedule as averaging."""

from __future__ import annotations

from typing import Annotated, Any

import keras

from keras_opts._core import checks, config, schedule_free


@keras.saving.register_keras_serializable(package="keras_opts")
class ScheduleFreeSGD(schedule_free.ScheduleFree):
    r"""Schedule-free SGD (Defazio et al., 2024), Algorithm 1 with the SGD
    step.

    A decaying learning-rate schedule needs the length of training in
    advance; stopping early or training longer leaves a worse model than a
    schedule tuned for that length. Schedule-free SGD keeps the learning
    rate constant (after an optional warm-up) and replaces the schedule by
    averaging: $z$ takes plain SGD steps, $x$ is a running weighted average
    of the $z$'s, and the gradient is taken at $y$, an interpolation of the
    two that plays the role of momentum. The average $x$ is the model to
    evaluate, at any step, with no stopping time fixed in advance.

    Symbols: $\gamma$ = ``learning_rate``, $\beta$ = ``beta_1``,
    $\lambda$ = ``weight_decay``, $T_w$ = ``warmup_steps``, $r$ = ``r``,
    $p$ = ``weight_lr_power``; $x_1 = z_1$ = the weights at the first step,
    $t = 1, 2, \dots$.

    $$
    \begin{aligned}
    y_t &= (1 - \beta) z_t + \beta x_t \\
    g_t &= \nabla f(y_t) \\
    \gamma_t &= \gamma \min(1, t / T_w) \\
    z_{t+1} &= z_t - \gamma_t (g_t + \lambda y_t) \\
    c_{t+1} &= \frac{t^r (\max_{i \le t} \gamma_i)^p}
        {\sum_{j=1}^{t} j^r (\max_{i \le j} \gamma_i)^p} \\
    x_{t+1} &= (1 - c_{t+1}) x_t + c_{t+1} z_{t+1}
    \end{aligned}
    $$

    With the default $r = 0$, $p = 2$ and a constant rate after the warm-up,
    $c_{t+1} = \gamma_t^2 / \sum_{i \le t} \gamma_i^2$: the iterates of the
    warm-up, taken with small steps, weigh little in the average, and after
    it $x$ is the uniform average. $p = 0$ gives $c_{t+1} = 1/t$.

    **What the variables hold.** During training the model's variables hold
    $y_t$ (where the gradient is taken); $z$ is a slot and $x$ is computed
    from both, $x = (y - (1 - \beta) z) / \beta$. Evaluate, predict and
    save the model for inference inside ``with optimizer.averaged():``,
    which swaps $x$ in and $y$ back out exactly, or let the callback
    ``keras_opts.callbacks.ScheduleFreeEvaluation`` do it during ``fit``.
    A model saved outside the block holds $y$ and resumes training bit for
    bit. BatchNormalization's moving statistics are gathered at $y$:
    ``keras_opts.callbacks.recompute_batchnorm_statistics`` recomputes them
    at $x$.

    ``weight_decay`` is the algorithm's $\lambda$: decay taken at $y$ and
    added to the gradient of $z$'s step (the authors' code), not Keras'
    decoupled shrinking of the variables, which would act on $y$ only;
    ``exclude_from_weight_decay`` applies.

    Args:
        learning_rate: float, ``LearningRateSchedule`` or callable: $\gamma$.
            Default 0.1. The authors' default is 1.0, which diverges on a
            small regression MLP (NaN within 96 steps of
            ``tests/test_defaults.py``, on every backend; 0.3 already
            overshoots 2.8 times its initial loss there) where 0.1 takes
            the loss to 4% of its start. Schedule-free SGD takes rates
            several times larger than SGD with momentum: measure, see
            the docs' starting point. A schedule is allowed (the
            averaging weights then follow its running maximum).
        beta_1: $\beta$ in (0, 1), the interpolation between $z$ and $x$
            that acts as momentum. Default 0.9.
        weight_decay: $\lambda \ge 0$, or a schedule of the step. Default 0.
        warmup_steps: $T_w$, an integer >= 0: a linear warm-up of the rate
            over the first steps. Default 0 (none).
        r: $r \ge 0$, the power of $t$ in the averaging weights. Default 0.
        weight_lr_power: $p \ge 0$, the power of the rate in the averaging
            weights. Default 2.
        coupled_weight_decay: L2 coefficient added to the gradient. Default
            0.
        **kwargs: the ``keras.optimizers.Optimizer`` arguments (not
            ``weight_decay``, which is the algorithm's).

    Reproducing other libraries:

    - the authors' ``schedulefree.SGDScheduleFree(params, lr, momentum=m,
      weight_decay=w, warmup_steps=T, r=r, weight_lr_power=p)`` in train
      mode (its parameters hold $y$) = ``ScheduleFreeSGD(lr, beta_1=m,
      weight_decay=w, warmup_steps=T, r=r, weight_lr_power=p)``; its
      ``optimizer.eval()`` is ``averaged()``. Its default ``lr`` is 1.0,
      ours 0.1: pass the rate.

    Example:

    >>> import keras, keras_opts
    >>> w = keras.Variable([1.0, -2.0])
    >>> opt = keras_opts.ScheduleFreeSGD(learning_rate=0.1)
    >>> g = keras.ops.convert_to_tensor([1.0, 1.0])
    >>> for _ in range(2):  # z: [0.9, -2.1], then [0.8, -2.2]
    ...     opt.apply([g], [w])
    >>> [round(float(v), 4) for v in w.numpy()]  # y = 0.1 z + 0.9 x
    [0.845, -2.155]
    >>> with opt.averaged():  # x = (z_2 + z_3) / 2
    ...     [round(float(v), 4) for v in w.numpy()]
    [0.85, -2.15]

    References:
        Defazio, Yang, Mehta, Mishchenko, Khaled & Cutkosky, "The Road Less
        Scheduled", NeurIPS 2024, https://arxiv.org/abs/2405.15682;
        authors' code: https://github.com/facebookresearch/schedule_free
    """

    def __init__(
        self,
        learning_rate: Any = 0.1,
        beta_1: schedule_free.Beta = 0.9,
        weight_decay: checks.WeightDecay = 0.0,
        warmup_steps: Annotated[int, checks.at_least(0)] = 0,
        r: checks.NonNegative = 0.0,
        weight_lr_power: checks.NonNegative = 2.0,
        coupled_weight_decay: checks.NonNegative = 0.0,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**config.given(locals()))

    def _learning_rate_in_effect(self, learning_rate, t):
        return learning_rate * schedule_free.warmup_factor(self.warmup_steps, t)

    def _kernel(self, k, p, g, s, c):
        u = schedule_free.with_decay(k, p, g, c, bool(self.weight_decay))
        schedule_free.step_(k, p, s.z, u, c)
