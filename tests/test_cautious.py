"""``cautious=True`` (Liang et al. 2024, "Cautious Optimizers") on every
optimizer with momentum: against the NumPy oracle of each optimizer with
the cautious rule on top (``tests/oracles/cautious.py``), against
pytorch-optimizer 4.1's cautious variants with its rescale replaced by the
authors' current one, and the arguments it refuses.

Tolerance: ``helpers.float32_tolerance``, one float32 rounding of the
largest parameter per step, as in ``tests/test_parity.py``. The masked
step is formed from the parameter before and after the update (``u = p -
p_new``, exact in float32 when the two are within a factor 2), so each
step adds one more rounding of the parameter, times the scale
``n / kept``; the errors measured stay below a fifth of the tolerance.
"""

import math

import keras
import numpy as np
import pytest

import keras_opts
from keras_opts._core import checks
from tests import helpers, oracles
from tests import specs as registry
from tests.oracles.adam import AdamOracle
from tests.oracles.cautious import cautious

STEPS = 50


def _first_accepted_config(spec):
    """The first test configuration of ``spec`` that takes ``cautious``
    (SGD's and RMSprop's first have no momentum); None for an optimizer
    without momentum."""
    for kwargs in spec.test_configs:
        try:
            spec.cls(learning_rate=spec.lr, cautious=True, **kwargs)
        except ValueError:
            continue
        return kwargs
    return None


#: On TensorFlow and JAX every optimizer runs the same per-variable path
#: (``kernels.Single``), so a few cover it there: two fused on torch, one
#: with a whole-variable step, one that marks where its step begins. On
#: torch each runs its own multi-tensor kernel, and all are checked.
ON_EVERY_BACKEND = ("sgd", "adam", "adopt", "lars", "prodigy")
CONFIGS = [
    pytest.param(spec, kwargs, id=spec.name)
    for spec in registry.SPECS
    # AdamW's oracle decays inside its step: see the decay test below.
    if "owns_weight_decay" not in spec.capabilities
    and (helpers.BACKEND == "torch" or spec.name in ON_EVERY_BACKEND)
    and (kwargs := _first_accepted_config(spec)) is not None
]
#: A few for the compiled path (tf.function with XLA, jax.jit).
COMPILED = [p for p in CONFIGS if p.id in ("sgd", "adam", "prodigy")]


def _check(optimizer, oracle, compiled=False, **base_kwargs):
    params, grads = helpers.random_problem(seed=1, steps=STEPS)
    lr = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
    ours = helpers.run_keras_optimizer(optimizer, params, grads, compiled)
    expected = oracles.run(oracle, params, grads, [lr] * STEPS, **base_kwargs)
    plain = oracles.run(
        oracle.oracle, params, grads, [lr] * STEPS, **base_kwargs
    )
    tol = helpers.float32_tolerance(expected, STEPS)
    helpers.assert_histories_close(ours, expected, tol, "cautious")
    # The mask changes the trajectory far beyond the tolerance: a test
    # that would pass without it proves nothing.
    assert helpers.max_abs_difference(plain, expected) > 100 * tol


@pytest.mark.parametrize("spec, kwargs", CONFIGS)
def test_matches_cautious_oracle(spec, kwargs):
    optimizer = spec.cls(learning_rate=spec.lr, cautious=True, **kwargs)
    _check(optimizer, cautious(spec.oracle(**kwargs)))


@pytest.mark.parametrize("spec, kwargs", COMPILED)
def test_matches_cautious_oracle_compiled(spec, kwargs):
    optimizer = spec.cls(learning_rate=spec.lr, cautious=True, **kwargs)
    _check(optimizer, cautious(spec.oracle(**kwargs)), compiled=True)


def test_the_mask_sees_the_coupled_l2_gradient():
    kwargs = {"beta_1": 0.5, "beta_2": 0.9, "coupled_weight_decay": 0.3}
    optimizer = keras_opts.Adam(learning_rate=0.05, cautious=True, **kwargs)
    _check(optimizer, cautious(AdamOracle(**kwargs)))


@pytest.mark.parametrize("keras_decay", [False, True], ids=["adamw", "keras"])
def test_the_decoupled_decay_is_not_masked(keras_decay):
    """The paper applies the decoupled decay outside the mask: AdamW's
    (applied with the step) and Keras' ``weight_decay`` (before it) are
    the harness' decay followed by cautious Adam."""
    cls = keras_opts.Adam if keras_decay else keras_opts.AdamW
    optimizer = cls(learning_rate=0.05, weight_decay=0.2, cautious=True)
    _check(optimizer, cautious(AdamOracle()), weight_decay=0.2)


def _sgd_step(velocity, gradient):
    """The weights, from 0, after one cautious SGD step (momentum 0.5,
    rate 1) from ``velocity``: its step is ``u = 0.5 velocity +
    gradient``."""
    w = keras.Variable(np.zeros(len(gradient), "float32"))
    optimizer = keras_opts.SGD(learning_rate=1.0, momentum=0.5, cautious=True)
    optimizer.build([w])
    optimizer.variables[-1].assign(np.asarray(velocity, "float32"))
    optimizer.apply([keras.ops.convert_to_tensor(gradient, "float32")], [w])
    return w.numpy()


def test_the_step_is_masked_and_scaled_as_the_authors_code_does():
    """By hand: with velocity (1, -4, 1, 1, -4) and gradient (1, 1, 1, 2,
    1), the step u = (1.5, -1, 1.5, 2.5, -1) agrees with g on entries 0, 2
    and 3: phi = (1, 0, 1, 1, 0), and the kept entries are scaled by 5 / 3
    (the paper's 5 / (3 + 1) would give -1.875 for the first)."""
    w = _sgd_step([1, -4, 1, 1, -4], [1, 1, 1, 2, 1])
    expected = [-2.5, 0.0, -2.5, -2.5 * 5 / 3, 0.0]
    np.testing.assert_allclose(w, expected, rtol=2 * helpers.FLOAT32_EPS)


def test_nothing_kept_leaves_the_variable():
    """u = 0.5 (-4) + 1 = -1 against g = 1 everywhere: phi = 0, and the
    division by the kept count (0) must not reach the weights."""
    w = _sgd_step([-4, -4, -4], [1, 1, 1])
    np.testing.assert_array_equal(w, [0.0, 0.0, 0.0])


def test_the_scale_is_at_most_1000():
    """One entry of 3000 kept: the authors' code divides by the kept
    fraction clamped at 1e-3, a scale of 1000 (n / nnz would be 3000,
    n / (nnz + 1) 1500)."""
    velocity = np.full(3000, -4.0)
    velocity[0] = 1.0
    w = _sgd_step(velocity, np.ones(3000))
    assert w[0] == pytest.approx(-1.5 * 1000, rel=2 * helpers.FLOAT32_EPS)
    np.testing.assert_array_equal(w[1:], 0.0)


def test_foreach_and_single_paths_agree():
    if helpers.BACKEND != "torch":
        pytest.skip("torch's multi-tensor path")
    params, grads = helpers.random_problem(seed=4, steps=10)
    runs = []
    for use_foreach in (True, False):
        optimizer = keras_opts.AdamW(learning_rate=0.05, cautious=True)
        optimizer.use_foreach = use_foreach
        runs.append(helpers.run_keras_optimizer(optimizer, params, grads))
    tol = helpers.float32_tolerance(runs[1], 10)
    helpers.assert_histories_close(runs[0], runs[1], tol, "foreach")


#: pytorch-optimizer 4.1 masks the step of its ADOPT with the rule of the
#: paper (``apply_cautious``: ``mask * numel / (mask.sum() + 1)``), which
#: the test replaces by the authors' current rescale (ours); its
#: AdEMAMix masks only the fast momentum, which is the whole step when the
#: slow one has no weight (``alpha = 0``). Its ADOPT clips at
#: ``clip_lambda(step)`` with ``step`` counting the first call, ours at
#: ``(t - 1)^(1/4)``.
PYTORCH_OPTIMIZER = [
    pytest.param(
        keras_opts.ADOPT,
        {"clipping": False},
        "ADOPT",
        {"clip_lambda": None},
        id="ADOPT",
    ),
    pytest.param(
        keras_opts.ADOPT,
        {"beta_1": 0.5, "beta_2": 0.9},
        "ADOPT",
        {"betas": (0.5, 0.9), "clip_lambda": lambda t: (t - 1) ** 0.25},
        id="ADOPT-clipped",
    ),
    pytest.param(
        keras_opts.AdEMAMix,
        {"alpha": 0.0, "beta_1": 0.5, "beta_2": 0.9},
        "AdEMAMix",
        {"alpha": 0.0, "betas": (0.5, 0.9, 0.9999)},
        id="AdEMAMix",
    ),
]


@pytest.mark.parametrize("cls, ours, name, theirs", PYTORCH_OPTIMIZER)
def test_matches_pytorch_optimizer(cls, ours, name, theirs, monkeypatch):
    pytest.importorskip("pytorch_optimizer")
    from pytorch_optimizer.base.optimizer import BaseOptimizer

    def rescaled_as_the_authors(update, grad):
        mask = (update * grad > 0).to(grad.dtype)
        update.mul_(mask / mask.mean().clamp(min=1e-3))

    monkeypatch.setattr(
        BaseOptimizer,
        "apply_cautious",
        staticmethod(rescaled_as_the_authors),
    )
    lr = 0.05
    params, grads = helpers.random_problem(seed=2, steps=STEPS)
    optimizer = cls(learning_rate=lr, cautious=True, **ours)
    mine = helpers.run_keras_optimizer(optimizer, params, grads)
    reference = helpers.run_reference(
        registry.Reference(
            "pytorch_optimizer", name, ours, {**theirs, "cautious": True}
        ),
        lr,
        params,
        grads,
    )
    tol = helpers.float32_tolerance(reference, STEPS)
    helpers.assert_histories_close(mine, reference, tol, name)


@pytest.mark.parametrize(
    "make",
    [
        lambda: keras_opts.Adagrad(cautious=True),
        lambda: keras_opts.Adadelta(cautious=True),
        lambda: keras_opts.SGD(cautious=True),
        lambda: keras_opts.RMSprop(cautious=True),
        lambda: keras_opts.Adam(cautious=True, lazy_rows=True),
    ],
    ids=["adagrad", "adadelta", "sgd-no-momentum", "rmsprop", "lazy-rows"],
)
def test_refused_without_momentum_or_with_lazy_rows(make):
    with pytest.raises(ValueError, match="Received: cautious="):
        make()


def test_a_non_bool_is_a_type_error():
    with pytest.raises(checks.ArgumentTypeError, match="cautious=1"):
        keras_opts.Adam(cautious=1)


def test_refused_where_a_subclass_writes_its_own_update_step():
    class Custom(keras_opts.SGD):
        def update_step(self, gradient, variable, learning_rate):
            self.assign_sub(variable, learning_rate * gradient)

    with pytest.raises(ValueError, match="own `update_step`"):
        Custom(momentum=0.9, cautious=True)


def test_in_the_config_and_back():
    optimizer = keras_opts.Adam(cautious=True)
    config = optimizer.get_config()
    assert config["cautious"] is True
    assert keras_opts.Adam.from_config(config).cautious is True
    assert keras_opts.Adam().get_config()["cautious"] is False
    # A config saved before the option existed loads with its default.
    del config["cautious"]
    assert keras_opts.Adam.from_config(config).cautious is False


def test_fit_and_reload(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype("float32")
    y = x @ rng.standard_normal((4, 1)).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(keras_opts.Adam(0.1, cautious=True), loss="mse")
    first = model.fit(x, y, epochs=10, batch_size=16, verbose=0)
    losses = first.history["loss"]
    assert math.isfinite(losses[-1]) and losses[-1] < 0.5 * losses[0]
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.optimizer.cautious is True
