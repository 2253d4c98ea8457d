"""ADOPT: Adam-type steps that converge for any beta_2."""

from __future__ import annotations

from typing import Any, NamedTuple

import keras
from keras import ops

from keras_opts._core import checks, config, formulas
from keras_opts._core.base import Optimizer
from keras_opts._core.step import Capabilities


@keras.saving.register_keras_serializable(package="keras_opts")
class ADOPT(Optimizer):
    r"""ADOPT (Taniguchi et al., 2024), Algorithm 2 (with clipping) or
    Algorithm 1 (``clipping=False``).

    Adam's second moment $v_t$ contains the current gradient, so the
    normalised step is correlated with it; that is why Adam can diverge
    unless $\beta_2$ suits the problem. ADOPT normalises the gradient by
    the *previous* second moment, and applies momentum after the
    normalisation. The first gradient only initialises $v$: the first call
    changes no weight.

    Symbols: $\eta$ = ``learning_rate``, $\beta_1, \beta_2$ =
    ``beta_1, beta_2``, $\epsilon$ = ``epsilon``; with $g_1$ the gradient
    of the first call, $v_1 = g_1^2$, $m_1 = 0$, and for $t = 2, 3, \dots$
    (the paper's $t - 1$):

    $$
    \begin{aligned}
    u_t &= \mathrm{clip}\!\left(\frac{g_t}{\max(\sqrt{v_{t-1}}, \epsilon)},
        (t - 1)^{1/4}\right) \\
    m_t &= \beta_1 m_{t-1} + (1 - \beta_1) u_t \\
    \theta_t &= \theta_{t-1} - \eta\, m_t \\
    v_t &= \beta_2 v_{t-1} + (1 - \beta_2) g_t^2
    \end{aligned}
    $$

    where $\mathrm{clip}(x, c)$ limits each entry to $[-c, c]$ (no clip
    with ``clipping=False``).

    Args:
        learning_rate: float, ``LearningRateSchedule`` or callable. Default
            0.001.
        beta_1: momentum decay in [0, 1). Default 0.9.
        beta_2: second-moment decay in [0, 1). Default 0.9999 (the
            paper's).
        epsilon: positive floor of $\sqrt{v}$. Default 1e-6 (the paper's).
        clipping: clip the normalised gradient at $(t - 1)^{1/4}$. Default
            True.
        coupled_weight_decay: L2 coefficient added to the gradient.
            Default 0.
        **kwargs: the ``keras.optimizers.Optimizer`` arguments.

    Reproducing other libraries:

    - ``optax.contrib.adopt(lr, b1, b2, eps, use_clipping=c)`` =
      ``ADOPT(lr, b1, b2, eps, clipping=c)``. The authors' code clips at
      $t^{1/4}$, one step later than the paper and optax.

    Example:

    >>> import keras, keras_opts
    >>> w = keras.Variable([1.0, -2.0])
    >>> opt = keras_opts.ADOPT(learning_rate=0.1)
    >>> g = keras.ops.convert_to_tensor([0.5, -3.0])
    >>> opt.apply([g], [w])  # initialises v only
    >>> opt.apply([g], [w])
    >>> [round(float(x), 4) for x in w.numpy()]
    [0.99, -1.99]

    References:
        Taniguchi, Harada, Minegishi, Oshima, Jeong, Nagahara, Iiyama,
        Suzuki, Iwasawa & Matsuo, "ADOPT: Modified Adam Can Converge with
        Any beta_2 with the Optimal Rate", NeurIPS 2024,
        https://arxiv.org/abs/2411.02853; authors' code:
        https://github.com/iShohei220/adopt
    """

    capabilities = Capabilities(square_slots=("velocity",))

    def __init__(
        self,
        learning_rate: Any = 0.001,
        beta_1: checks.DecayRate = 0.9,
        beta_2: checks.DecayRate = 0.9999,
        epsilon: checks.Positive = 1e-6,
        clipping: checks.Flag = True,
        coupled_weight_decay: checks.NonNegative = 0.0,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**config.given(locals()))

    def _slot_names(self):
        return ("momentum", "velocity")

    def _coefficients(self, learning_rate, t):
        # The first step only sets v = g^2: every weight below is 0 or 1
        # there, so one kernel serves every step.
        later = ops.cast(t > 1.0, t.dtype)
        return ADOPTCoefficients(
            step_size=learning_rate * later,
            weight_1=later * (1.0 - self.beta_1),
            decay_2=later * self.beta_2,
            # 1 - beta_2 from the Python float: in float32 it would be off
            # by 1.7e-4 relative at beta_2 = 0.9999.
            weight_2=ops.cast(
                ops.where(t > 1.0, 1.0 - self.beta_2, 1.0), t.dtype
            ),
            clip=ops.power(t - 1.0, 0.25),
        )

    def _kernel(self, k, p, g, s, c):
        u = k.div(g, k.maximum_(k.sqrt(s.velocity), self.epsilon))
        if self.clipping:
            u = k.clamp_(u, -c.clip, c.clip)
        m = k.lerp_(s.momentum, u, c.weight_1)
        k.sub_(p, m, c.step_size)
        formulas.ema_square_(k, s.velocity, g, c.decay_2, c.weight_2)


class ADOPTCoefficients(NamedTuple):
    """The scalars of ADOPT's step ``t``."""

    #: ``lr``; 0 at ``t = 1``.
    step_size: Any
    #: ``1 - beta_1``, the weight of the normalised gradient in ``m``; 0 at
    #: ``t = 1``.
    weight_1: Any
    #: ``beta_2``; 0 at ``t = 1``, where ``v = g^2``.
    decay_2: Any
    #: ``1 - beta_2``; 1 at ``t = 1``.
    weight_2: Any
    #: ``(t - 1)^(1/4)``, the clipping bound.
    clip: Any
