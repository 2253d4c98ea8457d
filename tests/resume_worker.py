"""Run by tests/test_resume.py in fresh processes, one backend each.

    python tests/resume_worker.py save OUT_DIR
    python tests/resume_worker.py continue OUT_DIR SRC_DIR [SRC_DIR ...]

``save`` trains the registry optimizers, two with
``state_dtype="bfloat16"`` and one with ``"int8"`` (``CASES``), that
this backend saves (:func:`saved_on`: each case on one backend, every
backend with ``KERAS_OPTS_EVERY_BACKEND=1``), on a warm-up schedule, for
``FIRST`` epochs and writes ``<name>.keras`` and ``<name>.weights.h5``,
plus ``<name>.straight.npz``: the weights of a run of ``FIRST + MORE``
epochs that never stopped. ``continue`` loads each saved model (no
custom_objects: ``import keras_opts`` registers the classes), trains
``MORE`` epochs and writes ``<source>-<name>.npz`` for each case found in
each source; it also rebuilds the
model, restores the ``.weights.h5`` file and continues from it.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import sys
import zlib
from typing import Any

import keras
import numpy as np

import keras_opts
from keras_opts._core import quantization
from tests import specs as registry

FIRST, MORE, BATCH = 2, 2, 8


@dataclasses.dataclass(frozen=True)
class Case:
    """An optimizer beside the registry's, as much of a spec as used."""

    name: str
    cls: Any
    test_configs: tuple


#: Every registry optimizer, and stochastic rounding of bfloat16 state
#: (its random bits drawn alike on every backend, on the per-variable path
#: and on torch's multi-tensor path, Adam's). ``KERAS_OPTS_RESUME_CASES``
#: (comma-separated names) runs some of them only, by hand.
CASES = tuple(registry.SPECS) + (
    Case(
        "PSGDKron-bfloat16",
        keras_opts.PSGDKron,
        ({"seed": 4, "state_dtype": "bfloat16"},),
    ),
    Case("Adam-bfloat16", keras_opts.Adam, ({"state_dtype": "bfloat16"},)),
    # 8-bit codes and their scales (SMALLEST below).
    Case("Adam-int8", keras_opts.Adam, ({"state_dtype": "int8"},)),
)
#: This model's variables are small: the 8-bit case quantizes them all
#: (set in the worker's own process only, never in the importing tests').
SMALLEST = 4
if os.environ.get("KERAS_OPTS_RESUME_CASES"):
    _chosen = os.environ["KERAS_OPTS_RESUME_CASES"].split(",")
    CASES = tuple(case for case in CASES if case.name in _chosen)


BACKENDS = ("tensorflow", "jax", "torch")
EVERY_BACKEND = bool(os.environ.get("KERAS_OPTS_EVERY_BACKEND"))


def saved_on(case) -> tuple[str, ...]:
    """The backends whose ``save`` writes ``case``: one, picked by a hash
    of its name, so that every backend saves about a third of the cases
    and every case is continued by all three; all three with
    ``KERAS_OPTS_EVERY_BACKEND=1``."""
    if EVERY_BACKEND:
        return BACKENDS
    return (BACKENDS[zlib.crc32(case.name.encode()) % len(BACKENDS)],)


def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 5)).astype("float32")
    y = (x @ rng.standard_normal((5, 1))).astype("float32")
    return x, y


def optimizer(spec):
    schedule = keras_opts.schedules.Warmup(
        keras_opts.schedules.GeometricDecay(0.02, 0.9), warmup_steps=3
    )
    return spec.cls(learning_rate=schedule, **spec.test_configs[-1])


def model(spec):
    keras.utils.set_random_seed(0)
    m = keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Dense(6, activation="tanh"),
            keras.layers.Dense(1),
        ]
    )
    m.compile(optimizer=optimizer(spec), loss="mse")
    return m


def fit(m, epochs):
    x, y = data()
    m.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0)


def save_npz(path, weights):
    np.savez(path, *weights)


def save(out):
    for spec in CASES:
        if keras.backend.backend() not in saved_on(spec):
            continue
        straight = model(spec)
        fit(straight, FIRST + MORE)
        save_npz(out / f"{spec.name}.straight.npz", straight.get_weights())
        first = model(spec)
        fit(first, FIRST)
        first.save(out / f"{spec.name}.keras")
        first.save_weights(out / f"{spec.name}.weights.h5")


def resume(out, sources):
    for source in sources:
        tag = source.name
        for spec in CASES:
            if not (source / f"{spec.name}.keras").exists():
                continue
            loaded = keras.models.load_model(source / f"{spec.name}.keras")
            assert type(loaded.optimizer) is spec.cls
            fit(loaded, MORE)
            save_npz(out / f"{tag}-{spec.name}.npz", loaded.get_weights())
            rebuilt = model(spec)
            rebuilt.optimizer.build(rebuilt.trainable_variables)
            rebuilt.load_weights(source / f"{spec.name}.weights.h5")
            fit(rebuilt, MORE)
            save_npz(
                out / f"{tag}-{spec.name}.weights.npz", rebuilt.get_weights()
            )


if __name__ == "__main__":
    quantization.SMALLEST = SMALLEST  # only the 8-bit case reads it
    mode, out = sys.argv[1], pathlib.Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    if mode == "save":
        save(out)
    else:
        resume(out, [pathlib.Path(p) for p in sys.argv[3:]])
    print(f"{mode} done on {keras.backend.backend()}")
