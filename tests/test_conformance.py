"""Keras' optimizer conventions, held by every keras_opts optimizer and
wrapper.

What Keras 3.15.1 checks of its own optimizers
(``keras/src/optimizers/optimizer_test.py`` and
``optimizer_sparse_test.py``), checked here anew on every registry
optimizer (``registry.SPECS``, at the spec's learning rate), on Lookahead
around a keras_opts optimizer and around Keras' ``Adam``, on SWA, and, for
the parts that train a model, on SAM. Where Keras pins its SGD's numbers,
the check pins the property instead: the optimizer with a feature against
the same optimizer without it, or against what the feature means (EMA of
the plain trajectory, the unscaled step, one step on the mean of the
accumulated gradients). Both sides run the same program on the same
backend, so they agree bitwise unless a test says otherwise.

Steps run eagerly (``apply_gradients``), except gradient accumulation on
JAX, which runs ``stateless_apply`` under ``jax.jit`` as ``fit`` does;
models train with ``fit(run_eagerly=True)``, except the quantized one on
TensorFlow (see ``_fit_quantized``).

A wrapper refuses Keras' base arguments (clipping, EMA, accumulation, loss
scaling): they belong to its inner optimizer, which is where each case puts
them, and where the tests read Keras' private state
(``_accumulated_gradients``, ``_model_variables_moving_average``).
"""

from __future__ import annotations

import copy
import dataclasses
import pickle
import warnings
from collections.abc import Callable
from unittest import mock

import keras
import numpy as np
import pytest

import keras_opts
from tests import helpers
from tests import specs as registry

BACKEND = keras.backend.backend()
FLOAT32_EPS = helpers.FLOAT32_EPS

X = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
#: Gradients whose sums and means are exact in float32.
G = np.array([[1.0, -0.5], [0.25, 2.0]], np.float32)


@dataclasses.dataclass(frozen=True)
class Case:
    """An optimizer to check. ``make(name=None, **kwargs)`` builds it,
    ``kwargs`` (Keras' base arguments, ``learning_rate`` included) going to
    the optimizer that computes the update: the inner one of a wrapper."""

    id: str
    make: Callable[..., keras.optimizers.Optimizer]
    #: The update is computed by a keras_opts optimizer (so keras_opts'
    #: own base arguments, such as ``skip_nonfinite``, apply).
    ours: bool = True
    wrapper: bool = False


def _spec_case(spec):
    def make(name=None, **kwargs):
        kwargs.setdefault("learning_rate", spec.lr)
        return spec.cls(name=name, **{**spec.conformance_kwargs, **kwargs})

    return Case(spec.name, make)


def _wrapped(id_, wrapper, inner, lr, ours, **arguments):
    def make(name=None, **kwargs):
        kwargs.setdefault("learning_rate", lr)
        return wrapper(inner(**kwargs), name=name, **arguments)

    return Case(id_, make, ours=ours, wrapper=True)


#: Wrappers with short periods, so a few steps reach their own state.
#: Lookahead syncs every 4 updates: never within the 3 steps of the EMA
#: tests, whose expected values are those of the inner optimizer.
WRAPPER_CASES = (
    _wrapped(
        "lookahead-radam",
        keras_opts.Lookahead,
        keras_opts.RAdam,
        0.01,
        True,
        sync_period=4,
    ),
    _wrapped(
        "lookahead-keras_adam",
        keras_opts.Lookahead,
        keras.optimizers.Adam,
        0.01,
        False,
        sync_period=4,
    ),
    _wrapped(
        "swa-sgd",
        keras_opts.SWA,
        lambda **kw: keras_opts.SGD(momentum=0.9, **kw),
        0.05,
        True,
        average_period=2,
    ),
)
CASES = tuple(_spec_case(s) for s in registry.SPECS) + WRAPPER_CASES


def _params(cases=CASES):
    return [pytest.param(c, id=c.id) for c in cases]


#: Registry optimizers only (a wrapper has no default inner optimizer).
SPEC_CASES = _params(CASES[: len(registry.SPECS)])
ALL = _params()
#: keras_opts' skip_nonfinite changes how a step branches: run the
#: gradient-filtering checks with it too.
EXTRAS = [
    pytest.param(case, extra, id=f"{case.id}-{tag}")
    for case in CASES
    for tag, extra in (
        ("plain", {}),
        ("skip_nonfinite", {"skip_nonfinite": True}),
    )
    if case.ours or not extra
]


def _core(optimizer):
    """The optimizer that holds Keras' base features: a wrapper's inner."""
    return getattr(optimizer, "inner_optimizer", optimizer)


def _tensor(x):
    return keras.ops.convert_to_tensor(np.asarray(x, np.float32))


def _np(x):
    return np.array(keras.ops.convert_to_numpy(x))


def _int(x):
    return int(keras.ops.convert_to_numpy(x))


def _state(optimizer):
    return [_np(v) for v in optimizer.variables]


def _step(optimizer, grads, variables):
    optimizer.apply_gradients(
        [
            (None if g is None else _tensor(g), v)
            for g, v in zip(grads, variables)
        ]
    )


def _stepper(optimizer, variables):
    """``step(grads)``: one update of ``variables``. ``apply_gradients``,
    or on JAX ``stateless_apply`` under ``jax.jit``, as ``fit`` runs it
    (eager JAX compiles each ``lax.cond`` of gradient accumulation afresh
    at every step, which is slow)."""
    if BACKEND != "jax":
        return lambda grads: _step(optimizer, grads, variables)
    import jax

    optimizer.build(variables)
    jitted = jax.jit(optimizer.stateless_apply)

    def step(grads):
        values, state = jitted(
            [v.value for v in optimizer.variables],
            [_tensor(g) for g in grads],
            [v.value for v in variables],
        )
        for variable, value in zip(variables, values):
            variable.assign(value)
        for variable, value in zip(optimizer.variables, state):
            variable.assign(value)

    return step


def _assert_states_equal(actual, expected):
    assert len(actual) == len(expected)
    for i, (a, e) in enumerate(zip(actual, expected)):
        np.testing.assert_array_equal(a, e, err_msg=f"variable {i}")


def _ema(average, weights, momentum=0.9):
    """Keras' EMA step in float32, in its order of operations."""
    m = np.float32(momentum)
    return m * average + (np.float32(1.0) - m) * weights


def _assert_float32_close(actual, expected, roundings=2):
    # A few float32 roundings of the largest magnitude: the same sum in
    # another order (a fused multiply-add) may differ by that much.
    atol = roundings * FLOAT32_EPS * max(1.0, float(np.max(np.abs(expected))))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=atol)


# Iterations, missing gradients, clipping.


@pytest.mark.parametrize("case", ALL)
def test_iterations_count_each_apply(case):
    v = keras.Variable(X)
    optimizer = case.make()
    assert _int(optimizer.iterations) == 0
    for t in (1, 2):
        _step(optimizer, [G], [v])
        assert _int(optimizer.iterations) == t


@pytest.mark.parametrize("case, extra", EXTRAS)
def test_no_gradient_at_all_is_a_value_error(case, extra):
    v = keras.Variable(X)
    optimizer = case.make(**extra)
    with pytest.raises(
        ValueError, match="No gradients provided for any variable"
    ):
        _step(optimizer, [None], [v])
    np.testing.assert_array_equal(_np(v), X)
    assert _int(optimizer.iterations) == 0


@pytest.mark.parametrize("case, extra", EXTRAS)
def test_a_missing_gradient_is_skipped_with_a_warning(case, extra):
    """The variable without a gradient keeps its value; the other moves as
    if it were alone."""
    v, v2, alone = (keras.Variable(X) for _ in range(3))
    optimizer = case.make(**extra)
    with pytest.warns(UserWarning, match="Gradients do not exist"):
        _step(optimizer, [None, G], [v, v2])
    _step(case.make(**extra), [G], [alone])
    np.testing.assert_array_equal(_np(v), X)
    np.testing.assert_array_equal(_np(v2), _np(alone))
    assert _int(optimizer.iterations) == 1


CLIPS = ("clipnorm", "clipvalue", "global_clipnorm")


@pytest.mark.parametrize("case", ALL)
def test_clip_arguments_are_stored_and_exclusive(case):
    for key in CLIPS:
        assert getattr(_core(case.make(**{key: 0.1})), key) == 0.1
    for other in ("clipvalue", "global_clipnorm"):
        with pytest.raises(
            ValueError,
            match="Only one of `clipnorm`, `clipvalue` and `global_clipnorm` "
            "can",
        ):
            case.make(clipnorm=0.1, **{other: 0.1})


@pytest.mark.parametrize(
    "key, grad, expected",
    [
        pytest.param("clipnorm", [100.0, 100.0], [0.5**0.5] * 2, id="norm"),
        pytest.param("clipvalue", [100.0, -100.0], [1.0, -1.0], id="value"),
        pytest.param(
            "global_clipnorm",
            [50.0, 100.0],
            np.array([50.0, 100.0]) / np.hypot(50.0, 100.0),
            id="global_norm",
        ),
    ],
)
@pytest.mark.parametrize("case", ALL)
def test_clipped_gradient_values(case, key, grad, expected):
    optimizer = _core(case.make(**{key: 1.0}))
    (clipped,) = optimizer._clip_gradients([_tensor(grad)])
    # The norm, a square root and a division: a few float32 roundings.
    np.testing.assert_allclose(
        _np(clipped), expected, rtol=4 * FLOAT32_EPS, atol=0
    )


# EMA.


@pytest.mark.parametrize("case", ALL)
def test_ema_and_its_overwrite_frequency(case):
    """The average starts at the first step's weights, then follows
    ``0.9 a + 0.1 w`` of the plain trajectory; after the 3rd step the
    weights are overwritten with it."""
    optimizer = case.make(
        use_ema=True, ema_momentum=0.9, ema_overwrite_frequency=3
    )
    plain = case.make()
    v, w = keras.Variable(X), keras.Variable(X)
    average = None
    for t in (1, 2, 3):
        grad = G * t
        _step(optimizer, [grad], [v])
        _step(plain, [grad], [w])
        weights = _np(w)
        average = weights if average is None else _ema(average, weights)
        moving = _core(optimizer)._model_variables_moving_average[0]
        _assert_float32_close(_np(moving), average)
        if t < 3:
            np.testing.assert_array_equal(_np(v), weights, err_msg=f"{t}")
        else:
            _assert_float32_close(_np(v), average)
    assert not np.array_equal(_np(v), _np(w))


# Cases that train a model: the optimizers, and SAM around a model.

SAM_CASE = Case(
    "sam-adam",
    lambda name=None, **kwargs: keras_opts.Adam(
        name=name, **{"learning_rate": 0.01, **kwargs}
    ),
)
FIT = [*ALL, pytest.param(SAM_CASE, id="sam-adam")]


def _compile(case, model, optimizer, **kwargs):
    """The trained model: ``model``, or SAM around it for the SAM case."""
    trained = keras_opts.SAM(model) if case is SAM_CASE else model
    trained.compile(optimizer=optimizer, loss="mse", **kwargs)
    return trained


def _ones_model():
    return keras.Sequential(
        [
            keras.Input((1,)),
            keras.layers.Dense(2, kernel_initializer="ones", use_bias=False),
        ]
    )


@pytest.mark.parametrize("case", FIT)
def test_ema_in_fit(case):
    """Keras' EMA test through ``fit(run_eagerly=True)``: after 2 steps the
    weights are the average of the trajectory the same optimizer follows
    without EMA.

    With x = 1 and y = 0 the loss is mean(w ** 2) over the 2 outputs, whose
    gradient is exactly w (2 w / 2: exact in floating point), so the plain
    trajectory of an optimizer is two ``apply`` calls; SAM's comes from
    ``fit``."""
    x, y = np.ones((1, 1), np.float32), np.zeros((1, 1), np.float32)
    trajectory = []
    plain = _ones_model()
    if case is SAM_CASE:
        record = keras.callbacks.LambdaCallback(
            on_epoch_end=lambda *_: trajectory.append(_np(plain.weights[0]))
        )
        _compile(case, plain, case.make(), run_eagerly=True).fit(
            x, y, batch_size=1, epochs=2, verbose=0, callbacks=[record]
        )
    else:
        optimizer = case.make()
        for _ in range(2):
            _step(optimizer, [_np(plain.weights[0])], plain.weights)
            trajectory.append(_np(plain.weights[0]))
    model = _ones_model()
    optimizer = case.make(use_ema=True, ema_momentum=0.9)
    _compile(case, model, optimizer, run_eagerly=True).fit(
        x, y, batch_size=1, epochs=2, verbose=0
    )
    expected = _ema(trajectory[0], trajectory[1])
    assert not np.array_equal(trajectory[0], trajectory[1])
    moving = _core(optimizer)._model_variables_moving_average[0]
    _assert_float32_close(_np(moving), expected)
    _assert_float32_close(_np(model.weights[0]), expected)


# Constraints, lookup, loss scaling.


@pytest.mark.parametrize("case", ALL)
def test_constraints_hold_after_every_step(case):
    """Keras applies a variable's constraint after the update: the first
    step is the unconstrained one clipped at 0, and no later step (a
    wrapper's own update included) leaves a negative weight."""
    start = np.array([[-1.0, 0.5], [-0.25, 2.0]], np.float32)
    v, free = keras.Variable(start), keras.Variable(start)
    v.constraint = keras.constraints.NonNeg()
    optimizer = case.make()
    _step(optimizer, [G], [v])
    _step(case.make(), [G], [free])
    np.testing.assert_array_equal(_np(v), np.maximum(_np(free), 0.0))
    for t in range(2, 6):
        _step(optimizer, [G * (-1) ** t], [v])
        assert np.all(_np(v) >= 0), f"step {t}: {_np(v)}"


@helpers.needs_keras_string_lookup
@pytest.mark.parametrize("case", SPEC_CASES)
def test_keras_get_by_registered_name_gives_the_defaults(case):
    cls = type(case.make())
    optimizer = keras.optimizers.get(f"keras_opts>{cls.__name__}")
    assert type(optimizer) is cls
    config, default = optimizer.get_config(), cls().get_config()
    config.pop("name"), default.pop("name")
    assert config == default


@pytest.mark.parametrize("case", SPEC_CASES)
def test_keras_get_with_a_partial_config_dict(case):
    cls = type(case.make())
    optimizer = keras.optimizers.get(
        {
            "class_name": f"keras_opts>{cls.__name__}",
            "config": {"learning_rate": 0.5},
        }
    )
    assert type(optimizer) is cls
    config, expected = optimizer.get_config(), cls(learning_rate=0.5)
    expected = expected.get_config()
    config.pop("name"), expected.pop("name")
    assert config == expected


@pytest.mark.parametrize("case", _params(WRAPPER_CASES))
def test_keras_get_with_a_wrapper_config_naming_only_the_optimizer(case):
    wrapper = case.make()
    cls = type(wrapper)
    inner = keras.optimizers.serialize(wrapper.inner_optimizer)
    optimizer = keras.optimizers.get(
        {
            "class_name": f"keras_opts>{cls.__name__}",
            "config": {"optimizer": copy.deepcopy(inner)},
        }
    )
    assert type(optimizer) is cls
    expected = cls(keras.optimizers.deserialize(inner)).get_config()
    config = optimizer.get_config()
    config.pop("name"), expected.pop("name")
    assert config == expected


@pytest.mark.parametrize("case", SPEC_CASES)
def test_keras_opts_get_by_registry_name(case):
    cls = type(case.make())
    assert type(keras_opts.get(case.id)) is cls


def test_get_none_and_typos():
    assert keras.optimizers.get(None) is None
    assert keras_opts.get(None) is None
    with pytest.raises(ValueError):
        keras.optimizers.get("typo")
    with pytest.raises(ValueError):
        keras.optimizers.get("keras_opts>Typo")  # also on Keras 3.16
    with pytest.raises(ValueError, match="typo"):
        keras_opts.get("typo")


@helpers.needs_keras_string_lookup
def test_keras_names_still_give_keras_optimizers():
    """Importing keras_opts registers its classes under ``keras_opts>``:
    Keras' own short names keep giving Keras' classes."""
    for name in ("Adam", "SGD", "RMSprop", "Adagrad", "Adadelta", "AdamW"):
        optimizer = keras.optimizers.get(name.lower())
        # torch swaps in a subclass of Keras' class.
        assert isinstance(optimizer, getattr(keras.optimizers, name)), name
        assert type(optimizer).__module__.startswith("keras."), name


@pytest.mark.parametrize("case", ALL)
def test_static_loss_scaling_is_undone(case):
    optimizer = case.make(loss_scale_factor=1024.0)
    assert float(_np(optimizer.scale_loss(1.0))) == 1024.0
    plain = case.make()
    v, w = keras.Variable(X), keras.Variable(X)
    for t in (1, 2):
        _step(optimizer, [G * t * 1024.0], [v])
        _step(plain, [G * t], [w])
        np.testing.assert_array_equal(_np(v), _np(w), err_msg=f"step {t}")


# set_weights, accumulation, callable learning rate.


@pytest.mark.parametrize("case", ALL)
def test_set_weights_before_build_is_keras_value_error(case):
    a = case.make()
    _step(a, [G], [keras.Variable(X)])
    with pytest.raises(ValueError, match="You are calling `set_weights"):
        case.make().set_weights(a.variables)


@pytest.mark.parametrize("case", ALL)
def test_set_weights_copies_the_whole_state(case):
    """After ``set_weights(a.variables)`` every variable of ``b`` equals
    ``a``'s, and a further step from both is identical."""
    x_a, x_b = keras.Variable(X), keras.Variable(X)
    a = case.make()
    for t in (1, 2, 3):
        _step(a, [G * t], [x_a])
    b = case.make()
    x_b.assign(x_a)
    b.build([x_b])
    b.set_weights(a.variables)
    _assert_states_equal(_state(b), _state(a))
    _step(a, [-G], [x_a])
    _step(b, [-G], [x_b])
    np.testing.assert_array_equal(_np(x_b), _np(x_a))
    _assert_states_equal(_state(b), _state(a))


@pytest.mark.parametrize("case", ALL)
def test_gradient_accumulation(case):
    """3 micro-steps: no update for 2, then one step on their mean (here
    exactly 2 G), with the accumulators reset."""
    optimizer = case.make(gradient_accumulation_steps=3)
    core = _core(optimizer)
    assert core.gradient_accumulation_steps == 3
    v, once = keras.Variable(X), keras.Variable(X)
    _stepper(case.make(), [once])([2 * G])
    step = _stepper(optimizer, [v])
    accumulated = np.zeros_like(G)
    for t, expected_v in ((1, X), (2, X), (3, _np(once))):
        grad = G * t
        step([grad])
        accumulated = accumulated + grad if t % 3 else np.zeros_like(G)
        np.testing.assert_array_equal(_np(v), expected_v, err_msg=f"{t}")
        np.testing.assert_array_equal(
            _np(core._accumulated_gradients[0]), accumulated, err_msg=f"{t}"
        )
        assert _int(core._iterations) == t
        assert _int(optimizer.iterations) == t // 3


@pytest.mark.parametrize("case", ALL)
def test_callable_learning_rate(case):
    optimizer = case.make(learning_rate=lambda: 0.1)
    plain = case.make(learning_rate=0.1)
    v, w = keras.Variable(X), keras.Variable(X)
    for t in (1, 2):
        _step(optimizer, [G * t], [v])
        _step(plain, [G * t], [w])
        assert _int(optimizer.iterations) == t
        np.testing.assert_array_equal(_np(v), _np(w), err_msg=f"step {t}")
    assert not np.array_equal(_np(v), X)


# Variables overwritten by their gradient (float8 scales and histories).


@pytest.mark.parametrize("case", ALL)
def test_overwrite_with_gradient(case):
    v, v2, alone = (keras.Variable(X) for _ in range(3))
    v.overwrite_with_gradient = True
    optimizer = case.make()
    _step(optimizer, [G, G], [v, v2])
    _step(case.make(), [G], [alone])
    np.testing.assert_array_equal(_np(v), G)
    np.testing.assert_array_equal(_np(v2), _np(alone))


@pytest.mark.parametrize("case", ALL)
def test_overwrite_with_gradient_under_accumulation(case):
    """Keras keeps the largest of the accumulated "gradients" of such a
    variable (its accumulator starts at 0) and overwrites it on the update
    step; the others get one step on their mean."""
    v, v2, once = (keras.Variable(X) for _ in range(3))
    v.overwrite_with_gradient = True
    optimizer = case.make(gradient_accumulation_steps=2)
    _stepper(case.make(), [once])([1.5 * G])
    step = _stepper(optimizer, [v, v2])
    step([G, G])
    np.testing.assert_array_equal(_np(v), X)
    np.testing.assert_array_equal(_np(v2), X)
    step([2 * G, 2 * G])
    np.testing.assert_array_equal(_np(v), np.maximum(np.maximum(G, 0), 2 * G))
    np.testing.assert_array_equal(_np(v2), _np(once))
    assert _int(optimizer.iterations) == 1


# Learning rate, pickling, serialization.


@pytest.mark.parametrize("case", ALL)
def test_a_schedule_learning_rate_untracks_the_variable(case):
    optimizer = case.make()
    count = len(optimizer.variables)
    schedule = keras.optimizers.schedules.PolynomialDecay(0.01, 4)
    optimizer.learning_rate = schedule
    assert len(optimizer.variables) == count - 1
    v = keras.Variable(X)
    _step(optimizer, [G], [v])
    assert np.all(np.isfinite(_np(v)))
    assert float(_np(optimizer.learning_rate)) == float(_np(schedule(1)))


@pytest.mark.parametrize("case", ALL)
def test_pickle_round_trip(case):
    optimizer = case.make()
    reloaded = pickle.loads(pickle.dumps(optimizer))
    assert type(reloaded) is type(optimizer)
    assert reloaded.get_config() == optimizer.get_config()


@pytest.mark.parametrize("case", ALL)
def test_serialize_deserialize_and_get_with_a_config(case):
    for optimizer in (case.make(), case.make(name="my_optimizer")):
        config = keras.optimizers.serialize(optimizer)
        for reloaded in (
            keras.optimizers.deserialize(config),
            keras.optimizers.get(config),
        ):
            assert type(reloaded) is type(optimizer)
            assert reloaded.name == optimizer.name
            assert reloaded.get_config() == optimizer.get_config()


# Sparse gradients (TensorFlow's IndexedSlices, JAX's BCOO).

SPARSE_BACKEND = pytest.mark.skipif(
    BACKEND not in ("tensorflow", "jax"),
    reason="sparse gradients: TensorFlow and JAX",
)


def _sparse(values, rows, shape):
    """A gradient holding ``values`` at ``rows`` (first axis) of ``shape``."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return tf.IndexedSlices(
            tf.constant(values), tf.constant(rows, tf.int64), shape
        )
    import jax.experimental.sparse as jax_sparse
    import jax.numpy as jnp

    indices = jnp.asarray([[r] for r in rows], jnp.int32)
    return jax_sparse.BCOO((jnp.asarray(values), indices), shape=shape)


@SPARSE_BACKEND
@pytest.mark.parametrize("case", ALL)
def test_sparse_gradients_give_the_dense_result(case):
    """5 steps with a gradient on rows 0, 2 and 4: the sparse one and its
    dense equal. TensorFlow through ``apply``, JAX through
    ``stateless_apply`` (its ``fit`` path)."""
    shape = (5, 3, 2)
    sparse_opt, dense_opt = case.make(), case.make()
    v_sparse, v_dense = (
        keras.Variable(np.ones(shape, np.float32)) for _ in range(2)
    )
    sparse_opt.build([v_sparse])
    dense_opt.build([v_dense])
    for t in range(5):
        values = np.full((3, 3, 2), 10.0 - t, np.float32)
        sparse = _sparse(values, (0, 2, 4), shape)
        dense = np.zeros(shape, np.float32)
        dense[[0, 2, 4]] = values
        if BACKEND == "jax":
            for opt, var, grad in (
                (sparse_opt, v_sparse, sparse),
                (dense_opt, v_dense, _tensor(dense)),
            ):
                values_, state = opt.stateless_apply(
                    [s.value for s in opt.variables], [grad], [var.value]
                )
                var.assign(values_[0])
                for s, value in zip(opt.variables, state):
                    s.assign(value)
        else:
            sparse_opt.apply([sparse], [v_sparse])
            dense_opt.apply([_tensor(dense)], [v_dense])
        np.testing.assert_array_equal(
            _np(v_sparse), _np(v_dense), err_msg=f"step {t + 1}"
        )
    _assert_states_equal(_state(sparse_opt), _state(dense_opt))


@SPARSE_BACKEND
@pytest.mark.parametrize("case", ALL)
def test_no_direct_writes_to_non_scalar_variables(case):
    """Keras' rule for sparse support: an optimizer writes a non-scalar
    variable only through ``optimizer.assign/assign_add/assign_sub`` (so a
    backend can apply a sparse update), never with the variable's own
    methods. As in Keras' test, the optimizers' assign methods become
    no-ops and the variables' own methods record any write to a non-scalar
    variable; a wrapper and its inner optimizer are both optimizers."""
    variable = keras.Variable(np.ones((5, 10), np.float32))
    optimizer = case.make()
    optimizers = [optimizer, _core(optimizer)] if case.wrapper else [optimizer]
    grad = _sparse(np.full((3, 10), 0.5, np.float32), (0, 2, 4), (5, 10))
    if BACKEND == "tensorflow":
        variable_class = variable._value.__class__
    else:
        variable_class = variable.__class__
    direct = []

    def variable_write(target, value):
        # A keras.random.SeedGenerator advances its own state (PSGD-Kron's
        # probes): a counter, not a slot a sparse update would touch.
        name = getattr(target, "name", "")
        if len(target.shape) and "seed_generator_state" not in str(name):
            direct.append(getattr(target, "name", target))

    with (
        mock.patch.object(
            _core(optimizer), "_apply_weight_decay", autospec=True
        ),
        mock.patch.multiple(
            variable_class,
            assign=mock.DEFAULT,
            assign_add=mock.DEFAULT,
            assign_sub=mock.DEFAULT,
            autospec=True,
        ) as patched,
    ):
        for method in patched.values():
            method.side_effect = variable_write
        patches = [
            mock.patch.object(opt, method, autospec=True)
            for opt in optimizers
            for method in ("assign", "assign_add", "assign_sub")
        ]
        for patch in patches:
            patch.start()
        try:
            optimizer.apply([grad], [variable])
        finally:
            for patch in patches:
                patch.stop()
    assert not direct, f"direct writes to {direct}"


# stateless_apply, raw tf.Variable.


@pytest.mark.skipif(
    BACKEND == "tensorflow",
    reason="Keras' TensorFlow optimizers have no stateless_apply",
)
@pytest.mark.parametrize("case", ALL)
def test_stateless_apply_equals_apply(case):
    stateful, stateless = case.make(), case.make()
    v, w = keras.Variable(X), keras.Variable(X)
    stateless.build([w])
    values, state = [w.value], [s.value for s in stateless.variables]
    for t in (1, 2, 3):
        _step(stateful, [G * t], [v])
        values, state = stateless.stateless_apply(
            state, [_tensor(G * t)], values
        )
        np.testing.assert_array_equal(_np(values[0]), _np(v), err_msg=f"{t}")
    _assert_states_equal([_np(s) for s in state], _state(stateful))


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow's variables")
@pytest.mark.parametrize("case", ALL)
def test_raw_tf_variables_next_to_keras_variables(case):
    """A plain ``tf.Variable`` trains as a ``keras.Variable`` does, and a
    missing gradient for it only warns. The raw variable comes first, so
    that an optimizer drawing random numbers per variable (PSGD-Kron's
    probes) gives it the draw the reference's only variable gets."""
    import tensorflow as tf

    v, raw, w = keras.Variable(X), tf.Variable(X), keras.Variable(X)
    optimizer, reference = case.make(), case.make()
    _step(optimizer, [G, G], [raw, v])
    _step(reference, [G], [w])
    assert _int(optimizer.iterations) == 1
    np.testing.assert_array_equal(raw.numpy(), _np(w))
    with pytest.warns(UserWarning, match="Gradients do not exist"):
        _step(optimizer, [None, G], [raw, v])
    assert _int(optimizer.iterations) == 2
    np.testing.assert_array_equal(raw.numpy(), _np(w))


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.train.Checkpoint")
@pytest.mark.parametrize("case", FIT)
def test_tf_checkpoint_restores_model_and_optimizer(case, tmp_path):
    import tensorflow as tf

    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    optimizer = case.make()
    trained = _compile(case, model, optimizer, run_eagerly=True)
    rng = np.random.default_rng(0)
    x = rng.random((4, 2)).astype("float32")
    y = rng.random((4, 2)).astype("float32")
    trained.train_on_batch(x, y)
    saved_prediction = _np(model(x))
    saved_state = _state(optimizer)
    checkpoint = tf.train.Checkpoint(trained, optimizer=optimizer)
    path = checkpoint.save(str(tmp_path / "ckpt"))
    trained.train_on_batch(x, y)
    assert not np.array_equal(_np(model(x)), saved_prediction)
    checkpoint.restore(path)
    np.testing.assert_array_equal(_np(model(x)), saved_prediction)
    _assert_states_equal(_state(optimizer), saved_state)


# Quantized models.


def _quantized_model():
    """A float8 layer then an int8 layer (``model.quantize`` with a filter
    each): one fit covers both modes."""
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, name="fp8"),
            keras.layers.Dense(1, name="int8"),
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.quantize("float8", filters="fp8")
        model.quantize("int8", filters="int8")
    return model


def _fit_quantized(case, model, optimizer):
    """Two steps of ``fit``; the losses. Eager, but compiled on TensorFlow:
    Keras 3.15.1's float8 Dense fails to train eagerly there ("too many
    values to unpack" in TensorFlow's custom_gradient), with Keras' SGD
    too."""
    trained = _compile(
        case, model, optimizer, run_eagerly=BACKEND != "tensorflow"
    )
    rng = np.random.default_rng(2)
    x = rng.standard_normal((16, 4)).astype("float32")
    y = rng.standard_normal((16, 1)).astype("float32")
    history = trained.fit(x, y, batch_size=8, epochs=1, verbose=0)
    return history.history["loss"]


_INPUT_HISTORY = {}


def _input_history():
    """The float8 layer's input scale and amax history after the 2 steps
    on the data: they depend on the inputs alone, not on the optimizer, so
    Keras' SGD gives them."""
    if not _INPUT_HISTORY:
        model = _quantized_model()
        _fit_quantized(None, model, keras.optimizers.SGD(0.01))
        layer = model.layers[0]
        _INPUT_HISTORY["scale"] = _np(layer.inputs_scale)
        _INPUT_HISTORY["history"] = _np(layer.inputs_amax_history)
    return _INPUT_HISTORY


@pytest.mark.parametrize("case", helpers.shared(FIT, "quantized_model_trains"))
def test_quantized_model_trains(case):
    """The float8 layer's scales and amax histories are overwritten by
    their "gradients" (no step, no slots); the rest trains."""
    model = _quantized_model()
    assert {w.dtype for w in model.layers[1].weights} >= {"int8"}
    start = [_np(w) for w in model.trainable_weights]
    losses = _fit_quantized(case, model, case.make())
    assert all(np.isfinite(losses))
    for w in model.weights:
        assert np.all(np.isfinite(_np(w))), w.path
    moved = [
        not np.array_equal(_np(w), s)
        for w, s in zip(model.trainable_weights, start)
        if not getattr(w, "overwrite_with_gradient", False)
    ]
    assert moved and all(moved)
    layer, expected = model.layers[0], _input_history()
    np.testing.assert_array_equal(
        _np(layer.inputs_amax_history), expected["history"]
    )
    np.testing.assert_array_equal(_np(layer.inputs_scale), expected["scale"])
