"""``.keras`` files written by an earlier release load, with nothing lost.

The files in ``tests/data/saved_v0_1_0`` were written by keras_opts 0.1.0
(see ``tests/data/make_saved_models.py``): every optimizer of that release,
the wrappers, and the schedules nested as learning rates. They must keep
loading, without ``custom_objects``, whatever the package's layout becomes.
"""

from __future__ import annotations

import json
import pathlib

import keras
import numpy as np
import pytest

import keras_opts  # noqa: F401  (registers the classes)

DATA = pathlib.Path(__file__).parent / "data" / "saved_v0_1_0"
CLASSES = json.loads((DATA / "classes.json").read_text())
#: Trained one more step after loading (compiling a train step for every
#: file would cost a minute per backend): one optimizer with a global
#: state, both wrappers, a nested schedule and decoupled decay.
TRAINED = {"prodigy", "lookahead_keras_adam", "swa_sgd", "adamw_wsd", "radam"}


@pytest.fixture(scope="module")
def expected():
    with np.load(DATA / "expected.npz") as stored:
        return dict(stored)


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_loads_every_variable_and_trains_on(name, expected):
    model = keras.models.load_model(DATA / f"{name}.keras")
    assert type(model.optimizer).__name__ == CLASSES[name]
    for what, variables in (
        ("model", model.variables),
        ("optimizer", model.optimizer.variables),
    ):
        stored = [
            expected[key]
            for key in sorted(
                (k for k in expected if k.startswith(f"{name}/{what}/")),
                key=lambda k: int(k.rsplit("/", 1)[1]),
            )
        ]
        assert len(variables) == len(stored), what
        for i, (variable, value) in enumerate(zip(variables, stored)):
            np.testing.assert_array_equal(
                np.asarray(variable.numpy()), value, err_msg=f"{what} {i}"
            )
    if name not in TRAINED:
        return
    before = int(np.asarray(model.optimizer.iterations.numpy()))
    with np.load(DATA / "data.npz") as data:
        loss = model.train_on_batch(data["x"][:8], data["y"][:8])
    assert np.isfinite(loss)
    assert int(np.asarray(model.optimizer.iterations.numpy())) == before + 1
