"""Gradients as the base class' features need them: sparse ones made dense,
centralized, checked for non-finite values, and the rows a ``lazy_rows``
update leaves alone."""

from __future__ import annotations

import contextlib

import keras
from keras import ops


def dense(gradient):
    """A sparse gradient as a dense tensor, duplicate indices summed:
    TensorFlow's ``IndexedSlices`` (an ``Embedding``'s gradient) and
    ``SparseTensor``, JAX's ``BCOO``; anything else unchanged."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        if isinstance(gradient, tf.IndexedSlices):
            return tf.convert_to_tensor(gradient)
        if isinstance(gradient, tf.SparseTensor):
            return tf.sparse.to_dense(gradient)
    elif backend == "jax":
        from jax.experimental import sparse

        if isinstance(gradient, sparse.JAXSparse):
            return gradient.todense()
    return gradient


def centralize(gradient, variable):
    """Gradient centralization (Yong et al., 2020): a gradient of rank >= 2
    loses its mean over every axis but the last (the output units of a
    Dense or conv kernel). ``None`` stays ``None``; the "gradient" of an
    ``overwrite_with_gradient`` variable (a float8 layer's scale or amax
    history: its next value) is left as it is."""
    if gradient is None or getattr(variable, "overwrite_with_gradient", False):
        return gradient
    # Dense first: the shape of an IndexedSlices built with a tuple
    # `dense_shape` cannot be read.
    gradient = dense(gradient)
    if len(gradient.shape) < 2:
        return gradient
    axes = tuple(range(len(gradient.shape) - 1))
    return gradient - ops.mean(gradient, axis=axes, keepdims=True)


def centralize_all(grads, variables) -> list:
    """:func:`centralize` of each gradient with its variable."""
    return [centralize(g, v) for g, v in zip(grads, variables)]


def none_given(grads) -> bool:
    """Every gradient is None: Keras raises "No gradients provided"."""
    return len(grads) > 0 and all(g is None for g in grads)


def all_finite(grads):
    """One boolean: every entry of every gradient is finite."""
    flags = [ops.all(ops.isfinite(dense(g))) for g in grads if g is not None]
    return ops.all(ops.stack(flags))


@contextlib.contextmanager
def untouched_rows_kept(optimizer, gradient, state):
    """``lazy_rows``: on exit, the rows (slices along the first axis) of
    the variable ``state[0]`` and of its slots ``state[1:]`` where
    ``gradient`` is zero get their values from entry back. Rows are told
    from the gradient before any L2 term, which touches every row."""
    variable = state[0]
    axes = tuple(range(1, len(variable.shape)))
    touched = ops.not_equal(dense(gradient), 0)
    if axes:
        touched = ops.any(touched, axis=axes, keepdims=True)
    # Copies of the values (torch assigns in place).
    before = [ops.copy(ops.convert_to_tensor(x)) for x in state]
    yield
    for x, old in zip(state, before):
        new = ops.convert_to_tensor(x)
        optimizer.assign(x, ops.where(touched, new, old))
