"""Base-class features work with every optimizer and are applied once.

``weight_decay``, clipping, ``loss_scale_factor`` and
``gradient_accumulation_steps`` are checked against the oracle harness,
which applies them in NumPy around the algorithm's step; ``use_ema``
against an EMA of the oracle's trajectory. Tolerance as in test_parity.
"""

import keras
import numpy as np
import pytest

from tests import helpers
from tests import specs as registry

STEPS = 24

FEATURES = {
    "weight_decay": {"weight_decay": 0.1},
    "clipnorm": {"clipnorm": 0.5},
    "clipvalue": {"clipvalue": 0.3},
    "global_clipnorm": {"global_clipnorm": 1.0},
    "loss_scale_factor": {"loss_scale_factor": 128.0},
    "gradient_accumulation_steps": {"gradient_accumulation_steps": 3},
    "gradient_centralization": {
        "gradient_centralization": True,
        "clipnorm": 0.5,
    },
}

#: The features that take a traced branch (accumulation's cond) or run
#: keras_opts' own code before the update (centralization): these also
#: run compiled. The others are arithmetic that the compiled parity tests
#: already cover.
TRACED = ("gradient_accumulation_steps", "gradient_centralization")

SPECS = [pytest.param(s, id=s.name) for s in registry.SPECS]
CASES = [
    pytest.param(spec, feature, compiled, id=f"{spec.name}-{feature}-{mode}")
    for spec in registry.SPECS
    for feature in FEATURES
    for compiled, mode in ((False, "eager"), (True, "compiled"))
    # AdamW's weight_decay is its own argument, tested by its parity tests.
    if not (
        feature == "weight_decay" and "owns_weight_decay" in spec.capabilities
    )
    and (not compiled or feature in TRACED)
]
#: Each (optimizer, feature) on one backend; compiled on one that traces.
CASES = helpers.shared(
    [c for c in CASES if not c.values[2]], "feature_matches_harness"
) + helpers.shared(
    [c for c in CASES if c.values[2]],
    "feature_matches_harness",
    backends=helpers.TRACING_BACKENDS,
)


def _with_decoupled_decay(spec, kwargs, weight_decay):
    """(our arguments, oracle arguments, harness arguments) that add Keras'
    decoupled decay once: through the harness, or through the algorithm's
    own argument for an optimizer that owns ``weight_decay``."""
    ours = {**kwargs, "weight_decay": weight_decay}
    if "owns_weight_decay" in spec.capabilities:
        return ours, ours, {}
    return ours, kwargs, {"weight_decay": weight_decay}


def _algorithm_kwargs(spec):
    """The richest test config: the one with the most arguments."""
    return dict(max(spec.test_configs, key=len))


@pytest.mark.parametrize("spec, feature, compiled", CASES)
def test_feature_matches_harness(spec, feature, compiled):
    params, grads = helpers.random_problem(seed=4, steps=STEPS)
    kwargs = _algorithm_kwargs(spec)
    base = FEATURES[feature]
    optimizer = spec.cls(learning_rate=spec.lr, **kwargs, **base)
    ours = helpers.run_keras_optimizer(optimizer, params, grads, compiled)
    oracle = dict(kwargs)
    if compiled and "random" in spec.capabilities:
        oracle["compiled"] = True  # drawn as the compiled step draws
    expected = helpers.run_oracle(
        spec, oracle, params, grads, [spec.lr] * STEPS, **base
    )
    tol = helpers.float32_tolerance(expected, STEPS)
    helpers.assert_histories_close(ours, expected, tol, feature)


@pytest.mark.parametrize("spec", SPECS)
def test_ema_tracks_the_trajectory(spec):
    params, grads = helpers.random_problem(seed=5, steps=STEPS)
    kwargs = _algorithm_kwargs(spec)
    optimizer = spec.cls(
        learning_rate=spec.lr, use_ema=True, ema_momentum=0.9, **kwargs
    )
    variables = helpers.make_variables(params)
    apply = helpers.eager_apply(optimizer, variables)
    for step_grads in grads:
        apply(step_grads)
    expected = helpers.run_oracle(
        spec, kwargs, params, grads, [spec.lr] * STEPS
    )
    # Keras' EMA: average = trajectory at the first step, then
    # average <- 0.9 average + 0.1 w.
    average = [p.copy() for p in expected[0]]
    for step in expected[1:]:
        average = [0.9 * a + 0.1 * w for a, w in zip(average, step)]
    optimizer.finalize_variable_values(variables)
    tol = helpers.float32_tolerance(expected, STEPS)
    for var, a in zip(variables, average):
        np.testing.assert_allclose(var.numpy(), a, rtol=0, atol=tol)


@pytest.mark.parametrize("spec", SPECS)
def test_coupled_and_decoupled_decay_are_independent(spec):
    """``coupled_weight_decay`` (L2 in the gradient) and Keras'
    ``weight_decay`` (decoupled) each apply once, and together compose."""
    params, grads = helpers.random_problem(seed=6, steps=STEPS)
    kwargs = {**_algorithm_kwargs(spec), "coupled_weight_decay": 0.2}
    ours, oracle, harness = _with_decoupled_decay(spec, kwargs, 0.3)
    optimizer = spec.cls(learning_rate=spec.lr, **ours)
    history = helpers.run_keras_optimizer(optimizer, params, grads)
    expected = helpers.run_oracle(
        spec, oracle, params, grads, [spec.lr] * STEPS, **harness
    )
    tol = helpers.float32_tolerance(expected, STEPS)
    helpers.assert_histories_close(history, expected, tol, "both decays")


@pytest.mark.parametrize("spec", SPECS)
def test_excluded_variables_get_no_decay_of_either_kind(spec):
    """Only the first variable is excluded: with every variable excluded,
    Keras 3.15's torch backend calls ``torch._foreach_mul_`` on an empty
    list and fails, for its built-in optimizers too."""
    params, grads = helpers.random_problem(seed=7, steps=5)
    kwargs = {**_algorithm_kwargs(spec), "coupled_weight_decay": 0.2}
    ours, oracle, harness = _with_decoupled_decay(spec, kwargs, 0.3)
    optimizer = spec.cls(learning_rate=spec.lr, **ours)
    variables = helpers.make_variables(params)
    optimizer.exclude_from_weight_decay(var_list=variables[:1])
    apply = helpers.eager_apply(optimizer, variables)
    for step_grads in grads:
        apply(step_grads)
    plain = {**oracle, "coupled_weight_decay": 0.0}
    if "owns_weight_decay" in spec.capabilities:
        plain["weight_decay"] = 0.0
    lrs = [spec.lr] * 5
    if "global_state" in spec.capabilities:
        # One trajectory for all: the excluded variable's depends on the
        # decayed ones' (Prodigy's d), so the oracle masks both decays.
        mask = [False] + [True] * (len(params) - 1)
        # An oracle that does not own weight_decay takes it here too.
        expected = helpers.run_oracle(
            spec,
            {**oracle, **harness, "weight_decay_mask": mask},
            params,
            grads,
            lrs,
        )[-1]
        tol = helpers.float32_tolerance([expected], 5)
        for var, e in zip(variables, expected):
            np.testing.assert_allclose(var.numpy(), e, rtol=0, atol=tol)
        return
    excluded = helpers.run_oracle(spec, plain, params, grads, lrs)[-1][0]
    decayed = helpers.run_oracle(spec, oracle, params, grads, lrs, **harness)
    decayed = decayed[-1]
    tol = helpers.float32_tolerance([[excluded], decayed], 5)
    np.testing.assert_allclose(variables[0].numpy(), excluded, rtol=0, atol=tol)
    for var, e in zip(variables[1:], decayed[1:]):
        np.testing.assert_allclose(var.numpy(), e, rtol=0, atol=tol)


def test_keras_sanity_of_the_harness():
    """The harness reproduces Keras' own SGD with every feature too, so a
    wrong harness cannot hide a wrong keras_opts optimizer."""
    spec = registry.lookup("sgd")
    params, grads = helpers.random_problem(seed=8, steps=STEPS)
    for feature, base in FEATURES.items():
        if feature == "gradient_centralization":  # ours only; see below
            continue
        keras_sgd = keras.optimizers.SGD(learning_rate=0.05, **base)
        theirs = helpers.run_keras_optimizer(keras_sgd, params, grads)
        expected = helpers.run_oracle(
            spec, {}, params, grads, [0.05] * STEPS, **base
        )
        tol = helpers.float32_tolerance(expected, STEPS)
        helpers.assert_histories_close(theirs, expected, tol, str(base))


def test_gradient_centralization_zeroes_the_mean_over_inputs():
    """Independent of the harness: one SGD step with centralization moves a
    kernel by a gradient whose columns have mean 0, and leaves vectors'
    gradients alone (Yong et al. 2020, eq. 3)."""
    import keras_opts

    rng = np.random.default_rng(0)
    kernel = rng.standard_normal((4, 3)).astype("float32")
    bias = rng.standard_normal(3).astype("float32")
    g_kernel = rng.standard_normal((4, 3)).astype("float32")
    g_bias = rng.standard_normal(3).astype("float32")
    variables = helpers.make_variables([kernel, bias])
    optimizer = keras_opts.SGD(learning_rate=1.0, gradient_centralization=True)
    helpers.eager_apply(optimizer, variables)([g_kernel, g_bias])
    moved = kernel - variables[0].numpy()
    np.testing.assert_allclose(moved.mean(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(
        moved, g_kernel - g_kernel.mean(axis=0), rtol=0, atol=1e-6
    )
    np.testing.assert_allclose(bias - variables[1].numpy(), g_bias, atol=1e-6)


@pytest.mark.skipif(
    helpers.BACKEND != "tensorflow", reason="TensorFlow's own variables"
)
@pytest.mark.parametrize("spec", SPECS)
def test_plain_tf_variables_update_as_keras_variables(spec):
    """``apply_gradients`` on ``tf.Variable``s, which have no ``path``
    (the scalar slots of NovoGrad and Prodigy were named from it)."""
    import tensorflow as tf

    if "path_blocks" in spec.capabilities:
        pytest.skip("without a path, a tf.Variable's name decides its blocks")

    params, grads = helpers.random_problem(seed=9, steps=3)
    kwargs = _algorithm_kwargs(spec)
    raw = [tf.Variable(p) for p in params]
    optimizer = spec.cls(learning_rate=spec.lr, **kwargs)
    for step in grads:
        optimizer.apply_gradients(zip([tf.constant(g) for g in step], raw))
    expected = helpers.run_keras_optimizer(
        spec.cls(learning_rate=spec.lr, **kwargs), params, grads
    )[-1]
    for variable, e in zip(raw, expected):
        np.testing.assert_array_equal(variable.numpy(), e, err_msg=spec.name)


class _CountingDecay(keras.optimizers.schedules.LearningRateSchedule):
    """``initial * rate ** step``; counts its calls, which under
    ``tf.function`` or ``jax.jit`` happen only while tracing."""

    def __init__(self, initial=0.3, rate=0.6):
        self.initial, self.rate, self.calls = initial, rate, 0

    def __call__(self, step):
        self.calls += 1
        step = keras.ops.cast(step, "float32")
        return self.initial * keras.ops.power(self.rate, step)

    def value(self, step):
        """The float32 value at ``step`` (0-based), as a Python float."""
        return float(np.float32(self.initial) * np.float32(self.rate) ** step)


def _decay_kwargs(spec):
    """The richest test config, without its own weight decay."""
    kwargs = _algorithm_kwargs(spec)
    kwargs.pop("weight_decay", None)
    return kwargs


def _run_setting_each_step_decay(spec, kwargs, params, grads, schedule):
    """The reference: a constant ``weight_decay``, set to the schedule's
    value before each step (eager, so each step reads it anew)."""
    optimizer = spec.cls(
        learning_rate=spec.lr, weight_decay=schedule.value(0), **kwargs
    )
    variables = helpers.make_variables(params)
    apply = helpers.eager_apply(optimizer, variables)
    history = []
    for t, step in enumerate(grads):
        optimizer.weight_decay = float(keras.ops.convert_to_numpy(schedule(t)))
        apply(step)
        history.append([np.asarray(v.numpy(), np.float64) for v in variables])
    return history


@pytest.mark.parametrize(
    "spec",
    helpers.shared(
        SPECS, "weight_decay_schedule_equals_its_values_set_each_step"
    ),
)
def test_weight_decay_schedule_equals_its_values_set_each_step(spec):
    """Keras' decoupled decay, AdamW's own and the in-kernel decay of
    NovoGrad, LARS and Prodigy all read the schedule at ``iterations``:
    the run equals one whose number is changed before every step."""
    params, grads = helpers.random_problem(seed=10, steps=6)
    kwargs = _decay_kwargs(spec)
    scheduled = spec.cls(
        learning_rate=spec.lr, weight_decay=_CountingDecay(), **kwargs
    )
    ours = helpers.run_keras_optimizer(scheduled, params, grads)
    expected = _run_setting_each_step_decay(
        spec, kwargs, params, grads, _CountingDecay()
    )
    helpers.assert_histories_close(ours, expected, 0.0, "scheduled decay")
    constant = helpers.run_keras_optimizer(
        spec.cls(learning_rate=spec.lr, weight_decay=0.3, **kwargs),
        params,
        grads,
    )
    assert helpers.max_abs_difference(ours, constant) > 0


@pytest.mark.parametrize(
    "spec",
    helpers.shared(
        SPECS,
        "weight_decay_schedule_is_traced_once",
        backends=helpers.TRACING_BACKENDS,
    ),
)
def test_weight_decay_schedule_is_traced_once(spec):
    """Compiled as ``fit()`` compiles it: the schedule is traced with the
    step (no retrace as ``iterations`` grows) and gives the eager result
    to a float32 rounding per step."""
    params, grads = helpers.random_problem(seed=11, steps=5)
    kwargs = _decay_kwargs(spec)
    schedule = _CountingDecay()
    optimizer = spec.cls(learning_rate=spec.lr, weight_decay=schedule, **kwargs)
    variables = helpers.make_variables(params)
    apply = helpers.compiled_apply(optimizer, variables)
    apply(grads[0])
    traced = schedule.calls
    history = [[np.asarray(v.numpy(), np.float64) for v in variables]]
    for step in grads[1:]:
        apply(step)
        history.append([np.asarray(v.numpy(), np.float64) for v in variables])
    if helpers.BACKEND != "torch":  # torch runs eagerly
        assert schedule.calls == traced > 0
    if "random" in spec.capabilities and helpers.BACKEND == "tensorflow":
        return  # XLA draws other random numbers than the eager run
    expected = _run_setting_each_step_decay(
        spec, kwargs, params, grads, _CountingDecay()
    )
    tol = helpers.float32_tolerance(expected, len(grads))
    helpers.assert_histories_close(history, expected, tol, "compiled")


def _steps(optimizer, params, grads):
    return helpers.run_keras_optimizer(optimizer, params, grads)[-1]


def test_weight_decay_schedule_by_hand_keras_decay():
    """SGD: ``w <- w - w * wd_t * lr``, then ``w <- w - lr * g``."""
    import keras_opts

    params, grads = helpers.random_problem(seed=12, steps=4)
    schedule, lr = _CountingDecay(), 0.05
    ours = _steps(keras_opts.SGD(lr, weight_decay=schedule), params, grads)
    expected = [np.asarray(p, np.float64) for p in params]
    for t, step in enumerate(grads):
        wd = schedule.value(t)
        expected = [w - w * wd * lr - lr * g for w, g in zip(expected, step)]
    tol = helpers.float32_tolerance([expected], len(grads))
    for a, e in zip(ours, expected):
        np.testing.assert_allclose(a, e, rtol=0, atol=tol)


def test_weight_decay_schedule_by_hand_adamw_scaled():
    """AdamW's paper form: ``w <- w - w * wd_t * lr_t / alpha``, then
    Adam's step (the Adam oracle, Kingma & Ba Algorithm 1)."""
    import keras_opts
    from tests import oracles

    params, grads = helpers.random_problem(seed=13, steps=4)
    schedule, lr, alpha = _CountingDecay(), 0.01, 0.02
    optimizer = keras_opts.AdamW(
        lr,
        weight_decay=schedule,
        weight_decay_scaling="schedule",
        base_learning_rate=alpha,
    )
    ours = _steps(optimizer, params, grads)
    adam = oracles.AdamOracle()
    states = [adam.init(np.asarray(p, np.float64)) for p in params]
    expected = [np.asarray(p, np.float64) for p in params]
    for t, step in enumerate(grads):
        wd = schedule.value(t)
        expected = [
            adam.step(w - w * wd * lr / alpha, g, s, lr, t + 1)
            for w, g, s in zip(expected, step, states)
        ]
    tol = helpers.float32_tolerance([expected], len(grads))
    for a, e in zip(ours, expected):
        np.testing.assert_allclose(a, e, rtol=0, atol=tol)


def test_weight_decay_schedule_by_hand_in_kernel():
    """NovoGrad (Ginsburg et al. 2019, Algorithm 1), whose decay enters
    the momentum: ``v_1 = |g|^2``, ``v_t = b2 v + (1 - b2) |g|^2``,
    ``m <- b1 m + g / (sqrt(v) + eps) + d_t w``, ``w <- w - lr m``."""
    import keras_opts

    params, grads = helpers.random_problem(seed=14, steps=4)
    schedule, lr, b1, b2, eps = _CountingDecay(), 0.01, 0.95, 0.98, 1e-8
    optimizer = keras_opts.NovoGrad(lr, b1, b2, eps, weight_decay=schedule)
    ours = _steps(optimizer, params, grads)
    expected = [np.asarray(p, np.float64) for p in params]
    m = [np.zeros_like(w) for w in expected]
    v = [0.0] * len(expected)
    for t, step in enumerate(grads):
        d = schedule.value(t)
        for i, (w, g) in enumerate(zip(expected, step)):
            norm2 = float(np.sum(np.asarray(g, np.float64) ** 2))
            v[i] = norm2 if t == 0 else b2 * v[i] + (1 - b2) * norm2
            m[i] = b1 * m[i] + g / (np.sqrt(v[i]) + eps) + d * w
            expected[i] = w - lr * m[i]
    tol = helpers.float32_tolerance([expected], len(grads))
    for a, e in zip(ours, expected):
        np.testing.assert_allclose(a, e, rtol=0, atol=tol)


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param(s, id=s.name)
        for s in registry.SPECS
        if "global_state" not in s.capabilities
    ],
)
def test_weight_decay_schedule_skips_excluded_variables(spec):
    """``exclude_from_weight_decay`` holds for a scheduled decay: the
    excluded variable moves as without decay (of either kind), the others
    as with it. (Prodigy's d couples all variables, so no variable moves
    alone.)"""
    params, grads = helpers.random_problem(seed=15, steps=5)
    kwargs = _decay_kwargs(spec)
    optimizer = spec.cls(
        learning_rate=spec.lr, weight_decay=_CountingDecay(), **kwargs
    )
    variables = helpers.make_variables(params)
    optimizer.exclude_from_weight_decay(var_list=variables[:1])
    apply = helpers.eager_apply(optimizer, variables)
    for step in grads:
        apply(step)
    plain = {**kwargs, "weight_decay": 0.0, "coupled_weight_decay": 0.0}
    plain, decayed = (
        _steps(spec.cls(learning_rate=spec.lr, **arguments), params, grads)
        for arguments in (plain, {**kwargs, "weight_decay": _CountingDecay()})
    )
    np.testing.assert_array_equal(variables[0].numpy(), plain[0])
    for variable, e in zip(variables[1:], decayed[1:]):
        np.testing.assert_array_equal(variable.numpy(), e)
