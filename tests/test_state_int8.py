"""``state_dtype="int8"``: slots in 8 bits by blockwise dynamic
quantization (``keras_opts/_core/quantization.py``; Dettmers et al.
2022).

Checked against a float64 oracle written from the paper
(``tests/oracles/quantization.py``: the data type decoded code by code,
the nearest-value quantizer, and an optimizer oracle whose state is
quantized after each step), against bitsandbytes' quantizer where it
installs, and for the slots, the memory, a bitwise resume and the refusals.
"""

import math

import keras
import numpy as np
import pytest

import keras_opts
from keras_opts._core import quantization
from tests import helpers, oracles
from tests.oracles import quantization as oracle

EPS32 = float(np.finfo(np.float32).eps)


@pytest.mark.parametrize("signed", [True, False])
def test_the_maps_are_the_papers(signed):
    """Every code decoded from its bits: the same 256 values, each within
    one float32 rounding of the float64 value."""
    ours = quantization.dynamic_map(signed).astype(np.float64)
    expected = oracle.dynamic_map(signed)
    np.testing.assert_allclose(ours, expected, rtol=EPS32, atol=0)
    assert len(set(ours)) == 256 and ours[-1] == 1.0
    # The smallest magnitude: 10^-6 times the middle of [0.1, 1] (signed)
    # or of its lower half (unsigned, one more fraction bit).
    assert np.min(np.abs(ours[ours != 0])) == np.float32(
        0.55e-6 if signed else 0.325e-6
    )


def _values(signed, size, seed=0):
    """Values over seven orders of magnitude, as an EMA of gradients."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(size) * 10.0 ** rng.uniform(-7, 0, size)
    x = x.astype(np.float32)
    return x if signed else np.abs(x)


@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("shape", [(4096,), (77, 100), (3, 5, 7)])
def test_quantizer_matches_the_oracle(signed, shape):
    """The codes are the oracle's, except where the value lies within a
    few float32 roundings of the middle between two neighbours of the
    map (there either is nearest to float32); the scales are each block's
    largest magnitude, exactly."""
    x = _values(signed, math.prod(shape)).reshape(shape)
    x_tensor = keras.ops.convert_to_tensor(x)
    codes, scales = quantization.quantize(x_tensor, signed)
    codes = keras.ops.convert_to_numpy(codes)
    expected, absmax = oracle.quantize(x, signed)
    assert codes.dtype == np.uint8 and codes.shape == shape
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(scales), absmax)
    mid = oracle.dynamic_map(signed)
    middles = (mid[:-1] + mid[1:]) / 2
    scaled = x.ravel() / np.repeat(absmax, 256)[: x.size]
    near_a_tie = np.min(np.abs(scaled[:, None] - middles), axis=1) < 4 * EPS32
    differ = codes.ravel() != expected.ravel()
    assert not np.any(differ & ~near_a_tie)
    assert np.all(np.abs(codes.ravel().astype(int) - expected.ravel()) <= 1)
    # The round trip: each value within half the map's gap around it.
    back = keras.ops.convert_to_numpy(
        quantization.dequantize(
            keras.ops.convert_to_tensor(codes),
            keras.ops.convert_to_tensor(absmax.astype(np.float32)),
            signed,
        )
    )
    gaps = np.diff(mid)
    bound = np.repeat(absmax, 256)[: x.size] * (gaps.max() / 2 + 2 * EPS32)
    assert np.all(np.abs(back.ravel() - x.ravel()) <= bound)


def _nearest_in_float32(x, signed):
    """The nearest-value rule in NumPy, in float32 as the quantizer
    computes it: between the two values of the map around ``x``, the
    lower unless the upper is strictly closer."""
    q = quantization.dynamic_map(signed)
    upper = np.clip(np.searchsorted(q, x), 1, 255)
    lower = upper - 1
    return np.where(x - q[lower] <= q[upper] - x, lower, upper)


@pytest.mark.parametrize("signed", [True, False])
def test_nearest_code_without_a_search(signed):
    """The bucket lookup gives the code a search of the map gives, to the
    bit: on the map's values, the midpoints between them and the float32
    numbers either side of each, 0, the ends, the edge of the lowest
    bucket, and values over nine orders of magnitude."""
    q = quantization.dynamic_map(signed)
    middles = (q[:-1] + q[1:]) / 2
    special = np.float32([0.0, 1.0, -1.0, 2.0**-27, 1e-30, 1e-9])
    edges = np.concatenate([q, middles, special])
    rng = np.random.default_rng(0)
    spread = rng.uniform(-1, 1, 100_000) * 10.0 ** rng.uniform(-9, 0, 100_000)
    x = np.concatenate(
        [edges, np.nextafter(edges, 2), np.nextafter(edges, -2), spread]
    )
    x = np.clip(x.astype(np.float32), -1, 1)
    x = x if signed else np.abs(x)
    got = quantization.nearest(keras.ops.convert_to_tensor(x), signed)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(got), _nearest_in_float32(x, signed)
    )


@pytest.mark.skipif(helpers.BACKEND != "torch", reason="bitsandbytes: torch")
@pytest.mark.parametrize("signed", [True, False])
def test_quantizer_matches_bitsandbytes(signed):
    """bitsandbytes 0.50's maps within two float32 roundings of ours, and
    its exact quantizer (nearest value by argmin, its CPU kernel for
    float64 input) gives the same codes and scales for the same map;
    its native CPU kernel for float32 searches the map approximately
    (not always the nearest value), so it is not the reference."""
    torch = pytest.importorskip("torch")
    functional = pytest.importorskip("bitsandbytes.functional")
    theirs = functional.create_dynamic_map(signed=signed).numpy()
    ours = quantization.dynamic_map(signed)
    # Two float32 roundings: theirs is computed in float32 throughout.
    np.testing.assert_allclose(ours, theirs, rtol=2 * EPS32, atol=0)
    x = _values(signed, 70_001)
    codes, absmax = torch.ops.bitsandbytes.quantize_blockwise(
        torch.tensor(x, dtype=torch.float64), torch.tensor(ours), 256
    )
    got, scales = quantization.quantize(keras.ops.convert_to_tensor(x), signed)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(got), codes)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(scales), absmax)


def test_large_float32_variables_get_codes_and_small_ones_float32():
    large = keras.Variable(np.zeros((64, 80), "float32"))  # 5120 entries
    small = keras.Variable(np.zeros((7,), "float32"))
    optimizer = keras_opts.Adam(state_dtype="int8")
    optimizer.build([large, small])
    momentum, velocity = (
        optimizer._slots["momentum"],
        optimizer._slots["velocity"],
    )
    dtypes = [
        keras.backend.standardize_dtype(s.dtype)
        for s in (momentum[0], velocity[0], momentum[1], velocity[1])
    ]
    assert dtypes == ["uint8", "uint8", "float32", "float32"]
    assert momentum[0].signed_codes and not velocity[0].signed_codes
    assert tuple(momentum[0].block_scales.shape) == (20,)
    # Each moment: a byte per entry and a float32 per 256 entries.
    shapes = [tuple(v.shape) for v in optimizer.variables]
    slots = [v for v, s in zip(optimizer.variables, shapes) if s[:1] > (7,)]
    total = sum(
        math.prod(v.shape)
        * np.dtype(keras.backend.standardize_dtype(v.dtype)).itemsize
        for v in slots
    )
    assert total / 5120 == 2 * (1 + 4 / 256)


def test_a_bfloat16_model_gets_8_bit_state():
    """A model in bfloat16 (KerasHub's fine-tuning dtype) has bfloat16
    slots without ``state_dtype``; with ``"int8"`` its large ones take a
    byte per entry, and its steps follow the float32-state ones to
    bfloat16's precision."""
    rng = np.random.default_rng(0)
    start = rng.standard_normal((64, 80)).astype("float32")
    grads = [rng.standard_normal((64, 80)).astype("float32") for _ in range(5)]
    finals = []
    for state_dtype in (None, "int8"):
        variable = keras.Variable(start, dtype="bfloat16")
        optimizer = keras_opts.Adam(0.01, state_dtype=state_dtype)
        for g in grads:
            optimizer.apply(
                [keras.ops.cast(keras.ops.convert_to_tensor(g), "bfloat16")],
                [variable],
            )
        dtype = optimizer._slots["momentum"][0].dtype
        finals.append(
            (keras.backend.standardize_dtype(dtype), _float32(variable))
        )
    (plain_dtype, plain), (dtype, ours) = finals
    assert (plain_dtype, dtype) == ("bfloat16", "uint8")
    moved = np.max(np.abs(plain - start))
    # bfloat16 keeps 8 significant bits: each of 5 steps of ~0.01 may
    # round by half a unit of weights of magnitude up to 4 (2^-7).
    assert 0.04 < moved and np.max(np.abs(ours - plain)) < 5 * 2**-7


def _float32(variable):
    return keras.ops.convert_to_numpy(keras.ops.cast(variable, "float32"))


#: (optimizer, its arguments, the oracle's state keys of second moments)
CASES = {
    "adam": ({}, ("v",)),
    "sgd": ({"momentum": 0.9}, ()),
    "adamw": ({"weight_decay": 0.1}, ("v",)),
    "muon": ({"exclude_output": False}, ("v",)),
}


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("name", sorted(CASES))
def test_steps_match_the_quantized_oracle(name, compiled):
    """10 steps on a (64, 80) matrix and a (7,) vector against the float64
    oracle that quantizes its state after each step. A value within a
    float32 rounding of the middle between two codes may take the other
    one (the oracle computes in float64), which moves that entry's next
    steps by up to a code's gap, under 2% of a step (the map's gaps near
    the top of a block are 1/64): the bound is 3% of the learning rate
    (0.8% measured for Adam, 0.006% for SGD and Muon), where float32 state
    ends 28% (Adam) to 100% (SGD) of it away."""
    from tests import specs as registry

    spec = registry.lookup(name)
    kwargs, unsigned = CASES[name]
    params, grads = helpers.random_problem(
        seed=3, steps=10, shapes=((64, 80), (7,))
    )
    lr = 1e-2
    optimizer = spec.cls(learning_rate=lr, state_dtype="int8", **kwargs)
    ours = helpers.run_keras_optimizer(optimizer, params, grads, compiled)
    quantized = oracle.Quantized(spec.oracle(**kwargs), unsigned)
    expected = oracles.run(quantized, params, grads, [lr] * 10)
    plain = oracles.run(spec.oracle(**kwargs), params, grads, [lr] * 10)
    worst = helpers.max_abs_difference(ours, expected)
    assert worst < 0.03 * lr
    # The quantized state changes the trajectory: a test that float32
    # state would pass proves little.
    assert helpers.max_abs_difference(plain, expected) > 0.03 * lr


def test_refused_with_lazy_rows():
    with pytest.raises(ValueError, match="state_dtype='int8'"):
        keras_opts.Adam(state_dtype="int8", lazy_rows=True)


def _model():
    model = keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(64), keras.layers.Dense(1)]
    )
    model.compile(keras_opts.Adam(0.01, state_dtype="int8"), loss="mse")
    return model


def test_fit_and_resume_are_bitwise(tmp_path):
    """The (64, 64) kernel's moments in 8 bits: six epochs straight, and
    three then three more after a save and a load, end bitwise equal."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 64)).astype("float32")
    y = x @ rng.standard_normal((64, 1)).astype("float32")
    keras.utils.set_random_seed(1)
    straight = _model()
    losses = straight.fit(
        x, y, epochs=6, batch_size=16, shuffle=False, verbose=0
    ).history["loss"]
    assert math.isfinite(losses[-1]) and losses[-1] < 0.5 * losses[0]
    kernel = straight.optimizer._slots["momentum"][0]
    assert keras.backend.standardize_dtype(kernel.dtype) == "uint8"
    keras.utils.set_random_seed(1)
    first = _model()
    first.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0)
    first.save(tmp_path / "model.keras")
    resumed = keras.models.load_model(tmp_path / "model.keras")
    assert resumed.optimizer.state_dtype == "int8"
    resumed.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0)
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(straight.optimizer.variables, resumed.optimizer.variables):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b)
        )


def _accepting():
    """(spec, state dtype) for each optimizer that takes it."""
    from tests import specs as registry

    found = []
    for spec in registry.SPECS:
        for state_dtype in ("bfloat16", "int8"):
            try:
                spec.cls(state_dtype=state_dtype, **spec.test_configs[0])
            except ValueError:
                continue
            found.append(
                pytest.param(spec, state_dtype, id=f"{spec.name}-{state_dtype}")
            )
    return found


@pytest.mark.parametrize("spec, state_dtype", _accepting())
def test_every_optimizer_that_takes_it_trains_near_float32_state(
    spec, state_dtype
):
    """Each optimizer that accepts ``state_dtype`` on a (64, 80) matrix and
    a vector, compiled as fit() runs it: its matrix's slots take the
    dtype (codes for ``"int8"``), and its 10 steps stay within 10% of the
    distance the float32-state run moves (the quantized-oracle test above
    bounds Adam's, SGD's and Muon's 8-bit runs to 3% of a step). A slot
    read or written wrongly (an unscaled code, a stale block, a write
    that bypasses the rounding) fails or moves it by O(1)."""
    params, grads = helpers.random_problem(
        seed=5, steps=10, shapes=((64, 80), (7,))
    )
    runs, optimizers = [], []
    for stored in (None, state_dtype):
        optimizer = spec.cls(
            learning_rate=spec.lr,
            state_dtype=stored,
            **spec.test_configs[0],
        )
        runs.append(helpers.run_keras_optimizer(optimizer, params, grads, True))
        optimizers.append(optimizer)
    plain, narrow = optimizers
    full = spec.cls.capabilities.full_precision_slots
    like = [  # the float32 run's slots of the matrix the dtype can hold
        name
        for name, slots in plain._slots.items()
        if name not in full
        and slots[0] is not None
        and tuple(slots[0].shape) == (64, 80)
    ]
    stored_as = "uint8" if state_dtype == "int8" else state_dtype
    narrowed = [
        name
        for name, slots in narrow._slots.items()
        if slots[0] is not None
        and keras.backend.standardize_dtype(slots[0].dtype) == stored_as
    ]
    assert narrowed == like
    if not like:  # nothing to quantize: the same run (on torch by the
        # per-variable loop instead of the multi-tensor one: roundings)
        tol = helpers.float32_tolerance(runs[0], 10)
        assert helpers.max_abs_difference(runs[0], runs[1]) <= tol
    moved = max(
        float(np.max(np.abs(w - p))) for w, p in zip(runs[0][-1], params)
    )
    assert moved > 0
    assert helpers.max_abs_difference(runs[0], runs[1]) < 0.1 * moved
