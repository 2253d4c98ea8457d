"""Optimizer state in bytes per parameter, for every optimizer and the
options that change it, on two models.

    python -m benchmarks.state_memory                 # the markdown table
    python -m benchmarks.state_memory --json out.json

Counts every variable of the built optimizer (slots, Adam-mini's block
moments, PSGD-Kron's factors, the seed of stochastic rounding, the step
counter and other scalars) in bytes, over the model's parameter count.
Models: the 784-256-256-10 MLP of ``examples/mnist_fit.py`` (269,322
parameters), and the character Transformer of ``benchmarks.workloads``
(mixed shapes: embeddings, attention kernels of rank 3, vectors). Keras'
own Adam is the first row. Nothing is trained: the figures are exact and
the same on every backend (the row names its arguments).
"""

from __future__ import annotations

import argparse
import json
import math

import keras
import numpy as np

import keras_opts

#: (label, factory): every optimizer at its defaults, then the options that
#: change the state.
OPTIONS = (
    ("keras.optimizers.Adam", lambda: keras.optimizers.Adam()),
    *(
        (f"{name}()", getattr(keras_opts, name))
        for name in sorted(keras_opts.optimizers.__all__, key=str.lower)
    ),
    ("SGD(momentum=0.9)", lambda: keras_opts.SGD(momentum=0.9)),
    (
        'SGD(momentum=0.9, state_dtype="bfloat16")',
        lambda: keras_opts.SGD(momentum=0.9, state_dtype="bfloat16"),
    ),
    ("Adam(amsgrad=True)", lambda: keras_opts.Adam(amsgrad=True)),
    (
        'Adam(state_dtype="bfloat16")',
        lambda: keras_opts.Adam(state_dtype="bfloat16"),
    ),
    (
        'AdamW(state_dtype="bfloat16")',
        lambda: keras_opts.AdamW(state_dtype="bfloat16"),
    ),
    (
        'AdamMini(state_dtype="bfloat16")',
        lambda: keras_opts.AdamMini(state_dtype="bfloat16"),
    ),
    (
        'ScheduleFreeAdamW(state_dtype="bfloat16")',
        lambda: keras_opts.ScheduleFreeAdamW(state_dtype="bfloat16"),
    ),
)


def mlp():
    return keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(10),
        ]
    )


def transformer():
    from benchmarks.workload_suite.problems import FULL, Transformer

    return Transformer(FULL).model()


MODELS = {"mlp": mlp, "transformer": transformer}


def state_bytes_per_parameter(optimizer, model) -> float:
    """Bytes of every optimizer variable over the model's parameters."""
    optimizer.build(model.trainable_variables)
    total = sum(
        math.prod(v.shape) * _itemsize(v.dtype) for v in optimizer.variables
    )
    return total / model.count_params()


def _itemsize(dtype) -> int:
    name = keras.backend.standardize_dtype(dtype)
    if name == "bfloat16":
        return 2
    return np.dtype(name).itemsize


def measure():
    models = {name: make() for name, make in MODELS.items()}
    rows = []
    for label, make in OPTIONS:
        row = {"optimizer": label}
        for name, model in models.items():
            row[name] = round(state_bytes_per_parameter(make(), model), 3)
        rows.append(row)
    params = {name: m.count_params() for name, m in models.items()}
    return {"parameters": params, "rows": rows}


def markdown(results) -> str:
    params = results["parameters"]
    lines = [
        f"| optimizer | MLP ({params['mlp']:,} parameters) "
        f"| Transformer ({params['transformer']:,}) |",
        "|---|---|---|",
    ]
    for row in results["rows"]:
        lines.append(
            f"| `{row['optimizer']}` | {row['mlp']:.2f} "
            f"| {row['transformer']:.2f} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.state_memory",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    results = measure()
    print(markdown(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
            f.write("\n")
    return results


if __name__ == "__main__":
    main()
