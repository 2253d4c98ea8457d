"""The torch multi-tensor path against the ``keras.ops`` path, and the
absence of wasted work (retracing, per-variable scalars, extra state).

On torch every keras_opts optimizer runs its ``_kernel`` once per step over
lists of tensors (``torch._foreach_*``); with ``use_foreach = False`` it runs
the same kernel per variable through ``keras.ops``, as on TensorFlow and
JAX. The two must agree to float32 round-off on random problems: the
multi-tensor kernels may fuse a multiply and an add (one rounding instead
of two), so they are not bitwise equal.
"""

import keras
import numpy as np
import pytest

import keras_opts
from tests import helpers
from tests import specs as registry

STEPS = 30
CONFIGS = [
    pytest.param(spec, kwargs, id=f"{spec.name}-{i}")
    for spec in registry.SPECS
    for i, kwargs in enumerate(spec.test_configs)
]
torch_only = pytest.mark.skipif(
    helpers.BACKEND != "torch", reason="the multi-tensor path is torch's"
)


def _history_and_state(optimizer, params, grads, dtypes=None):
    dtypes = dtypes or ["float32"] * len(params)
    variables = [
        keras.Variable(p, dtype=d, name=f"p{i}")
        for i, (p, d) in enumerate(zip(params, dtypes))
    ]
    history = []
    for step_grads in grads:
        optimizer.apply(
            [
                keras.ops.convert_to_tensor(g, dtype=d)
                for g, d in zip(step_grads, dtypes)
            ],
            variables,
        )
        history.append(
            [np.asarray(v.numpy(), np.float64) for v in variables]
            + [np.asarray(v.numpy(), np.float64) for v in optimizer.variables]
        )
    return history


@torch_only
@pytest.mark.parametrize("seed", [3, 4])
@pytest.mark.parametrize("spec, kwargs", CONFIGS)
def test_foreach_matches_keras_ops_path(spec, kwargs, seed):
    if not spec.cls.capabilities.foreach:
        pytest.skip("runs per variable (capabilities.foreach): no foreach")
    params, grads = helpers.random_problem(seed=seed, steps=STEPS)
    schedule = keras.optimizers.schedules.ExponentialDecay(
        spec.lr, decay_steps=10, decay_rate=0.5
    )
    runs = []
    for use_foreach in (True, False):
        optimizer = spec.cls(learning_rate=schedule, **kwargs)
        optimizer.use_foreach = use_foreach
        runs.append(_history_and_state(optimizer, params, grads))
    fast, loop = runs
    tol = helpers.float32_tolerance(loop, STEPS)
    helpers.assert_histories_close(fast, loop, tol, f"{spec.name} foreach")


@torch_only
@pytest.mark.parametrize("spec", registry.SPECS, ids=lambda s: s.name)
def test_foreach_groups_mixed_dtypes(spec):
    """float32 and float16 variables in one optimizer: one multi-tensor
    call per dtype, each matching the per-variable path (float16 to its
    own rounding, 2**-10 relative per step)."""
    if "float32_variables" in spec.capabilities:
        pytest.skip("refuses float16 variables (tested in test_properties)")
    if not spec.cls.capabilities.foreach:
        pytest.skip("runs per variable (capabilities.foreach): no foreach")
    params, grads = helpers.random_problem(seed=5, steps=10)
    dtypes = ["float32", "float16", "float32"]
    kwargs = {"epsilon": 1e-3} if "epsilon" in spec.cls().get_config() else {}
    runs = []
    for use_foreach in (True, False):
        optimizer = spec.cls(learning_rate=spec.lr, **kwargs)
        optimizer.use_foreach = use_foreach
        runs.append(_history_and_state(optimizer, params, grads, dtypes))
    fast, loop = runs
    float16_eps = 2.0**-10
    tol = (
        helpers.float32_tolerance(loop, 10) * float16_eps / helpers.FLOAT32_EPS
    )
    helpers.assert_histories_close(fast, loop, tol, f"{spec.name} mixed")


@torch_only
def test_scalars_are_computed_once_per_step_per_dtype():
    optimizer = keras_opts.RAdam(learning_rate=0.01)
    calls = []
    original = optimizer._coefficients

    def counting(learning_rate, t):
        calls.append(t)
        return original(learning_rate, t)

    optimizer._coefficients = counting
    params, grads = helpers.random_problem(seed=0, steps=3)
    variables = helpers.make_variables(params)
    for step_grads in grads:
        optimizer.apply(
            [keras.ops.convert_to_tensor(g) for g in step_grads], variables
        )
    assert len(calls) == 3  # one per step, not one per variable


class _CountingAdam(keras_opts.Adam):
    """A user's subclass that overrides ``update_step``."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls = 0

    def update_step(self, gradient, variable, learning_rate):
        self.calls += 1
        super().update_step(gradient, variable, learning_rate)


class _SignSGD(keras_opts.SGD):
    """A user's subclass with its own math in ``update_step``."""

    def update_step(self, gradient, variable, learning_rate):
        self.assign_sub(
            variable,
            keras.ops.cast(learning_rate, variable.dtype)
            * keras.ops.sign(gradient),
        )


def test_subclass_overriding_update_step_is_called_per_variable():
    params, grads = helpers.random_problem(seed=6, steps=5)
    subclass = _CountingAdam(learning_rate=0.01)
    ours = helpers.run_keras_optimizer(subclass, params, grads)
    plain = helpers.run_keras_optimizer(
        keras_opts.Adam(learning_rate=0.01), params, grads
    )
    assert subclass.calls == 5 * len(params)
    tol = helpers.float32_tolerance(plain, 5)
    helpers.assert_histories_close(ours, plain, tol, "subclass")


def test_subclass_with_its_own_math_gets_it():
    params, grads = helpers.random_problem(seed=7, steps=4)
    history = helpers.run_keras_optimizer(
        _SignSGD(learning_rate=0.1), params, grads
    )
    expected = [np.asarray(p, np.float64) for p in params]
    for step, step_grads in enumerate(grads):
        expected = [
            (p - np.float32(0.1) * np.sign(g)).astype(np.float32)
            for p, g in zip(expected, step_grads)
        ]
        for actual, e in zip(history[step], expected):
            np.testing.assert_allclose(actual, e, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "spec",
    [s for s in registry.SPECS if "matrix_state" not in s.capabilities],
    ids=lambda s: s.name,
)
def test_state_is_exactly_the_slots(spec):
    """Per float32 parameter, 4 bytes per slot the configuration needs;
    besides those only scalars (iterations, learning rate, Nadam's
    product). Not for state of other shapes (``"factored_state"``, and
    ``"path_blocks"``: one second moment per block)."""
    if "path_blocks" in spec.capabilities:
        pytest.skip("one second moment per block: test_adam_mini counts it")
    if "factored_state" in spec.capabilities:
        pytest.skip("state shaped by the variable's axes, not like it")
    params, grads = helpers.random_problem(seed=0, steps=1)
    optimizer = spec.cls(learning_rate=spec.lr)
    helpers.run_keras_optimizer(optimizer, params, grads)
    count = sum(int(np.prod(p.shape)) for p in params)
    arrays = [v for v in optimizer.variables if len(v.shape) > 0]
    state = sum(int(np.prod(v.shape)) * 4 for v in arrays)
    assert state == 4 * count * len(optimizer._slot_names())


@pytest.mark.parametrize(
    "name, kwargs, bytes_per_parameter",
    [
        ("SGD", {}, 0),
        ("SGD", {"momentum": 0.9}, 4),
        ("Adam", {}, 8),
        ("Adam", {"amsgrad": True}, 12),
        ("RAdam", {}, 8),
        ("AdamW", {}, 8),
        ("Nadam", {}, 8),
        ("Adagrad", {}, 4),
        ("RMSprop", {}, 4),
        ("RMSprop", {"momentum": 0.9, "centered": True}, 12),
        ("Adadelta", {}, 8),
    ],
)
def test_state_bytes_per_parameter(name, kwargs, bytes_per_parameter):
    optimizer = getattr(keras_opts, name)(**kwargs)
    variables = [keras.Variable(np.zeros((10, 10), "float32"))]
    optimizer.build(variables)
    state = sum(
        int(np.prod(v.shape)) * 4
        for v in optimizer.variables
        if len(v.shape) > 0
    )
    assert state == bytes_per_parameter * 100


@pytest.mark.skipif(
    helpers.BACKEND == "torch", reason="torch runs eagerly: nothing to trace"
)
@pytest.mark.parametrize(
    "spec",
    helpers.shared(
        registry.SPECS,
        "fit_traces_the_train_step_once",
        backends=helpers.TRACING_BACKENDS,
    ),
    ids=lambda s: s.name,
)
def test_fit_traces_the_train_step_once(spec):
    """After the first epoch, four more epochs of ``fit()`` with a schedule
    trace the loss (hence the train step) no more: no hyperparameter or
    step count is baked into the traced function. (The first epoch traces
    it once for Keras' symbolic build and once for the train function.)"""
    traces = []

    def loss(y_true, y_pred):
        traces.append(1)  # Python runs only while tracing
        return keras.ops.mean(keras.ops.square(y_true - y_pred))

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1)]
    )
    schedule = keras.optimizers.schedules.ExponentialDecay(
        spec.lr, decay_steps=3, decay_rate=0.5
    )
    model.compile(optimizer=spec.cls(learning_rate=schedule), loss=loss)
    x = np.random.default_rng(0).standard_normal((32, 4)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    first = len(traces)
    assert first >= 1
    model.fit(x, y, batch_size=8, epochs=4, verbose=0)
    assert len(traces) == first


@torch_only
@pytest.mark.parametrize(
    "name, kwargs, kernel",
    [
        ("Adam", {}, "_fused_adam_"),
        ("Adam", {"amsgrad": True}, "_fused_adam_"),
        ("AdamW", {}, "_fused_adam_"),
        ("SGD", {"momentum": 0.9, "nesterov": True}, "_fused_sgd_"),
        ("SGD", {}, "_fused_sgd_"),
        ("Adagrad", {"epsilon_mode": "outside_sqrt"}, "_fused_adagrad_"),
        ("Adam", {"epsilon_mode": "uncorrected"}, None),
        ("SGD", {"momentum": 0.9, "momentum_form": "step"}, None),
        ("Adagrad", {}, None),
    ],
)
def test_fused_kernel_is_taken_where_the_algorithm_matches(
    name, kwargs, kernel, monkeypatch
):
    """Which configurations run torch's fused kernels; the parity tests
    above cover their results (each of these is a registry test config
    or the default)."""
    import torch

    calls = []
    for fused in ("_fused_adam_", "_fused_sgd_", "_fused_adagrad_"):
        original = getattr(torch, fused)

        def counting(*args, _original=original, _name=fused, **kw):
            calls.append(_name)
            return _original(*args, **kw)

        monkeypatch.setattr(torch, fused, counting)
    params, grads = helpers.random_problem(seed=0, steps=2)
    helpers.run_keras_optimizer(
        getattr(keras_opts, name)(**kwargs), params, grads
    )
    assert calls == ([kernel] * 2 if kernel else [])


@pytest.mark.parametrize("spec, kwargs", CONFIGS)
def test_step_scalars_are_a_named_record(spec, kwargs):
    """``_coefficients`` returns a ``NamedTuple`` (``c.step_size``), so a
    reader can follow each scalar by name from ``_coefficients`` to
    ``_kernel``."""
    optimizer = spec.cls(learning_rate=spec.lr, **kwargs)
    optimizer.build([keras.Variable(np.ones(3, "float32"))])
    one = keras.ops.convert_to_tensor(1.0)
    c = optimizer._coefficients(spec.lr * one, one)
    assert isinstance(c, tuple) and c._fields, type(c)
    assert all(not name.startswith("_") for name in c._fields)


@torch_only
def test_foreach_accelerator_forms_match_the_number_forms():
    """On an accelerator ``Foreach`` keeps a 0-d scalar or condition on the
    device (a two-kernel form, ``torch.where``); on the CPU it reads it as
    a number. The accelerator forms, run here on the CPU by keeping every
    scalar a tensor, give the same results (to one float32 rounding: the
    two-kernel forms round the product separately)."""
    import torch

    from keras_opts._core.foreach import Foreach

    by_number, on_device = Foreach(), Foreach()
    on_device._number = lambda v: v if torch.is_tensor(v) else float(v)
    rng = np.random.default_rng(0)

    def lists():
        return [
            [torch.tensor(rng.standard_normal(5), dtype=torch.float32)]
            for _ in range(3)
        ]

    scalar = torch.tensor(0.3, dtype=torch.float32)
    cases = {
        "lerp_": lambda k, x, y, z, c: k.lerp_(x, y, scalar),
        "add_": lambda k, x, y, z, c: k.add_(x, y, scalar),
        "sub_": lambda k, x, y, z, c: k.sub_(x, y, scalar),
        "addcmul_": lambda k, x, y, z, c: k.addcmul_(x, y, z, scalar),
        "addcdiv_": lambda k, x, y, z, c: k.addcdiv_(x, y, z, scalar),
        "add": lambda k, x, y, z, c: k.add(x, y, scalar),
        "addcmul": lambda k, x, y, z, c: k.addcmul(x, y, z, scalar),
        "copy_": lambda k, x, y, z, c: k.copy_(x, y, when=c),
        "where": lambda k, x, y, z, c: k.where(c, x, y),
        "where a number": lambda k, x, y, z, c: k.where(c, x, 1.0),
    }
    for condition in (torch.tensor(True), torch.tensor(False)):
        for name, op in cases.items():
            x, y, z = lists()
            expected = op(by_number, [a.clone() for a in x], y, z, condition)
            got = op(on_device, [a.clone() for a in x], y, z, condition)
            np.testing.assert_allclose(
                got[0].numpy(),
                expected[0].numpy(),
                rtol=2 * helpers.FLOAT32_EPS,
                atol=2 * helpers.FLOAT32_EPS,
                err_msg=f"{name}, condition {bool(condition)}",
            )
