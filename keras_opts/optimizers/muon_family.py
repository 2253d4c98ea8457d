"""NorMuon and AdaMuon: Muon's orthogonalized momentum normalized by a
second moment of its own."""

from __future__ import annotations

import math
from typing import Annotated, Any

import keras
from keras import ops

from keras_opts._core import checks, config, formulas
from keras_opts.optimizers.muon import Muon
from keras_opts.optimizers.muon_layout import from_matrices, to_matrices

RESCALES = ("preserve", "orthogonal")


@keras.saving.register_keras_serializable(package="keras_opts")
class NorMuon(Muon):
    r"""NorMuon (Li et al., 2025): Muon with a second moment per output
    neuron.

    Muon's orthogonalized matrix gives every singular direction the same
    size, but not every neuron: some output neurons still get much larger
    updates than others. NorMuon keeps, per neuron (a column of the
    $m \times n$ matrix: fan-in $m$, fan-out $n$), a running average of
    the mean square of its column of the orthogonalized matrix $O_t$ and
    divides the column by its root, then gives the result back the norm it
    had. It costs one number per neuron of state.

    Symbols: as :class:`Muon`'s, and $\beta_2$ = ``beta_2``, $\epsilon_2$
    = ``normalization_epsilon``; $O_t$ Muon's orthogonalized matrix (before
    its scale $s$), $v_0 = 0$:

    $$
    \begin{aligned}
    v_t &= \beta_2 v_{t-1} + (1 - \beta_2)\, \tfrac{1}{m}
        \textstyle\sum_i (O_t)_{ij}^2 \quad \text{(per column } j) \\
    \hat O_t &= O_t / (\sqrt{v_t} + \epsilon_2) \\
    U_t &= \hat O_t \, r_t / (\lVert \hat O_t \rVert_F + \epsilon_2) \\
    \theta_t &= \theta_{t-1} - \eta \lambda \theta_{t-1} - \eta\, s\, U_t
    \end{aligned}
    $$

    with $r_t = \lVert O_t \rVert_F$ (``rescale="preserve"``, the authors'
    code) or $r_t = \sqrt{\min(m, n)}$, the norm of an exactly orthogonal
    matrix (``"orthogonal"``; with ``"match_rms_adamw"``, $s = 0.2
    \sqrt{\max(m, n)}$ and the update's RMS is 0.2: the paper's Algorithm
    1). Which variables get it, and AdamW for the others, as
    :class:`Muon`; an attention kernel's neurons are those of its
    projection, a convolution's its output channels.

    Args:
        learning_rate: float, ``LearningRateSchedule`` or callable.
            Default 0.001 (with ``"match_rms_adamw"``, AdamW's scale).
        beta_2: $\beta_2$, the neurons' second-moment decay. Default 0.95.
        normalization_epsilon: $\epsilon_2$. Default 1e-10.
        rescale: ``"preserve"`` or ``"orthogonal"`` (see above). Default
            ``"preserve"``.
        **kwargs: :class:`Muon`'s arguments (``momentum``, ``nesterov``,
            ``ns_coefficients``, ``adjust_learning_rate``, the ``adam_*``
            settings, ...) and Keras'.

    Reproducing other libraries (their weights are ``(out, in)``; Muon
    maps the same matrices transposed to the same update transposed):

    - the authors' ``NorMuon(lr, weight_decay=w, momentum=m, beta2=b)``
      (hidden matrices) = ``NorMuon(lr, beta_2=b, momentum=m,
      weight_decay=w, adjust_learning_rate="original",
      ns_dtype="bfloat16")``;
    - ``pytorch_optimizer.NorMuon(lr, momentum=m, beta2=b,
      weight_decay=w, nesterov=n, ns_steps=k, eps=e,
      update_scale="preserve_norm")`` = ``NorMuon(lr, beta_2=b,
      momentum=m, nesterov=n, ns_steps=k, normalization_epsilon=e,
      weight_decay=w, adjust_learning_rate="original",
      ns_dtype="bfloat16")``.

    Example:

    >>> import keras, keras_opts
    >>> w = keras.Variable(keras.ops.ones((4, 3)))
    >>> opt = keras_opts.NorMuon()
    >>> opt.build([w])
    >>> [tuple(v.shape) for v in opt.variables if "velocity" in v.path]
    [(1, 3)]

    References:
        Li, Liu, Zhang, Yin & Zhao, "NorMuon: Making Muon more efficient
        and scalable", 2025, https://arxiv.org/abs/2510.05491
    """

    second_moment = "neuron"

    def __init__(
        self,
        learning_rate: Any = 0.001,
        beta_2: checks.DecayRate = 0.95,
        normalization_epsilon: checks.Positive = 1e-10,
        rescale: Annotated[str, checks.one_of(*RESCALES)] = "preserve",
        **kwargs: Any,
    ) -> None:
        super().__init__(**config.given(locals()))

    def _rescaled(self, k, x, s, c, view):
        return _normalized(
            k,
            x,
            s.velocity,
            self.beta_2,
            self.normalization_epsilon,
            c.velocity_correction,
            self.rescale,
            neurons=True,
            view=view,
        )


@keras.saving.register_keras_serializable(package="keras_opts")
class AdaMuon(Muon):
    r"""AdaMuon (Si et al., 2025): Muon with a second moment per entry.

    AdaMuon divides each entry of Muon's orthogonalized matrix $O_t$ by
    the root of its own bias-corrected running mean square, as Adam
    divides the gradient, then sets the result's Frobenius norm to that of
    an exactly orthogonal matrix, $\sqrt{\min(m, n)}$, so that Muon's
    scale $s$ (``"match_rms_adamw"``: the RMS of AdamW's update) holds. It
    keeps a second tensor the size of the matrix.

    Symbols: as :class:`Muon`'s, and $\beta_2$ = ``beta_2``, $\epsilon_2$
    = ``normalization_epsilon``; $O_t$ Muon's orthogonalized $m \times n$
    matrix (before its scale $s$), $v_0 = 0$:

    $$
    \begin{aligned}
    v_t &= \beta_2 v_{t-1} + (1 - \beta_2)\, O_t \odot O_t \\
    \hat O_t &= O_t / (\sqrt{v_t / (1 - \beta_2^t)} + \epsilon_2) \\
    U_t &= \hat O_t \sqrt{\min(m, n)}
        / (\lVert \hat O_t \rVert_F + \epsilon_2) \\
    \theta_t &= \theta_{t-1} - \eta \lambda \theta_{t-1} - \eta\, s\, U_t
    \end{aligned}
    $$

    Which variables get it, and AdamW for the others, as :class:`Muon`.

    Args:
        learning_rate: float, ``LearningRateSchedule`` or callable.
            Default 0.001 (with ``"match_rms_adamw"``, AdamW's scale).
        beta_2: $\beta_2$. Default 0.999.
        normalization_epsilon: $\epsilon_2$. Default 1e-8.
        **kwargs: :class:`Muon`'s arguments (``momentum``, ``nesterov``,
            ``ns_coefficients``, ``adjust_learning_rate``, the ``adam_*``
            settings, ...) and Keras'.

    Reproducing other libraries (their weights are ``(out, in)``; Muon
    maps the same matrices transposed to the same update transposed):

    - the authors' ``AdaMuon(lr, weight_decay=w, momentum=m, nesterov=n,
      ns_steps=k, beta2=b, eps=e)`` on matrices = ``AdaMuon(lr, beta_2=b,
      normalization_epsilon=e, momentum=m, nesterov=n, ns_steps=k,
      weight_decay=w, ns_dtype="bfloat16")``;
    - ``pytorch_optimizer.AdaMuon(lr, betas=(m, b), weight_decay=w,
      ns_steps=k, eps=e)`` = ``AdaMuon(lr, beta_2=b,
      normalization_epsilon=e, momentum=m, nesterov=False, ns_steps=k,
      weight_decay=w, ns_dtype="bfloat16")``.

    Example:

    >>> import keras, keras_opts
    >>> w = keras.Variable(keras.ops.ones((4, 3)))
    >>> opt = keras_opts.AdaMuon()
    >>> opt.build([w])
    >>> [tuple(v.shape) for v in opt.variables if "velocity" in v.path]
    [(4, 3)]

    References:
        Si, Zhang & Shen, "AdaMuon: Adaptive Muon Optimizer", 2025,
        https://arxiv.org/abs/2507.11005
    """

    second_moment = "entry"

    def __init__(
        self,
        learning_rate: Any = 0.001,
        beta_2: checks.DecayRate = 0.999,
        normalization_epsilon: checks.Positive = 1e-8,
        **kwargs: Any,
    ) -> None:
        super().__init__(**config.given(locals()))

    def _coefficients(self, learning_rate, t):
        return (
            super()
            ._coefficients(learning_rate, t)
            ._replace(
                velocity_correction=formulas.bias_correction(self.beta_2, t)
            )
        )

    def _rescaled(self, k, x, s, c, view):
        return _normalized(
            k,
            x,
            s.velocity,
            self.beta_2,
            self.normalization_epsilon,
            c.velocity_correction,
            "orthogonal",
            neurons=False,
            view=view,
        )


def _normalized(
    k, x, velocity, beta_2, epsilon, correction, rescale, neurons, view
):
    """The matrices ``x`` (``(..., m, n)`` of ``view``) divided by the
    root of their running mean square ``velocity`` (per column with
    ``neurons``, else per entry, in the variable's layout; divided by
    ``correction`` first), at the Frobenius norm ``rescale`` names."""
    square = ops.square(x)
    if neurons:
        square = ops.mean(square, axis=-2, keepdims=True)
    else:  # the slot is laid out as the variable
        square = from_matrices(view, square, tuple(velocity.shape))
    v = formulas.ema_(k, velocity, ops.cast(square, velocity.dtype), beta_2)
    if not neurons:
        v = to_matrices(view, v)
    v = ops.cast(v, x.dtype)
    correction = ops.cast(correction, x.dtype)
    normalized = x / (ops.sqrt(v / correction) + epsilon)
    if rescale == "preserve":
        target = _frobenius(x)
    else:
        m, n = x.shape[-2:]
        target = math.sqrt(min(m, n))
    return normalized * (target / (_frobenius(normalized) + epsilon))


def _frobenius(x):
    return ops.sqrt(ops.sum(ops.square(x), axis=(-2, -1), keepdims=True))
