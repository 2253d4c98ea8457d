"""Writes the ``.keras`` files that tests/test_saved_files.py loads.

    KERAS_BACKEND=jax python tests/data/make_saved_models.py OUT_DIR

Run once against a release (``saved_v0_1_0`` was written by keras_opts
0.1.0, the code at commit 17f7f98, with Keras 3.15.1 on JAX). Each file is a
small model trained two epochs with one optimizer (every optimizer of that
release, the wrappers, and the schedules nested as learning rates);
``expected.npz`` holds every model and optimizer variable after training,
so a later release can check that loading loses nothing.
"""

from __future__ import annotations

import json
import pathlib
import sys

import keras
import numpy as np

import keras_opts
from keras_opts import registry, schedules


def optimizers():
    warm = schedules.Warmup(schedules.GeometricDecay(0.02, 0.9), 3)
    for spec in registry.SPECS:
        yield spec.name, spec.cls(learning_rate=warm, **spec.test_configs[-1])
    yield (
        "lookahead_radam",
        keras_opts.Lookahead(keras_opts.RAdam(0.01), sync_period=3),
    )
    yield (
        "lookahead_keras_adam",
        keras_opts.Lookahead(
            keras.optimizers.Adam(0.01), sync_period=3, slow_step_size=0.3
        ),
    )
    yield (
        "swa_sgd",
        keras_opts.SWA(
            keras_opts.SGD(0.02, momentum=0.9),
            start_averaging=2,
            average_period=2,
        ),
    )
    yield (
        "adam_cyclical",
        keras_opts.Adam(schedules.Cyclical(1e-3, 1e-2, 4, mode="triangular2")),
    )
    yield (
        "sgd_onecycle",
        keras_opts.SGD(schedules.OneCycle(0.05, 16), momentum=0.9),
    )
    yield (
        "adamw_wsd",
        keras_opts.AdamW(
            schedules.WarmupStableDecay(0.01, 16, 3, 5), weight_decay=0.01
        ),
    )
    yield (
        "radam_warmup_linear",
        keras_opts.RAdam(schedules.WarmupLinearDecay(0.01, 16, 0.25, 1e-4)),
    )
    yield (
        "nadam_inverse_sqrt",
        keras_opts.Nadam(schedules.InverseSqrtDecay(0.01, 4)),
    )
    yield (
        "sgd_staircase",
        keras_opts.SGD(schedules.StaircaseDecay([4, 8], [0.05, 0.02, 0.01])),
    )


def main(out: pathlib.Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 5)).astype("float32")
    y = (x @ rng.standard_normal((5, 1))).astype("float32")
    np.savez(out / "data.npz", x=x, y=y)
    expected, classes = {}, {}
    for name, optimizer in optimizers():
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [
                keras.Input((5,)),
                keras.layers.Dense(6, activation="tanh"),
                keras.layers.Dense(1),
            ]
        )
        model.compile(optimizer=optimizer, loss="mse")
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        model.save(out / f"{name}.keras")
        for i, v in enumerate(model.variables):
            expected[f"{name}/model/{i}"] = np.asarray(v.numpy())
        for i, v in enumerate(model.optimizer.variables):
            expected[f"{name}/optimizer/{i}"] = np.asarray(v.numpy())
        classes[name] = type(optimizer).__name__
    np.savez(out / "expected.npz", **expected)
    (out / "classes.json").write_text(json.dumps(classes, indent=1) + "\n")


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]))
