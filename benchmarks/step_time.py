"""Time every keras_opts optimizer beside Keras' built-in and the native
library, one process per backend.

    python benchmarks/step_time.py --json out/step_time.json
    python benchmarks/step_time.py --backends torch --optimizers adam radam

For each optimizer and shape it times, alternating in one process and
reporting medians, the isolated update (``apply`` of fixed gradients,
compiled as ``fit()`` compiles it: ``tf.function(jit_compile=True)``,
``jax.jit`` of ``stateless_apply``, eager torch) of:

- the keras_opts optimizer;
- Keras' built-in under matching settings (the registry's ``keras``
  reference), where one exists;
- the native library on its own backend: torch.optim with ``foreach=True``
  (torch backend) or optax under ``jax.jit`` (JAX backend), from the
  registry's references.

Rows (printed as a table, and written with ``--json``) carry ``backend``,
``optimizer``, ``case``, ``ours_ms``, ``keras_ms``, ``native_ms``,
``native``, ``ratio_vs_keras``, ``ratio_vs_native`` (ours / theirs, null
without a counterpart) and ``state_bytes_per_param``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

SHAPES = {"10M/10": (10_000_000, 10), "1M/200": (1_000_000, 200)}


def _median_ms(runs, repeats):
    """Alternates the runners ``repeats`` times; median ms of each."""
    times = [[] for _ in runs]
    for _ in range(repeats):
        for i, run in enumerate(runs):
            start = time.perf_counter()
            run()
            times[i].append(time.perf_counter() - start)
    return [1e3 * statistics.median(t) for t in times]


def _keras_runner(optimizer, values, grads):
    import keras
    import numpy as np

    from tests.helpers import compiled_apply

    variables = [keras.Variable(v) for v in values]
    apply = compiled_apply(optimizer, variables)

    def run():
        apply(grads)
        np.asarray(variables[-1].numpy())  # wait for the result

    for _ in range(3):  # compile and warm up
        run()
    return run, optimizer


def _torch_runner(reference, values, grads):
    import torch

    params = [torch.tensor(v, requires_grad=True) for v in values]
    for p, g in zip(params, grads):
        p.grad = torch.tensor(g)
    cls = getattr(torch.optim, reference.name)
    opt = cls(params, lr=1e-3, foreach=True, **reference.theirs)

    def run():
        opt.step()

    run()
    return run


def _optax_runner(reference, values, grads):
    import jax
    import jax.numpy as jnp
    import optax

    transform = getattr(optax, reference.name)(
        learning_rate=1e-3, **reference.theirs
    )
    params = [jnp.asarray(v) for v in values]
    gs = [jnp.asarray(g) for g in grads]
    state = [transform.init(params)]
    current = [params]

    @jax.jit
    def step(params, state, grads):
        updates, state = transform.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    def run():
        current[0], state[0] = step(current[0], state[0], gs)
        jax.block_until_ready(current[0])

    for _ in range(3):
        run()
    return run


def measure(names, shapes, repeats):
    import keras
    import numpy as np

    from keras_opts import registry

    backend = keras.backend.backend()
    native_library = {"torch": "torch", "jax": "optax"}.get(backend)
    rows = []
    for shape in shapes:
        params, count = SHAPES[shape]
        rng = np.random.default_rng(0)
        size = params // count
        values = [
            rng.standard_normal(size).astype("float32") for _ in range(count)
        ]
        grads = [
            rng.standard_normal(size).astype("float32") for _ in range(count)
        ]
        for spec in registry.SPECS:
            if names and spec.name not in names:
                continue
            refs = {r.library: r for r in reversed(spec.references)}
            keras_ref, native_ref = refs.get("keras"), refs.get(native_library)
            ours_kwargs = (
                dict((keras_ref or native_ref).ours)
                if (keras_ref or native_ref)
                else {}
            )
            ours, optimizer = _keras_runner(
                spec.cls(learning_rate=1e-3, **ours_kwargs), values, grads
            )
            runners, labels = [ours], ["ours"]
            if keras_ref is not None:
                builtin = getattr(keras.optimizers, keras_ref.name)(
                    learning_rate=1e-3, **keras_ref.theirs
                )
                runners.append(_keras_runner(builtin, values, grads)[0])
                labels.append("keras")
            if native_ref is not None:
                make = _torch_runner if backend == "torch" else _optax_runner
                runners.append(make(native_ref, values, grads))
                labels.append("native")
            timed = dict(zip(labels, _median_ms(runners, repeats)))
            state = sum(
                int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize
                for v in optimizer.variables[2:]
            )
            native_name = None
            if native_ref is not None:
                native_name = f"optax.{native_ref.name}"
                if backend == "torch":
                    native_name = f"torch.optim.{native_ref.name}(foreach)"
            ours_ms = timed["ours"]
            rows.append(
                {
                    "backend": backend,
                    "optimizer": spec.name,
                    "case": f"update {shape}",
                    "ours_ms": ours_ms,
                    "keras_ms": timed.get("keras"),
                    "native_ms": timed.get("native"),
                    "native": native_name,
                    "ratio_vs_keras": ours_ms / timed["keras"]
                    if "keras" in timed
                    else None,
                    "ratio_vs_native": ours_ms / timed["native"]
                    if "native" in timed
                    else None,
                    "state_bytes_per_param": state / params,
                }
            )
    return rows


def _fmt(value, spec=".2f"):
    return "-" if value is None else format(value, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--optimizers", nargs="*", default=[])
    parser.add_argument(
        "--shapes", nargs="*", default=list(SHAPES), choices=list(SHAPES)
    )
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", help="write the rows here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        rows = measure(args.optimizers, args.shapes, args.repeats)
        print(json.dumps(rows))
        return
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    rows = []
    for backend in args.backends.split(","):
        env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": root}
        command = [
            sys.executable,
            __file__,
            "--child",
            "--repeats",
            str(args.repeats),
            "--shapes",
            *args.shapes,
        ]
        if args.optimizers:
            command += ["--optimizers", *args.optimizers]
        out = subprocess.run(
            command, env=env, check=True, capture_output=True, text=True
        ).stdout
        rows += json.loads(out.strip().splitlines()[-1])
    print(
        "| backend | optimizer | case | ours ms | keras ms | native | "
        "native ms | ours/keras | ours/native | state B/param |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['backend']} | {r['optimizer']} | {r['case']} | "
            f"{_fmt(r['ours_ms'])} | {_fmt(r['keras_ms'])} | "
            f"{r['native'] or '-'} | {_fmt(r['native_ms'])} | "
            f"{_fmt(r['ratio_vs_keras'])} | {_fmt(r['ratio_vs_native'])} | "
            f"{_fmt(r['state_bytes_per_param'], '.1f')} |"
        )
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
