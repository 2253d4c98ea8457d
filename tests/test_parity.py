"""Every optimizer against its NumPy oracle and against other libraries.

Tolerance: the trajectories are compared at every one of the 50 steps with
an absolute tolerance of one float32 rounding (2**-23) of the largest
parameter magnitude per step taken (``helpers.float32_tolerance``): the
error a float32 implementation accumulates when each step rounds once. The
oracle and the torch and optax references run in float64.
"""

import keras
import numpy as np
import pytest

from keras_opts import NovoGrad
from tests import helpers, oracles, references
from tests import specs as registry

STEPS = 50

#: Each optimizer's first argument set, and the others.
FIRST_CONFIGS = [
    pytest.param(spec, spec.test_configs[0], id=f"{spec.name}-0")
    for spec in registry.SPECS
]
OTHER_CONFIGS = [
    pytest.param(spec, kwargs, id=f"{spec.name}-{i}")
    for spec in registry.SPECS
    for i, kwargs in enumerate(spec.test_configs)
    if i
]
#: Every optimizer's first argument set runs on every backend; each other
#: set on one backend (``helpers.shared``). torch's multi-tensor path is
#: compared with the per-variable one on every set in test_fast_path.
CONFIGS = FIRST_CONFIGS + helpers.shared(OTHER_CONFIGS, "matches_oracle")
COMPILED_CONFIGS = FIRST_CONFIGS + helpers.shared(
    OTHER_CONFIGS,
    "matches_oracle_compiled",
    backends=helpers.TRACING_BACKENDS,
)
REFERENCES = [
    pytest.param(spec, ref, id=f"{spec.name}-{ref.library}.{ref.name}-{i}")
    for spec in registry.SPECS
    for i, ref in enumerate(spec.references)
]


def _check_against_oracle(spec, kwargs, learning_rate, lrs, compiled):
    params, grads = helpers.random_problem(seed=1, steps=STEPS)
    optimizer = spec.cls(learning_rate=learning_rate, **kwargs)
    ours = helpers.run_keras_optimizer(optimizer, params, grads, compiled)
    oracle_kwargs = dict(kwargs)
    if compiled and "random" in spec.capabilities:
        # Its random numbers as the compiled step draws them (TensorFlow's
        # XLA draws others than its eager kernels from the same seed).
        oracle_kwargs["compiled"] = True
    expected = helpers.run_oracle(spec, oracle_kwargs, params, grads, lrs)
    tol = helpers.float32_tolerance(expected, STEPS)
    helpers.assert_histories_close(ours, expected, tol, f"{spec.name}")


@pytest.mark.parametrize("spec, kwargs", CONFIGS)
def test_matches_oracle(spec, kwargs):
    _check_against_oracle(spec, kwargs, spec.lr, [spec.lr] * STEPS, False)


@pytest.mark.skipif(
    helpers.BACKEND == "torch",
    reason="Keras runs torch eagerly: test_matches_oracle is this test",
)
@pytest.mark.parametrize("spec, kwargs", COMPILED_CONFIGS)
def test_matches_oracle_compiled(spec, kwargs):
    _check_against_oracle(spec, kwargs, spec.lr, [spec.lr] * STEPS, True)


# The learning-rate schedule reaches the kernel through the base class,
# the same for every argument set and backend: one set per optimizer, on
# one backend.
@pytest.mark.parametrize(
    "spec, kwargs",
    helpers.shared(FIRST_CONFIGS, "matches_oracle_with_schedule"),
)
def test_matches_oracle_with_schedule(spec, kwargs):
    schedule = keras.optimizers.schedules.ExponentialDecay(
        spec.lr, decay_steps=10, decay_rate=0.5
    )
    lrs = [spec.lr * 0.5 ** (i / 10) for i in range(STEPS)]
    _check_against_oracle(spec, kwargs, schedule, lrs, False)


@pytest.mark.parametrize("spec, reference", REFERENCES)
def test_matches_reference(spec, reference):
    params, grads = helpers.random_problem(seed=2, steps=STEPS)
    optimizer = spec.cls(learning_rate=spec.lr, **reference.ours)
    ours = helpers.run_keras_optimizer(optimizer, params, grads)
    theirs = helpers.run_reference(reference, spec.lr, params, grads)
    tol = helpers.float32_tolerance(theirs, STEPS)
    helpers.assert_histories_close(
        ours, theirs, tol, f"{reference.library}.{reference.name}"
    )


@pytest.mark.parametrize("spec, reference", REFERENCES)
def test_reference_settings_match_oracle(spec, reference):
    """The documented settings describe the same algorithm as our oracle.

    Guards the reference table itself: a reference that matched us only by
    sharing a bug with our Keras code would disagree with the oracle here.
    Only a Keras reference depends on the backend; the others (float64
    NumPy, torch and optax) run on the JAX pass only.
    """
    if reference.library != "keras" and helpers.BACKEND != "jax":
        pytest.skip("backend-independent: checked on the jax run")
    params, grads = helpers.random_problem(seed=3, steps=STEPS)
    oracle_kwargs, base = dict(reference.ours), {}
    if "owns_weight_decay" not in spec.capabilities:
        base["weight_decay"] = oracle_kwargs.pop("weight_decay", None)
    expected = helpers.run_oracle(
        spec, oracle_kwargs, params, grads, [spec.lr] * STEPS, **base
    )
    theirs = helpers.run_reference(reference, spec.lr, params, grads)
    if reference.library == "keras" or reference.float32_state:
        tol = helpers.float32_tolerance(expected, STEPS)
    else:  # float64 against float64: a few roundings of 2**-52 per step.
        tol = 1e-12
    assert np.isfinite(helpers.max_abs_difference(theirs, expected))
    helpers.assert_histories_close(theirs, expected, tol, "reference")


#: Every argument of both, spelt out (their defaults differ).
TFA_NOVOGRAD = [
    pytest.param(
        {
            "beta_1": 0.95,
            "beta_2": 0.98,
            "epsilon": 1e-8,
            "weight_decay": 0.05,
            "grad_averaging": True,
        },
        id="averaged",
    ),
    pytest.param(
        {
            "beta_1": 0.5,
            "beta_2": 0.25,
            "epsilon": 1e-6,
            "weight_decay": 0.05,
            "grad_averaging": False,
        },
        id="summed",
    ),
    pytest.param(  # tensorflow-addons' defaults
        {
            "beta_1": 0.9,
            "beta_2": 0.999,
            "epsilon": 1e-7,
            "weight_decay": 0.0,
            "grad_averaging": True,
        },
        id="defaults",
    ),
]


@pytest.mark.parametrize("kwargs", TFA_NOVOGRAD)
def test_novograd_matches_tensorflow_addons(kwargs):
    """tensorflow-addons' NovoGrad, transcribed in NumPy float64
    (``references.TensorflowAddonsNovoGrad``): its first step is the
    unaveraged bracket. A constant learning rate: it keeps ``lr_t`` inside
    its momentum."""
    lr = 0.01
    params, grads = helpers.random_problem(seed=2, steps=STEPS)
    ours = helpers.run_keras_optimizer(NovoGrad(lr, **kwargs), params, grads)
    reference = references.TensorflowAddonsNovoGrad(**kwargs)
    theirs = oracles.run(reference, params, grads, [lr] * STEPS)
    tol = helpers.float32_tolerance(theirs, STEPS)
    helpers.assert_histories_close(ours, theirs, tol, "tensorflow-addons")
    # The transcription and the oracle, both float64, describe one
    # algorithm.
    spec = registry.lookup("novograd")
    expected = helpers.run_oracle(spec, kwargs, params, grads, [lr] * STEPS)
    helpers.assert_histories_close(theirs, expected, 1e-12, "oracle")
