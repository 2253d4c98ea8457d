"""``state_dtype``: slots stored in bfloat16 or float16, written back with
stochastic rounding (``keras_opts/_core/rounding.py``).

The rounding is checked against its definition, computed here with NumPy
from the two representable neighbours of each float32 value: every
result is one of them, the mean of many is the value itself (within 5
standard deviations of the mean of Bernoulli draws), and a representable
value never changes. The optimizers are checked for the dtypes of their
slots, for updates close to their float32 ones, for an EMA that keeps
growing where rounding to nearest would stall it, and for a bitwise
resume from a saved model.
"""

import math

import keras
import ml_dtypes
import numpy as np
import pytest

import keras_opts
from keras_opts._core import rounding
from tests import helpers

NUMPY_DTYPES = {"bfloat16": ml_dtypes.bfloat16, "float16": np.float16}
DRAWS = 4096


def _neighbours(x, dtype):
    """The representable values of ``dtype`` just below and above each
    float32 ``x`` (equal where ``x`` is representable), in float64."""
    narrow = NUMPY_DTYPES[dtype]
    nearest = x.astype(narrow)
    down = np.nextafter(nearest, narrow(-np.inf)).astype(np.float64)
    up = np.nextafter(nearest, narrow(np.inf)).astype(np.float64)
    near = nearest.astype(np.float64)
    exact = near == x
    low = np.where(exact | (near < x), near, down)
    high = np.where(exact | (near > x), near, up)
    return low, high


def _values(dtype):
    """float32 values across the range of ``dtype`` (normal and, for
    float16, subnormal magnitudes), both signs, none representable."""
    rng = np.random.default_rng(0)
    if dtype == "bfloat16":
        exponents = rng.uniform(-30, 30, 48)
    else:
        exponents = rng.uniform(-7.5, 4.5, 48)  # from 3e-8, subnormal, up
    x = (10.0**exponents * rng.choice([-1.0, 1.0], 48)).astype(np.float32)
    return x[_neighbours(x, dtype)[0] != x]


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_rounding_is_unbiased(dtype):
    x = _values(dtype)
    seed = keras.random.SeedGenerator(1234)
    rounded = rounding.stochastic_round(np.tile(x, (DRAWS, 1)), dtype, seed)
    assert keras.backend.standardize_dtype(rounded.dtype) == dtype
    r = keras.ops.convert_to_numpy(keras.ops.cast(rounded, "float32"))
    r = r.astype(np.float64)
    low, high = _neighbours(x, dtype)
    assert np.all((r == low) | (r == high)), "not a neighbour"
    # P(up) = (x - low) / (high - low): the mean of DRAWS draws is x with
    # standard deviation (high - low) sqrt(P (1 - P) / DRAWS).
    p = (x - low) / (high - low)
    sigma = (high - low) * np.sqrt(p * (1 - p) / DRAWS)
    np.testing.assert_array_less(np.abs(r.mean(axis=0) - x), 5 * sigma)
    # Both neighbours occur where each is likely enough: not a rounding
    # that always goes one way.
    likely = (p > 0.05) & (p < 0.95)
    assert np.all((r == low).any(0)[likely] & (r == high).any(0)[likely])


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_representable_values_do_not_change(dtype):
    narrow = NUMPY_DTYPES[dtype]
    info = ml_dtypes.finfo(narrow)
    values = [0.0, -0.0, 1.0, -1.5, float(info.max), float(info.tiny)]
    if dtype == "float16":  # subnormal in float16, normal in float32
        values += [float(info.smallest_subnormal), 3 * 2.0**-24]
    values = np.array(values + [np.inf, -np.inf], np.float64).astype(narrow)
    x = np.tile(values.astype(np.float32), (64, 1))
    seed = keras.random.SeedGenerator(7)
    r = keras.ops.convert_to_numpy(rounding.stochastic_round(x, dtype, seed))
    np.testing.assert_array_equal(r.astype(np.float32), x)
    nan = rounding.stochastic_round(np.array([np.nan], np.float32), dtype, seed)
    assert math.isnan(float(keras.ops.convert_to_numpy(nan)[0]))


def test_float16_beyond_its_largest_value_rounds_to_infinity():
    """65504 is float16's largest value; from there up to the next power
    of the grid, 65536, stochastic rounding gives infinity with
    probability the fraction of the way (rounding to nearest does from
    65520 on); beyond 65536 always."""
    x = np.array([[65510.0, 70000.0, -1e6]] * 2048, np.float32)
    seed = keras.random.SeedGenerator(3)
    r = keras.ops.convert_to_numpy(
        rounding.stochastic_round(x, "float16", seed)
    ).astype(np.float64)
    assert np.all(np.isin(r[:, 0], [65504.0, np.inf]))
    assert 0.0 < np.mean(np.isinf(r[:, 0])) < 0.5  # P = 6 / 32
    assert np.all(r[:, 1] == np.inf) and np.all(r[:, 2] == -np.inf)


def _slot_dtypes(optimizer):
    return {
        name: [keras.backend.standardize_dtype(v.dtype) for v in slots]
        for name, slots in optimizer._slots.items()
    }


def test_slots_have_the_dtype_and_the_seed_is_optimizer_state():
    variables = [
        keras.Variable(np.zeros((3, 2), "float32")),
        keras.Variable(np.zeros(2, "bfloat16")),  # keeps its own dtype
    ]
    optimizer = keras_opts.Adam(state_dtype="bfloat16")
    optimizer.build(variables)
    assert _slot_dtypes(optimizer) == {
        "momentum": ["bfloat16", "bfloat16"],
        "velocity": ["bfloat16", "bfloat16"],
    }
    seed_state = optimizer._rounding_seed.state
    assert any(v is seed_state for v in optimizer.variables)
    sgd = keras_opts.SGD(momentum=0.9, state_dtype="float16")
    sgd.build(variables[:1])
    assert _slot_dtypes(sgd) == {"velocity": ["float16"]}
    madgrad = keras_opts.MADGRAD(state_dtype="bfloat16")
    madgrad.build(variables[:1])
    assert _slot_dtypes(madgrad) == {
        "gradient_sum": ["bfloat16"],
        "squared_sum": ["bfloat16"],
        "initial": ["float32"],  # the initial weights stay exact
    }
    plain = keras_opts.Adam()
    plain.build(variables[:1])
    assert plain._rounding_seed is None
    assert len(plain.variables) == len(optimizer.variables) - 3


ITEMSIZE = {"float32": 4, "bfloat16": 2, "float16": 2}


def state_bytes_per_parameter(optimizer, variables):
    """The bytes of the slots over the number of parameters."""
    optimizer.build(variables)
    slots = [v for s in optimizer._slots.values() for v in s]
    total = sum(
        math.prod(v.shape) * ITEMSIZE[keras.backend.standardize_dtype(v.dtype)]
        for v in slots
    )
    return total / sum(math.prod(v.shape) for v in variables)


def test_state_bytes_per_parameter_halve():
    variables = [keras.Variable(np.zeros((100, 10), "float32"))]
    assert state_bytes_per_parameter(keras_opts.Adam(), variables) == 8.0
    narrow = keras_opts.Adam(state_dtype="bfloat16")
    assert state_bytes_per_parameter(narrow, variables) == 4.0


@pytest.mark.parametrize(
    "make",
    [
        lambda: keras_opts.Adam(state_dtype="float16"),
        lambda: keras_opts.RMSprop(state_dtype="float16"),
        lambda: keras_opts.Adagrad(state_dtype="float16"),
        lambda: keras_opts.Adam(state_dtype="float32"),
        lambda: keras_opts.Adam(state_dtype="int4"),
        lambda: keras_opts.MARS(state_dtype="float16"),
    ],
    ids=["adam", "rmsprop", "adagrad", "float32", "int4", "mars"],
)
def test_refused(make):
    with pytest.raises(ValueError, match="Received: state_dtype="):
        make()


def test_in_the_config_and_back():
    config = keras_opts.SGD(momentum=0.9, state_dtype="float16").get_config()
    assert config["state_dtype"] == "float16"
    assert keras_opts.SGD.from_config(config).state_dtype == "float16"
    assert keras_opts.Adam().get_config()["state_dtype"] is None


def _paths():
    if helpers.BACKEND == "torch":
        return [True, False]
    return [True]


@pytest.mark.parametrize("use_foreach", _paths())
def test_updates_stay_close_to_float32_state(use_foreach):
    """Adam with bfloat16 moments against the same Adam with float32 ones.
    Each stored moment is within one bfloat16 unit (2^-8 relative) of its
    float32 value and the errors do not compound (the EMA averages
    them), so each step of about the learning rate is off by a few times
    2^-8 of it: the bound is 20 steps of 2^-6 of the learning rate."""
    params, grads = helpers.random_problem(
        seed=1, steps=20, shapes=((7,), (3, 4))
    )
    runs = []
    for state_dtype in (None, "bfloat16"):
        optimizer = keras_opts.Adam(0.01, state_dtype=state_dtype)
        optimizer.use_foreach = use_foreach
        runs.append(helpers.run_keras_optimizer(optimizer, params, grads))
    difference = helpers.max_abs_difference(runs[0], runs[1])
    assert 0 < difference < 20 * 0.01 * 2**-6


def test_an_ema_keeps_growing_where_rounding_to_nearest_stalls():
    """SGD's velocity under a constant gradient 1 with momentum 0.999:
    v_t = 0.999 v_{t-1} + 1 = 1000 (1 - 0.999^t). In bfloat16, from 256
    on (where the spacing is 2) each increment, below 1, rounds back to
    nearest: the velocity stops at 256. Stochastic rounding follows the
    float32 value on average: 329.7 after 400 steps."""
    variable = keras.Variable(np.zeros(256, "float32"))
    optimizer = keras_opts.SGD(
        learning_rate=1e-6, momentum=0.999, state_dtype="bfloat16"
    )
    apply = helpers.compiled_apply(optimizer, [variable])
    gradient = np.ones(256, np.float32)
    for _ in range(400):
        apply([gradient])
    velocity = keras.ops.convert_to_numpy(
        keras.ops.cast(optimizer._slots["velocity"][0], "float32")
    )
    expected = 1000 * (1 - 0.999**400)
    # Each of the 256 entries is a sum of unbiased roundings: their mean
    # is within 1% of the float32 recursion, far from the stalled 256.
    assert abs(velocity.mean() - expected) < 0.01 * expected


def _model():
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dense(1)]
    )
    model.compile(keras_opts.Adam(0.02, state_dtype="bfloat16"), loss="mse")
    return model


def test_fit_and_resume_are_bitwise(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype("float32")
    y = x @ rng.standard_normal((4, 1)).astype("float32")
    keras.utils.set_random_seed(1)
    straight = _model()
    losses = straight.fit(
        x, y, epochs=6, batch_size=16, shuffle=False, verbose=0
    )
    losses = losses.history["loss"]
    assert math.isfinite(losses[-1]) and losses[-1] < 0.5 * losses[0]
    keras.utils.set_random_seed(1)
    first = _model()
    first.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0)
    path = tmp_path / "model.keras"
    first.save(path)
    resumed = keras.models.load_model(path)
    assert resumed.optimizer.state_dtype == "bfloat16"
    resumed.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0)
    for a, b in zip(straight.weights, resumed.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for a, b in zip(straight.optimizer.variables, resumed.optimizer.variables):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b)
        )
