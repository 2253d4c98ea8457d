"""Keras' own optimizer features around every keras_opts optimizer, at the
level a user meets them: ``fit()`` with ``gradient_accumulation_steps``,
``use_ema`` with ``ema_overwrite_frequency``, and ``MultiOptimizer``
holding keras_opts optimizers for different layers, saved and reloaded.
(Clipping, ``weight_decay`` and ``exclude_from_weight_decay`` are checked
against the oracle harness in test_base_features.py.)
"""

import keras
import numpy as np
import pytest

from tests import helpers
from tests import specs as registry
from tests.distributed import common

SPECS = [pytest.param(s, id=s.name) for s in registry.SPECS]


def _kwargs(spec):
    kwargs = dict(max(spec.test_configs, key=len))
    kwargs.update(spec.convergence["parabola"][0])
    return kwargs


@pytest.mark.parametrize(
    "spec",
    helpers.shared(
        SPECS, "accumulating_four_batches_is_one_step_on_their_union"
    ),
)
def test_accumulating_four_batches_is_one_step_on_their_union(spec):
    """Keras averages the k accumulated gradients, and the loss is a mean,
    so 4 batches of 8 accumulated give the gradient of the batch of 32:
    the same sum in another order (16 float32 roundings per step, as in
    the distributed tests)."""
    x, y = common.data(batches=4)
    accumulated, whole = common.model(), common.model()
    accumulated.compile(
        optimizer=spec.cls(gradient_accumulation_steps=4, **_kwargs(spec)),
        loss="mse",
    )
    whole.compile(optimizer=spec.cls(**_kwargs(spec)), loss="mse")
    accumulated.fit(
        x, y, batch_size=common.BATCH // 4, shuffle=False, verbose=0
    )
    whole.fit(x, y, batch_size=common.BATCH, shuffle=False, verbose=0)
    assert int(accumulated.optimizer.iterations) == 4
    ours, theirs = common.weights(accumulated), common.weights(whole)
    tol = common.tolerance(theirs, steps=4, factor=16)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=0, atol=tol, err_msg=spec.name)


@pytest.mark.skipif(
    helpers.BACKEND == "tensorflow",
    reason="Keras' tf.cond runs the update on the last micro-step only",
)
@pytest.mark.parametrize("run_eagerly", [False, True])
def test_micro_steps_that_only_accumulate_run_no_update(run_eagerly):
    """With ``gradient_accumulation_steps=4``, 8 batches through a compiled
    ``fit()`` run the update (SOAP's products and refreshes) twice, not 8
    times: on JAX, Keras 3.15 computes the update on every micro-step and
    keeps the old values; keras_opts runs it under ``jax.lax.cond``
    (counted by a host callback inside the update, which runs only where
    its branch is taken), and skips it eagerly. On torch Keras' Python
    branch; ``fit()`` there runs eagerly unless ``jit_compile=True``."""
    import keras_opts
    from keras_opts._core import keras_api

    x, y = common.data(batches=2)
    model = common.model()
    optimizer = keras_opts.SOAP(
        1e-2, gradient_accumulation_steps=4, precondition_frequency=1
    )
    calls = []
    update = optimizer._update_variables

    def counted(*args):
        if helpers.BACKEND == "jax":
            import jax

            jax.debug.callback(lambda: calls.append(1))
        else:
            calls.append(1)
        update(*args)

    optimizer._update_variables = counted
    model.compile(optimizer=optimizer, loss="mse", run_eagerly=run_eagerly)
    model.fit(x, y, batch_size=common.BATCH // 4, shuffle=False, verbose=0)
    assert int(keras_api.own_iterations(optimizer)) == 8  # micro-steps
    assert len(calls) == 2


def _oracle_steps(spec, kwargs, params, grads, lr):
    """The oracle's parameters after each step, one step at a time."""
    oracle = spec.oracle(**kwargs)
    states = [oracle.init(p) for p in params]

    def step(current, step_grads, t):
        if hasattr(oracle, "step_all"):
            return oracle.step_all(current, step_grads, states, lr, t)
        return [
            oracle.step(p, g, s, lr, t)
            for p, g, s in zip(current, step_grads, states)
        ]

    return step


@pytest.mark.parametrize(
    "spec", helpers.shared(SPECS, "ema_overwrites_the_weights_every_k_steps")
)
def test_ema_overwrites_the_weights_every_k_steps(spec):
    """Keras' EMA: the average starts at the first step's weights, then
    ``a <- 0.9 a + 0.1 w``; after every 4th step the weights become the
    average and the algorithm goes on from there."""
    steps, every = 12, 4
    params, grads = helpers.random_problem(seed=9, steps=steps)
    kwargs = dict(max(spec.test_configs, key=len))
    optimizer = spec.cls(
        learning_rate=spec.lr,
        use_ema=True,
        ema_momentum=0.9,
        ema_overwrite_frequency=every,
        **kwargs,
    )
    variables = helpers.make_variables(params)
    apply = helpers.eager_apply(optimizer, variables)
    step = _oracle_steps(spec, kwargs, params, grads, spec.lr)
    current = [np.asarray(p, np.float64) for p in params]
    average, history = None, []
    for t, step_grads in enumerate(grads, start=1):
        apply(step_grads)
        current = step(current, [np.float64(g) for g in step_grads], t)
        if average is None:
            average = [p.copy() for p in current]
        else:
            average = [0.9 * a + 0.1 * p for a, p in zip(average, current)]
        if t % every == 0:
            current = [a.copy() for a in average]
        history.append([p.copy() for p in current])
        tol = helpers.float32_tolerance(history, t)
        for var, expected in zip(variables, current):
            np.testing.assert_allclose(
                var.numpy(), expected, rtol=0, atol=tol, err_msg=f"step {t}"
            )


def _pair(spec):
    """``spec`` and another registry optimizer for the other layer (one
    whose update does not depend on the variables' paths)."""
    others = [
        s
        for s in registry.SPECS
        if s is not spec and "path_blocks" not in s.capabilities
    ]
    return spec, others[registry.SPECS.index(spec) % len(others)]


def _multi(first, second):
    optimizer_map = keras.optimizers.OptimizerMap(
        default_optimizer=second.cls(**_kwargs(second))
    )
    optimizer_map[".*dense_1/.*"] = first.cls(**_kwargs(first))
    return keras.optimizers.MultiOptimizer(optimizer_map)


@pytest.mark.parametrize(
    "spec", helpers.shared(SPECS, "multi_optimizer_applies_each_to_its_layer")
)
def test_multi_optimizer_applies_each_to_its_layer(spec):
    """With fixed gradients each layer's trajectory is its own optimizer's
    alone: compare with the two optimizers run separately, bitwise."""
    if "path_blocks" in spec.capabilities:
        pytest.skip("run alone, the layers' variables have other paths")
    first, second = _pair(spec)
    model = common.model()
    multi = _multi(first, second)
    rng = np.random.default_rng(0)
    grads = [
        [rng.standard_normal(w.shape).astype("float32") for w in model.weights]
        for _ in range(5)
    ]
    variables = model.trainable_weights
    multi.build(variables)
    for step_grads in grads:
        multi.apply(
            [keras.ops.convert_to_tensor(g) for g in step_grads], variables
        )
    params = [
        np.array(keras.ops.convert_to_numpy(w)) for w in common.model().weights
    ]
    alone = {}
    for which, spec_ in ((slice(0, 2), first), (slice(2, 4), second)):
        history = helpers.run_keras_optimizer(
            spec_.cls(**_kwargs(spec_)),
            params[which],
            [g[which] for g in grads],
        )
        alone[which.start] = history[-1]
    expected = [*alone[0], *alone[2]]
    for var, e in zip(variables, expected):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(var), e.astype("float32"), var.path
        )


@pytest.mark.parametrize(
    "spec", helpers.shared(SPECS, "multi_optimizer_saves_and_resumes")
)
def test_multi_optimizer_saves_and_resumes(spec, tmp_path):
    first, second = _pair(spec)
    x, y = common.data(batches=4)
    half = len(x) // 2
    model = common.model()
    model.compile(optimizer=_multi(first, second), loss="mse")
    model.fit(
        x[:half], y[:half], batch_size=common.BATCH, shuffle=False, verbose=0
    )
    path = str(tmp_path / "multi.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.optimizer, keras.optimizers.MultiOptimizer)
    inner = [type(o) for o in loaded.optimizer.optimizers]
    assert inner == [first.cls, second.cls]
    before = common.optimizer_state(model.optimizer)
    after = common.optimizer_state(loaded.optimizer)
    assert before.keys() == after.keys()
    for key, value in before.items():
        np.testing.assert_array_equal(after[key], value, err_msg=key)
    for m in (model, loaded):
        m.fit(
            x[half:],
            y[half:],
            batch_size=common.BATCH,
            shuffle=False,
            verbose=0,
        )
    for a, b in zip(common.weights(loaded), common.weights(model)):
        np.testing.assert_array_equal(a, b, err_msg=spec.name)
