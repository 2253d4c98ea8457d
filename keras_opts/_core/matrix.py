"""What the matrix preconditioners (Shampoo, SOAP, PSGD-Kron) share: the
base class :class:`Preconditioned` (a step per variable, factors laid out
like the dimensions they stand for, refreshes on a schedule), and the
algebra: merging a variable's dimensions into a matrix, cutting it into
square-ish blocks, inverse roots and eigenbases of symmetric matrices, all
through ``keras.ops`` so that they run on TensorFlow, JAX and torch alike.

Blocks are stored stacked: a matrix of ``m x n`` cut into blocks of at
most ``b`` rows and columns is padded with zeros to ``(I b_m) x (J b_n)``
and held as ``(I, J, b_m, b_n)``, so that every block's statistics are one
batched tensor and one batched ``eigh`` refreshes them all. The padding
is exact: a zero row of the gradient adds nothing to a block's left
statistics but a zero row and column, so ``L + epsilon I`` is block
diagonal between the real rows and the padded ones and its inverse root
maps the (zero) padded rows to zero and the real ones as the unpadded
block's own root would.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from keras_opts._core import foreach
from keras_opts._core.base import Optimizer
from keras_opts._core.step import Capabilities, slot_prefix


class Preconditioned(Optimizer):
    """Base class of the optimizers that keep matrix factors per variable.

    - Their step reads the whole variable and runs per variable: no
      ``lazy_rows``, no torch multi-tensor path.
    - A factor is an optimizer variable of ``preconditioner_dtype`` (an
      argument of each subclass) named after its variable, laid out under
      ``keras.distribution`` like the dimensions of the variable it stands
      for (:meth:`_add_factor`, :func:`factor_layout`).
    - A refresh (an inverse root, an eigenbasis, a fitted factor) runs
      where a scalar condition of the step holds, in one traced program
      for both cases (:meth:`_refresh`, :func:`refresh`).
    """

    capabilities = Capabilities(elementwise=False, foreach=False)

    def _add_factor(self, variable, name, shape, dims, initializer="zeros"):
        """A factor of ``shape`` for ``variable``, whose rows stand for its
        dimensions ``dims``."""
        return self.add_variable(
            shape=shape,
            initializer=initializer,
            dtype=self.preconditioner_dtype,
            name=f"{slot_prefix(variable)}_{name}",
            layout=factor_layout(variable, dims, shape),
        )

    def _refresh(self, condition, compute, targets) -> list:
        """:func:`refresh` of ``targets`` by this optimizer."""
        return refresh(self, condition, compute, targets)


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


def matrix_shape(shape) -> tuple[int, int] | None:
    """The matrix a variable of ``shape`` is preconditioned as: every
    dimension but the last merged into the rows (a convolution kernel
    ``(h, w, in, out)`` becomes ``(h * w * in, out)``); None for a scalar
    or a vector."""
    shape = tuple(int(d) for d in shape)
    if len(shape) < 2:
        return None
    return math.prod(shape[:-1]), shape[-1]


def blocks(size: int, block_size: int) -> tuple[int, int]:
    """``(count, length)``: a dimension of ``size`` cut into ``count``
    blocks of ``length`` (the last one padded)."""
    length = min(size, block_size)
    return -(-size // length), length


def to_blocks(x, rows: tuple[int, int], cols: tuple[int, int]):
    """The matrix ``x`` (``m x n``) as stacked blocks ``(I, J, b_m, b_n)``,
    zero-padded; ``rows = (I, b_m)``, ``cols = (J, b_n)``."""
    m, n = x.shape
    (i, bm), (j, bn) = rows, cols
    if i * bm != m or j * bn != n:
        x = ops.pad(x, ((0, i * bm - m), (0, j * bn - n)))
    x = ops.reshape(x, (i, bm, j, bn))
    return ops.transpose(x, (0, 2, 1, 3))


def from_blocks(x, shape: tuple[int, int]):
    """The inverse of :func:`to_blocks`: stacked blocks back to the
    ``m x n`` matrix, padding dropped."""
    i, j, bm, bn = x.shape
    x = ops.reshape(ops.transpose(x, (0, 2, 1, 3)), (i * bm, j * bn))
    m, n = shape
    if i * bm != m or j * bn != n:
        x = x[:m, :n]
    return x


def matmul(a, b):
    """``a @ b`` of each pair of matrices of two batches, in their dtype.

    Through ``einsum``: Keras 3.15's torch ``matmul`` and ``tensordot``
    take their result dtype from a promotion lattice that, beside a JAX
    without ``jax_enable_x64``, makes two float64 operands float32."""
    return ops.einsum("...ij,...jk->...ik", a, b)


def transpose(x):
    """The transpose of each matrix of a batch (the last two axes)."""
    return ops.swapaxes(x, -1, -2)


def gram_left(x):
    """``X X^T`` of each matrix of a batch."""
    return matmul(x, transpose(x))


def gram_right(x):
    """``X^T X`` of each matrix of a batch."""
    return matmul(transpose(x), x)


def symmetric_eigh(a, dtype):
    """Eigenvalues (ascending) and eigenvectors of each symmetric matrix
    of the batch ``a``, computed in ``dtype`` from ``(a + a^T) / 2`` (the
    float32 rounding of a sum of outer products is not exactly
    symmetric)."""
    a = ops.cast(a, dtype)
    return _one_at_a_time(ops.eigh, 0.5 * (a + transpose(a)))


def _one_at_a_time(decompose, a):
    """``decompose(a)`` (``ops.eigh`` or ``ops.qr``) of a batch of
    matrices, on JAX as one call per matrix.

    JAX's CPU kernels for a batch run its matrices as tasks on XLA's
    thread pool and block until they finish. Two such calls running at
    once (two factors refreshed in one step) can take every thread of the
    pool (two on a 2-core machine) while their tasks wait in its queue: the
    step never ends. A call per matrix runs in the thread that makes it.
    """
    if keras.backend.backend() != "jax" or a.ndim == 2:
        return decompose(a)
    batch, (m, n) = a.shape[:-2], a.shape[-2:]
    flat = ops.reshape(a, (-1, m, n))
    parts = [decompose(flat[i]) for i in range(flat.shape[0])]
    return tuple(
        ops.reshape(ops.stack(list(p)), (*batch, *p[0].shape))
        for p in zip(*parts)
    )


def inverse_root(a, root: float, epsilon: float, dtype):
    """``(a + epsilon I)^{-1/root}`` of each symmetric positive
    semi-definite matrix of the batch ``a``, through its
    eigendecomposition in ``dtype``, returned in ``a``'s dtype.

    Eigenvalues are clipped at 0 before ``epsilon`` is added: a rounding
    can make one slightly negative, and its root would be NaN. A ``1 x 1``
    matrix is its own eigenvalue (see :func:`_is_scalar`).
    """
    if _is_scalar(a):
        value = ops.maximum(ops.cast(a, dtype), ops.zeros((), dtype)) + epsilon
        return ops.cast(ops.power(value, -1.0 / root), a.dtype)
    values, vectors = symmetric_eigh(a, dtype)
    # A zero tensor of the values' dtype: Keras 3.15's torch maximum with
    # a Python 0.0 returns float32, which would round float64 roots.
    values = ops.maximum(values, ops.zeros((), values.dtype)) + epsilon
    scaled = vectors * ops.expand_dims(ops.power(values, -1.0 / root), -2)
    return ops.cast(matmul(scaled, transpose(vectors)), a.dtype)


def eigenbasis(a, dtype):
    """The eigenvectors of each symmetric matrix of the batch ``a``,
    ordered by descending eigenvalue, in ``a``'s dtype."""
    if _is_scalar(a):
        return ops.ones_like(a)
    _, vectors = symmetric_eigh(a, dtype)
    return ops.cast(ops.flip(vectors, axis=-1), a.dtype)


def power_iteration_qr(a, basis, dtype):
    """One step of subspace iteration toward the eigenbasis of ``a``:
    ``Q R = qr(a @ basis)`` with ``basis``'s columns first sorted by
    descending Rayleigh quotient ``diag(basis^T a basis)``. Returns
    ``(Q, order)``, ``order`` the permutation applied to the columns (an
    integer tensor over the last axis)."""
    if _is_scalar(a):
        return ops.ones_like(ops.cast(basis, dtype)), ops.zeros(
            a.shape[:-1], "int32"
        )
    a = ops.cast(a, dtype)
    basis = ops.cast(basis, dtype)
    quotients = ops.sum(basis * matmul(a, basis), axis=-2)
    order = ops.argsort(-quotients, axis=-1)
    basis = ops.take(basis, order, axis=-1)
    q, _ = _one_at_a_time(ops.qr, matmul(a, basis))
    return q, order


#: The shift of :func:`shifted_power_iteration`, relative to the factor's
#: Frobenius norm: float32 products then place the columns it keeps to
#: 2^-24 / 1e-3 = 6e-5 at worst, and one step still moves toward every
#: eigenvector whose eigenvalue exceeds about 1e-3 of the largest.
BASIS_SHIFT = 1e-3


def shifted_power_iteration(a, basis, dtype, shift=None):
    """One step of subspace iteration toward the eigenbasis of the
    symmetric positive semi-definite matrix ``a`` that moves ``basis``
    continuously: ``basis``'s columns sorted by descending Rayleigh
    quotient ``diag(basis^T a basis)``, ``Q R = qr((a + lambda I) basis)``
    in that order with ``R``'s diagonal positive, and each column of
    ``Q`` stored where its column of ``basis`` was. ``lambda = shift *
    ||a||_F`` (a zero ``a`` keeps ``basis``).

    The shift makes ``(a + lambda I) basis`` nonsingular, with each column
    at least ``lambda`` long: its QR factor with a positive ``R`` diagonal
    is unique and a continuous function of ``a`` and ``basis``, and where
    ``a`` has a null space (a rank-deficient factor), or eigenvalues far
    below ``lambda``, the columns there keep their direction from
    ``basis`` instead of taking one from rounding. Without it, as in
    :func:`power_iteration_qr`, those columns of ``a @ basis`` are
    rounding noise and so are their directions after QR.

    The QR runs on the symmetrically permuted ``P^T (a + lambda I) basis
    P`` (``P`` the sort), whose ``Q P^T`` is that of the sorted columns
    up to the permutation: a column of ``basis`` that is a coordinate
    vector outside ``a``'s support (an unused row of an embedding) then
    sits on the diagonal, Householder reflections leave it exactly as it
    is, and the gradient's coordinates along it stay exactly zero.

    Where two quotients tie, the two orders give bases that differ by
    about the pair's coupling ``q_i^T a q_j / (a_i + lambda)``: zero for
    eigenvectors and for directions in ``a``'s null space."""
    if _is_scalar(a):
        return ops.ones_like(ops.cast(basis, dtype))
    if shift is None:
        shift = BASIS_SHIFT
    a = ops.cast(a, dtype)
    basis = ops.cast(basis, dtype)
    product = matmul(a, basis)
    order = ops.argsort(-ops.sum(basis * product, axis=-2), axis=-1)
    # ||a||_F scaled by its largest entry, which cannot overflow.
    largest = ops.amax(ops.abs(a))
    scale = ops.where(largest > 0, largest, ops.ones((), dtype))
    norm = scale * ops.sqrt(ops.sum(ops.square(a / scale)))
    shifted = ops.where(largest > 0, product + (shift * norm) * basis, basis)
    shifted = ops.take(ops.take(shifted, order, axis=0), order, axis=1)
    q, r = _one_at_a_time(ops.qr, shifted)
    signs = ops.where(ops.diagonal(r) < 0, -1.0, 1.0)
    q = q * ops.cast(signs, dtype)
    inverse = ops.argsort(order, axis=-1)
    return ops.take(ops.take(q, inverse, axis=0), inverse, axis=1)


def _is_scalar(a) -> bool:
    """Whether the matrices of the batch ``a`` are ``1 x 1``: their
    eigenvector is 1 and their root is elementwise. Computed so, not
    through ``eigh`` and ``qr``: in the uncompiled ``fit()`` of
    TensorFlow 2.21 the graph optimizer (constant folding, dependency and
    arithmetic optimization together) turned the root of a ``1 x 1``
    statistic, refreshed under ``tf.cond``, into 0."""
    return a.shape[-1] == 1


def merged_shape(shape, max_dim: int) -> tuple[int, ...]:
    """``shape`` with runs of consecutive dimensions merged while their
    product stays at most ``max_dim`` (``(3, 3, 64, 128)`` with 1024 is
    ``(576, 128)``)."""
    shape = tuple(int(d) for d in shape)
    return tuple(
        math.prod(shape[i] for i in group)
        for group in merged_groups(shape, max_dim)
    )


def merged_groups(shape, max_dim: int) -> tuple[tuple[int, ...], ...]:
    """The dimensions of ``shape`` that :func:`merged_shape` merges into
    each of its dimensions (``(3, 3, 64, 128)`` with 1024 is
    ``((0, 1, 2), (3,))``)."""
    groups, group, product = [], [], 1
    for i, d in enumerate(int(d) for d in shape):
        if product * d > max_dim and product > 1:
            groups.append(tuple(group))
            group, product = [], 1
        group.append(i)
        product *= d
    groups.append(tuple(group))
    return tuple(groups)


def factor_layout(variable, dims, shape):
    """The ``keras.distribution.TensorLayout`` of a factor of ``shape``
    whose rows stand for the dimensions ``dims`` of ``variable`` (merged
    into one): its second-to-last axis (its only axis, for a diagonal
    factor stored as a vector) sharded over the mesh axis that shards
    ``variable``'s dimension, where ``dims`` is one dimension and the mesh
    axis divides the rows; None (replicated) otherwise, and without a
    distribution.

    A row of a left statistic ``G G^T`` or of its root belongs to a row
    of the weight, so it is kept on the devices that hold that row."""
    layout = getattr(variable, "_layout", None)
    axes = getattr(layout, "axes", None)
    if axes is None or len(dims) != 1 or axes[dims[0]] is None:
        return None
    mesh = layout.device_mesh
    name = axes[dims[0]]
    size = mesh.shape[list(mesh.axis_names).index(name)]
    rows = -2 if len(shape) > 1 else -1
    if shape[rows] % size:
        return None
    factor_axes = [None] * len(shape)
    factor_axes[rows] = name
    return keras.distribution.TensorLayout(factor_axes, mesh)


def refresh(optimizer, condition, compute, targets) -> list:
    """Stores ``compute()`` (a list of tensors, one per variable of
    ``targets``) into ``targets`` where the scalar ``condition`` holds and
    keeps them otherwise; returns their values after.

    One traced program for both cases under ``jax.jit`` and
    ``tf.function`` (:func:`cond`). On TensorFlow the branch assigns the
    variables itself: a ``tf.cond`` that returns an eigendecomposition
    inside the while loop of Keras' uncompiled ``fit()`` is rewritten by
    TensorFlow 2.21's graph optimizer into a loop whose outputs are
    swapped (``OptionalHasValue ... expected to be a variant tensor``).
    """
    if keras.backend.backend() == "tensorflow":

        def assign():
            for target, value in zip(targets, compute()):
                optimizer.assign(target, ops.cast(value, target.dtype))
            return ops.zeros((), "int32")

        cond(condition, assign, lambda: ops.zeros((), "int32"))
        return [ops.convert_to_tensor(target) for target in targets]

    def kept():
        return [ops.convert_to_tensor(target) for target in targets]

    def computed():
        return [
            ops.cast(value, target.dtype)
            for target, value in zip(targets, compute())
        ]

    values = cond(condition, computed, kept)
    for target, value in zip(targets, values):
        optimizer.assign(target, value)
    return values
