"""Non-finite gradients: skipped under LossScaleOptimizer and with
``skip_nonfinite``, applied (and visible) otherwise."""

import keras
import numpy as np
import pytest

from tests import helpers
from tests import specs as registry

SPECS = [pytest.param(s, id=s.name) for s in registry.SPECS]
COMPILED = pytest.mark.parametrize(
    "compiled", [False, True], ids=["eager", "compiled"]
)


def _bad_gradients(grads, value):
    bad = [g.copy() for g in grads]
    bad[1].flat[3] = value
    return bad


def _snapshot(optimizer, variables):
    return [np.array(v.numpy()) for v in [*optimizer.variables, *variables]]


def _assert_unchanged(before, after):
    assert len(before) == len(after)
    for b, a in zip(before, after):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("value", [np.nan, np.inf])
@pytest.mark.parametrize(
    "spec", helpers.shared(SPECS, "skip_nonfinite_leaves_everything_untouched")
)
@COMPILED
def test_skip_nonfinite_leaves_everything_untouched(spec, value, compiled):
    params, grads = helpers.random_problem(seed=12, steps=4)
    kwargs = dict(max(spec.test_configs, key=len))
    optimizer = spec.cls(learning_rate=spec.lr, skip_nonfinite=True, **kwargs)
    variables = helpers.make_variables(params)
    make = helpers.compiled_apply if compiled else helpers.eager_apply
    apply = make(optimizer, variables)
    for step in grads[:2]:
        apply(step)
    before = _snapshot(optimizer, variables)
    apply(_bad_gradients(grads[2], value))
    _assert_unchanged(before, _snapshot(optimizer, variables))
    assert int(optimizer.iterations) == 2


@pytest.mark.parametrize(
    "spec", helpers.shared(SPECS, "skip_nonfinite_does_not_change_finite_steps")
)
@COMPILED
def test_skip_nonfinite_does_not_change_finite_steps(spec, compiled):
    params, grads = helpers.random_problem(seed=13, steps=10)
    kwargs = dict(max(spec.test_configs, key=len))
    plain = spec.cls(learning_rate=spec.lr, **kwargs)
    guarded = spec.cls(learning_rate=spec.lr, skip_nonfinite=True, **kwargs)
    a = helpers.run_keras_optimizer(plain, params, grads, compiled)
    b = helpers.run_keras_optimizer(guarded, params, grads, compiled)
    helpers.assert_histories_close(b, a, 0.0, "finite steps")


@pytest.mark.parametrize(
    "spec",
    helpers.shared(SPECS, "loss_scale_optimizer_overflow_step_is_skipped"),
)
@COMPILED
def test_loss_scale_optimizer_overflow_step_is_skipped(spec, compiled):
    """As ``mixed_float16`` wraps it: a step whose scaled gradients
    overflow changes no weight, slot or step counter of the inner
    optimizer (only the loss scale halves)."""
    if helpers.BACKEND == "jax" and not compiled:
        pytest.skip(
            "Keras 3.15's LossScaleOptimizer.apply cannot run eagerly on JAX "
            "(UnexpectedTracerError in ops.cond, with Keras' own Adam too); "
            "fit() on JAX uses stateless_apply, the compiled case."
        )
    params, grads = helpers.random_problem(seed=14, steps=4)
    kwargs = dict(max(spec.test_configs, key=len))
    inner = spec.cls(learning_rate=spec.lr, **kwargs)
    optimizer = keras.optimizers.LossScaleOptimizer(inner, initial_scale=8.0)
    variables = helpers.make_variables(params)
    make = helpers.compiled_apply if compiled else helpers.eager_apply
    apply = make(optimizer, variables)
    for step in grads[:2]:
        apply(step)
    before = _snapshot(inner, variables)
    iterations = int(inner.iterations)
    apply(_bad_gradients(grads[2], np.inf))
    _assert_unchanged(before, _snapshot(inner, variables))
    assert int(inner.iterations) == iterations == 2
    assert float(optimizer.dynamic_scale) == 4.0


@pytest.mark.parametrize("spec", SPECS)
def test_without_skipping_a_nan_step_reaches_the_weights(spec):
    """The documented default, as in Keras' own optimizers."""
    params, grads = helpers.random_problem(seed=15, steps=2)
    optimizer = spec.cls(learning_rate=spec.lr)
    variables = helpers.make_variables(params)
    apply = helpers.eager_apply(optimizer, variables)
    apply(grads[0])
    apply(_bad_gradients(grads[1], np.nan))
    assert np.isnan(variables[1].numpy()).any()


SKIP = pytest.mark.parametrize("skip", [False, True], ids=["plain", "skip"])


def _stateless(optimizer, variables, grads):
    """JAX's ``fit()`` path, eagerly."""
    optimizer.build(variables)
    return optimizer.stateless_apply(
        [v.value for v in optimizer.variables],
        grads,
        [v.value for v in variables],
    )


@SKIP
@pytest.mark.parametrize("spec", SPECS)
def test_no_gradient_at_all_raises_keras_error(spec, skip):
    """Every gradient None: Keras' own ValueError, before anything moves
    (it was a failing ``stack`` of no flags under ``skip_nonfinite``)."""
    params, _ = helpers.random_problem(seed=16, steps=1)
    variables = helpers.make_variables(params)
    optimizer = spec.cls(learning_rate=spec.lr, skip_nonfinite=skip)
    nothing = [None] * len(variables)
    with pytest.raises(ValueError, match="No gradients provided"):
        optimizer.apply(nothing, variables)
    if helpers.BACKEND == "jax":
        with pytest.raises(ValueError, match="No gradients provided"):
            _stateless(spec.cls(skip_nonfinite=skip), variables, nothing)
    for variable, p in zip(variables, params):
        np.testing.assert_array_equal(variable.numpy(), p)


@SKIP
@pytest.mark.parametrize("spec", SPECS)
def test_a_missing_gradient_is_dropped_with_keras_warning(spec, skip):
    """As in Keras: the variable without a gradient is left alone, with
    Keras' warning, and the others take the step they take alone."""
    params, grads = helpers.random_problem(seed=17, steps=1)
    kwargs = {"learning_rate": spec.lr, "skip_nonfinite": skip}
    variables = helpers.make_variables(params)
    alone = helpers.make_variables(params[:-1])
    step = [keras.ops.convert_to_tensor(g) for g in grads[0]]
    with pytest.warns(UserWarning, match="Gradients do not exist for var"):
        spec.cls(**kwargs).apply([*step[:-1], None], variables)
    spec.cls(**kwargs).apply(step[:-1], alone)
    np.testing.assert_array_equal(variables[-1].numpy(), params[-1])
    for variable, reference in zip(variables, alone):
        np.testing.assert_array_equal(variable.numpy(), reference.numpy())
    if helpers.BACKEND == "jax":
        with pytest.warns(UserWarning, match="Gradients do not exist"):
            values, _ = _stateless(
                spec.cls(**kwargs),
                helpers.make_variables(params),
                [*step[:-1], None],
            )
        np.testing.assert_array_equal(values[-1], params[-1])
        # One rounding: with skip_nonfinite the step runs inside lax.cond,
        # compiled by XLA, which may round differently than eager ops.
        tol = helpers.float32_tolerance([params], 1)
        for value, reference in zip(values, alone):
            np.testing.assert_allclose(
                value, reference.numpy(), rtol=0, atol=tol
            )


@pytest.mark.skipif(
    helpers.BACKEND == "tensorflow",
    reason="Keras has no stateless_apply on TensorFlow",
)
@pytest.mark.parametrize("value", [1.0, np.nan], ids=["finite", "nan"])
def test_skip_nonfinite_stateless_apply_takes_keras_variables(value):
    """Keras' own optimizers take ``keras.Variable`` objects in
    ``stateless_apply`` (not only their values); with ``skip_nonfinite``
    both branches must still return values. The result equals the one
    given values."""
    params, grads = helpers.random_problem(seed=16, steps=1)
    grads = [
        keras.ops.convert_to_tensor(g) for g in _bad_gradients(grads[0], value)
    ]
    results = []
    for as_values in (False, True):
        variables = helpers.make_variables(params)
        optimizer = registry.lookup("adam").cls(
            learning_rate=0.1, skip_nonfinite=True
        )
        optimizer.build(variables)
        given = [*optimizer.variables], [*variables]
        if as_values:
            given = [v.value for v in given[0]], [v.value for v in given[1]]
        new, _ = optimizer.stateless_apply(given[0], grads, given[1])
        results.append([np.asarray(keras.ops.convert_to_numpy(v)) for v in new])
    for with_variables, with_values, initial in zip(*results, params):
        np.testing.assert_array_equal(with_variables, with_values)
        assert np.array_equal(with_values, initial) == (value != 1.0)
