"""tf.distribute.MirroredStrategy over two logical CPU devices.

The optimizer is built inside ``strategy.scope()``; ``fit()`` must match a
single-device run (each replica computes the mean gradient of its half of
the batch, the strategy sums the halves' means weighted by 1/2: the same
mean in another order, so the bound is 16 float32 roundings of the
largest weight per step, as for JAX); a model saved under the strategy
reloads under it with every optimizer variable, and training goes on as
without the save.
"""

import contextlib

import keras
import numpy as np
import pytest

import keras_opts
from keras_opts._core.schedule_free import ScheduleFree
from tests.distributed import common

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="TensorFlow only"
)

#: Schedule-free training refuses several replicas (tested below).
SPECS = [
    pytest.param(s, id=s.name)
    for s in common.SPECS
    if not issubclass(s.cls, ScheduleFree)
]
SCHEDULE_FREE = [
    pytest.param(s, id=s.name)
    for s in common.SPECS
    if issubclass(s.cls, ScheduleFree)
]


def _strategy():
    import tensorflow as tf

    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    strategy = tf.distribute.MirroredStrategy(devices)
    assert strategy.num_replicas_in_sync == 2
    return strategy


def _compiled(spec, strategy=None):
    if strategy is None:
        model = common.model()
        model.compile(optimizer=common.optimizer(spec), loss="mse")
        return model
    with strategy.scope():
        model = common.model()
        model.compile(optimizer=common.optimizer(spec), loss="mse")
    return model


def _fit(model, x, y):
    model.fit(x, y, batch_size=common.BATCH, shuffle=False, verbose=0)


def _assert_close(ours, theirs, what):
    tol = common.tolerance(theirs, factor=16)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=0, atol=tol, err_msg=what)


@pytest.mark.parametrize("spec", SPECS)
def test_mirrored_fit_matches_one_device(spec):
    x, y = common.data()
    mirrored = _compiled(spec, _strategy())
    _fit(mirrored, x, y)
    single = _compiled(spec)
    _fit(single, x, y)
    _assert_close(common.weights(mirrored), common.weights(single), spec.name)
    state = common.optimizer_state(mirrored.optimizer)
    expected = common.optimizer_state(single.optimizer)
    assert state.keys() == expected.keys()
    for key, value in expected.items():
        _assert_close([state[key]], [value], key)


@pytest.mark.parametrize("spec", SPECS)
def test_save_and_reload_under_the_strategy(spec, tmp_path):
    x, y = common.data()
    strategy = _strategy()
    model = _compiled(spec, strategy)
    _fit(model, x[: len(x) // 2], y[: len(y) // 2])
    path = str(tmp_path / "m.keras")
    model.save(path)
    with strategy.scope():
        loaded = keras.models.load_model(path)
    before = common.optimizer_state(model.optimizer)
    after = common.optimizer_state(loaded.optimizer)
    assert before.keys() == after.keys()
    for key, value in before.items():
        np.testing.assert_array_equal(after[key], value, err_msg=key)
    _fit(model, x[len(x) // 2 :], y[len(y) // 2 :])
    _fit(loaded, x[len(x) // 2 :], y[len(y) // 2 :])
    for a, b in zip(common.weights(loaded), common.weights(model)):
        np.testing.assert_array_equal(a, b, err_msg=spec.name)


@pytest.mark.parametrize("spec", SCHEDULE_FREE)
def test_schedule_free_refuses_several_replicas(spec):
    """Its mirrored fit did not match one device: refused at build with
    a clear error rather than trained wrongly."""
    x, y = common.data()
    model = _compiled(spec, _strategy())
    with pytest.raises(NotImplementedError, match="num_replicas_in_sync=2"):
        _fit(model, x, y)


def test_8_bit_state_mirrored_matches_one_device_and_reloads(
    monkeypatch, tmp_path
):
    """AdamW with 8-bit state (every variable of 32 entries or more
    quantized: the model's kernels are small): the mirrored fit equals
    one device's, codes and scales included, and a model saved under the
    strategy reloads with them and trains on alike."""
    from keras_opts._core import quantization

    monkeypatch.setattr(quantization, "SMALLEST", 32)
    x, y = common.data()
    strategy = _strategy()

    def compiled(strategy=None):
        with strategy.scope() if strategy else contextlib.nullcontext():
            model = common.model()
            optimizer = keras_opts.AdamW(1e-2, state_dtype="int8")
            model.compile(optimizer=optimizer, loss="mse")
        return model

    mirrored, single = compiled(strategy), compiled()
    _fit(mirrored, x, y)
    _fit(single, x, y)
    _assert_close(common.weights(mirrored), common.weights(single), "int8")
    state = common.optimizer_state(mirrored.optimizer)
    codes = [v for v in mirrored.optimizer.variables if v.dtype == "uint8"]
    assert len(codes) == 4  # two kernels, two moments each
    for key, value in common.optimizer_state(single.optimizer).items():
        _assert_close([state[key]], [value], key)
    path = str(tmp_path / "m.keras")
    mirrored.save(path)
    with strategy.scope():
        loaded = keras.models.load_model(path)
    for key, value in common.optimizer_state(loaded.optimizer).items():
        np.testing.assert_array_equal(value, state[key], err_msg=key)
    _fit(mirrored, x, y)
    _fit(loaded, x, y)
    for a, b in zip(common.weights(loaded), common.weights(mirrored)):
        np.testing.assert_array_equal(a, b)
