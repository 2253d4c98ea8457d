"""``cautious_weight_decay=True`` (Chen et al. 2025, "Cautious Weight
Decay"): on every optimizer whose decoupled decay is Keras', against its
NumPy oracle with the paper's rule applied by the harness
(``tests/oracles/harness.py``); on the optimizers whose decoupled decay
is their own (the Muon family, Prodigy, MARS) against their oracles' own
rule;
against heavyball's ``AdamW(cautious_weight_decay=True)``; and the
arguments it refuses.

Tolerance: ``helpers.float32_tolerance``, one float32 rounding of the
largest parameter per step, as in ``tests/test_parity.py``: the mask is
formed from the weight before and after the update (``u = before - p``),
whose sign the rounding cannot flip where the step is larger than an ulp.
"""

import keras
import numpy as np
import pytest

import keras_opts
from tests import helpers, oracles
from tests import specs as registry
from tests.oracles.adam import AdamOracle
from tests.oracles.cautious import cautious

STEPS = 50
DECAY = 0.5


def _keras_decay(spec) -> bool:
    """Whether ``spec``'s decoupled decay is Keras' (not its own)."""
    return not spec.cls.capabilities.decay_in_kernel


#: On TensorFlow and JAX every optimizer runs the same per-variable path,
#: so a few cover it; on torch each runs its own multi-tensor kernel.
ON_EVERY_BACKEND = ("sgd", "adam", "yogi")
CONFIGS = [
    pytest.param(spec, spec.test_configs[0], id=spec.name)
    for spec in registry.SPECS
    if _keras_decay(spec)
    and "owns_weight_decay" not in spec.capabilities
    and (helpers.BACKEND == "torch" or spec.name in ON_EVERY_BACKEND)
]


def _check(optimizer, oracle, compiled=False):
    params, grads = helpers.random_problem(seed=1, steps=STEPS)
    lr = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
    ours = helpers.run_keras_optimizer(optimizer, params, grads, compiled)
    run = dict(weight_decay=DECAY)
    expected = oracles.run(
        oracle, params, grads, [lr] * STEPS, cautious_weight_decay=True, **run
    )
    plain = oracles.run(oracle, params, grads, [lr] * STEPS, **run)
    tol = helpers.float32_tolerance(expected, STEPS)
    helpers.assert_histories_close(ours, expected, tol, "cautious decay")
    # The mask changes the trajectory far beyond the tolerance: a test
    # that would pass without it proves nothing.
    assert helpers.max_abs_difference(plain, expected) > 100 * tol


@pytest.mark.parametrize("spec, kwargs", CONFIGS)
def test_matches_the_oracle_with_the_rule(spec, kwargs):
    optimizer = spec.cls(
        learning_rate=spec.lr,
        weight_decay=DECAY,
        cautious_weight_decay=True,
        **kwargs,
    )
    _check(optimizer, spec.oracle(**kwargs))


@pytest.mark.skipif(
    helpers.BACKEND == "torch", reason="Keras runs torch eagerly"
)
def test_compiled_step_matches():
    optimizer = keras_opts.Adam(
        learning_rate=0.01, weight_decay=DECAY, cautious_weight_decay=True
    )
    _check(optimizer, AdamOracle(), compiled=True)


@pytest.mark.parametrize("scheduled", [False, True])
def test_adamw_and_a_scheduled_decay(scheduled):
    """AdamW declares Keras' decay as its own argument; a schedule for it
    (constant here, to compare with the oracle) takes the same path."""
    decay = DECAY
    if scheduled:
        decay = keras.optimizers.schedules.ExponentialDecay(DECAY, 10, 1.0)
    optimizer = keras_opts.AdamW(
        learning_rate=0.01, weight_decay=decay, cautious_weight_decay=True
    )
    _check(optimizer, AdamOracle())


def test_with_cautious_updates_the_decay_follows_the_masked_step():
    optimizer = keras_opts.Adam(
        learning_rate=0.01,
        weight_decay=DECAY,
        cautious=True,
        cautious_weight_decay=True,
    )
    _check(optimizer, cautious(AdamOracle()))


#: The optimizers whose decoupled decay is their own: each masks it.
OWN_DECAY = {
    "muon": {"weight_decay": DECAY, "adam_weight_decay": DECAY},
    "normuon": {"weight_decay": DECAY, "adam_weight_decay": DECAY},
    "adamuon": {"weight_decay": DECAY, "adam_weight_decay": DECAY},
    "prodigy": {"weight_decay": DECAY},
    "mars": {"weight_decay": DECAY, "weight_decay_1d": DECAY},
    "mars-lion": {"weight_decay": DECAY, "mars_type": "lion"},
}


@pytest.mark.parametrize("name", sorted(OWN_DECAY))
def test_optimizers_that_own_their_decay_mask_it(name):
    spec = registry.lookup(name.split("-")[0])
    kwargs = OWN_DECAY[name]
    optimizer = spec.cls(
        learning_rate=spec.lr, cautious_weight_decay=True, **kwargs
    )
    params, grads = helpers.random_problem(seed=1, steps=STEPS)
    ours = helpers.run_keras_optimizer(optimizer, params, grads)
    lrs = [spec.lr] * STEPS
    oracle = spec.oracle(cautious_weight_decay=True, **kwargs)
    expected = oracles.run(oracle, params, grads, lrs)
    plain = oracles.run(spec.oracle(**kwargs), params, grads, lrs)
    tol = helpers.float32_tolerance(expected, STEPS)
    helpers.assert_histories_close(ours, expected, tol, name)
    assert helpers.max_abs_difference(plain, expected) > 100 * tol


@pytest.mark.skipif(helpers.BACKEND != "torch", reason="heavyball: torch")
def test_matches_heavyball_adamw():
    """heavyball 3.2's ``AdamW(cautious_weight_decay=True)``: the decay
    where ``signbit(p) == signbit(u)``, the same as ``u * p >= 0`` but for
    signed zeros. It keeps its scalars in float32 (float32-exact only)."""
    import heavyball
    import torch

    params, grads = helpers.random_problem(seed=2, steps=STEPS)
    tensors = [
        torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in params
    ]
    theirs = heavyball.AdamW(
        tensors,
        lr=0.01,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=DECAY,
        cautious_weight_decay=True,
        storage_dtype="float64",
    )
    history = []
    for step in grads:
        for t, g in zip(tensors, step):
            t.grad = torch.tensor(g, dtype=torch.float64)
        theirs.step()
        history.append([t.detach().numpy().copy() for t in tensors])
    optimizer = keras_opts.AdamW(
        learning_rate=0.01,
        weight_decay=DECAY,
        epsilon=1e-8,
        cautious_weight_decay=True,
    )
    ours = helpers.run_keras_optimizer(optimizer, params, grads)
    tol = helpers.float32_tolerance(history, STEPS)
    helpers.assert_histories_close(ours, history, tol, "heavyball")


@pytest.mark.parametrize(
    "make",
    [
        lambda: keras_opts.LARS(weight_decay=0.1, cautious_weight_decay=True),
        lambda: keras_opts.NovoGrad(cautious_weight_decay=True),
        lambda: keras_opts.ScheduleFreeAdamW(cautious_weight_decay=True),
        lambda: keras_opts.Adam(cautious_weight_decay=True, lazy_rows=True),
    ],
    ids=["lars", "novograd", "schedule-free", "lazy-rows"],
)
def test_refused_where_the_decay_enters_the_direction(make):
    """LARS and NovoGrad add the decay to the direction they normalize,
    schedule-free to the gradient at y: no decoupled decay to mask."""
    with pytest.raises(ValueError, match="cautious_weight_decay"):
        make()


def test_saved_and_restored():
    optimizer = keras_opts.AdamW(cautious_weight_decay=True)
    config = optimizer.get_config()
    assert config["cautious_weight_decay"] is True
    assert keras_opts.AdamW.from_config(config).cautious_weight_decay is True
    assert np.isfinite(config["weight_decay"])
