"""The Kronecker-factored preconditioner of PSGD-Kron (Li, 2018 and 2024),
as small pure ``keras.ops`` functions.

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

from collections.abc import Sequence

import keras
from keras import ops

from keras_opts._core import foreach, matrix
from keras_opts._core.step_options import slot_prefix

#: The memory-saving modes: which axes get a diagonal factor whatever their
#: size (Evan Walters' ``kron_torch``, followed by pytorch-optimizer).
MEMORY_SAVE_MODES = (None, "one_diag", "smart_one_diag", "all_diag")

#: Added to every normalizer (the smallest normal bfloat16, as the
#: reference implementations add): only a zero gradient makes it matter.
TINY = 1.1754943508222875e-38


def cond(condition, fit, keep):
    """``keras.ops.cond``: one traced program for both branches under
    ``jax.jit`` and ``tf.function``. On a concrete JAX value (a stateful,
    eager step) a Python branch: ``jax.lax.cond`` would compile both
    branches anew at every call. Under ``torch.compile``, ``torch.cond``:
    Keras' cond branches in Python on torch, which breaks the graph on a
    tensor."""
    if keras.backend.backend() == "jax":
        import jax

        if not isinstance(condition, jax.core.Tracer):
            return fit() if bool(condition) else keep()
    if keras.backend.backend() == "torch" and foreach.compiling():
        import torch

        return torch.cond(
            condition,
            lambda: [_standard(x) for x in fit()],
            lambda: [_standard(x) for x in keep()],
        )
    return ops.cond(condition, fit, keep)


def _standard(x):
    """``x`` copied to row-major strides, size-1 dimensions included
    (``contiguous()`` keeps theirs): ``torch.cond`` needs its branches'
    outputs to agree in strides, and not to be an input itself."""
    import torch

    return torch.clone(x, memory_format=torch.contiguous_format)


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


def initial_factors(optimizer, variable, shape, triangular, scale, dtype):
    """The Kronecker factors of ``variable``, optimizer variables:
    ``scale`` times the identity for a triangular factor, ``scale``
    everywhere for a diagonal one (stored as a vector). Under a
    ``keras.distribution`` layout a factor's rows are sharded like the
    dimension of ``variable`` it stands for (``matrix.factor_layout``)."""
    rank = len(variable.shape)
    groups = [(i,) for i in range(rank)]
    if len(shape) != rank:  # a scalar as (1,), or merged dimensions
        groups = [()] if rank == 0 else [tuple(range(rank - 1)), (rank - 1,)]
    prefix = slot_prefix(variable)
    variables = []
    for i, (d, tri, dims) in enumerate(zip(shape, triangular, groups)):
        factor_shape = (d, d) if tri else (d,)
        variables.append(
            optimizer.add_variable(
                shape=factor_shape,
                initializer=(
                    keras.initializers.Identity(scale)
                    if tri
                    else keras.initializers.Constant(scale)
                ),
                dtype=dtype,
                name=f"{prefix}_q{i}",
                layout=matrix.factor_layout(variable, dims, factor_shape),
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
