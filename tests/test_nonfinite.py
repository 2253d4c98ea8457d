"""Non-finite gradients: skipped under LossScaleOptimizer and with
``skip_nonfinite``, applied (and visible) otherwise."""

import keras
import numpy as np
import pytest

from keras_opts import registry
from tests import helpers

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
@pytest.mark.parametrize("spec", SPECS)
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


@pytest.mark.parametrize("spec", SPECS)
@COMPILED
def test_skip_nonfinite_does_not_change_finite_steps(spec, compiled):
    params, grads = helpers.random_problem(seed=13, steps=10)
    kwargs = dict(max(spec.test_configs, key=len))
    plain = spec.cls(learning_rate=spec.lr, **kwargs)
    guarded = spec.cls(learning_rate=spec.lr, skip_nonfinite=True, **kwargs)
    a = helpers.run_keras_optimizer(plain, params, grads, compiled)
    b = helpers.run_keras_optimizer(guarded, params, grads, compiled)
    helpers.assert_histories_close(b, a, 0.0, "finite steps")


@pytest.mark.parametrize("spec", SPECS)
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
