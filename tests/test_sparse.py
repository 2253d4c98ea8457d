"""Sparse gradients: an ``Embedding`` trains with every optimizer as its
dense equivalent does, and ``lazy_rows`` leaves untouched rows alone.

On TensorFlow an ``Embedding``'s gradient is ``tf.IndexedSlices`` (checked
below); keras_opts makes it dense before the update, so the result must
equal a model whose lookup is a dense ``one_hot @ table`` product. The
two sum a row's repeated ids in different orders, so they agree to 16
float32 roundings of the largest weight per step (as in the distributed
tests), not bitwise.
"""

import keras
import numpy as np
import pytest

from tests import helpers
from tests import specs as registry
from tests.distributed import common

VOCAB, DIM, IDS = 10, 3, 4
BATCH, BATCHES = 16, 4
SPECS = [pytest.param(s, id=s.name) for s in registry.SPECS]
LAZY = [
    pytest.param(s, id=s.name)
    for s in registry.SPECS
    if s.cls.capabilities.elementwise
]


class DenseLookup(keras.layers.Layer):
    """An embedding written as ``one_hot(ids) @ table``: a dense gradient."""

    def build(self, input_shape):
        self.embeddings = self.add_weight(shape=(VOCAB, DIM), name="embeddings")

    def call(self, ids):
        return keras.ops.one_hot(ids, VOCAB) @ self.embeddings


def _model(dense=False):
    keras.utils.set_random_seed(0)
    lookup = DenseLookup() if dense else keras.layers.Embedding(VOCAB, DIM)
    model = keras.Sequential(
        [
            keras.Input((IDS,), dtype="int32"),
            lookup,
            keras.layers.Flatten(),
            keras.layers.Dense(1),
        ]
    )
    return model


def _data(seed, high=VOCAB, every_batch_all=False):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, high, (BATCH * BATCHES, IDS)).astype("int32")
    if every_batch_all:  # each batch holds every id at least once
        for b in range(BATCHES):
            x[b * BATCH : b * BATCH + 3].flat[:VOCAB] = np.arange(VOCAB)
    y = rng.standard_normal((len(x), 1)).astype("float32")
    return x, y


def _fit(model, optimizer, x, y):
    if optimizer is not None:
        model.compile(optimizer=optimizer, loss="mse")
    model.fit(x, y, batch_size=BATCH, shuffle=False, verbose=0)


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="TensorFlow's type"
)
def test_the_embedding_gradient_is_indexed_slices_on_tensorflow():
    import tensorflow as tf

    model = _model()
    x, y = _data(0)
    with tf.GradientTape() as tape:
        loss = keras.ops.mean((model(x[:BATCH]) - y[:BATCH]) ** 2)
    grads = tape.gradient(loss, model.trainable_weights)
    assert isinstance(grads[0], tf.IndexedSlices)


@pytest.mark.parametrize(
    "extra",
    [{}, {"skip_nonfinite": True, "gradient_centralization": True}],
    ids=["plain", "skip-centralize"],
)
@pytest.mark.parametrize(
    "spec", helpers.shared(SPECS, "embedding_matches_its_dense_equivalent")
)
def test_embedding_matches_its_dense_equivalent(spec, extra):
    x, y = _data(1)
    sparse, dense = _model(), _model(dense=True)
    dense.set_weights(sparse.get_weights())
    for model in (sparse, dense):
        kwargs = dict(max(spec.test_configs, key=len))
        kwargs.update(spec.convergence["parabola"][0], **extra)
        _fit(model, spec.cls(**kwargs), x, y)
    ours, theirs = sparse.get_weights(), dense.get_weights()
    tol = common.tolerance(theirs, steps=BATCHES, factor=16)
    for a, b in zip(ours, theirs):
        assert np.all(np.isfinite(a))
        np.testing.assert_allclose(a, b, rtol=0, atol=tol, err_msg=spec.name)


def _table_state(model):
    """The table and every table-shaped optimizer slot, as arrays."""
    table = model.layers[0].embeddings
    optimizer = model.optimizer
    index = optimizer._get_variable_index(table)
    arrays = [keras.ops.convert_to_numpy(table)]
    for slots in optimizer._slots.values():
        arrays.append(keras.ops.convert_to_numpy(slots[index]))
    return [np.array(a) for a in arrays]


@pytest.mark.parametrize("spec", LAZY)
def test_lazy_rows_leave_untouched_rows_and_slots_alone(spec):
    kwargs = dict(max(spec.test_configs, key=len))
    kwargs.update(spec.convergence["parabola"][0])
    model = _model()
    _fit(model, spec.cls(lazy_rows=True, **kwargs), *_data(2))
    before = _table_state(model)
    _fit(model, None, *_data(3, high=VOCAB - 2))  # rows 8 and 9 unused
    after = _table_state(model)
    assert any(
        not np.array_equal(a[:-2], b[:-2]) for a, b in zip(after, before)
    )
    for a, b in zip(after, before):
        np.testing.assert_array_equal(a[-2:], b[-2:], err_msg=spec.name)


@pytest.mark.parametrize("spec", LAZY)
def test_lazy_rows_equal_dense_updates_when_every_row_is_touched(spec):
    kwargs = dict(max(spec.test_configs, key=len))
    kwargs.update(spec.convergence["parabola"][0])
    x, y = _data(4, every_batch_all=True)
    lazy, eager = _model(), _model()
    _fit(lazy, spec.cls(lazy_rows=True, **kwargs), x, y)
    _fit(eager, spec.cls(**kwargs), x, y)
    # Not bitwise: the lazy step runs per variable (torch: not the
    # multi-tensor kernels; XLA: fused differently), so one float32
    # rounding per step may differ.
    ours, theirs = _table_state(lazy), _table_state(eager)
    tol = common.tolerance(theirs, steps=BATCHES)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=0, atol=tol, err_msg=spec.name)


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param(s, id=s.name)
        for s in registry.SPECS
        if not s.cls.capabilities.elementwise
    ],
)
def test_lazy_rows_need_an_elementwise_algorithm(spec):
    with pytest.raises(ValueError, match="Received: lazy_rows=True"):
        spec.cls(lazy_rows=True)


SPARSE_BACKEND = keras.backend.backend() in ("tensorflow", "jax")
SHAPE, ROWS = (5, 3, 2), (0, 2, 4)
EXTRAS = {
    "plain": {},
    "skip-centralize": {
        "skip_nonfinite": True,
        "gradient_centralization": True,
    },
    "lazy": {"lazy_rows": True},
}
SPARSE_CASES = [
    pytest.param(spec, extra, id=f"{spec.name}-{key}")
    for spec in registry.SPECS
    for key, extra in EXTRAS.items()
    if spec.cls.capabilities.elementwise or "lazy_rows" not in extra
]


def _sparse(values):
    """The sparse gradient of this backend as Keras' own optimizer tests
    build it: ``IndexedSlices`` with tuple indices and ``dense_shape``
    (TensorFlow), ``BCOO`` (JAX)."""
    values = keras.ops.convert_to_tensor(values)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.IndexedSlices(values, ROWS, SHAPE)
    from jax.experimental import sparse

    return sparse.BCOO((values, tuple((r,) for r in ROWS)), shape=SHAPE)


def _sparse_and_dense_steps(steps=4):
    rng = np.random.default_rng(5)
    start = rng.standard_normal(SHAPE).astype("float32")
    pairs = []
    for _ in range(steps):
        values = rng.standard_normal((len(ROWS), *SHAPE[1:])).astype("float32")
        dense = np.zeros(SHAPE, "float32")
        dense[list(ROWS)] = values
        pairs.append((_sparse(values), dense))
    return start, pairs


def _optimizer(spec, extra):
    kwargs = dict(max(spec.test_configs, key=len))
    return spec.cls(learning_rate=spec.lr, **kwargs, **extra)


@pytest.mark.skipif(not SPARSE_BACKEND, reason="no sparse tensors on torch")
@pytest.mark.parametrize("spec, extra", SPARSE_CASES)
def test_sparse_gradient_gives_the_dense_result(spec, extra):
    """``apply`` with a sparse gradient equals ``apply`` with its dense
    form, bit for bit (the same dense tensor reaches the update)."""
    start, pairs = _sparse_and_dense_steps()
    variables = [keras.Variable(start), keras.Variable(start)]
    optimizers = [_optimizer(spec, extra), _optimizer(spec, extra)]
    for sparse, dense in pairs:
        for optimizer, variable, grad in zip(
            optimizers, variables, (sparse, dense)
        ):
            optimizer.apply([grad], [variable])
    ours, theirs = (keras.ops.convert_to_numpy(v) for v in variables)
    assert np.all(np.isfinite(ours))
    np.testing.assert_array_equal(ours, theirs, err_msg=spec.name)


@pytest.mark.skipif(
    keras.backend.backend() != "jax", reason="JAX's stateless path"
)
@pytest.mark.parametrize("spec, extra", SPARSE_CASES)
def test_sparse_gradient_gives_the_dense_result_stateless(spec, extra):
    """``stateless_apply`` under ``jax.jit`` (what ``fit()`` runs) with a
    ``BCOO`` gradient equals it with the dense gradient, to one float32
    rounding per step: the two are different XLA programs (the densifying
    scatter is fused with the update), which may round differently."""
    import jax

    start, pairs = _sparse_and_dense_steps()
    results = []
    for which in (0, 1):
        optimizer = _optimizer(spec, extra)
        variable = keras.Variable(start)
        optimizer.build([variable])
        state = [v.value for v in optimizer.variables]
        values = [variable.value]
        step = jax.jit(optimizer.stateless_apply)
        for pair in pairs:
            values, state = step(state, [pair[which]], values)
        results.append(np.asarray(values[0]))
    assert np.all(np.isfinite(results[0]))
    tol = helpers.float32_tolerance([[results[1]]], steps=len(pairs))
    np.testing.assert_allclose(
        results[0], results[1], rtol=0, atol=tol, err_msg=spec.name
    )
