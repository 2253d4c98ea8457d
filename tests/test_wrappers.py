"""Lookahead, SWA and SAM on this backend.

Oracles: NumPy float64 transcriptions of each paper's algorithm box
(Zhang et al. 2019 Algorithm 1; Izmailov et al. 2018 Algorithm 1; Foret et
al. 2021 Algorithm 1 on a linear least-squares model, whose gradient is
known in closed form), with the inner optimizer's update from
``tests.oracles``. Tolerances: one float32 rounding of the
largest magnitude per step (``helpers.float32_tolerance``) unless a test
says otherwise; same program, same backend: bitwise.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

import keras_opts
from keras_opts.wrappers.lookahead import Lookahead
from keras_opts.wrappers.sam import SAM
from keras_opts.wrappers.swa import SWA
from tests import helpers, oracles

PATHS = [
    pytest.param(False, id="eager"),
    pytest.param(True, id="compiled"),
]


# The quadratic 0.5 * sum(h * (w - c)^2): gradient h * (w - c).


def _quadratic(seed=1):
    rng = np.random.default_rng(seed)
    h = [rng.uniform(0.5, 2.0, s) for s in helpers.SHAPES]
    c = [rng.standard_normal(s) for s in helpers.SHAPES]
    params = [rng.standard_normal(s).astype(np.float32) for s in helpers.SHAPES]
    return params, lambda ws: [hi * (w - ci) for hi, w, ci in zip(h, ws, c)]


def _run(optimizer, params, grad_fn, steps, compiled):
    """Weights after each step; gradients from the current float32
    weights, or ``grad_fn`` is a list of per-step gradients."""
    variables = helpers.make_variables(params)
    make = helpers.compiled_apply if compiled else helpers.eager_apply
    apply = make(optimizer, variables)
    history = []
    for t in range(steps):
        if callable(grad_fn):
            weights = [np.asarray(v.numpy(), np.float64) for v in variables]
            grads = [g.astype(np.float32) for g in grad_fn(weights)]
        else:
            grads = grad_fn[t]
        apply(grads)
        history.append([np.asarray(v.numpy(), np.float64) for v in variables])
    return history


def numpy_lookahead(inner, lr, k, alpha, params, grad_fn, steps):
    """Algorithm 1: k inner steps from the slow weights, then
    phi <- phi + alpha (theta - phi) and theta <- phi; the inner state
    carries on. Returns the fast weights (the model's) after each step."""
    theta = [p.astype(np.float64) for p in params]
    phi = [p.copy() for p in theta]
    states = [inner.init(p) for p in theta]
    history = []
    for t in range(1, steps + 1):
        grads = grad_fn(theta) if callable(grad_fn) else grad_fn[t - 1]
        theta = [
            inner.step(p, np.asarray(g, np.float64), s, lr, t)
            for p, g, s in zip(theta, grads, states)
        ]
        if t % k == 0:
            phi = [f + alpha * (p - f) for f, p in zip(phi, theta)]
            theta = [f.copy() for f in phi]
        history.append([p.copy() for p in theta])
    return history


# Lookahead.

INNERS = [
    pytest.param(
        lambda: keras_opts.SGD(0.1, momentum=0.9),
        oracles.SGDOracle(momentum=0.9),
        0.1,
        id="sgd-momentum",
    ),
    pytest.param(
        lambda: keras_opts.Adam(0.05), oracles.AdamOracle(), 0.05, id="adam"
    ),
]


@pytest.mark.parametrize("compiled", PATHS)
@pytest.mark.parametrize("make_inner, oracle, lr", INNERS)
def test_lookahead_matches_numpy_on_a_quadratic(
    make_inner, oracle, lr, compiled
):
    """Four sync periods and a half: a missed sync, a reset of the inner
    state or a wrong slow step all move the weights far beyond round-off."""
    params, grad_fn = _quadratic()
    steps, k, alpha = 22, 5, 0.4
    optimizer = Lookahead(make_inner(), sync_period=k, slow_step_size=alpha)
    actual = _run(optimizer, params, grad_fn, steps, compiled)
    expected = numpy_lookahead(oracle, lr, k, alpha, params, grad_fn, steps)
    tol = helpers.float32_tolerance(expected, steps)
    helpers.assert_histories_close(actual, expected, tol, "lookahead")
    plain = numpy_lookahead(
        oracle, lr, steps + 1, alpha, params, grad_fn, steps
    )
    assert helpers.max_abs_difference(plain, expected) > 100 * tol
    assert int(optimizer.iterations) == steps


def test_lookahead_counts_only_the_inner_updates():
    """Skipped (non-finite) steps and accumulation micro-steps do not
    advance k: the result is Lookahead over the effective gradients."""
    params, grads = helpers.random_problem(seed=2, steps=16)
    grads[3] = [np.full_like(g, np.nan) for g in grads[3]]
    grads[8] = [np.full_like(g, np.inf) for g in grads[8]]
    effective = [g for i, g in enumerate(grads) if i not in (3, 8)]
    sgd = oracles.SGDOracle()
    skip = Lookahead(keras_opts.SGD(0.1, skip_nonfinite=True), sync_period=3)
    actual = _run(skip, params, grads, 16, compiled=True)[-1]
    expected = numpy_lookahead(sgd, 0.1, 3, 0.5, params, effective, 14)
    tol = helpers.float32_tolerance(expected, 14)
    helpers.assert_histories_close([actual], expected[-1:], tol, "skip")
    assert int(skip.iterations) == 14

    accumulate = Lookahead(
        keras_opts.SGD(0.1, gradient_accumulation_steps=2), sync_period=3
    )
    actual = _run(accumulate, params, effective, 14, compiled=True)[-1]
    means = [
        [(a + b) / 2 for a, b in zip(effective[i], effective[i + 1])]
        for i in range(0, 14, 2)
    ]
    expected = numpy_lookahead(sgd, 0.1, 3, 0.5, params, means, 7)
    helpers.assert_histories_close([actual], expected[-1:], tol, "accumulate")
    assert int(accumulate.iterations) == 7


def test_lookahead_learning_rate_and_iterations_are_the_inner_ones():
    inner = keras_opts.SGD(0.1)
    optimizer = Lookahead(inner)
    assert float(optimizer.learning_rate) == pytest.approx(0.1)
    optimizer.learning_rate = 0.25
    assert float(inner.learning_rate) == 0.25
    w = keras.Variable([1.0])
    optimizer.apply([keras.ops.ones((1,))], [w])
    assert optimizer.iterations is inner.iterations
    assert int(optimizer.iterations) == 1
    np.testing.assert_allclose(w.numpy(), [0.75])


@pytest.mark.skipif(helpers.BACKEND == "torch", reason="torch runs eagerly")
@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: Lookahead(keras_opts.Adam(), 2), id="lookahead"),
        pytest.param(lambda: SWA(keras_opts.Adam(), 1, 2), id="swa"),
    ],
)
def test_one_trace_across_sync_and_average_steps(make):
    params, grads = helpers.random_problem(steps=5)
    optimizer = make()
    variables = helpers.make_variables(params)
    optimizer.build(variables)
    traces = []
    if helpers.BACKEND == "tensorflow":
        import tensorflow as tf

        @tf.function(jit_compile=True)
        def step(g):
            traces.append(1)
            optimizer.apply(g, variables)

        for g in grads:
            step([tf.constant(x) for x in g])
    else:
        import jax

        @jax.jit
        def step(state, values, g):
            traces.append(1)
            return optimizer.stateless_apply(state, g, values)

        state = [v.value for v in optimizer.variables]
        values = [v.value for v in variables]
        for g in grads:
            values, state = step(state, values, g)
    assert len(traces) == 1


# SWA.


@pytest.mark.parametrize("compiled", PATHS)
def test_swa_averages_the_weights_it_should_and_leaves_training_alone(
    compiled,
):
    """Averages after updates s, s + c, ...: 3, 7, 11, 15, 19."""
    params, grad_fn = _quadratic(seed=3)
    steps, s, c = 21, 3, 4
    swa = SWA(keras_opts.SGD(0.1, momentum=0.9), s, c)
    history = _run(swa, params, grad_fn, steps, compiled)
    plain = _run(
        keras_opts.SGD(0.1, momentum=0.9), params, grad_fn, steps, compiled
    )
    # Same inner program on the same backend: bitwise.
    helpers.assert_histories_close(history, plain, 0.0, "trajectory")
    averaged_steps = [3, 7, 11, 15, 19]
    assert swa.n_averaged == len(averaged_steps)
    tol = helpers.float32_tolerance(history, len(averaged_steps))
    for i, average in enumerate(swa._averages):
        mean = np.mean([history[t - 1][i] for t in averaged_steps], axis=0)
        np.testing.assert_allclose(average.numpy(), mean, rtol=0, atol=tol)
        last = history[averaged_steps[-1] - 1][i]
        assert np.max(np.abs(mean - last)) > 100 * tol


def test_swa_averaged_swaps_in_and_restores_exactly():
    params, grads = helpers.random_problem(seed=4, steps=6)
    swa = SWA(keras_opts.Adam(0.01), start_averaging=2, average_period=2)
    variables = helpers.make_variables(params)
    apply = helpers.eager_apply(swa, variables)
    apply(grads[0])
    with pytest.raises(ValueError, match="has averaged no weights yet"):
        with swa.averaged():
            pass
    for g in grads[1:]:
        apply(g)
    assert swa.n_averaged == 3  # after updates 2, 4 and 6
    training = [v.numpy() for v in variables]
    state = [v.numpy() for v in swa.variables]
    with swa.averaged():
        for v, a in zip(variables, swa._averages):
            np.testing.assert_array_equal(v.numpy(), a.numpy())
    for v, w in zip(variables, training):
        np.testing.assert_array_equal(v.numpy(), w)
    with pytest.raises(RuntimeError, match="inside"):
        with swa.averaged():
            raise RuntimeError("inside")
    for v, w in zip(variables, training):
        np.testing.assert_array_equal(v.numpy(), w)
    for v, w in zip(swa.variables, state):
        np.testing.assert_array_equal(v.numpy(), w)


def test_swa_evaluate_and_save_inside_averaged(tmp_path):
    x, y = _data()
    swa = SWA(keras_opts.SGD(0.05, momentum=0.5), 2, 3)
    model = _model(swa)
    model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    training = model.get_weights()
    with swa.averaged():
        loss = model.evaluate(x, y, verbose=0)
        model.save(str(tmp_path / "swa.keras"))
    loaded = keras.models.load_model(str(tmp_path / "swa.keras"))
    for w, a in zip(loaded.trainable_variables, swa._averages):
        np.testing.assert_array_equal(w.numpy(), a.numpy())
    for saved, mine in zip(loaded.optimizer.variables, swa.variables):
        np.testing.assert_array_equal(saved.numpy(), mine.numpy())
    assert loaded.evaluate(x, y, verbose=0) == loss
    assert loss != model.evaluate(x, y, verbose=0)
    for w, t in zip(model.get_weights(), training):
        np.testing.assert_array_equal(w, t)


# SAM: a linear model y = x W + b with the mean squared error.


def _linear_problem():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((8, 3)).astype(np.float32)
    y = rng.standard_normal((8, 2)).astype(np.float32)
    w = rng.standard_normal((3, 2)).astype(np.float32)
    b = rng.standard_normal(2).astype(np.float32)
    return x, y, w, b


def numpy_sam(x, y, w, b, lr, rho, epsilon, steps):
    """Algorithm 1 with plain gradient descent. L = mean((x W + b - y)^2):
    dL/dW = 2 x^T r / r.size, dL/db = 2 sum_rows(r) / r.size."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    w, b = w.astype(np.float64), b.astype(np.float64)

    def grads(w, b):
        r = x @ w + b - y
        return 2 * x.T @ r / r.size, 2 * r.sum(0) / r.size, np.mean(r * r)

    losses = []
    for _ in range(steps):
        gw, gb, loss = grads(w, b)
        scale = rho / (np.sqrt(np.sum(gw * gw) + np.sum(gb * gb)) + epsilon)
        gw, gb, _ = grads(w + scale * gw, b + scale * gb)
        w, b = w - lr * gw, b - lr * gb
        losses.append(loss)
    return w, b, losses


@pytest.mark.parametrize(
    "make_optimizer",
    [
        pytest.param(lambda: keras_opts.SGD(0.1), id="keras_opts"),
        pytest.param(lambda: keras.optimizers.SGD(0.1), id="keras"),
    ],
)
def test_sam_matches_the_closed_form(make_optimizer):
    x, y, w, b = _linear_problem()
    steps, rho = 3, 0.3
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.set_weights([w, b])
    sam = SAM(model, rho=rho)
    sam.compile(optimizer=make_optimizer(), loss="mse")
    history = sam.fit(x, y, batch_size=8, epochs=steps, verbose=0)
    w_np, b_np, losses = numpy_sam(x, y, w, b, 0.1, rho, 1e-12, steps)
    # One float32 rounding of the largest weight per step (observed: about
    # one in all), and of the loss relative to itself.
    tol = helpers.float32_tolerance([[w, b, w_np, b_np]], steps)
    np.testing.assert_allclose(model.get_weights()[0], w_np, rtol=0, atol=tol)
    np.testing.assert_allclose(model.get_weights()[1], b_np, rtol=0, atol=tol)
    np.testing.assert_allclose(
        history.history["loss"], losses, rtol=steps * helpers.FLOAT32_EPS
    )
    w_gd, _, _ = numpy_sam(x, y, w, b, 0.1, 1e-30, 1e-12, steps)
    assert np.max(np.abs(w_gd - w_np)) > 100 * tol


def test_sam_moves_batch_norm_statistics_once_from_the_first_pass():
    """Behind a Dense layer the two passes see different batch statistics;
    only the first pass' (at w) may reach the moving mean, once."""
    x, y, w, b = _linear_problem()
    model = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(2),
            keras.layers.BatchNormalization(momentum=0.5),
            keras.layers.Dense(2),
        ]
    )
    model.layers[0].set_weights([w, b])
    sam = SAM(model, rho=0.3)
    sam.compile(optimizer=keras_opts.SGD(0.1), loss="mse")
    sam.fit(x, y, batch_size=8, epochs=1, verbose=0)
    moving_mean = model.layers[1].moving_mean.numpy()
    # 0.5 * 0 + 0.5 * the batch mean of the first layer's output at w.
    h = x.astype(np.float64) @ w + b
    tol = helpers.float32_tolerance([[h]], 1)
    np.testing.assert_allclose(
        moving_mean, 0.5 * h.mean(axis=0), rtol=0, atol=tol
    )


def test_sam_logs_the_first_pass_per_output_losses():
    """Keras tracks each output's loss in the compiled loss; a second
    update from the perturbed pass would pull them off the logged total."""
    x, y, _, _ = _linear_problem()
    inputs = keras.Input((3,))
    network = keras.Model(
        inputs,
        {
            "a": keras.layers.Dense(2, name="a")(inputs),
            "b": keras.layers.Dense(1, name="b")(inputs),
        },
    )
    sam = SAM(network, rho=0.5)
    sam.compile(optimizer=keras_opts.SGD(0.1), loss={"a": "mse", "b": "mse"})
    logs = sam.fit(
        x, {"a": y, "b": y[:, :1]}, batch_size=8, epochs=2, verbose=0
    ).history
    np.testing.assert_allclose(
        np.add(logs["a_loss"], logs["b_loss"]),
        logs["loss"],
        rtol=2 * helpers.FLOAT32_EPS,
    )


@pytest.mark.parametrize("seed", [None, 3])
def test_sam_passes_share_the_dropout_mask(seed):
    """With a negligible radius (w + e == w in float32) SAM's second
    gradient is the first one iff both passes drop the same units, and
    the step equals a plain fit() step from the same seed. An unseeded
    Dropout draws from torch's global generator on torch, a seeded one
    from its SeedGenerator's state (a non-trainable variable)."""
    x, y, _, _ = _linear_problem()

    def network():
        keras.utils.set_random_seed(1)
        return keras.Sequential(
            [
                keras.Input((3,)),
                keras.layers.Dense(16),
                keras.layers.Dropout(0.5, seed=seed),
                keras.layers.Dense(2),
            ]
        )

    plain = network()
    plain.compile(optimizer=keras_opts.SGD(0.1), loss="mse")
    plain.fit(x, y, batch_size=8, epochs=1, verbose=0)
    sam = SAM(network(), rho=1e-30)
    sam.compile(optimizer=keras_opts.SGD(0.1), loss="mse")
    sam.fit(x, y, batch_size=8, epochs=1, verbose=0)
    # Same gradient from two programs: one rounding (observed: bitwise).
    tol = helpers.float32_tolerance([plain.get_weights()], 1)
    for a, b in zip(plain.get_weights(), sam.get_weights()):
        np.testing.assert_allclose(a, b, rtol=0, atol=tol)


# fit(), .keras files and configs.


def _data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 5)).astype("float32")
    y = (x @ rng.standard_normal((5, 1))).astype("float32")
    return x, y


def _network():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Dense(8, activation="tanh"),
            keras.layers.Dense(1),
        ]
    )


def _model(optimizer):
    model = _network()
    model.compile(optimizer=optimizer, loss="mse")
    return model


def _schedule():
    return keras_opts.schedules.WarmupLinearDecay(
        0.03, total_steps=12, warmup_proportion=0.25, min_lr=3e-3
    )


def _lookahead_model():
    return _model(Lookahead(keras_opts.RAdam(_schedule()), 3, 0.5))


def _swa_model():
    return _model(SWA(keras.optimizers.SGD(0.02, momentum=0.9), 2, 3))


def _sam_model():
    sam = SAM(_network(), rho=0.05)
    sam.compile(
        optimizer=Lookahead(keras_opts.Adam(_schedule()), 3), loss="mse"
    )
    return sam


MODELS = [
    pytest.param(_lookahead_model, id="lookahead-radam"),
    pytest.param(_swa_model, id="swa-keras-sgd"),
    pytest.param(_sam_model, id="sam-lookahead-adam"),
]


@pytest.mark.parametrize("make", MODELS)
def test_fit_save_load_resumes_exactly(make, tmp_path):
    """4 epochs straight == 2 epochs, save, load (no custom_objects),
    2 more: weights and every optimizer variable bitwise. The save falls
    mid sync period and between averages (update 8)."""
    x, y = _data()
    kwargs = {"batch_size": 16, "shuffle": False, "verbose": 0}
    straight = make()
    losses = straight.fit(x, y, epochs=4, **kwargs).history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]

    first = make()
    first.fit(x, y, epochs=2, **kwargs)
    path = str(tmp_path / "m.keras")
    first.save(path)
    resumed = keras.models.load_model(path)
    assert type(resumed) is type(first)
    optimizer, saved = resumed.optimizer, first.optimizer
    assert type(optimizer) is type(saved)
    assert optimizer.get_config() == saved.get_config()
    assert int(optimizer.iterations) == 8
    assert len(optimizer.variables) == len(saved.variables)
    for a, b in zip(saved.variables, optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    resumed.fit(x, y, epochs=2, **kwargs)

    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(straight.optimizer.variables, optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def _deferred_sam(network):
    sam = SAM(network)
    sam.compile(optimizer=keras_opts.Adam(0.01), loss="mse")
    return sam


def _deferred_lookahead(network):
    network.compile(optimizer=Lookahead(keras_opts.Adam(0.01)), loss="mse")
    return network


@pytest.mark.parametrize("wrap", [_deferred_sam, _deferred_lookahead])
def test_a_model_without_input_shape_builds_in_fit(wrap):
    """TensorFlow builds such a model while tracing the train step."""
    x, y = _data()
    network = keras.Sequential(
        [keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(1)]
    )
    model = wrap(network)
    losses = model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    assert np.all(np.isfinite(losses.history["loss"]))
    assert int(model.optimizer.iterations) == 8
    assert len(network.trainable_variables) == 4


@pytest.mark.parametrize(
    "make",
    [
        lambda: Lookahead(keras_opts.RAdam(_schedule()), 4, 0.3, name="la"),
        lambda: Lookahead(keras.optimizers.Adam(0.01, clipnorm=1.0)),
        lambda: SWA(keras_opts.Adam(0.01, amsgrad=True), 5, 2, name="s"),
        lambda: SWA(keras.optimizers.SGD(0.1)),
        lambda: Lookahead(SWA(keras_opts.SGD(0.1), 1, 1)),
    ],
)
def test_optimizer_config_round_trip(make):
    optimizer = make()
    config = optimizer.get_config()
    restored = type(optimizer).from_config(config)
    assert restored.get_config() == config
    assert type(restored.inner_optimizer) is type(optimizer.inner_optimizer)
    serialized = keras.saving.serialize_keras_object(optimizer)
    name = type(optimizer).__name__
    assert serialized["registered_name"] == f"keras_opts>{name}"
    again = keras.saving.deserialize_keras_object(serialized)
    assert type(again) is type(optimizer)
    assert again.get_config() == config


def test_sam_config_round_trip():
    sam = SAM(_network(), rho=0.1, epsilon=1e-8, name="sam")
    config = sam.get_config()
    restored = SAM.from_config(config)
    assert restored.get_config() == config
    assert (restored.rho, restored.epsilon) == (0.1, 1e-8)
    serialized = keras.saving.serialize_keras_object(sam)
    assert serialized["registered_name"] == "keras_opts>SAM"
    assert keras.saving.deserialize_keras_object(serialized).rho == 0.1


BAD = [
    (Lookahead, {"sync_period": 0}, ValueError, r"Received: sync_period=0"),
    (Lookahead, {"sync_period": 2.0}, TypeError, r"sync_period=2.0 of type"),
    (Lookahead, {"sync_period": True}, TypeError, r"`sync_period` must be"),
    (
        Lookahead,
        {"slow_step_size": 1.5},
        ValueError,
        r"`slow_step_size` must be in \(0, 1\]. Received: slow_step_size=1.5",
    ),
    (Lookahead, {"slow_step_size": 0}, ValueError, r"slow_step_size=0.0"),
    (Lookahead, {"slow_step_size": math.nan}, ValueError, r"must be finite"),
    (
        Lookahead,
        {"clipnorm": 1.0},
        ValueError,
        r"set it on the inner optimizer. Received: clipnorm=1.0",
    ),
    (SWA, {"average_period": 0}, ValueError, r"average_period=0"),
    (SWA, {"start_averaging": -1}, ValueError, r"start_averaging=-1"),
    (SWA, {"average_period": 2.5}, TypeError, r"average_period=2.5"),
    (SWA, {"use_ema": True}, ValueError, r"Received: use_ema=True"),
]


@pytest.mark.parametrize("cls, kwargs, error, match", BAD)
def test_bad_wrapper_arguments(cls, kwargs, error, match):
    with pytest.raises(error, match=match):
        cls(keras_opts.SGD(), **kwargs)


@pytest.mark.parametrize("cls", [Lookahead, SWA])
def test_the_inner_optimizer_must_be_an_optimizer(cls):
    with pytest.raises(TypeError, match=r"Received: optimizer='adam'"):
        cls("adam")
    config = cls(keras_opts.SGD()).get_config()
    del config["optimizer"]
    with pytest.raises(ValueError, match="is missing optimizer"):
        cls.from_config(config)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"rho": 0.0}, ValueError, r"`rho` must be in \(0, inf\)"),
        ({"rho": -0.05}, ValueError, r"Received: rho=-0.05"),
        ({"epsilon": -1e-12}, ValueError, r"Received: epsilon=-1e-12"),
        ({"rho": "big"}, TypeError, r"Received: rho='big'"),
    ],
)
def test_bad_sam_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        SAM(_network(), **kwargs)


def test_sam_needs_a_model():
    with pytest.raises(TypeError, match=r"`model` must be a keras.Model"):
        SAM(keras.layers.Dense(1))
