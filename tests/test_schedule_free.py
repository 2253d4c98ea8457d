"""Schedule-free training beyond the shared tests: the evaluation weights x
(``averaged()``), Keras' own ScheduleFreeAdamW, the callback around
``fit``, ``evaluate``, ``predict`` and ``ModelCheckpoint``, and the
BatchNormalization statistics recomputed at x.

The shared tests (parity with the oracles and the authors' ``schedulefree``
package, base-class features, save and resume) pick the three optimizers
up from tests/specs.py.
"""

import keras
import numpy as np
import pytest

import keras_opts
from keras_opts.callbacks import (
    ScheduleFreeEvaluation,
    recompute_batchnorm_statistics,
)
from tests import helpers, oracles
from tests import specs as registry

SPECS = [pytest.param(s, id=s.name) for s in registry.SCHEDULE_FREE_SPECS]
STEPS = 12


def _trained(spec, kwargs, steps=STEPS):
    """Our variables after ``steps`` steps, and the oracle's states."""
    params, grads = helpers.random_problem(seed=11, steps=steps)
    optimizer = spec.cls(learning_rate=spec.lr, **kwargs)
    variables = helpers.make_variables(params)
    apply = helpers.eager_apply(optimizer, variables)
    for step_grads in grads:
        apply(step_grads)
    oracle = spec.oracle(**kwargs)
    states = [oracle.init(p) for p in params]
    values = [np.asarray(p, np.float64) for p in params]
    for t, step_grads in enumerate(grads, 1):
        values = [
            oracle.step(p, np.asarray(g, np.float64), s, spec.lr, t)
            for p, g, s in zip(values, step_grads, states)
        ]
    return optimizer, variables, states


# averaged(): x in, y back.


@pytest.mark.parametrize("spec", SPECS)
def test_averaged_holds_the_oracles_x_and_restores_y_bitwise(spec):
    kwargs = dict(max(spec.test_configs, key=len))
    optimizer, variables, states = _trained(spec, kwargs)
    before = [v.numpy().copy() for v in variables]
    with optimizer.averaged():
        inside = [v.numpy().copy() for v in variables]
    # x = y + (1 - 1/beta)(z - y): a few float32 roundings of the
    # trajectory per step, as in the parity tests, and one more for the
    # division by beta (beta_1 = 0.5 at worst here).
    expected = [s["x"] for s in states]
    tol = helpers.float32_tolerance([expected], STEPS + 2)
    helpers.assert_histories_close([inside], [expected], tol, "x")
    assert max(np.max(np.abs(i - b)) for i, b in zip(inside, before)) > tol
    for variable, value in zip(variables, before):
        np.testing.assert_array_equal(variable.numpy(), value)


def test_averaged_before_any_step_changes_nothing():
    variables = helpers.make_variables([np.ones(3, np.float32)])
    optimizer = keras_opts.ScheduleFreeSGD(0.1)
    optimizer.build(variables)
    with optimizer.averaged():
        np.testing.assert_array_equal(variables[0].numpy(), np.ones(3))


def test_averaged_restores_y_after_an_exception():
    optimizer, variables, _ = _trained(
        registry.lookup("schedulefreesgd"), {}, steps=3
    )
    before = variables[0].numpy().copy()
    with pytest.raises(RuntimeError, match="inside"):
        with optimizer.averaged():
            raise RuntimeError("inside")
    np.testing.assert_array_equal(variables[0].numpy(), before)


@pytest.mark.parametrize("beta_1", [0.0, 1.0])
def test_beta_1_is_an_open_interval(beta_1):
    """x = (y - (1 - beta) z) / beta needs beta > 0; beta = 1 is refused
    as by the authors' code."""
    for cls in (
        keras_opts.ScheduleFreeSGD,
        keras_opts.ScheduleFreeAdamW,
        keras_opts.ScheduleFreeRAdam,
    ):
        with pytest.raises(ValueError, match=r"`beta_1` must be in \(0, 1\)"):
            cls(beta_1=beta_1)


def test_lazy_rows_are_refused():
    with pytest.raises(ValueError, match="lazy_rows"):
        keras_opts.ScheduleFreeAdamW(lazy_rows=True)


@pytest.mark.parametrize(
    "cls",
    [
        keras_opts.ScheduleFreeSGD,
        keras_opts.ScheduleFreeAdamW,
        keras_opts.ScheduleFreeRAdam,
    ],
)
def test_cautious_is_refused(cls):
    """Masking y's step but not z's would break the x that averaged()
    reads from the two."""
    with pytest.raises(ValueError, match="Received: cautious=True"):
        cls(cautious=True)


def test_bfloat16_state_keeps_z_in_float32():
    """z is a sequence of weights; only the second moment narrows, and
    float16 (which cannot hold a squared gradient) is refused."""
    optimizer = keras_opts.ScheduleFreeAdamW(state_dtype="bfloat16")
    variable = keras.Variable(np.ones((3, 2), "float32"))
    optimizer.build([variable])
    assert optimizer._slots["z"][0].dtype == "float32"
    assert optimizer._slots["velocity"][0].dtype == "bfloat16"
    with pytest.raises(ValueError, match="Received: state_dtype="):
        keras_opts.ScheduleFreeAdamW(state_dtype="float16")


# Keras' own ScheduleFreeAdamW.

KERAS_SETTINGS = {"warmup_steps": 5}
OURS_FOR_KERAS = {
    "warmup_steps": 5,
    "bias_correction_in": "second_moment",
    "weight_lr_power": 0.0,
}


def _keras_and_ours():
    params, grads = helpers.random_problem(seed=2, steps=30)
    keras_sf = keras.optimizers.ScheduleFreeAdamW(0.01, **KERAS_SETTINGS)
    theirs = helpers.run_keras_optimizer(keras_sf, params, grads)
    ours = keras_opts.ScheduleFreeAdamW(0.01, **OURS_FOR_KERAS)
    return (
        params,
        grads,
        theirs,
        helpers.run_keras_optimizer(ours, params, grads),
    )


def _keras_reading_z_after_its_step(params, grads):
    """Keras 3.15's ScheduleFreeAdamW as it runs on TensorFlow and torch,
    in NumPy: there ``momentum.value`` is the variable itself, so the
    ``momentum_old`` it recovers x from is z after the step, not before."""
    ys = [np.asarray(p, np.float64) for p in params]
    zs = [y.copy() for y in ys]
    vs = [np.zeros_like(y) for y in ys]
    history = []
    for t, step_grads in enumerate(grads, 1):
        lr = 0.01 * min(t / 5, 1.0)
        for i, g in enumerate(step_grads):
            vs[i] = vs[i] + (g * g - vs[i]) * (1 - 0.999)
            zs[i] = zs[i] - lr * g / (np.sqrt(vs[i] / (1 - 0.999**t)) + 1e-8)
            x = (ys[i] - 0.1 * zs[i]) / 0.9  # zs[i]: already stepped
            x = (1 - 1 / t) * x + zs[i] / t
            ys[i] = 0.1 * zs[i] + 0.9 * x
        history.append([y.copy() for y in ys])
    return history


@pytest.mark.skipif(
    helpers.BACKEND != "jax",
    reason="Keras 3.15's ScheduleFreeAdamW reads z after updating it on "
    "TensorFlow and torch (test_keras_schedule_free_adamw_elsewhere)",
)
def test_keras_schedule_free_adamw_matches():
    """Documented settings: ``bias_correction_in="second_moment"``,
    ``weight_lr_power=0`` (Keras averages uniformly); no weight decay
    (Keras' shrinks y alone)."""
    params, grads, theirs, ours = _keras_and_ours()
    expected = oracles.run(
        registry.ScheduleFreeAdamWOracle(**OURS_FOR_KERAS),
        params,
        grads,
        [0.01] * 30,
    )
    tol = helpers.float32_tolerance(expected, 30)
    helpers.assert_histories_close(ours, theirs, tol, "keras")
    helpers.assert_histories_close(theirs, expected, tol, "keras vs oracle")


@pytest.mark.skipif(helpers.BACKEND == "jax", reason="exact there")
def test_keras_schedule_free_adamw_elsewhere():
    """On TensorFlow and torch Keras 3.15.1's ScheduleFreeAdamW is its JAX
    algorithm with x recovered from the updated z (its ``momentum.value``
    aliases the variable): its trajectory follows that transcription and
    leaves ours. When this fails, Keras has changed: check whether its
    parity holds on every backend now."""
    params, grads, theirs, ours = _keras_and_ours()
    aliased = _keras_reading_z_after_its_step(params, grads)
    tol = helpers.float32_tolerance(aliased, 30)
    helpers.assert_histories_close(theirs, aliased, tol, "keras, aliased")
    assert helpers.max_abs_difference(ours, theirs) > 100 * tol


# The callback.


def _data(seed=0, n=64):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4)).astype("float32")
    y = (x @ np.array([[1.0], [-2.0], [0.5], [0.0]], "float32")).astype(
        "float32"
    )
    return x, y


def _model(batchnorm=False):
    keras.utils.set_random_seed(0)
    layers = [keras.Input((4,)), keras.layers.Dense(8)]
    if batchnorm:
        layers.append(keras.layers.BatchNormalization())
    layers += [keras.layers.Activation("tanh"), keras.layers.Dense(1)]
    model = keras.Sequential(layers)
    model.compile(
        optimizer=keras_opts.ScheduleFreeAdamW(0.05, warmup_steps=3),
        loss="mse",
    )
    return model


def _weights(model):
    return [v.numpy().copy() for v in model.trainable_variables]


def test_fit_validates_at_x_and_trains_on_from_y_bitwise(tmp_path):
    """The logged val_loss is x's; the checkpoint wrapped by the callback
    holds x; and the training trajectory is bit for bit that of a run
    without the callback."""
    x, y = _data()
    plain = _model()
    plain.fit(
        x,
        y,
        batch_size=16,
        epochs=2,
        verbose=0,
        shuffle=False,
        validation_data=(x, y),
    )

    model = _model()
    path = str(tmp_path / "x.keras")
    checkpoint = keras.callbacks.ModelCheckpoint(path)
    history = model.fit(
        x,
        y,
        batch_size=16,
        epochs=2,
        verbose=0,
        shuffle=False,
        validation_data=(x, y),
        callbacks=[ScheduleFreeEvaluation([checkpoint])],
    )
    for ours, theirs in zip(_weights(model), _weights(plain)):
        np.testing.assert_array_equal(ours, theirs)

    optimizer = model.optimizer
    with optimizer.averaged():
        at_x = model.evaluate(x, y, batch_size=16, verbose=0)
        x_weights = _weights(model)
    at_y = model.evaluate(x, y, batch_size=16, verbose=0)
    assert history.history["val_loss"][-1] == pytest.approx(at_x, rel=1e-6)
    assert abs(at_x - at_y) > 1e-4 * at_y  # y and x differ here

    saved = keras.models.load_model(path)
    for ours, theirs in zip(_weights(saved), x_weights):
        np.testing.assert_array_equal(ours, theirs)


def test_evaluate_and_predict_with_the_callback_use_x():
    x, y = _data()
    model = _model()
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    before = _weights(model)
    with model.optimizer.averaged():
        expected_loss = model.evaluate(x, y, verbose=0)
        expected_prediction = model.predict(x, verbose=0)
    callback = ScheduleFreeEvaluation()
    loss = model.evaluate(x, y, verbose=0, callbacks=[callback])
    prediction = model.predict(x, verbose=0, callbacks=[callback])
    assert loss == pytest.approx(expected_loss, rel=1e-6)
    np.testing.assert_allclose(prediction, expected_prediction, rtol=1e-6)
    for ours, theirs in zip(_weights(model), before):
        np.testing.assert_array_equal(ours, theirs)


def test_the_callback_needs_a_schedule_free_optimizer():
    x, y = _data()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras_opts.Adam(), loss="mse")
    with pytest.raises(TypeError, match="schedule-free optimizer"):
        model.evaluate(x, y, verbose=0, callbacks=[ScheduleFreeEvaluation()])


# BatchNormalization statistics.


def _batch_statistics_at(model, x, batch_size):
    """The mean over batches of each batch's mean and variance of the
    activations entering the BatchNormalization layer (NumPy)."""
    dense = keras.Model(model.inputs, model.layers[0].output)
    activations = np.asarray(dense.predict(x, verbose=0), np.float64)
    batches = [
        activations[i : i + batch_size]
        for i in range(0, len(activations), batch_size)
    ]
    means = np.mean([b.mean(axis=0) for b in batches], axis=0)
    variances = np.mean([b.var(axis=0) for b in batches], axis=0)
    return means, variances


def test_recompute_batchnorm_statistics_at_x():
    x, y = _data(n=96)
    model = _model(batchnorm=True)
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    bn = model.layers[1]
    trained_statistics = bn.moving_mean.numpy().copy()
    with model.optimizer.averaged():
        weights = _weights(model)
        used = recompute_batchnorm_statistics(model, x, batch_size=32)
        assert used == 3
        mean, variance = _batch_statistics_at(model, x, 32)
        np.testing.assert_allclose(bn.moving_mean.numpy(), mean, atol=1e-5)
        np.testing.assert_allclose(
            bn.moving_variance.numpy(), variance, rtol=1e-4, atol=1e-6
        )
        for ours, theirs in zip(_weights(model), weights):
            np.testing.assert_array_equal(ours, theirs)
    assert bn.momentum == 0.99  # restored
    assert np.max(np.abs(bn.moving_mean.numpy() - trained_statistics)) > 1e-3
    assert recompute_batchnorm_statistics(model, [x[:16]], steps=5) == 1


def test_the_callback_recomputes_and_restores_batchnorm_statistics():
    x, y = _data(n=96)
    model = _model(batchnorm=True)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    bn = model.layers[1]
    kept = [bn.moving_mean.numpy().copy(), bn.moving_variance.numpy().copy()]
    with model.optimizer.averaged():
        recompute_batchnorm_statistics(model, x, steps=2, batch_size=32)
        expected = model.evaluate(x, y, verbose=0)
    bn.moving_mean.assign(kept[0])
    bn.moving_variance.assign(kept[1])
    callback = ScheduleFreeEvaluation(
        batchnorm_data=x, batchnorm_steps=2, batch_size=32
    )
    loss = model.evaluate(x, y, verbose=0, callbacks=[callback])
    assert loss == pytest.approx(expected, rel=1e-6)
    np.testing.assert_array_equal(bn.moving_mean.numpy(), kept[0])
    np.testing.assert_array_equal(bn.moving_variance.numpy(), kept[1])


def test_recompute_needs_a_batch():
    model = _model(batchnorm=True)
    with pytest.raises(ValueError, match="no batch"):
        recompute_batchnorm_statistics(model, [])
    with pytest.raises(ValueError, match="steps=0"):
        recompute_batchnorm_statistics(model, np.zeros((4, 4)), steps=0)
