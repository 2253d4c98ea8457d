"""Time keras_opts optimizers beside Keras' built-ins, on one or all backends.

    python benchmarks/step_time.py                  # every backend
    python benchmarks/step_time.py --backends jax --params 1000000

For each optimizer with a Keras built-in of the same numerics (the
``keras`` references of the registry), both run ``apply`` on the same
fixed gradients, alternating, in one process per backend, compiled as
``fit()`` compiles (``tf.function(jit_compile=True)``, ``jax.jit`` of
``stateless_apply``, eager torch). It prints the median milliseconds per
update and the ratio ours / Keras.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def measure(params: int, variables: int, repeats: int) -> list[dict]:
    import keras
    import numpy as np

    from keras_opts import registry
    from tests.helpers import compiled_apply

    rng = np.random.default_rng(0)
    size = params // variables
    values = [
        rng.standard_normal(size).astype("float32") for _ in range(variables)
    ]
    grads = [
        rng.standard_normal(size).astype("float32") for _ in range(variables)
    ]
    rows = []
    for spec in registry.SPECS:
        for ref in spec.references:
            if ref.library != "keras":
                continue
            ours = spec.cls(learning_rate=1e-3, **ref.ours)
            theirs = getattr(keras.optimizers, ref.name)(
                learning_rate=1e-3, **ref.theirs
            )
            runners = []
            for optimizer in (ours, theirs):
                variables_ = [keras.Variable(v) for v in values]
                apply = compiled_apply(optimizer, variables_)
                for _ in range(3):  # compile and warm up
                    apply(grads)
                runners.append((apply, variables_))
            times = ([], [])
            for _ in range(repeats):
                for i, (apply, variables_) in enumerate(runners):
                    start = time.perf_counter()
                    apply(grads)
                    np.asarray(variables_[-1].numpy())  # wait for the result
                    times[i].append(time.perf_counter() - start)
            ours_ms, keras_ms = (1e3 * statistics.median(t) for t in times)
            rows.append(
                {
                    "backend": keras.backend.backend(),
                    "optimizer": spec.name,
                    "settings": dict(ref.ours),
                    "case": f"{params} params in {variables} variables",
                    "ours_ms": ours_ms,
                    "keras_ms": keras_ms,
                    "ratio_vs_keras": ours_ms / keras_ms,
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--params", type=int, default=1_000_000)
    parser.add_argument("--variables", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--json", help="write the rows here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        rows = measure(args.params, args.variables, args.repeats)
        print(json.dumps(rows))
        return
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    rows = []
    for backend in args.backends.split(","):
        env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": root}
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                "--params",
                str(args.params),
                "--variables",
                str(args.variables),
                "--repeats",
                str(args.repeats),
            ],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        rows += json.loads(out.strip().splitlines()[-1])
    print(
        "| backend | optimizer | settings | ours ms | keras ms | ours/keras |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['backend']} | {r['optimizer']} | {r['settings']} | "
            f"{r['ours_ms']:.2f} | {r['keras_ms']:.2f} | "
            f"{r['ratio_vs_keras']:.2f} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
