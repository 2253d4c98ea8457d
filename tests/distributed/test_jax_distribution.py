"""keras.distribution on JAX with 4 virtual CPU devices.

Runs in its own pytest process with
``XLA_FLAGS=--xla_force_host_platform_device_count=4`` (tools/run_tests.py
sets it); skipped elsewhere.

Tolerance: the data-parallel gradient is the same mean over the global
batch, summed in another order (per shard, then across shards), so it
differs from the single-device one by float32 roundings; a step of an
adaptive method can amplify the relative difference of a near-zero
gradient entry. The bound is 16 float32 roundings of the largest weight
per step; the measured worst is printed by ``-s``.
"""

import keras
import numpy as np
import pytest

from tests import specs as registry
from tests.distributed import common

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "jax"
    or len(keras.distribution.list_devices("cpu")) < 4,
    reason="needs JAX with 4 virtual CPU devices (own process)",
)

SPECS = [pytest.param(s, id=s.name) for s in common.SPECS]


def _fit(spec, distribution=None, make_optimizer=None):
    x, y = common.data()
    scope = distribution.scope() if distribution else _nothing()
    with scope:
        model = common.model()
        make_optimizer = make_optimizer or common.optimizer
        model.compile(optimizer=make_optimizer(spec), loss="mse")
        model.fit(x, y, batch_size=common.BATCH, shuffle=False, verbose=0)
    return model


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _assert_same_training(model, reference, spec):
    ours, theirs = common.weights(model), common.weights(reference)
    tol = common.tolerance(theirs, factor=16)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=0, atol=tol, err_msg=spec.name)
    state = common.optimizer_state(model.optimizer)
    expected = common.optimizer_state(reference.optimizer)
    assert state.keys() == expected.keys()
    for key, value in expected.items():
        tol = common.tolerance([value], factor=16)
        np.testing.assert_allclose(
            state[key], value, rtol=1e-5, atol=tol, err_msg=key
        )


@pytest.mark.parametrize("spec", SPECS)
def test_data_parallel_matches_one_device(spec):
    devices = keras.distribution.list_devices("cpu")[:4]
    distribution = keras.distribution.DataParallel(devices=devices)
    model = _fit(spec, distribution)
    _assert_same_training(model, _fit(spec), spec)


def _model_parallel():
    """A 2 x 2 mesh (batch, model): the first kernel's columns and the
    second's rows sharded over "model"."""
    devices = keras.distribution.list_devices("cpu")[:4]
    mesh = keras.distribution.DeviceMesh(
        shape=(2, 2), axis_names=("batch", "model"), devices=devices
    )
    layout_map = keras.distribution.LayoutMap(mesh)
    layout_map[".*dense_1/kernel"] = (None, "model")
    layout_map[".*dense_2/kernel"] = ("model", None)
    distribution = keras.distribution.ModelParallel(
        layout_map=layout_map, batch_dim_name="batch"
    )
    return distribution


@pytest.mark.parametrize("spec", SPECS)
def test_model_parallel_shards_slots_like_their_variables(spec):
    distribution = _model_parallel()
    model = _fit(spec, distribution)
    optimizer = model.optimizer
    kernels = {w.path for w in model.trainable_weights if "kernel" in w.path}
    sharded = 0
    for variable in model.trainable_weights:
        spec_of = variable.value.sharding.spec
        if variable.path in kernels:
            assert any(axis == "model" for axis in spec_of), variable.path
        index = optimizer._get_variable_index(variable)
        for name, slots in optimizer._slots.items():
            slot = slots[index]
            if slot is None or len(slot.shape) == 0:
                continue  # none (Shampoo's vectors), or NovoGrad's scalar v
            if tuple(slot.shape) != tuple(variable.shape):
                # Adam-mini's block moments (the variable's shape reduced
                # over its blocks): replicated, not sharded (yet). The
                # Kronecker factors of Shampoo, SOAP and PSGD-Kron: the
                # test below.
                assert spec.capabilities & {"path_blocks", "matrix_state"}, (
                    name,
                    variable.path,
                )
                continue
            assert slot.value.sharding.is_equivalent_to(
                variable.value.sharding, len(variable.shape)
            ), (name, variable.path)
            sharded += variable.path in kernels
    assert sharded or not optimizer._slot_names()
    _assert_same_training(model, _fit(spec), spec)


def _factors(optimizer, variable):
    """``(weight dimension, factor)`` of every Kronecker factor and root
    (Shampoo), factor and basis (SOAP) or factor (PSGD-Kron) of a matrix
    variable."""
    index = optimizer._get_variable_index(variable)
    if hasattr(optimizer, "_layouts"):  # PSGD-Kron: one per dimension
        return list(enumerate(optimizer._factors[index]))
    if hasattr(optimizer, "_factors"):
        return [
            (axis, v)
            for axis, pair in enumerate(optimizer._factors[index] or ())
            for v in pair or ()
        ]
    return [
        (axis, optimizer._slots[name][index])
        for name, axis in (
            ("left", 0),
            ("right", 1),
            ("left_root", 0),
            ("right_root", 1),
        )
    ]


@pytest.mark.parametrize("name", ["Shampoo", "SOAP", "PSGDKron"])
def test_model_parallel_shards_factor_rows_like_the_weight(name):
    """A factor's rows stand for one dimension of the weight (rows of ``L``
    for the weight's rows, of ``R`` for its columns): sharded over the mesh
    axis that shards that dimension, replicated where none does. At the
    default arguments, under which every dimension of the model gets its
    factors."""
    spec = next(s for s in common.SPECS if s.cls.__name__ == name)
    distribution = _model_parallel()
    model = _fit(spec, distribution, lambda s: s.cls(learning_rate=0.01))
    checked = {None: 0, "model": 0}
    for variable in model.trainable_weights:
        if "kernel" not in variable.path:
            continue
        weight_axes = tuple(variable.value.sharding.spec) + (None,) * 2
        for axis, factor in _factors(model.optimizer, variable):
            expected = [None] * len(factor.shape)
            expected[-2] = weight_axes[axis]
            axes = tuple(factor.value.sharding.spec)
            axes += (None,) * (len(factor.shape) - len(axes))
            assert axes == tuple(expected), (factor.path, axes)
            checked[weight_axes[axis]] += 1
    assert checked[None] and checked["model"], checked


def test_8_bit_state_under_model_parallel(monkeypatch):
    """AdamW with 8-bit state on the 2 x 2 mesh: each slot's codes laid out
    (sharded) as its variable, the block scales replicated, and training
    equal to one device's, codes and scales included (the model's kernels
    are small: every variable of 32 entries or more is quantized here)."""
    from keras_opts._core import quantization

    monkeypatch.setattr(quantization, "SMALLEST", 32)
    spec = registry.lookup("adamw")

    def make(spec):
        return spec.cls(learning_rate=1e-2, state_dtype="int8")

    model = _fit(spec, _model_parallel(), make)
    optimizer = model.optimizer
    quantized = 0
    for variable in model.trainable_weights:
        index = optimizer._get_variable_index(variable)
        for slots in optimizer._slots.values():
            slot = slots[index]
            if not quantization.is_codes(slot):
                continue
            quantized += 1
            assert slot.value.sharding.is_equivalent_to(
                variable.value.sharding, len(variable.shape)
            ), variable.path
            assert slot.block_scales.value.sharding.is_fully_replicated
    assert quantized == 4  # two kernels, two moments each
    _assert_same_training(model, _fit(spec, None, make), spec)
