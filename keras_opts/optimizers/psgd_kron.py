"""PSGD-Kron: preconditioned SGD with a Kronecker-factored preconditioner
fitted on the Lie group of triangular matrices: the optimizer, then its
algebra as small pure ``keras.ops`` functions.

A tensor ``G`` of shape ``(d_1, ..., d_k)`` is preconditioned by
``P = Q^T Q`` with ``Q = Q_1 (x) ... (x) Q_k``: each factor acts on one axis
of ``G`` and is an upper-triangular ``d_i x d_i`` matrix or, where that
would cost too much, a diagonal (a vector of ``d_i`` entries). Applying a
factor along an axis is a *mode product*; applying ``Q`` is one mode
product per axis, in any order.

The fit (Li 2024, "Stochastic Hessian Fittings with Lie Groups", the
gradient-whitening criterion ``E[h^T P h + v^T P^{-1} v]`` with a probe
``v ~ N(0, I)``) moves each factor along its Lie group:

.. math::

    A = Q h, \\quad B = Q^{-T} v, \\quad
    Q_i \\leftarrow Q_i - \\frac{\\mu}{\\lVert A_{(i)} A_{(i)}^T
        + B_{(i)} B_{(i)}^T \\rVert}
        \\operatorname{triu}(A_{(i)} A_{(i)}^T - B_{(i)} B_{(i)}^T) Q_i

where ``X_(i)`` is the mode-``i`` unfolding (axis ``i`` as rows, every
other axis flattened into columns). A diagonal factor keeps only the
diagonal of both Gram matrices and is normalized by their largest entry.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Any, NamedTuple

import keras
from keras import ops

from keras_opts._core import (
    checks,
    config,
    counter_random,
    foreach,
    formulas,
    keras_api,
    matrix,
)
from keras_opts._core.base import Optimizer

_SCHEDULES = ("random", "counter")
_DTYPES = ("float32", "float64")


def _apply_eagerly(optimizer, grads, trainable_variables):
    """The base class' ``apply``; on torch outside ``torch.compile``'s
    graph (see :meth:`PSGDKron.apply`)."""
    return Optimizer.apply(optimizer, grads, trainable_variables)


if keras.backend.backend() == "torch":
    import torch

    _apply_eagerly = torch.compiler.disable(_apply_eagerly)


#: A probability, in [0, 1].
Probability = Annotated[float, checks.in_range(low=0.0, high=1.0)]


@keras.saving.register_keras_serializable(package="keras_opts")
class PSGDKron(matrix.Preconditioned):
    r"""PSGD-Kron (Li, 2018; 2024), preconditioned SGD with the
    Kronecker-factored gradient-whitening preconditioner.

    Adam divides each entry by its own scale; PSGD-Kron learns a full
    (Kronecker-factored) matrix $P$ that also undoes the correlations
    between entries: for a weight matrix, one factor mixes its rows and
    one its columns, as Shampoo does. Unlike Shampoo, $P$ is not computed
    from accumulated statistics by an eigendecomposition or an inverse
    root: $P = Q^T Q$ is *fitted*, a few small gradient steps on $Q$ at a
    time, so that $P$ whitens the gradients ($P\,E[h h^T]\,P \approx I$,
    i.e. $P \approx E[h h^T]^{-1/2}$). Each step of the fit needs only a
    random probe $v \sim N(0, I)$, matrix products and triangular solves;
    once the fit has settled it is run on a few percent of the steps.

    Symbols: $\eta$ = ``learning_rate``, $\beta$ = ``beta_1``, $\mu$ =
    ``precond_lr``, $Q_i$ the factors of $Q = Q_1 \otimes \dots \otimes
    Q_k$ (one per axis of the variable: upper triangular, or diagonal for
    a large axis), $X_{(i)}$ the unfolding of a tensor with axis $i$ as
    rows, $p_t$ the probability of a preconditioner update at step $t$
    (below). With $Q_i = s^{1/k} I$ ($s$ = ``precond_init_scale``),
    $m_0 = 0$:

    $$
    \begin{aligned}
    m_t &= \beta m_{t-1} + (1 - \beta) g_t, \qquad
        \hat m_t = m_t / (1 - \beta^t) \\
    &\text{with probability } p_t \text{, for } h = g_t
        \text{ and a probe } v \sim N(0, I): \\
    &\qquad A = Q h, \quad B = Q^{-T} v, \quad
        T_i = A_{(i)} A_{(i)}^T, \quad S_i = B_{(i)} B_{(i)}^T \\
    &\qquad Q_i \leftarrow Q_i - \frac{\mu}{\lVert T_i + S_i \rVert_2}
        \operatorname{triu}(T_i - S_i)\, Q_i \\
    u_t &= Q^T Q\, \hat m_t, \qquad
        u_t \leftarrow u_t \min\!\left(1,
        \frac{c}{\operatorname{rms}(u_t) + 10^{-6}}\right) \\
    \theta_t &= \theta_{t-1} - \eta\, u_t
    \end{aligned}
    $$

    A diagonal factor keeps the diagonals of $T_i$ and $S_i$ and is
    normalized by $\max |T_i + S_i|$. $\lVert\cdot\rVert_2$ is Li's
    lower bound of the spectral norm (one product with the heaviest row),
    which keeps the step on the group within its trust region. $c$ =
    ``clip_update_rms`` (Evan Walters' ``kron_torch``, followed by
    pytorch-optimizer: 1.1, an update about as large as Adam's; ``None``
    for none). The $Q_i$ are rebalanced to equal largest entries before
    each fit (their product, hence $P$, is unchanged). The Keras
    ``weight_decay`` is decoupled, $\theta \leftarrow \theta - \eta
    \lambda \theta$.

    **Update schedule.** $p_t = \mathrm{clip}(p_{\max}
    e^{-\delta (t - 1 - t_0)}, p_{\min}, p_{\max})$ with $p_{\max}$ =
    ``precond_update_prob``, $p_{\min}$ = ``precond_update_prob_min``,
    $\delta$ = ``precond_update_prob_decay``, $t_0$ =
    ``precond_update_flat_steps`` (``kron_torch``'s schedule: every step
    for the first 500, then decaying to 3% of the steps over about 3,500
    more). Set ``precond_update_prob = precond_update_prob_min = p`` for a
    constant probability. With ``precond_update_schedule="random"`` (Li's
    form) a coin decides each step; with ``"counter"`` (``kron_torch``,
    pytorch-optimizer) the fit runs whenever $1/p_t$ steps have passed
    since the last one. The coin and the probes come from a counter-based
    generator in integer ``keras.ops`` (``keras_opts._core.counter_random``:
    the same numbers on every backend, compiled or not) whose seed and
    counter are a ``keras.random.SeedGenerator``'s state, part of the
    optimizer's variables (saved, so a resumed run draws what the
    uninterrupted one would have, on any backend), and the fit is switched
    on and off by ``keras.ops.cond`` (one compiled step for both). A probe
    is drawn at every step, fitted or not.

    **Shapes.** A vector (rank below ``min_ndim_triangular``) gets a
    diagonal $Q$, as does any axis of size 1 or above
    ``max_size_triangular``; ``memory_save_mode`` makes more axes diagonal
    (``"one_diag"``: the largest axis; ``"smart_one_diag"``: the largest
    axis when it is strictly the largest; ``"all_diag"``: every axis). A
    tensor of rank 3 or more gets one factor per axis, or with
    ``merge_dims=True`` is treated as the matrix of its last axis against
    all the others (a convolution kernel: its output channels against its
    receptive field). State per variable: the momentum ($n$ numbers) and
    the factors ($\sum_i d_i^2$ or $d_i$ numbers, in
    ``preconditioner_dtype``); under a ``keras.distribution`` layout a
    factor's rows are sharded like the weight's dimension it stands for
    (where that is one dimension and the mesh axis divides it).

    Args:
        learning_rate: float, ``LearningRateSchedule`` or callable. Default
            0.003; pytorch-optimizer's ``Kron`` has 0.001 and
            ``kron_torch`` 0.0003. The update's RMS is at most
            ``clip_update_rms``, but $P = I$ at first, so the first steps
            are as small as the gradient: at 0.001 a tiny Transformer with
            GPT-2's initialisation (std 0.02) keeps 0.63 of its initial
            loss after 96 steps where AdamW at 0.001 keeps 0.45; at 0.003,
            0.10 (and 0.36 instead of 0.64 on a small regression MLP).
        beta_1: momentum decay in [0, 1); 0 preconditions the gradient
            itself. Default 0.9.
        precond_lr: $\mu$, the step size of the fit, in (0, 1]. Default
            0.1.
        precond_init_scale: $s$, the initial $P = s^2 I$. Default 1.
        precond_update_prob: $p_{\max}$, in [0, 1]. Default 1.
        precond_update_prob_min: $p_{\min}$, in [0, ``precond_update_prob``].
            Default 0.03.
        precond_update_prob_decay: $\delta \ge 0$. Default 0.001.
        precond_update_flat_steps: $t_0 \ge 0$. Default 500.
        precond_update_schedule: ``"random"`` (default) or ``"counter"``.
        max_size_triangular: largest axis with a triangular factor.
            Default 8192.
        min_ndim_triangular: smallest rank with triangular factors.
            Default 2.
        memory_save_mode: ``None`` (default), ``"one_diag"``,
            ``"smart_one_diag"`` or ``"all_diag"``.
        merge_dims: see *Shapes*. Default False.
        momentum_into_precond_update: fit $P$ to the bias-corrected
            momentum $\hat m_t$ instead of the gradient (``kron_torch``'s
            and pytorch-optimizer's default). Default False (Li's: the
            preconditioner whitens the gradient).
        clip_update_rms: $c > 0$, or ``None``. Default 1.1.
        preconditioner_dtype: ``"float32"`` (default) or ``"float64"``,
            the dtype of $Q$, of the probes and of the matrix work; the
            update is cast to the variable's dtype.
        seed: the initial state of the probes' and the coin's generator,
            an int, or ``None`` for a random one. Default 0: runs are
            reproducible, and two optimizers built alike agree.
        coupled_weight_decay: L2 coefficient added to the gradient.
            Default 0.
        **kwargs: the ``keras.optimizers.Optimizer`` arguments.

    Reproducing other libraries:

    - pytorch-optimizer's ``Kron(lr, momentum=b, weight_decay=wd,
      pre_conditioner_update_probability=None, max_size_triangular=n,
      min_ndim_triangular=r, memory_save_mode=m)`` (Evan Walters'
      ``kron_torch.Kron`` up to its release 0.2.8; from 0.3.0 on,
      ``kron_torch`` fits $Q$ to the damped $h + \sqrt{\epsilon}\,
      \mathrm{mean}|h|\, v$, $\epsilon$ float32's machine epsilon and
      $v$ the probe, which pytorch-optimizer 4.1 and this class do not)
      = ``PSGDKron(lr, beta_1=b,
      weight_decay=wd, precond_update_schedule="counter",
      momentum_into_precond_update=True, max_size_triangular=n,
      min_ndim_triangular=r, memory_save_mode=m)``, with
      ``exclude_from_weight_decay`` naming the vectors (it decays only
      tensors of rank >= 2); its ``weight_decouple=False`` is
      ``coupled_weight_decay``. Its probes come from ``torch.randn_like``
      and it rebalances the factors on 1% of the fits, chosen by
      ``numpy.random``: the trajectories agree given the same probes, up
      to float32 rounding.
    - Li's ``psgd_torch`` Kron: ``precond_update_schedule="random"`` with
      a constant probability ($p_{\max} = p_{\min}$); his
      ``grad_clip_max_norm`` is Keras' ``global_clipnorm``, and his
      default has no update clipping (``clip_update_rms=None``).

    Example:

    >>> import keras, keras_opts
    >>> w = keras.Variable([[1.0, -2.0], [0.5, 3.0]])
    >>> opt = keras_opts.PSGDKron(learning_rate=0.1, seed=1)
    >>> opt.apply([keras.ops.ones((2, 2))], [w])
    >>> bool(keras.ops.all(w < [[1.0, -2.0], [0.5, 3.0]]))
    True

    References:
        Li, "Preconditioned Stochastic Gradient Descent", IEEE
        Transactions on Neural Networks and Learning Systems 29(5), 2018,
        https://arxiv.org/abs/1512.04202; Li, "Stochastic Hessian Fittings
        with Lie Groups", 2024, https://arxiv.org/abs/2402.11858; the
        author's code: https://github.com/lixilinx/psgd_torch; Evan
        Walters' ``kron_torch``: https://github.com/evanatyourservice/kron_torch
    """

    # Q differs in shape from the variable: one variable at a time.

    def __init__(
        self,
        learning_rate: Any = 0.003,
        beta_1: checks.DecayRate = 0.9,
        precond_lr: Annotated[
            float, checks.in_range(low=0.0, high=1.0, low_open=True)
        ] = 0.1,
        precond_init_scale: checks.Positive = 1.0,
        precond_update_prob: Probability = 1.0,
        precond_update_prob_min: Probability = 0.03,
        precond_update_prob_decay: checks.NonNegative = 0.001,
        precond_update_flat_steps: Annotated[int, checks.at_least(0)] = 500,
        precond_update_schedule: Annotated[
            str, checks.one_of(*_SCHEDULES)
        ] = "random",
        max_size_triangular: Annotated[int, checks.at_least(1)] = 8192,
        min_ndim_triangular: Annotated[int, checks.at_least(1)] = 2,
        memory_save_mode: Annotated[
            str | None,
            checks.optional(
                checks.one_of(*(m for m in MEMORY_SAVE_MODES if m))
            ),
        ] = None,
        merge_dims: checks.Flag = False,
        momentum_into_precond_update: checks.Flag = False,
        clip_update_rms: checks.OptionalPositive = 1.1,
        preconditioner_dtype: Annotated[
            str, checks.one_of(*_DTYPES)
        ] = "float32",
        seed: Annotated[int | None, checks.optional(checks.at_least(0))] = 0,
        coupled_weight_decay: checks.NonNegative = 0.0,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**config.given(locals()))

    def _check_arguments(self, arguments):
        checks.real(
            "precond_update_prob_min",
            arguments["precond_update_prob_min"],
            low=0.0,
            high=arguments["precond_update_prob"],
        )

    def apply(self, grads, trainable_variables=None):
        # Inductor did not finish compiling the preconditioner's fit in 15
        # minutes on two CPU cores: inside a compiled train step
        # (`jit_compile=True` on torch) the step runs eagerly, one graph
        # break here, and the rest of the train step compiles.
        if keras.backend.backend() == "torch" and foreach.compiling():
            return _apply_eagerly(self, grads, trainable_variables)
        return super().apply(grads, trainable_variables)

    # State.

    def _slot_names(self):
        return ("momentum",) if self.beta_1 else ()

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._layouts = []
        self._factors = []
        for variable in variables:
            shape, triangular = layout(
                tuple(variable.shape),
                max_size_triangular=self.max_size_triangular,
                min_ndim_triangular=self.min_ndim_triangular,
                memory_save_mode=self.memory_save_mode,
                merge_dims=self.merge_dims,
            )
            self._layouts.append((shape, triangular))
            self._factors.append(
                initial_factors(
                    self,
                    variable,
                    shape,
                    triangular,
                    self.precond_init_scale ** (1.0 / len(shape)),
                )
            )
        self._update_counter = None
        if self.precond_update_schedule == "counter":
            self._update_counter = self.add_variable(
                shape=(), dtype="int32", name="precond_update_counter"
            )
        self._seed_generator = keras.random.SeedGenerator(
            self.seed, name=f"{self.name}_seed_generator"
        )
        keras_api.track_variable(self, self._seed_generator.state)
        # Set by _begin_update at each step; False outside one.
        self._fit_now = ops.convert_to_tensor(False)

    # The step.

    def _begin_update(self):
        # One decision per step, for every variable.
        probability = update_probability(
            self.iterations,
            self.precond_update_prob,
            self.precond_update_prob_decay,
            self.precond_update_flat_steps,
            self.precond_update_prob_min,
        )
        if self.precond_update_schedule == "random":
            coin = counter_random.uniform((), self._seed_generator)
            self._fit_now = coin < probability
            return
        count = self._update_counter + 1
        self._fit_now = ops.logical_and(
            probability > 0.0, ops.cast(count, "float32") >= 1.0 / probability
        )
        self.assign(
            self._update_counter,
            ops.where(self._fit_now, ops.zeros_like(count), count),
        )

    def _coefficients(self, learning_rate, t):
        correction = 1.0
        if self.beta_1:
            correction = formulas.bias_correction(self.beta_1, t)
        return PSGDKronCoefficients(learning_rate, correction, self._fit_now)

    def _kernel(self, k, p, g, s, c):
        index = keras_api.variable_index(self, p)
        shape, triangular = self._layouts[index]
        factors = self._factors[index]
        dtype = self.preconditioner_dtype
        momentum = g
        if self.beta_1:
            momentum = k.lerp_(s.momentum, g, 1.0 - self.beta_1)
        # Drawn at every step, so that the stream does not depend on the
        # coin.
        probe = counter_random.normal(
            tuple(p.shape), self._seed_generator, dtype
        )
        corrected = ops.reshape(ops.cast(momentum / c.correction, dtype), shape)
        fitted_to = ops.reshape(ops.cast(g, dtype), shape)
        if self.momentum_into_precond_update:
            fitted_to = corrected
        current = tuple(ops.convert_to_tensor(q) for q in factors)

        def fit():
            return tuple(
                fitted(
                    balanced(current),
                    triangular,
                    fitted_to,
                    ops.reshape(probe, shape),
                    self.precond_lr,
                )
            )

        new = matrix.cond(c.fit_now, fit, lambda: current)
        for variable, value in zip(factors, new):
            self.assign(variable, value)
        update = preconditioned(new, triangular, corrected)
        if self.clip_update_rms is not None:
            # Not ops.mean nor ops.minimum, float32 on torch for float64.
            size = max(1, math.prod(shape))
            rms = ops.sqrt(ops.sum(update * update) / size)
            scale = self.clip_update_rms / (rms + 1e-6)
            update = update * ops.where(scale < 1.0, scale, 1.0)
        update = ops.cast(ops.reshape(update, tuple(p.shape)), p.dtype)
        k.sub_(p, update, c.learning_rate)


class PSGDKronCoefficients(NamedTuple):
    """The scalars of PSGD-Kron's step ``t``."""

    learning_rate: Any
    #: ``1 - beta_1^t``, the momentum's bias correction (1 without one).
    correction: Any
    #: Whether the preconditioner is fitted at this step (a boolean
    #: scalar, the same for every variable).
    fit_now: Any


# The Kronecker-factored preconditioner's algebra.

#: The memory-saving modes: which axes get a diagonal factor whatever their
#: size (Evan Walters' ``kron_torch``, followed by pytorch-optimizer).
MEMORY_SAVE_MODES = (None, "one_diag", "smart_one_diag", "all_diag")

#: Added to every normalizer (the smallest normal bfloat16, as the
#: reference implementations add): only a zero gradient makes it matter.
TINY = 1.1754943508222875e-38


def layout(
    shape: Sequence[int],
    *,
    max_size_triangular: int,
    min_ndim_triangular: int,
    memory_save_mode: str | None,
    merge_dims: bool,
) -> tuple[tuple[int, ...], tuple[bool, ...]]:
    """The shape the preconditioner sees and, per axis, whether its factor
    is triangular (True) or diagonal (False).

    A scalar is seen as ``(1,)``; with ``merge_dims`` a tensor of rank > 2
    is seen as a matrix, every axis but the last merged into the rows.
    An axis of size 1, larger than ``max_size_triangular``, of a tensor of
    rank below ``min_ndim_triangular`` or chosen by ``memory_save_mode``
    gets a diagonal factor.
    """
    shape = tuple(int(d) for d in shape)
    if not shape:
        shape = (1,)
    if merge_dims and len(shape) > 2:
        rows = 1
        for d in shape[:-1]:
            rows *= d
        shape = (rows, shape[-1])
    diagonal = [False] * len(shape)
    largest = max(range(len(shape)), key=lambda i: (shape[i], i))
    if memory_save_mode == "one_diag":
        diagonal[largest] = True
    elif memory_save_mode == "smart_one_diag":
        ordered = sorted(shape)
        if len(shape) >= 2 and ordered[-1] > ordered[-2]:
            diagonal[largest] = True
    elif memory_save_mode == "all_diag":
        diagonal = [True] * len(shape)
    triangular = tuple(
        not (
            diagonal[i]
            or d == 1
            or d > max_size_triangular
            or len(shape) < min_ndim_triangular
        )
        for i, d in enumerate(shape)
    )
    return shape, triangular


def _along(factor, x, axis):
    """A diagonal ``factor`` shaped to broadcast along ``axis`` of ``x``."""
    shape = [1] * len(x.shape)
    shape[axis] = -1
    return ops.reshape(factor, shape)


# The matrix products are einsums: Keras 3.15's torch ``tensordot``,
# ``matmul``, ``norm``, ``prod``, ``maximum`` and ``minimum`` take their
# result dtype from a promotion lattice that maps float64 to float32 on
# every backend but TensorFlow (and ``mean`` sums in float32), so a
# float64 preconditioner would be computed in float32 on torch (``norm``
# also on JAX with ``jax_enable_x64``).


def _letters(rank):
    return "abcdefghijklmnopqrstuvwxy"[:rank]


def _matmul(a, b):
    """``a @ b`` for a vector or matrix ``a`` and a matrix ``b``, or a
    matrix ``a`` and a vector ``b``, in their dtype."""
    left = "ij" if len(a.shape) == 2 else "j"
    right = "jk" if len(b.shape) == 2 else "j"
    out = (left[0] if len(a.shape) == 2 else "") + (
        "k" if len(b.shape) == 2 else ""
    )
    return ops.einsum(f"{left},{right}->{out}", a, b)


def _norm(x):
    """The Euclidean norm of a vector, in its dtype."""
    return ops.sqrt(ops.sum(x * x))


def mode_product(factor, x, axis, triangular, transpose=False):
    """``factor`` (or its transpose) applied along ``axis`` of ``x``."""
    if not triangular:
        return x * _along(factor, x, axis)
    letters = _letters(len(x.shape))
    new = "z"
    matrix = letters[axis] + new if transpose else new + letters[axis]
    out = letters[:axis] + new + letters[axis + 1 :]
    return ops.einsum(f"{matrix},{letters}->{out}", factor, x)


def mode_solve_transposed(factor, x, axis, triangular):
    """``factor^{-T}`` applied along ``axis`` of ``x``: a triangular solve
    (``Q^T`` is lower triangular), or a division for a diagonal factor."""
    if not triangular:
        return x / _along(factor, x, axis)
    moved = ops.moveaxis(x, axis, 0)
    rows = ops.reshape(moved, (moved.shape[0], -1))
    solved = ops.solve_triangular(ops.transpose(factor), rows, lower=True)
    return ops.moveaxis(ops.reshape(solved, moved.shape), 0, axis)


def gram(x, axis, triangular):
    """``X_(i) X_(i)^T`` for the mode-``axis`` unfolding of ``x``; its
    diagonal alone for a diagonal factor."""
    others = [a for a in range(len(x.shape)) if a != axis]
    if not triangular:
        return ops.sum(x * x, axis=others) if others else x * x
    letters = _letters(len(x.shape))
    other = letters[:axis] + "z" + letters[axis + 1 :]
    return ops.einsum(f"{letters},{other}->{letters[axis]}z", x, x)


def _at_least(x, low):
    """``maximum(x, low)`` in ``x``'s dtype."""
    return ops.where(x > low, x, low)


def norm_lower_bound(a):
    """A lower bound of the spectral norm of the symmetric matrix ``a``,
    within a factor ``sqrt(d)`` and usually far tighter (Li's estimate):
    scaled by its largest entry, one product with its heaviest row (or
    column) gives a unit vector ``x``, and ``||x a||`` bounds the norm."""
    largest = ops.amax(ops.abs(a))
    a = a / ops.where(largest > 0, largest, ops.ones_like(largest))
    squares = a * a
    column_sums = ops.sum(squares, axis=0)
    row_sums = ops.sum(squares, axis=1)
    tiny = ops.convert_to_tensor(TINY, a.dtype)

    x0 = _matmul(ops.take(a, ops.argmax(column_sums), axis=1), a)
    x0 = x0 / _at_least(_norm(x0), tiny)
    bound0 = _norm(_matmul(x0, ops.transpose(a)))
    x1 = _matmul(a, ops.take(a, ops.argmax(row_sums), axis=0))
    x1 = x1 / _at_least(_norm(x1), tiny)
    bound1 = _norm(_matmul(ops.transpose(a), x1))
    bound = ops.where(
        ops.amax(column_sums) > ops.amax(row_sums), bound0, bound1
    )
    return largest * bound


def balanced(factors):
    """The factors rescaled to equal largest entries, their product
    unchanged: no factor drifts towards overflow while another shrinks."""
    if len(factors) < 2:
        return list(factors)
    norms = [ops.amax(ops.abs(q)) for q in factors]
    product = norms[0]
    for n in norms[1:]:
        product = product * n
    # The exponent a tensor: torch's ``power`` rounds a Python one to
    # float32.
    exponent = ops.convert_to_tensor(1.0 / len(factors), product.dtype)
    mean = ops.power(product, exponent)
    return [q * (mean / n) for q, n in zip(factors, norms)]


def fitted(factors, triangular, h, v, step_size):
    """The factors after one step of the fit on the pair ``(v, h)``.

    Every Gram matrix comes from the factors as given; then each factor
    moves: ``Q_i - mu triu(T1 - T2) Q_i / ||T1 + T2||`` (triangular) or
    ``q_i - mu (t1 - t2) q_i / max|t1 + t2|`` (diagonal).
    """
    a, b = h, v
    for axis, (q, tri) in enumerate(zip(factors, triangular)):
        a = mode_product(q, a, axis, tri)
        b = mode_solve_transposed(q, b, axis, tri)
    tiny = ops.convert_to_tensor(TINY, h.dtype)
    new = []
    for axis, (q, tri) in enumerate(zip(factors, triangular)):
        term1, term2 = gram(a, axis, tri), gram(b, axis, tri)
        if tri:
            scale = step_size / (norm_lower_bound(term1 + term2) + tiny)
            new.append(q - scale * _matmul(ops.triu(term1 - term2), q))
        else:
            scale = step_size / (ops.amax(ops.abs(term1 + term2)) + tiny)
            new.append(q - scale * (term1 - term2) * q)
    return new


def preconditioned(factors, triangular, g):
    """``P g = Q^T Q g``: each factor along its axis, then its transpose."""
    for axis, (q, tri) in enumerate(zip(factors, triangular)):
        g = mode_product(q, g, axis, tri)
    for axis, (q, tri) in enumerate(zip(factors, triangular)):
        g = mode_product(q, g, axis, tri, transpose=True)
    return g


def initial_factors(optimizer, variable, shape, triangular, scale):
    """The Kronecker factors of ``variable``, optimizer variables:
    ``scale`` times the identity for a triangular factor, ``scale``
    everywhere for a diagonal one (stored as a vector). Under a
    ``keras.distribution`` layout a factor's rows are sharded like the
    dimension of ``variable`` it stands for (``matrix.factor_layout``)."""
    rank = len(variable.shape)
    groups = [(i,) for i in range(rank)]
    if len(shape) != rank:  # a scalar as (1,), or merged dimensions
        groups = [()] if rank == 0 else [tuple(range(rank - 1)), (rank - 1,)]
    variables = []
    for i, (d, tri, dims) in enumerate(zip(shape, triangular, groups)):
        variables.append(
            optimizer._add_factor(
                variable,
                f"q{i}",
                (d, d) if tri else (d,),
                dims,
                initializer=(
                    keras.initializers.Identity(scale)
                    if tri
                    else keras.initializers.Constant(scale)
                ),
            )
        )
    return variables


def update_probability(iterations, maximum, decay, flat_steps, minimum):
    """$p_t$, the probability of fitting the preconditioner at this step,
    from the count of earlier updates, in float32:
    ``clip(maximum exp(-decay (t - flat_steps)), minimum, maximum)``."""
    steps = ops.cast(iterations, "float32")
    decayed = maximum * ops.exp(-decay * (steps - float(flat_steps)))
    return ops.clip(decayed, minimum, maximum)
