"""MARS: variance-reduced gradients for adaptive and sign optimizers."""

from __future__ import annotations

from typing import Annotated, Any, NamedTuple

import keras
from keras import ops

from keras_opts._core import checks, config, formulas, keras_api, step
from keras_opts._core.base import Optimizer
from keras_opts._core.step import Capabilities

MARS_TYPES = ("adamw", "lion")
PREVIOUS_GRADIENT_INITS = ("first", "zeros")


@keras.saving.register_keras_serializable(package="keras_opts")
class MARS(Optimizer):
    r"""MARS (Yuan et al., 2024), the approximate MARS-AdamW and MARS-Lion
    of Algorithms 1-3, as the paper's experiments and the authors' code run
    them.

    A stochastic gradient is noisy partly because the model moved since the
    last one. MARS adds a scaled *difference of gradients*
    $g_t - g_{t-1}$ to the gradient, a STORM-like variance-reduction term,
    clips the corrected gradient to norm 1 per tensor and feeds it to an
    AdamW- or Lion-type update. The exact algorithm evaluates both
    gradients on the same batch $\xi_t$ (two backward passes); the
    practical, *approximate* MARS that the paper recommends and evaluates
    uses the previous step's gradient, $\nabla f(x_{t-1}, \xi_{t-1})$,
    instead. That is the one implemented here: the previous gradient is a
    slot, saved and resumed with the optimizer.

    Symbols: $\eta$ = ``learning_rate``, $\gamma$ = ``gamma``,
    $\beta_1, \beta_2$ = ``beta_1, beta_2``, $\epsilon$ = ``epsilon``,
    $\lambda$ = ``weight_decay``; $m_0 = v_0 = 0$; $g_0 = g_1$ (the paper
    starts from $x_1 = x_0$, so the first step has no correction; see
    ``previous_gradient_init``); $t = 1, 2, \dots$. For each matrix
    (each variable of rank 2):

    $$
    \begin{aligned}
    c_t &= g_t + \gamma \frac{\beta_1}{1 - \beta_1} (g_t - g_{t-1}) \\
    \tilde c_t &= c_t / \max(1, \|c_t\|_2) \\
    m_t &= \beta_1 m_{t-1} + (1 - \beta_1) \tilde c_t \\
    \text{AdamW:}\quad v_t &= \beta_2 v_{t-1} + (1 - \beta_2) \tilde c_t^2,
    \qquad u_t = \frac{m_t / (1 - \beta_1^t)}
        {\sqrt{v_t / (1 - \beta_2^t)} + \epsilon} \\
    \text{Lion:}\quad u_t &= \operatorname{sign}(m_t) \\
    \theta_t &= \theta_{t-1} - \eta\,(u_t + \lambda \theta_{t-1})
    \end{aligned}
    $$

    The other variables (biases and normalisation scales of rank 0 and 1,
    and convolution kernels and other tensors of rank 3 or more) take
    plain AdamW with their own ``beta_1_1d``, ``beta_2_1d``, learning rate
    ``learning_rate * learning_rate_1d_scale`` and decay
    ``weight_decay_1d``, as in the authors' code, which takes the MARS
    step where ``len(grad.shape) == 2``; ``optimize_1d=True`` gives every
    variable the MARS step above instead. ``higher_rank_mars=True`` gives
    it to the tensors of rank 3 or more too, with the norm of the clip
    taken over the whole tensor (pytorch-optimizer's rule, ``ndim >=
    2``).

    Weight decay is decoupled, $\theta \leftarrow \theta (1 - \eta
    \lambda)$ before the step, and belongs to the algorithm (it differs
    between the two kinds of variable), so Keras' ``weight_decay`` is not
    applied on top; ``exclude_from_weight_decay`` sets it to 0 for the
    variables it names.

    Args:
        learning_rate: float, ``LearningRateSchedule`` or callable. Default
            0.003 (the authors').
        beta_1: momentum decay in [0, 1); also sets the correction's
            scale $\gamma \beta_1 / (1 - \beta_1)$. Default 0.95.
        beta_2: second-moment decay in [0, 1) (AdamW type). Default 0.99.
        gamma: $\gamma \ge 0$, the strength of the gradient correction;
            0 gives AdamW (or Lion) on clipped gradients. Default 0.025.
        mars_type: ``"adamw"`` or ``"lion"``, the update the corrected
            gradient feeds. Default ``"adamw"``.
        epsilon: positive stabiliser. Default 1e-8.
        epsilon_mode: where epsilon goes, as in :class:`Adam`:
            ``"corrected"`` (the paper, the authors' code) or
            ``"uncorrected"`` (pytorch-optimizer). Default
            ``"corrected"``.
        weight_decay: $\lambda \ge 0$ of the variables that take the MARS
            step, or a schedule of the step. Default 0.
        optimize_1d: the MARS step for every variable, of any rank.
            Default False.
        higher_rank_mars: the MARS step for the variables of rank 3 or
            more too (pytorch-optimizer's rule); False gives them the
            AdamW step (the authors' rule). Default False.
        learning_rate_1d_scale: the learning rate of the variables that
            take the AdamW step over ``learning_rate``, positive.
            Default 1.
        beta_1_1d: their AdamW momentum decay. Default 0.9.
        beta_2_1d: their AdamW second-moment decay. Default 0.95.
        weight_decay_1d: their decoupled decay, at least 0. Default 0.1.
        previous_gradient_init: $g_0$: ``"first"``, the first gradient
            (no correction at the first step, the paper's $x_1 = x_0$), or
            ``"zeros"`` (the authors' code and pytorch-optimizer, whose
            first corrected gradient is $(1 + \gamma \beta_1 / (1 -
            \beta_1))\, g_1$ before clipping). Default ``"first"``.
        coupled_weight_decay: L2 coefficient added to the gradient.
            Default 0.
        **kwargs: the other ``keras.optimizers.Optimizer`` arguments.

    Reproducing other libraries:

    - pytorch-optimizer 4.1's ``MARS(lr, betas=(b1, b2), gamma=g,
      mars_type=t, optimize_1d=o, lr_1d=lr1, betas_1d=(c1, c2),
      weight_decay=w, weight_decay_1d=w1, eps=e)`` =
      ``MARS(lr, beta_1=b1, beta_2=b2, gamma=g, mars_type=t,
      optimize_1d=o, learning_rate_1d_scale=lr1 / lr, beta_1_1d=c1,
      beta_2_1d=c2, weight_decay=w, weight_decay_1d=w1, epsilon=e,
      epsilon_mode="uncorrected", previous_gradient_init="zeros",
      higher_rank_mars=True)``. Its
      denominator also adds 1e-15 to $v_t$ under the root, a relative
      change of about $10^{-15} / v_t$.
    - The authors' code (``mars-adamw``, ``mars-lion``, ``is_approx``):
      the same with ``epsilon_mode="corrected"`` and
      ``higher_rank_mars=False`` (their rule: the MARS step for matrices
      only, AdamW for tensors of rank 3 or more).

    Example:

    >>> import keras, keras_opts
    >>> w = keras.Variable([[1.0, -2.0]])
    >>> opt = keras_opts.MARS(learning_rate=0.1)
    >>> opt.apply([keras.ops.convert_to_tensor([[0.5, -3.0]])], [w])
    >>> [round(float(x), 4) for x in w.numpy()[0]]  # Adam's first step
    [0.9, -1.9]

    References:
        Yuan, Liu, Wu, Gu & Zhou, "MARS: Unleashing the Power of Variance
        Reduction for Training Large Models", ICML 2025,
        https://arxiv.org/abs/2411.10438; authors' code:
        https://github.com/AGI-Arena/MARS
    """

    capabilities = Capabilities(
        decay_in_kernel=True,
        kernel_cautious_decay=True,
        elementwise=False,
        square_slots=("velocity",),
    )

    def __init__(
        self,
        learning_rate: Any = 0.003,
        beta_1: checks.DecayRate = 0.95,
        beta_2: checks.DecayRate = 0.99,
        gamma: checks.NonNegative = 0.025,
        mars_type: Annotated[str, checks.one_of(*MARS_TYPES)] = "adamw",
        epsilon: checks.Positive = 1e-8,
        epsilon_mode: Annotated[
            str, checks.one_of("corrected", "uncorrected")
        ] = "corrected",
        weight_decay: checks.WeightDecay = 0.0,
        optimize_1d: checks.Flag = False,
        learning_rate_1d_scale: checks.Positive = 1.0,
        beta_1_1d: checks.DecayRate = 0.9,
        beta_2_1d: checks.DecayRate = 0.95,
        weight_decay_1d: checks.NonNegative = 0.1,
        higher_rank_mars: checks.Flag = False,
        previous_gradient_init: Annotated[
            str, checks.one_of(*PREVIOUS_GRADIENT_INITS)
        ] = "first",
        coupled_weight_decay: checks.NonNegative = 0.0,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**config.given(locals()))
        # Which of the two kinds of variable _run_kernel is updating.
        self._vectors = False

    def _slot_names(self):
        # The second moment of the AdamW steps: MARS-AdamW's, and plain
        # AdamW's of the other variables (none under MARS-Lion with
        # optimize_1d).
        if self.mars_type == "lion" and self.optimize_1d:
            return ("momentum", "previous_gradient")
        return ("momentum", "velocity", "previous_gradient")

    def _takes_mars_step(self, variable) -> bool:
        rank = len(variable.shape)
        if self.optimize_1d or rank == 2:
            return True
        return self.higher_rank_mars and rank > 2

    def _run_kernel(self, k, grads, variables, learning_rate):
        """The MARS step for the variables that take it, then AdamW for
        the others."""
        mars = [self._takes_mars_step(v) for v in variables]
        for vectors in (False, True):
            part = [i for i, m in enumerate(mars) if m != vectors]
            if not part:
                continue
            self._vectors = vectors
            super()._run_kernel(
                k,
                [grads[i] for i in part],
                [variables[i] for i in part],
                learning_rate,
            )
        self._vectors = False

    def _variable_coefficients(self, variable):
        if not self._vectors:
            return {"weight_decay": step.kernel_weight_decay(self, variable)}
        if not keras_api.uses_weight_decay(self, variable):
            return {"weight_decay": 0.0}
        return {"weight_decay": self.weight_decay_1d}

    def _coefficients(self, learning_rate, t):
        if self._vectors:
            learning_rate = learning_rate * self.learning_rate_1d_scale
            beta_1, beta_2 = self.beta_1_1d, self.beta_2_1d
        else:
            beta_1, beta_2 = self.beta_1, self.beta_2
        adam = formulas.adam_coefficients(
            learning_rate, t, beta_1, beta_2, self.epsilon, self.epsilon_mode
        )
        return MARSCoefficients(
            learning_rate=learning_rate,
            step_size=adam.step_size,
            denominator_epsilon=adam.denominator_epsilon,
            later=ops.cast(t > 1.0, t.dtype),
        )

    def _kernel(self, k, p, g, s, c):
        if self._vectors:  # plain AdamW
            m = formulas.ema_(k, s.momentum, g, self.beta_1_1d)
            v = formulas.ema_square_(k, s.velocity, g, self.beta_2_1d)
            d = formulas.denominator(
                k, v, c.denominator_epsilon, self.epsilon_mode
            )
            self._decay(k, p, m, c)
            k.addcdiv_(p, m, d, -c.step_size)
            return
        difference = k.sub(g, s.previous_gradient)
        if self.previous_gradient_init == "first":
            difference = k.mul_(difference, c.later)  # g_0 = g_1
        k.copy_(s.previous_gradient, g)
        scale = self.gamma * self.beta_1 / (1.0 - self.beta_1)
        corrected = k.add_(k.mul_(difference, scale), g)
        clip = 1.0 / ops.maximum(k.norm(corrected), 1.0)
        corrected = k.scale(corrected, clip)
        m = formulas.ema_(k, s.momentum, corrected, self.beta_1)
        self._decay(k, p, m, c)
        if self.mars_type == "lion":
            # torch.sign(nan) is 0: adding 0 * m lets a non-finite
            # gradient reach the weights on every backend (as Lion does).
            direction = k.add_(k.sign(m), m, 0.0)
            k.add_(p, direction, -c.learning_rate)
            return
        v = formulas.ema_square_(k, s.velocity, corrected, self.beta_2)
        d = formulas.denominator(k, v, c.denominator_epsilon, self.epsilon_mode)
        k.addcdiv_(p, m, d, -c.step_size)

    def _decay(self, k, p, m, c):
        """The decoupled decay (of the weight before the step, which does
        not read it); under ``cautious_weight_decay`` only where the step,
        along ``m``'s sign, and the weight agree in sign."""
        if not self._decays():
            return
        decayed = p
        if self.cautious_weight_decay:
            decayed = k.mul_(k.agreeing(m, p), p)
        k.sub_(p, k.scale(decayed, c.learning_rate * c.weight_decay))

    def _decays(self) -> bool:
        if self._vectors:
            return bool(self.weight_decay_1d)
        return bool(self.weight_decay)


class MARSCoefficients(NamedTuple):
    """The scalars of MARS' step ``t`` for one kind of variable."""

    #: The learning rate of this kind of variable (times
    #: ``learning_rate_1d_scale`` for the AdamW step).
    learning_rate: Any
    #: ``lr sqrt(1 - beta_2^t) / (1 - beta_1^t)``: the AdamW step.
    step_size: Any
    #: The ``epsilon`` of the denominator (``formulas.denominator``).
    denominator_epsilon: Any
    #: 0 at ``t = 1``, where ``g_0 = g_1``, else 1.
    later: Any
    #: This variable's decoupled decay (0 where it is excluded).
    weight_decay: Any = 0.0
