"""Exact resume across processes and backends, and through Keras'
checkpointing callbacks.

Same backend, same device, same compiled program: bitwise equality.
Across backends: equal to float32 round-off, because each backend's
kernels round differently (tolerance: one float32 rounding of the largest
weight per step of the continuation, as in test_parity). That holds for
the optimizers that draw random numbers too (PSGD-Kron's probes and coin,
the stochastic rounding of ``state_dtype``): their generator
(``keras_opts._core.counter_random``) draws the same numbers on every
backend from the saved seed state.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

from tests import helpers, resume_worker
from tests import specs as registry

ROOT = pathlib.Path(__file__).parents[1]
BACKENDS = ("tensorflow", "jax", "torch")
CONTINUATION_STEPS = resume_worker.MORE * 32 // resume_worker.BATCH


def _worker(backend, *args, python=sys.executable, **env_extra):
    env = {
        **os.environ,
        "KERAS_BACKEND": backend,
        "PYTHONPATH": str(ROOT),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        **env_extra,
    }
    result = subprocess.run(
        [python, str(ROOT / "tests" / "resume_worker.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def _load(path):
    with np.load(path) as f:
        return [f[k] for k in sorted(f.files, key=lambda k: int(k[4:]))]


def _assert_bitwise(straight, out, source, spec):
    for suffix in ("npz", "weights.npz"):
        resumed = _load(out / f"{source}-{spec.name}.{suffix}")
        for a, b in zip(resumed, straight):
            np.testing.assert_array_equal(a, b, err_msg=spec.name + suffix)


def _missing_backends():
    return [b for b in BACKENDS if importlib.util.find_spec(b) is None]


@pytest.mark.skipif(
    helpers.BACKEND != "torch",
    reason="the 3 x 3 matrix starts its own processes; run it once",
)
def test_every_backend_resumes_every_backends_file(tmp_path):
    """Every registry optimizer's .keras and .weights.h5 files (and two
    with ``state_dtype="bfloat16"``, one with ``"int8"``), saved by a
    process of one backend (``resume_worker.saved_on``; of each with
    ``KERAS_OPTS_EVERY_BACKEND=1``), continued by a fresh process of each
    backend: bitwise on the same backend, within float32 roundings across
    backends. The in-process tests below resume every optimizer bitwise
    on every backend."""
    missing = _missing_backends()
    if missing:
        pytest.skip(
            "resuming across backends needs all three installed; missing: "
            + ", ".join(missing)
        )
    for backend in BACKENDS:
        _worker(backend, "save", str(tmp_path / backend))
    sources = [str(tmp_path / b) for b in BACKENDS]
    for backend in BACKENDS:
        _worker(backend, "continue", str(tmp_path / f"on-{backend}"), *sources)
    checked = set()
    for spec in resume_worker.CASES:
        for source in resume_worker.saved_on(spec):
            straight = _load(tmp_path / source / f"{spec.name}.straight.npz")
            tol = helpers.float32_tolerance([straight], CONTINUATION_STEPS)
            for target in BACKENDS:
                resumed = _load(
                    tmp_path / f"on-{target}" / f"{source}-{spec.name}.npz"
                )
                checked.add((source, target))
                for a, b in zip(resumed, straight):
                    np.testing.assert_allclose(
                        a,
                        b,
                        rtol=0,
                        atol=tol,
                        err_msg=f"{spec.name}: {source} -> {target}",
                    )
            _assert_bitwise(straight, tmp_path / f"on-{source}", source, spec)
    assert len(checked) == 9  # every backend read every backend's files


#: The Python of an environment with another Keras release (``make
#: test-nightly`` sets the pinned one's, its own being keras-nightly).
OTHER_KERAS = os.environ.get("KERAS_OPTS_OTHER_KERAS")


def _keras_version(python):
    return subprocess.run(
        [python, "-c", "import keras; print(keras.version())"],
        env={**os.environ, "KERAS_BACKEND": helpers.BACKEND},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


@pytest.mark.skipif(
    not OTHER_KERAS, reason="KERAS_OPTS_OTHER_KERAS names no other Keras"
)
def test_files_saved_by_one_keras_release_resume_on_the_other(tmp_path):
    """The .keras and .weights.h5 files of the cases this backend saves
    (``resume_worker.saved_on``: a third of them, all three backends
    together every case), saved with this Keras and with the other
    release, continued by the other: within float32 roundings of the run
    that never stopped."""
    other = _keras_version(OTHER_KERAS)
    assert other != keras.version()
    here = helpers.BACKEND
    _worker(here, "save", str(tmp_path / "this"))
    _worker(here, "save", str(tmp_path / "other"), python=OTHER_KERAS)
    on_this, on_other = tmp_path / "on-this", tmp_path / "on-other"
    _worker(here, "continue", str(on_this), str(tmp_path / "other"))
    _worker(
        here,
        "continue",
        str(on_other),
        str(tmp_path / "this"),
        python=OTHER_KERAS,
    )
    cases = [
        c for c in resume_worker.CASES if here in resume_worker.saved_on(c)
    ]
    assert cases
    for spec in cases:
        for source, target in (("this", "on-other"), ("other", "on-this")):
            straight = _load(tmp_path / source / f"{spec.name}.straight.npz")
            tol = helpers.float32_tolerance([straight], CONTINUATION_STEPS)
            for suffix in ("npz", "weights.npz"):
                resumed = _load(
                    tmp_path / target / f"{source}-{spec.name}.{suffix}"
                )
                for a, b in zip(resumed, straight):
                    np.testing.assert_allclose(
                        a,
                        b,
                        rtol=0,
                        atol=tol,
                        err_msg=f"{spec.name}: Keras {keras.version()} "
                        f"and {other}, {source} -> {target}",
                    )


SPECS = [pytest.param(s, id=s.name) for s in registry.SPECS]


def _straight(spec):
    """Weights and step count of ``FIRST + MORE`` epochs that never
    stopped: the run the in-process resume tests below compare with (one
    fit per optimizer and process)."""
    return _straight_run(spec.name)


@functools.cache
def _straight_run(name):
    x, y = resume_worker.data()
    model = resume_worker.model(registry.lookup(name))
    model.fit(
        x,
        y,
        epochs=resume_worker.FIRST + resume_worker.MORE,
        batch_size=resume_worker.BATCH,
        shuffle=False,
        verbose=0,
    )
    return model.get_weights(), int(model.optimizer.iterations)


class _StopAfter(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("interrupted")


@pytest.mark.parametrize(
    "spec",
    helpers.shared(SPECS, "backup_and_restore_resumes_an_interrupted_fit"),
)
def test_backup_and_restore_resumes_an_interrupted_fit(spec, tmp_path):
    x, y = resume_worker.data()
    total = resume_worker.FIRST + resume_worker.MORE
    kwargs = {"batch_size": resume_worker.BATCH, "shuffle": False, "verbose": 0}

    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    interrupted = resume_worker.model(spec)
    with pytest.raises(RuntimeError, match="interrupted"):
        interrupted.fit(
            x, y, epochs=total, callbacks=[backup, _StopAfter(1)], **kwargs
        )
    resumed = resume_worker.model(spec)
    resumed.fit(x, y, epochs=total, callbacks=[backup], **kwargs)
    weights, iterations = _straight(spec)
    assert int(resumed.optimizer.iterations) == iterations
    for a, b in zip(resumed.get_weights(), weights):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "spec", helpers.shared(SPECS, "model_checkpoint_file_resumes")
)
def test_model_checkpoint_file_resumes(spec, tmp_path):
    x, y = resume_worker.data()
    kwargs = {"batch_size": resume_worker.BATCH, "shuffle": False, "verbose": 0}
    path = str(tmp_path / "epoch{epoch}.keras")
    first = resume_worker.model(spec)
    first.fit(
        x,
        y,
        epochs=2,
        callbacks=[keras.callbacks.ModelCheckpoint(path)],
        **kwargs,
    )
    resumed = keras.models.load_model(tmp_path / "epoch2.keras")
    resumed.fit(x, y, epochs=4, initial_epoch=2, **kwargs)
    for a, b in zip(resumed.get_weights(), _straight(spec)[0]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.skipif(helpers.BACKEND != "tensorflow", reason="TensorFlow only")
@pytest.mark.parametrize("spec", SPECS)
def test_tf_checkpoint_restores_model_and_optimizer(spec, tmp_path):
    import tensorflow as tf

    x, y = resume_worker.data()
    kwargs = {"batch_size": resume_worker.BATCH, "shuffle": False, "verbose": 0}
    first = resume_worker.model(spec)
    first.fit(x, y, epochs=2, **kwargs)
    prefix = tf.train.Checkpoint(model=first, optimizer=first.optimizer).save(
        str(tmp_path / "ckpt")
    )
    resumed = resume_worker.model(spec)
    resumed.optimizer.build(resumed.trainable_variables)
    checkpoint = tf.train.Checkpoint(model=resumed, optimizer=resumed.optimizer)
    checkpoint.restore(prefix).assert_consumed()
    for a, b in zip(resumed.optimizer.variables, first.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    resumed.fit(x, y, epochs=2, **kwargs)
    for a, b in zip(resumed.get_weights(), _straight(spec)[0]):
        np.testing.assert_array_equal(a, b)
    resumed.export(str(tmp_path / "served"), verbose=False)
    reloaded = tf.saved_model.load(str(tmp_path / "served"))
    np.testing.assert_allclose(
        reloaded.serve(x).numpy(), resumed.predict(x, verbose=0), rtol=1e-6
    )
