"""Shared machinery of the test suite: problems, runners, references.

Every runner returns the parameter history: after each step, a list of
float64 NumPy arrays, one per parameter.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import zlib

import keras
import numpy as np
import pytest

BACKEND = keras.backend.backend()


def tools_module(name: str):
    """The module ``tools/<name>.py`` of this checkout (``tools/`` is a
    folder of scripts, not a package)."""
    path = pathlib.Path(__file__).resolve().parents[1] / "tools" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BACKENDS = ("tensorflow", "jax", "torch")
#: The backends whose compiled step is a traced program (torch runs eagerly).
TRACING_BACKENDS = ("tensorflow", "jax")

#: ``KERAS_OPTS_EVERY_BACKEND=1`` runs every shared case on every backend.
EVERY_BACKEND = bool(os.environ.get("KERAS_OPTS_EVERY_BACKEND"))

#: A module's ``pytestmark`` for what does not depend on the backend (the
#: docs build, the wheel, the generated files): it runs once, in the JAX
#: pass of ``make test`` (everywhere with ``KERAS_OPTS_EVERY_BACKEND=1``).
backend_independent = pytest.mark.skipif(
    BACKEND != "jax" and not EVERY_BACKEND,
    reason="backend-independent: runs once, in the JAX pass",
)


def shared(cases, test: str, backends=BACKENDS) -> list:
    """The cases of ``cases`` (pytest params, or specs) that this
    backend's pass runs, for a test of what the base class does the same
    way for every optimizer (a Keras feature, saving, mixed precision).

    Each case runs on one of ``backends``, picked by a hash of the test's
    name and the case's id: the passes together run every case once, and
    every optimizer meets every backend across such tests. What differs
    per backend per optimizer (the oracle parity, the references, the
    cross-backend resume) runs on every backend. Set
    ``KERAS_OPTS_EVERY_BACKEND=1`` to run every case everywhere.
    """
    kept = []
    for case in cases:
        case_id = getattr(case, "id", None) or getattr(case, "name", None)
        if case_id is None:  # a pytest.param of a spec, without an id
            case_id = case.values[0].name
        index = zlib.crc32(f"{test}/{case_id}".encode()) % len(backends)
        if EVERY_BACKEND or backends[index] == BACKEND:
            kept.append(case)
    return kept


SHAPES = ((7,), (3, 4), (2, 3, 2))
FLOAT32_EPS = float(np.finfo(np.float32).eps)


def random_problem(seed=0, steps=50, shapes=SHAPES):
    """Initial parameters and ``steps`` gradients per parameter.

    Gradients change every step and mix scales (a standard normal times a
    per-step factor in [0.1, 10]) so adaptive methods see a varying second
    moment. Values are float32-exact, so every implementation gets the
    same inputs.
    """
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [
        [
            (rng.standard_normal(s) * 10 ** rng.uniform(-1, 1)).astype(
                np.float32
            )
            for s in shapes
        ]
        for _ in range(steps)
    ]
    return params, grads


def float32_tolerance(history, steps):
    """One float32 rounding of the largest magnitude seen, per step.

    A history with a NaN or an infinity has no such scale (the tolerance
    would be infinite or NaN, and pass anything): it fails here."""
    for state in history:
        for p in state:
            assert np.all(np.isfinite(p)), "a non-finite value in the history"
    scale = max(
        1.0,
        max(float(np.max(np.abs(p), initial=0.0)) for s in history for p in s),
    )
    return steps * FLOAT32_EPS * scale


def assert_histories_close(actual, expected, atol, what=""):
    assert len(actual) == len(expected)
    for step, (a_step, e_step) in enumerate(zip(actual, expected)):
        for i, (a, e) in enumerate(zip(a_step, e_step)):
            # NaN is not close to NaN: a run that diverged fails.
            np.testing.assert_allclose(
                a,
                e,
                rtol=0,
                atol=atol,
                equal_nan=False,
                err_msg=f"{what}: step {step + 1}, parameter {i}",
            )


def max_abs_difference(actual, expected):
    return max(
        float(np.max(np.abs(a - e), initial=0.0))
        for a_step, e_step in zip(actual, expected)
        for a, e in zip(a_step, e_step)
    )


def make_variables(params):
    return [
        keras.Variable(p, dtype="float32", name=f"p{i}")
        for i, p in enumerate(params)
    ]


def compiled_apply(optimizer, variables):
    """``apply(grads)`` compiled as ``fit()`` compiles it on this backend.

    TensorFlow: ``tf.function(jit_compile=True)``; JAX: ``jax.jit`` of
    ``stateless_apply``; torch: eager, as Keras runs it.
    """
    optimizer.build(variables)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        @tf.function(jit_compile=True)
        def step(grads):
            optimizer.apply(grads, variables)

        return lambda grads: step([tf.constant(g) for g in grads])
    if BACKEND == "jax":
        import jax

        @jax.jit
        def step(opt_values, train_values, grads):
            return optimizer.stateless_apply(opt_values, grads, train_values)

        def apply(grads):
            train, state = step(
                [v.value for v in optimizer.variables],
                [v.value for v in variables],
                grads,
            )
            for var, value in zip(variables, train):
                var.assign(value)
            for var, value in zip(optimizer.variables, state):
                var.assign(value)

        return apply
    return lambda grads: optimizer.apply(
        [keras.ops.convert_to_tensor(g) for g in grads], variables
    )


def eager_apply(optimizer, variables):
    return lambda grads: optimizer.apply(
        [keras.ops.convert_to_tensor(g) for g in grads], variables
    )


def run_keras_optimizer(optimizer, params, grad_steps, compiled=False):
    variables = make_variables(params)
    make = compiled_apply if compiled else eager_apply
    apply = make(optimizer, variables)
    history = []
    for grads in grad_steps:
        apply(grads)
        history.append([np.asarray(v.numpy(), np.float64) for v in variables])
    return history


def run_oracle(spec, kwargs, params, grad_steps, lrs, **base_kwargs):
    from tests import oracles

    return oracles.run(
        spec.oracle(**kwargs), params, grad_steps, lrs, **base_kwargs
    )


def run_reference(reference, lr, params, grad_steps):
    """Runs another library's optimizer, NumPy in and NumPy out."""
    runner = {"optax": _run_optax, "keras": _run_keras}
    run = runner.get(reference.library, _run_torch)
    name = reference.name
    if reference.library != "keras" and reference.library != "optax":
        name = f"{reference.library}.{name}"
    return run(name, dict(reference.theirs), lr, params, grad_steps)


def _run_torch(name, kwargs, lr, params, grad_steps):
    """A torch optimizer (``torch.SGD`` is torch.optim's, ``madgrad.MADGRAD``
    the authors' package's) in float64 on the CPU. ``adam_mini.Adam_mini``
    takes named parameters: those of ``make_variables``, ``p0``, ``p1``..."""
    import importlib

    import torch

    tensors = [
        torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in params
    ]
    module, _, attribute = name.rpartition(".")
    library = (
        torch.optim if module == "torch" else importlib.import_module(module)
    )
    if module == "adam_mini":  # named parameters: the variables' names
        named = [(f"p{i}", t) for i, t in enumerate(tensors)]
        optimizer = library.Adam_mini(named, lr=lr, verbose=False, **kwargs)
    else:
        optimizer = getattr(library, attribute)(tensors, lr=lr, **kwargs)
    if callable(getattr(optimizer, "train", None)):
        # schedulefree's optimizers step only in train mode, where the
        # parameters hold y, as the model's variables do under ours.
        optimizer.train()
    history = []
    for grads in grad_steps:
        for t, g in zip(tensors, grads):
            t.grad = torch.tensor(g, dtype=torch.float64)
        optimizer.step()
        history.append([t.detach().numpy().copy() for t in tensors])
    return history


def _run_optax(name, kwargs, lr, params, grad_steps):
    """optax in float64 (``jax.enable_x64`` for this call only)."""
    import jax
    import jax.numpy as jnp
    import optax

    from tests import references

    with jax.enable_x64(True):
        transform = references.optax_transform(name, lr, kwargs)
        values = [jnp.asarray(p, jnp.float64) for p in params]
        state = transform.init(values)
        history = []
        for grads in grad_steps:
            grads = [jnp.asarray(g, jnp.float64) for g in grads]
            updates, state = transform.update(grads, state, values)
            values = optax.apply_updates(values, updates)
            history.append([np.asarray(v, np.float64) for v in values])
    return history


def _run_keras(name, kwargs, lr, params, grad_steps):
    """Keras' built-in optimizer on the current backend, float32."""
    optimizer = getattr(keras.optimizers, name)(learning_rate=lr, **kwargs)
    return run_keras_optimizer(optimizer, params, grad_steps)


#: Keras 3.16 (keras-nightly) resolves a string in
#: ``keras.optimizers.get`` (and so in ``compile``) among its own
#: optimizers only: neither ``"keras_opts>RAdam"`` nor a short name
#: reaches a registered class there. Config dicts and instances still do.
KERAS_GET_TAKES_NAMES = tuple(
    int(part) for part in keras.version().split(".")[:2]
) < (3, 16)
needs_keras_string_lookup = pytest.mark.skipif(
    not KERAS_GET_TAKES_NAMES,
    reason="Keras >= 3.16 resolves optimizer strings among its built-ins "
    "only (README: pass an instance or keras_opts.get(name))",
)
