"""Lookahead and SWA keep Keras' optimizer contract; SAM trains quantized
models.

What a Keras optimizer promises and a wrapper must keep: ``variables`` are
the wrapper's own followed by the inner optimizer's, and ``set_weights``
takes them all, in that order; ``iterations`` is the inner optimizer's;
``stateless_apply`` is ``apply`` without side effects; checkpoints and
configs carry everything. Quantized layers (``model.quantize``) hold
``overwrite_with_gradient`` variables (float8 scales and amax histories),
which the inner optimizer overwrites with their "gradient" and which have
no slots: the wrappers and SAM must leave them to it. On TensorFlow a raw
``tf.Variable`` trains like a ``keras.Variable``.

Every comparison runs the same program twice on one backend: bitwise.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import keras_opts
from keras_opts.wrappers.lookahead import Lookahead
from keras_opts.wrappers.sam import SAM
from keras_opts.wrappers.swa import SWA
from tests import helpers

# Quantizing a model also visits its InputLayer, which has nothing to
# quantize: Keras warns about it.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Layer InputLayer does not have a `quantize` method"
)

WRAPPERS = [
    pytest.param(lambda: Lookahead(keras_opts.Adam(0.05), 2), id="lookahead"),
    pytest.param(
        lambda: Lookahead(keras.optimizers.Adam(0.05), 2),
        id="lookahead-keras-adam",
    ),
    pytest.param(
        lambda: SWA(keras_opts.SGD(0.1, momentum=0.9), 1, 3), id="swa"
    ),
    pytest.param(
        lambda: Lookahead(SWA(keras_opts.Adam(0.05), 0, 1), 2),
        id="lookahead-swa",
    ),
]


def _numpy(variables):
    return [np.array(v.numpy()) for v in variables]


def _assert_equal(actual, expected, what):
    assert len(actual) == len(expected), what
    for i, (a, e) in enumerate(zip(actual, expected)):
        np.testing.assert_array_equal(a, e, err_msg=f"{what}: {i}")


def _trained(make, params, grads):
    optimizer = make()
    variables = helpers.make_variables(params)
    apply = helpers.eager_apply(optimizer, variables)
    for g in grads:
        apply(g)
    return optimizer, variables


# set_weights.


@pytest.mark.parametrize("make", WRAPPERS)
def test_set_weights_restores_every_variable(make):
    """The inner optimizer's iterations and slots too; the next step (a
    Lookahead sync, an SWA average) is then the same from both."""
    params, grads = helpers.random_problem(seed=6, steps=4)
    a, a_weights = _trained(make, params, grads[:3])
    b, b_weights = _trained(make, params, grads[:1])
    b.set_weights(_numpy(a.variables))
    _assert_equal(_numpy(b.variables), _numpy(a.variables), "variables")
    assert int(b.iterations) == 3
    for w, value in zip(b_weights, _numpy(a_weights)):
        w.assign(value)
    helpers.eager_apply(a, a_weights)(grads[3])
    helpers.eager_apply(b, b_weights)(grads[3])
    _assert_equal(_numpy(b_weights), _numpy(a_weights), "weights")
    _assert_equal(_numpy(b.variables), _numpy(a.variables), "variables")


def test_set_weights_takes_variables_themselves():
    params, grads = helpers.random_problem(seed=6, steps=2)
    a, _ = _trained(WRAPPERS[0].values[0], params, grads)
    b = WRAPPERS[0].values[0]()
    b.build(helpers.make_variables(params))
    b.set_weights(a.variables)
    _assert_equal(_numpy(b.variables), _numpy(a.variables), "variables")


def test_set_weights_checks_the_whole_list_before_assigning():
    params, grads = helpers.random_problem(seed=6, steps=2)
    a, _ = _trained(WRAPPERS[0].values[0], params, grads)
    b = Lookahead(keras_opts.Adam(0.05), 2)
    with pytest.raises(ValueError, match="has not yet been built"):
        b.set_weights(_numpy(a.variables))
    b.build(helpers.make_variables(params))
    before = _numpy(b.variables)
    weights = _numpy(a.variables)
    n, own = len(weights), len(b._variables)
    # The wrapper's own variables alone: what Keras' base class assigns.
    with pytest.raises(
        ValueError,
        match=rf"expects {n} weights \({own} of its own, then {n - own} of "
        rf"the inner optimizer's\).*Received: {own} weights",
    ):
        b.set_weights(weights[:own])
    with pytest.raises(ValueError, match=rf"Received: {n + 1} weights"):
        b.set_weights([*weights, weights[-1]])
    bad = [*weights[:-1], weights[-1][..., :1]]
    path = b.variables[-1].path
    with pytest.raises(
        ValueError,
        match=rf"weight {n - 1} \({path}\) must have shape \(2, 3, 2\). "
        r"Received: shape \(2, 3, 1\)",
    ):
        b.set_weights(bad)
    _assert_equal(_numpy(b.variables), before, "unchanged")


# Quantized models.


def _float8_dense():
    layer = keras.layers.Dense(3)
    layer.build((None, 4))
    layer.quantize("float8")
    variables = list(layer.trainable_variables)
    overwritten = [
        getattr(v, "overwrite_with_gradient", False) for v in variables
    ]
    assert sum(overwritten) == 6 and not any(overwritten[:2])
    return variables, overwritten


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("make", WRAPPERS)
def test_overwrite_with_gradient_variables_are_the_inner_optimizers(
    make, compiled
):
    """float8 scales and amax histories take their gradient at every step,
    sync and average steps included; the kernel and bias train as in a
    model without them."""
    variables, overwritten = _float8_dense()
    rng = np.random.default_rng(7)
    steps = [
        [rng.standard_normal(v.shape).astype(np.float32) for v in variables]
        for _ in range(4)
    ]
    optimizer = make()
    run = helpers.compiled_apply if compiled else helpers.eager_apply
    apply = run(optimizer, variables)
    ordinary = [v for v, o in zip(variables, overwritten) if not o]
    plain = helpers.make_variables(_numpy(ordinary))
    reference = make()
    apply_reference = run(reference, plain)
    for grads in steps:
        apply(grads)
        apply_reference([g for g, o in zip(grads, overwritten) if not o])
        expected = iter(_numpy(plain))
        for v, g, o in zip(variables, grads, overwritten):
            np.testing.assert_array_equal(
                v.numpy(), g if o else next(expected), err_msg=v.path
            )
    assert int(optimizer.iterations) == 4
    wrapper = optimizer
    while isinstance(wrapper, Lookahead):
        wrapper = wrapper.inner_optimizer
    if isinstance(wrapper, SWA):
        last = _numpy(variables)
        averages = iter(_numpy(a for a in wrapper._averages if a is not None))
        with wrapper.averaged():
            for v, o, value in zip(variables, overwritten, last):
                expected = value if o else next(averages)
                np.testing.assert_array_equal(v.numpy(), expected, v.path)
        _assert_equal(_numpy(variables), last, "restored")


def _quantized_network(mode):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(2)])
    model.quantize(mode)
    return model


def _data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((48, 5)).astype("float32")
    y = (x @ rng.standard_normal((5, 1))).astype("float32")
    return x, y


QUANTIZED = [
    pytest.param(
        lambda inner: Lookahead(inner, 3),
        lambda: keras_opts.Adam(0.01),
        id="lookahead",
    ),
    pytest.param(
        lambda inner: Lookahead(inner, 3),
        lambda: keras.optimizers.Adam(0.01),
        id="lookahead-keras-adam",
    ),
    pytest.param(
        lambda inner: SWA(inner, 1, 1),
        lambda: keras_opts.SGD(0.01, momentum=0.9),
        id="swa",
    ),
]


def _fit_quantized(mode, optimizer):
    x, y = _data()
    model = _quantized_network(mode)
    model.compile(optimizer=optimizer, loss="mse")
    losses = model.fit(
        x, y, batch_size=16, epochs=1, shuffle=False, verbose=0
    ).history["loss"]
    assert np.all(np.isfinite(losses))
    assert int(model.optimizer.iterations) == 3
    return model


@pytest.mark.parametrize("wrap, make_inner", QUANTIZED)
def test_fit_an_int8_model(wrap, make_inner):
    """Its kernel is an int8 constant; the bias trains."""
    model = _fit_quantized("int8", wrap(make_inner()))
    assert [v.name for v in model.trainable_variables] == ["bias"]


@pytest.mark.parametrize("wrap, make_inner", QUANTIZED)
def test_fit_a_float8_model(wrap, make_inner):
    """Three steps, the last a Lookahead sync: the float8 scales and
    histories are the inner optimizer's alone, though the sync moved the
    weights back (SWA moves nothing: every variable is the inner one's)."""
    model = _fit_quantized("float8", wrap(make_inner()))
    alone = _fit_quantized("float8", make_inner())
    pairs = list(zip(model.trainable_variables, alone.trainable_variables))
    synced = isinstance(model.optimizer, Lookahead)
    for mine, theirs in pairs:
        if synced and not getattr(mine, "overwrite_with_gradient", False):
            assert np.any(mine.numpy() != theirs.numpy()), mine.path
        else:
            np.testing.assert_array_equal(
                mine.numpy(), theirs.numpy(), err_msg=mine.path
            )
    assert all(
        getattr(v, "overwrite_with_gradient", False) for v, _ in pairs[2:]
    )


class _RecordingSAM(SAM):
    """Records which gradients reach the perturbation (at trace time)."""

    def perturbation(self, grads):
        self.perturbed = [g is not None for g in grads]
        return super().perturbation(grads)


def test_sam_leaves_float8_state_to_the_optimizer():
    """The float8 scales and histories are neither perturbed nor in the
    norm, and the optimizer gets the first pass' values for them (the
    statistics at w, as a plain step takes them)."""
    x, y = _data()
    kwargs = {"batch_size": 48, "epochs": 1, "shuffle": False, "verbose": 0}
    sam = _RecordingSAM(_quantized_network("float8"), rho=0.5, name="sam")
    sam.compile(optimizer=Lookahead(keras_opts.SGD(0.1), 2), loss="mse")
    losses = sam.fit(x, y, **kwargs).history["loss"]
    assert np.all(np.isfinite(losses))
    variables = sam.trainable_variables
    overwritten = [
        getattr(v, "overwrite_with_gradient", False) for v in variables
    ]
    assert sam.perturbed == [not o for o in overwritten]
    plain = _quantized_network("float8")
    plain.compile(optimizer=keras_opts.SGD(0.1), loss="mse")
    plain.fit(x, y, **kwargs)
    for mine, theirs, o in zip(
        variables, plain.trainable_variables, overwritten
    ):
        if o:
            np.testing.assert_array_equal(
                mine.numpy(), theirs.numpy(), err_msg=mine.path
            )
        else:
            assert np.any(mine.numpy() != theirs.numpy()), mine.path


# Raw tf.Variable.


@pytest.mark.skipif(
    helpers.BACKEND != "tensorflow", reason="tf.Variable is TensorFlow's"
)
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("make", [WRAPPERS[0], WRAPPERS[2]])
def test_raw_tf_variables_train_like_keras_variables(make, compiled):
    import tensorflow as tf

    params, grads = helpers.random_problem(seed=8, steps=4)

    def run(variables):
        optimizer = make()

        def step(g):
            optimizer.apply_gradients(zip(g, variables))

        if compiled:
            step = tf.function(step, jit_compile=True)
        for g in grads:
            step([tf.constant(x) for x in g])
        return optimizer

    raw = [tf.Variable(p) for p in params]
    wrapped = helpers.make_variables(params)
    a, b = run(raw), run(wrapped)
    _assert_equal(_numpy(raw), _numpy(wrapped), "weights")
    _assert_equal(_numpy(a.variables), _numpy(b.variables), "variables")
    assert int(a.iterations) == 4


# The rest of the contract.


@pytest.mark.parametrize("make", WRAPPERS)
def test_iterations_and_variables_are_the_inner_optimizers(make):
    params, grads = helpers.random_problem(seed=9, steps=3)
    optimizer, _ = _trained(make, params, grads)
    inner = optimizer.inner_optimizer
    assert optimizer.iterations is inner.iterations
    assert int(optimizer.iterations) == 3
    own = optimizer._variables
    assert [id(v) for v in optimizer.variables] == [
        id(v) for v in [*own, *inner.variables]
    ]
    assert own[0] is optimizer._iterations
    paths = [v.path for v in optimizer.variables]
    assert len(set(paths)) == len(paths)


@pytest.mark.skipif(
    helpers.BACKEND != "tensorflow", reason="tf.train.Checkpoint"
)
@pytest.mark.parametrize("make", WRAPPERS)
def test_tf_checkpoint_round_trip(make, tmp_path):
    import tensorflow as tf

    params, grads = helpers.random_problem(seed=10, steps=4)
    a, a_weights = _trained(make, params, grads[:3])
    path = tf.train.Checkpoint(optimizer=a).save(str(tmp_path / "ckpt"))
    saved = _numpy(a.variables)
    helpers.eager_apply(a, a_weights)(grads[3])
    tf.train.Checkpoint(optimizer=a).restore(path).assert_consumed()
    _assert_equal(_numpy(a.variables), saved, "restored")
    b = make()
    b.build(helpers.make_variables(params))
    tf.train.Checkpoint(optimizer=b).restore(path).assert_consumed()
    _assert_equal(_numpy(b.variables), saved, "fresh")


@pytest.mark.parametrize("make", WRAPPERS)
def test_stateless_apply_is_apply(make):
    """Four steps with a sync and averages. TensorFlow has no
    ``stateless_apply`` (Keras: it does not fit tf.distribute). On torch
    Keras' own ``stateless_apply`` writes into the tensors it is given,
    so they are copies."""
    params, grads = helpers.random_problem(seed=11, steps=4)
    stateful, weights = _trained(make, params, grads)
    optimizer = make()
    variables = helpers.make_variables(params)
    optimizer.build(variables)
    before = _numpy(optimizer.variables)
    state = [keras.ops.copy(v.value) for v in optimizer.variables]
    values = [keras.ops.copy(v.value) for v in variables]
    if helpers.BACKEND == "tensorflow":
        with pytest.raises(ValueError, match="not supported with the Tens"):
            optimizer.stateless_apply(state, grads[0], values)
        _assert_equal(_numpy(optimizer.variables), before, "unchanged")
        return
    for g in grads:
        g = [keras.ops.convert_to_tensor(x) for x in g]
        values, state = optimizer.stateless_apply(state, g, values)
    _assert_equal(_numpy(optimizer.variables), before, "unchanged")
    _assert_equal(
        [keras.ops.convert_to_numpy(v) for v in values],
        _numpy(weights),
        "weights",
    )
    _assert_equal(
        [keras.ops.convert_to_numpy(v) for v in state],
        _numpy(stateful.variables),
        "state",
    )


@pytest.mark.parametrize("make", WRAPPERS)
def test_keras_optimizers_serialize_deserialize_and_get(make):
    optimizer = make()
    config = optimizer.get_config()
    serialized = keras.optimizers.serialize(optimizer)
    for restored in (
        keras.optimizers.deserialize(serialized),
        keras.optimizers.get(serialized),
    ):
        assert type(restored) is type(optimizer)
        assert restored.get_config() == config
        assert type(restored.inner_optimizer) is type(optimizer.inner_optimizer)


@pytest.mark.parametrize("cls", [Lookahead, SWA])
def test_a_config_naming_only_the_inner_optimizer(cls):
    """Keras' convention: the other arguments take their defaults."""
    inner = keras.optimizers.serialize(keras_opts.Adam(0.01))
    optimizer = keras.optimizers.get(
        {
            "class_name": f"keras_opts>{cls.__name__}",
            "config": {"optimizer": inner},
        }
    )
    assert type(optimizer.inner_optimizer) is keras_opts.Adam

    def without_names(config):
        return {
            key: without_names(value) if isinstance(value, dict) else value
            for key, value in config.items()
            if key != "name"
        }

    expected = cls(keras_opts.Adam(0.01)).get_config()
    assert without_names(optimizer.get_config()) == without_names(expected)
    with pytest.raises(ValueError, match="is missing optimizer"):
        keras.optimizers.get(
            {"class_name": f"keras_opts>{cls.__name__}", "config": {}}
        )


def test_a_sam_config_naming_only_the_model():
    model = keras.saving.serialize_keras_object(
        keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    )
    sam = SAM.from_config({"model": model})
    assert (sam.rho, sam.epsilon) == (0.05, 1e-12)
    with pytest.raises(ValueError, match="is missing model"):
        SAM.from_config({"rho": 0.1})


def test_lookahead_sync_keeps_the_constraint():
    """The synchronised weights are constrained like any update: here the
    slow weights start at the unconstrained initial weights, and half way
    to the constrained fast weights is still negative."""
    start = np.array([-1.0, 0.5, -0.25, 2.0], np.float32)
    v = keras.Variable(start)
    v.constraint = keras.constraints.NonNeg()
    free = keras.Variable(start)
    grads = np.array([0.5, -1.0, 0.25, 1.0], np.float32)
    optimizer = Lookahead(keras_opts.SGD(0.1), 2)
    unconstrained = Lookahead(keras_opts.SGD(0.1), 2)
    for _ in range(2):
        optimizer.apply([keras.ops.convert_to_tensor(grads)], [v])
        unconstrained.apply([keras.ops.convert_to_tensor(grads)], [free])
    # Entries 1 and 3 stay positive all along, so they follow the free
    # run; entries 0 and 2 sync to -0.5 and -0.125, clipped to 0.
    assert np.any(free.numpy() < 0)
    expected = np.maximum(free.numpy(), 0)
    np.testing.assert_array_equal(v.numpy(), expected)
    np.testing.assert_array_equal(optimizer._slow[0].numpy(), expected)
