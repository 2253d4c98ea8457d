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
own Adam is the first row; each optimizer's state is counted at its own
dtype, with ``state_dtype="bfloat16"`` and with ``"int8"``. Nothing is
trained: the figures are exact and the same on every backend (the row
names its arguments). Last, Adam's memory for Gemma 2B, computed from its
shapes: what fits in 16 and 24 GB.
"""

from __future__ import annotations

import argparse
import json
import math

import keras
import numpy as np

import keras_opts

#: (label, factory of an optimizer given its state_dtype): every optimizer
#: at its defaults, then the options that change the state.
OPTIONS = (
    *(
        (f"{name}()", getattr(keras_opts, name))
        for name in sorted(keras_opts.optimizers.__all__, key=str.lower)
    ),
    (
        "SGD(momentum=0.9)",
        lambda **kwargs: keras_opts.SGD(momentum=0.9, **kwargs),
    ),
    (
        "Adam(amsgrad=True)",
        lambda **kwargs: keras_opts.Adam(amsgrad=True, **kwargs),
    ),
)
#: The columns: each optimizer's state at its own dtype, then stored in
#: bfloat16, then in 8 bits (a dash where the optimizer refuses it).
STATE_DTYPES = (None, "bfloat16", "int8")


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
    rows = [
        {
            "optimizer": "keras.optimizers.Adam",
            "state_dtype": None,
            **{
                name: round(
                    state_bytes_per_parameter(keras.optimizers.Adam(), model),
                    3,
                )
                for name, model in models.items()
            },
        }
    ]
    for label, make in OPTIONS:
        for state_dtype in STATE_DTYPES:
            try:
                optimizer = make(state_dtype=state_dtype)
            except ValueError:  # refused, with the reason
                continue
            row = {"optimizer": label, "state_dtype": state_dtype}
            for name, model in models.items():
                optimizer = make(state_dtype=state_dtype)
                row[name] = round(
                    state_bytes_per_parameter(optimizer, model), 3
                )
            rows.append(row)
    params = {name: m.count_params() for name, m in models.items()}
    return {"parameters": params, "rows": rows, "gemma_2b": gemma_2b()}


def markdown(results) -> str:
    params = results["parameters"]
    dtypes = [str(d) if d else "own dtype" for d in STATE_DTYPES]
    lines = [
        f"| optimizer | MLP ({params['mlp']:,} parameters): "
        + " / ".join(dtypes)
        + f" | Transformer ({params['transformer']:,}) |",
        "|---|---|---|",
    ]
    by_label: dict = {}
    for row in results["rows"]:
        by_label.setdefault(row["optimizer"], {})[row["state_dtype"]] = row
    for label, found in by_label.items():
        cells = []
        for model in ("mlp", "transformer"):
            cells.append(
                " / ".join(
                    f"{found[d][model]:.2f}" if d in found else "-"
                    for d in STATE_DTYPES
                )
            )
        lines.append(f"| `{label}` | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n\n" + gemma_markdown(results["gemma_2b"])


#: Gemma 2B (Gemma Team 2024, "Gemma: Open Models Based on Gemini Research
#: and Technology", Table 1): 18 layers of width 2048, 8 query heads and 1
#: key-value head of 256, a gated feed-forward of 16384, a vocabulary of
#: 256,000 (the embedding shared with the output).
GEMMA_2B = {
    "layers": 18,
    "width": 2048,
    "heads": 8,
    "kv_heads": 1,
    "head_dim": 256,
    "hidden": 16384,
    "vocabulary": 256_000,
}
GIB = 2**30


def gemma_2b_shapes() -> list[tuple[int, ...]]:
    """The shapes of Gemma 2B's weights, as KerasHub lays them out."""
    g = GEMMA_2B
    d, h, k, e = g["width"], g["heads"], g["kv_heads"], g["head_dim"]
    layer = [
        (d,),  # pre-attention norm
        (h, d, e),  # query
        (k, d, e),  # key
        (k, d, e),  # value
        (h, e, d),  # attention output
        (d,),  # pre-feed-forward norm
        (d, g["hidden"]),  # gate
        (d, g["hidden"]),  # up
        (g["hidden"], d),  # down
    ]
    return [(g["vocabulary"], d)] + layer * g["layers"] + [(d,)]


def gemma_2b() -> dict:
    """Adam's state for Gemma 2B per ``state_dtype``, computed from the
    shapes with the rules of ``keras_opts``: 8-bit codes and a float32
    per 256 entries for each variable of 4,096 entries or more, its own
    dtype for the rest; and the weights, gradients and state together for
    weights in float32 and in bfloat16 (activations not counted)."""
    from keras_opts._core import quantization

    shapes = gemma_2b_shapes()
    sizes = [math.prod(s) for s in shapes]
    params = sum(sizes)
    rows = []
    for weights, width in (("float32", 4), ("bfloat16", 2)):
        for state_dtype in STATE_DTYPES:
            state = 0
            for size in sizes:
                if state_dtype == "int8" and size >= quantization.SMALLEST:
                    per_moment = size + 4 * -(-size // quantization.BLOCK)
                elif state_dtype == "bfloat16" and weights == "float32":
                    per_moment = 2 * size
                else:
                    per_moment = width * size
                state += 2 * per_moment
            total = 2 * width * params + state  # weights, gradients, state
            rows.append(
                {
                    "weights": weights,
                    "state_dtype": state_dtype,
                    "state_gib": state / GIB,
                    "total_gib": total / GIB,
                    # A "16 GB" card holds 16 GiB.
                    "fits_16gb": total <= 16 * GIB,
                    "fits_24gb": total <= 24 * GIB,
                }
            )
    return {"parameters": params, "rows": rows}


def gemma_markdown(gemma) -> str:
    lines = [
        f"Adam fine-tuning Gemma 2B ({gemma['parameters']:,} parameters, "
        "counted from its shapes): weights, gradients and state, "
        "activations aside.",
        "",
        "| weights | state | Adam's state (GiB) | with weights and "
        "gradients (GiB) | fits 16 GB | fits 24 GB |",
        "|---|---|---|---|---|---|",
    ]
    for r in gemma["rows"]:
        state = r["state_dtype"] or "own dtype"
        lines.append(
            f"| {r['weights']} | {state} | {r['state_gib']:.1f} "
            f"| {r['total_gib']:.1f} | {'yes' if r['fits_16gb'] else 'no'} "
            f"| {'yes' if r['fits_24gb'] else 'no'} |"
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
