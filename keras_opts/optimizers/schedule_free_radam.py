"""Schedule-free RAdam: RAdam's rectified step, without a warm-up or a
schedule."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_opts._core import checks, config, formulas, schedule_free
from keras_opts.optimizers.schedule_free_adamw import (
    second_moment_denominator,
)

#: RAdam's threshold on the length of the approximated moving average.
RECTIFY_THRESHOLD = 4.0


@keras.saving.register_keras_serializable(package="keras_opts")
class ScheduleFreeRAdam(schedule_free.ScheduleFree):
    r"""Schedule-free RAdam: the schedule-free method (Defazio et al., 2024)
    around RAdam's rectified step (Liu et al., 2019), from the authors' code.

    Schedule-free AdamW still needs a warm-up. RAdam's rectifier $r_t$ is a
    warm-up derived from $\beta_2$ (see :class:`RAdam`), so schedule-free
    RAdam needs neither a warm-up length nor a schedule: the rectified rate
    $\gamma r_t$ grows towards $\gamma$, and the averaging weights, which
    follow its running maximum, give the early iterates little weight.
    Before the variance of the adaptive step is tractable ($\rho_t \le 4$,
    the first 4 steps at $\beta_2 = 0.999$) the step is the plain gradient,
    or with ``silent_sgd_phase`` (default) nothing moves: only the second
    moment is gathered.

    Symbols: $\gamma$ = ``learning_rate``, $\beta_1, \beta_2$ =
    ``beta_1, beta_2``, $\epsilon$ = ``epsilon``, $\lambda$ =
    ``weight_decay``, $r$ = ``r``, $p$ = ``weight_lr_power``; $\rho_t$ and
    $r_t$ as in :class:`RAdam`; $x_1 = z_1$ = the weights at the first step,
    $v_0 = 0$, $t = 1, 2, \dots$.

    $$
    \begin{aligned}
    y_t &= (1 - \beta_1) z_t + \beta_1 x_t \\
    g_t &= \nabla f(y_t) \\
    v_t &= \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
    \text{if } \rho_t > 4:\quad
        \gamma_t &= \gamma r_t, \quad
        u_t = \frac{g_t}{\sqrt{v_t / (1 - \beta_2^t)} + \epsilon} \\
    \text{else}:\quad
        \gamma_t &= 0 \text{ (silent) or } \gamma, \quad u_t = g_t \\
    z_{t+1} &= z_t - \gamma_t (u_t + \lambda y_t) \\
    c_{t+1} &= \frac{t^r (\max_{i \le t} \gamma_i)^p}
        {\sum_{j=1}^{t} j^r (\max_{i \le j} \gamma_i)^p}
        \quad (0 \text{ while every weight is } 0) \\
    x_{t+1} &= (1 - c_{t+1}) x_t + c_{t+1} z_{t+1}
    \end{aligned}
    $$

    **What the variables hold.** During training the model's variables hold
    $y_t$; $z$ is a slot and $x = (y - (1 - \beta_1) z) / \beta_1$. Evaluate,
    predict and save the model for inference inside
    ``with optimizer.averaged():``, or let
    ``keras_opts.callbacks.ScheduleFreeEvaluation`` do it during ``fit``.
    BatchNormalization's moving statistics are gathered at $y$:
    ``keras_opts.callbacks.recompute_batchnorm_statistics`` recomputes them
    at $x$.

    ``weight_decay`` is the algorithm's $\lambda$, taken at $y$ and applied
    to $z$ (not Keras' decoupled shrinking of the variables);
    ``exclude_from_weight_decay`` applies.

    Args:
        learning_rate: float, ``LearningRateSchedule`` or callable: $\gamma$.
            Default 0.0025 (the authors').
        beta_1: $\beta_1$ in (0, 1), the interpolation between $z$ and $x$.
            Default 0.9.
        beta_2: second-moment decay in [0, 1). Default 0.999.
        epsilon: positive stabiliser. Default 1e-8.
        weight_decay: $\lambda \ge 0$, or a schedule of the step. Default 0.
        r: $r \ge 0$, the power of $t$ in the averaging weights. Default 0.
        weight_lr_power: $p \ge 0$, the power of the rate in the averaging
            weights. Default 2.
        silent_sgd_phase: take no step while $\rho_t \le 4$. Default True
            (the authors' recommendation); False takes gradient steps of
            size $\gamma$ there, as RAdam does.
        coupled_weight_decay: L2 coefficient added to the gradient. Default
            0.
        **kwargs: the ``keras.optimizers.Optimizer`` arguments (not
            ``weight_decay``, which is the algorithm's).

    Reproducing other libraries:

    - the authors' ``schedulefree.RAdamScheduleFree(params, lr,
      betas=(b1, b2), eps=e, weight_decay=w, r=r, weight_lr_power=p,
      silent_sgd_phase=s)`` in train mode (its parameters hold $y$) =
      ``ScheduleFreeRAdam(lr, b1, b2, e, weight_decay=w, r=r,
      weight_lr_power=p, silent_sgd_phase=s)``; its ``eval()`` is
      ``averaged()``.

    Example:

    >>> import keras, keras_opts
    >>> w = keras.Variable([1.0, -2.0])
    >>> opt = keras_opts.ScheduleFreeRAdam(learning_rate=0.1)
    >>> g = keras.ops.convert_to_tensor([0.5, -3.0])
    >>> for _ in range(4):  # rho_t <= 4: the silent phase
    ...     opt.apply([g], [w])
    >>> [round(float(v), 4) for v in w.numpy()]
    [1.0, -2.0]

    References:
        Defazio, Yang, Mehta, Mishchenko, Khaled & Cutkosky, "The Road Less
        Scheduled", NeurIPS 2024, https://arxiv.org/abs/2405.15682;
        authors' code: https://github.com/facebookresearch/schedule_free.
        Liu, Jiang, He, Chen, Liu, Gao & Han, "On the Variance of the
        Adaptive Learning Rate and Beyond", ICLR 2020,
        https://arxiv.org/abs/1908.03265
    """

    def __init__(
        self,
        learning_rate: Any = 0.0025,
        beta_1: schedule_free.Beta = 0.9,
        beta_2: checks.DecayRate = 0.999,
        epsilon: checks.Positive = 1e-8,
        weight_decay: checks.WeightDecay = 0.0,
        r: checks.NonNegative = 0.0,
        weight_lr_power: checks.NonNegative = 2.0,
        silent_sgd_phase: checks.Flag = True,
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

    def _rectified(self, t):
        return formulas.radam_sma_length(self.beta_2, t) > RECTIFY_THRESHOLD

    def _learning_rate_in_effect(self, learning_rate, t):
        rho_t = formulas.radam_sma_length(self.beta_2, t)
        before = 0.0 if self.silent_sgd_phase else 1.0
        rectifier = ops.where(
            rho_t > RECTIFY_THRESHOLD,
            formulas.radam_rectification(self.beta_2, rho_t),
            before,
        )
        return learning_rate * ops.cast(rectifier, t.dtype)

    def _coefficients(self, learning_rate, t):
        return (
            super()
            ._coefficients(learning_rate, t)
            ._replace(
                second_moment_correction=formulas.bias_correction(
                    self.beta_2, t
                ),
                adaptive=self._rectified(t),
            )
        )

    def _kernel(self, k, p, g, s, c):
        v = formulas.ema_square_(k, s.velocity, g, self.beta_2)
        d = second_moment_denominator(k, v, c, self.epsilon)
        # Once rho_t > 4: u = g / D(v); before: u = g.
        u = k.div(g, k.where(c.adaptive, d, 1.0))
        u = schedule_free.with_decay(k, p, u, c, bool(self.weight_decay))
        schedule_free.step_(k, p, s.z, u, c)
