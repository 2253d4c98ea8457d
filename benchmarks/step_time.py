"""Time every keras_opts optimizer beside Keras' built-in and the native
library, one process per backend.

    python -m benchmarks.step_time --json out/step_time.json
    python -m benchmarks.step_time --backends torch --optimizers adam radam

For each optimizer it times, alternating in one process and reporting
medians:

- ``update 10M/10`` and ``update 1M/200``: the isolated update (``apply`` of
  fixed gradients already on the device, compiled as ``fit()`` compiles it:
  ``tf.function(jit_compile=True)``, ``jax.jit`` of ``stateless_apply``
  with the state donated and kept on the device, eager torch) of 10M
  parameters in 10 variables and of 1M in 200;
- ``fit mlp3`` and ``fit mlp60``: one ``fit()`` step (per-step time of an
  epoch of 16 batches of 128) of a 784-512-512-10 MLP and of a 60-layer
  MLP 64 units wide;
- ``fit transformer``: one ``fit()`` step (an epoch of 16 batches of 16
  sequences) of the character Transformer of ``benchmarks.workloads``,
  whose 38 variables mix embeddings, attention kernels of rank 3, dense
  kernels, biases and LayerNormalization vectors;
- on torch, ``fit mlp3`` and ``fit transformer`` also under
  ``torch.compile`` (``jit_compile=True``): ``compiled_ms`` (ours) and
  ``keras_compiled_ms`` (Keras' built-in Adam), with
  ``ratio_compiled_vs_eager`` (ours compiled / ours eager) and
  ``ratio_compiled_vs_keras_compiled``.

Beside ours, where they exist: Keras' built-in under matching settings
(the registry's ``keras`` reference); the native library on its own
backend, from the registry's references: torch.optim with
``foreach=True``, and also ``fused=True`` where torch has it (torch), optax
under ``jax.jit`` (JAX).

Rows (printed as a table, and written with ``--json``) carry ``backend``,
``optimizer``, ``case``, ``ours_ms``, ``keras_ms``, ``native_ms``,
``native``, ``fused_ms``, ``ours_as_native_ms`` (ours under the native
library's settings, which the native ratios use), ``ratio_vs_keras``,
``ratio_vs_native``, ``ratio_vs_fused`` (ours / theirs, null without a
counterpart), ``ratio_vs_adam`` (ours / our Adam, same backend and case) and
``state_bytes_per_param``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

# The reference settings live with the tests (tests/specs.py); the
# Transformer with the workloads (benchmarks/workload_suite/problems.py).

SHAPES = {"10M/10": (10_000_000, 10), "1M/200": (1_000_000, 200)}
MODELS = {
    "mlp3": (784, [512, 512], 10),
    "mlp60": (64, [64] * 59, 10),
    "transformer": None,  # the workloads' Transformer
}
FUSED = {"Adam", "AdamW", "SGD", "Adagrad"}  # torch 2.13's fused kernels
#: The models whose fit() is also timed under torch.compile on torch
#: (``jit_compile=True``), ours beside Keras' built-in Adam.
COMPILED_MODELS = ("mlp3", "transformer")
BATCH, BATCHES = 128, 16


def _median_ms(runs, repeats, per_run=1):
    """Alternates the runners ``repeats`` times; median ms of each."""
    times = [[] for _ in runs]
    for _ in range(repeats):
        for i, run in enumerate(runs):
            start = time.perf_counter()
            run()
            times[i].append((time.perf_counter() - start) / per_run)
    return [1e3 * statistics.median(t) for t in times]


def _keras_runner(optimizer, values, grads):
    import keras

    variables = [keras.Variable(v) for v in values]
    optimizer.build(variables)
    backend = keras.backend.backend()
    grads = [keras.ops.convert_to_tensor(g) for g in grads]
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.function(jit_compile=True)
        def step(grads):
            optimizer.apply(grads, variables)

        def run():
            step(grads)
            variables[-1].value.numpy()  # wait for the result

    elif backend == "jax":
        import jax

        step = jax.jit(
            lambda state, train, grads: optimizer.stateless_apply(
                state, grads, train
            )[::-1],
            donate_argnums=(0, 1),
        )
        current = [
            [v.value for v in optimizer.variables],
            [v.value for v in variables],
        ]

        def run():
            current[:] = step(current[0], current[1], grads)
            jax.block_until_ready(current)

    else:

        def run():
            optimizer.apply(grads, variables)

    for _ in range(3):  # compile and warm up
        run()
    return run, optimizer


def _torch_runner(reference, values, grads, mode):
    import torch

    params = [torch.tensor(v, requires_grad=True) for v in values]
    for p, g in zip(params, grads):
        p.grad = torch.tensor(g)
    cls = getattr(torch.optim, reference.name)
    opt = cls(params, lr=1e-3, **{mode: True}, **reference.theirs)

    def run():
        opt.step()

    run()
    return run


def _optax_runner(reference, values, grads):
    import jax
    import jax.numpy as jnp
    import optax

    from tests import references

    transform = references.optax_transform(
        reference.name, 1e-3, reference.theirs
    )
    params = [jnp.asarray(v) for v in values]
    gs = [jnp.asarray(g) for g in grads]
    # A copy: a state that holds the parameters themselves (Prodigy's
    # initial point) would otherwise donate one buffer twice.
    state = jax.tree.map(jnp.copy, transform.init(params))
    current = [params, state]

    def update(params, state, grads):
        updates, state = transform.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    step = jax.jit(update, donate_argnums=(0, 1))

    def run():
        current[:] = step(current[0], current[1], gs)
        jax.block_until_ready(current)

    for _ in range(3):
        run()
    return run


def _transformer(optimizer):
    """(model, x, y, batch size): the workloads' Transformer, compiled, on
    the first 16 batches of its first seed."""
    from benchmarks.workload_suite.problems import FULL, Transformer

    workload = Transformer(FULL)
    model = workload.model()
    workload.compile(model, optimizer)
    x, y = workload.batches(0)
    count = workload.batch_size * BATCHES
    return model, x[:count], y[:count], workload.batch_size


def compiled_mlp(model_name, optimizer, jit_compile="auto"):
    """The ReLU MLP ``MODELS[model_name]``, compiled with ``optimizer``
    and a softmax cross-entropy on integer labels."""
    import keras

    inputs, hidden, classes = MODELS[model_name]
    model = keras.Sequential(
        [keras.Input((inputs,))]
        + [keras.layers.Dense(n, activation="relu") for n in hidden]
        + [keras.layers.Dense(classes)]
    )
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit_compile,
    )
    return model


def _fit_runner(optimizer, model_name, jit_compile="auto"):
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    if model_name == "transformer":
        model, x, y, batch = _transformer(optimizer)
    else:
        inputs, _, classes = MODELS[model_name]
        model = compiled_mlp(model_name, optimizer, jit_compile)
        rng = np.random.default_rng(0)
        x = rng.standard_normal((BATCH * BATCHES, inputs)).astype("float32")
        y = rng.integers(0, classes, BATCH * BATCHES)
        batch = BATCH

    def run():
        model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0)

    run()  # compile and warm up
    return run


def _settings(spec):
    """(ours kwargs, keras reference, native reference) for ``spec``."""
    import keras

    native_library = {"torch": "torch", "jax": "optax"}.get(
        keras.backend.backend()
    )
    refs = {r.library: r for r in reversed(spec.references)}
    keras_ref, native_ref = refs.get("keras"), refs.get(native_library)
    chosen = keras_ref or native_ref
    return (dict(chosen.ours) if chosen else {}), keras_ref, native_ref


def ratio_of(a, b):
    """``a / b``, None where either is missing."""
    return a / b if a and b else None


def _row(backend, spec, case, timed, native, state):
    ours = timed["ours"]
    # ours under the native library's settings, where they differ from
    # Keras' (e.g. torch's epsilon placement): the native ratios use it.
    ours_as_native = timed.get("ours_as_native", ours)

    def ratio(key):
        if key not in timed:
            return None
        if key in ("native", "fused"):
            return ours_as_native / timed[key]
        return ours / timed[key]

    compiled = timed.get("compiled")
    return {
        "backend": backend,
        "optimizer": spec.name,
        "case": case,
        # torch: fit() under torch.compile (jit_compile=True), ours and
        # Keras' built-in, against ours eager.
        "compiled_ms": compiled,
        "keras_compiled_ms": timed.get("keras_compiled"),
        "ratio_compiled_vs_eager": compiled / ours if compiled else None,
        "ratio_compiled_vs_keras_compiled": ratio_of(
            compiled, timed.get("keras_compiled")
        ),
        "ours_ms": ours,
        "ours_as_native_ms": ours_as_native,
        "keras_ms": timed.get("keras"),
        "native_ms": timed.get("native"),
        "native": native,
        "fused_ms": timed.get("fused"),
        "ratio_vs_keras": ratio("keras"),
        "ratio_vs_native": ratio("native"),
        "ratio_vs_fused": ratio("fused"),
        "state_bytes_per_param": state,
    }


def measure_updates(specs, shapes, repeats, progress):
    import keras
    import numpy as np

    backend = keras.backend.backend()
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
        for spec in specs:
            ours_kwargs, keras_ref, native_ref = _settings(spec)
            ours, optimizer = _keras_runner(
                spec.cls(learning_rate=1e-3, **ours_kwargs), values, grads
            )
            runners = {"ours": ours}
            if keras_ref is not None:
                builtin = getattr(keras.optimizers, keras_ref.name)(
                    learning_rate=1e-3, **keras_ref.theirs
                )
                runners["keras"] = _keras_runner(builtin, values, grads)[0]
            native = None
            if native_ref is not None and native_ref is not keras_ref:
                # Beside the native library, ours runs its settings.
                runners["ours_as_native"] = _keras_runner(
                    spec.cls(learning_rate=1e-3, **native_ref.ours),
                    values,
                    grads,
                )[0]
            if native_ref is not None and backend == "torch":
                native = f"torch.optim.{native_ref.name}(foreach)"
                runners["native"] = _torch_runner(
                    native_ref, values, grads, "foreach"
                )
                if native_ref.name in FUSED:
                    runners["fused"] = _torch_runner(
                        native_ref, values, grads, "fused"
                    )
            elif native_ref is not None:
                native = f"optax.{native_ref.name}"
                runners["native"] = _optax_runner(native_ref, values, grads)
            timed = dict(
                zip(runners, _median_ms(list(runners.values()), repeats))
            )
            state = sum(
                int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize
                for v in optimizer.variables
                if len(v.shape) > 0
            )
            rows.append(
                _row(
                    backend,
                    spec,
                    f"update {shape}",
                    timed,
                    native,
                    state / params,
                )
            )
            del runners, ours, optimizer
            progress.add(1)
    return rows


def measure_fit(specs, models, repeats, progress):
    import keras

    backend = keras.backend.backend()
    rows = []
    for model_name in models:
        for spec in specs:
            ours_kwargs, keras_ref, _ = _settings(spec)
            runners = {
                "ours": _fit_runner(
                    spec.cls(learning_rate=1e-3, **ours_kwargs), model_name
                )
            }
            if keras_ref is not None:
                builtin = getattr(keras.optimizers, keras_ref.name)(
                    learning_rate=1e-3, **keras_ref.theirs
                )
                runners["keras"] = _fit_runner(builtin, model_name)
            if backend == "torch" and model_name in COMPILED_MODELS:
                runners["compiled"] = _fit_runner(
                    spec.cls(learning_rate=1e-3, **ours_kwargs),
                    model_name,
                    jit_compile=True,
                )
                runners["keras_compiled"] = _fit_runner(
                    keras.optimizers.Adam(learning_rate=1e-3),
                    model_name,
                    jit_compile=True,
                )
            timed = dict(
                zip(
                    runners,
                    _median_ms(list(runners.values()), repeats, BATCHES),
                )
            )
            rows.append(
                _row(backend, spec, f"fit {model_name}", timed, None, None)
            )
            progress.add(1)
    return rows


def measure(names, shapes, models, repeats):
    import keras

    from tests import specs as registry

    specs = [s for s in registry.SPECS if not names or s.name in names]
    progress = keras.utils.Progbar(len(specs) * (len(shapes) + len(models)))
    rows = measure_updates(specs, shapes, repeats, progress)
    rows += measure_fit(specs, models, max(5, repeats // 2), progress)
    adam = {
        (r["backend"], r["case"]): r["ours_ms"]
        for r in rows
        if r["optimizer"] == "adam"
    }
    for r in rows:
        base = adam.get((r["backend"], r["case"]))
        r["ratio_vs_adam"] = r["ours_ms"] / base if base else None
    return rows


def _fmt(value, spec=".2f"):
    return "-" if value is None else format(value, spec)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.step_time",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--optimizers", nargs="*", default=[])
    parser.add_argument(
        "--shapes", nargs="*", default=list(SHAPES), choices=list(SHAPES)
    )
    parser.add_argument(
        "--models", nargs="*", default=list(MODELS), choices=list(MODELS)
    )
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", help="write the rows here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        rows = measure(args.optimizers, args.shapes, args.models, args.repeats)
        with open(args.child, "w") as f:
            json.dump(rows, f)
        return
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    rows = []
    for backend in args.backends.split(","):
        print(f"{backend}:", flush=True)
        env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": root}
        child_out = tempfile.NamedTemporaryFile(suffix=".json", delete=False)
        child_out.close()
        command = [
            sys.executable,
            "-m",
            "benchmarks.step_time",
            "--child",
            child_out.name,
            "--repeats",
            str(args.repeats),
            "--shapes",
            *args.shapes,
            "--models",
            *args.models,
        ]
        if args.optimizers:
            command += ["--optimizers", *args.optimizers]
        subprocess.run(command, env=env, cwd=root, check=True)
        with open(child_out.name) as f:
            rows += json.load(f)
        os.unlink(child_out.name)
    print(
        "| backend | optimizer | case | ours ms | keras ms | native | "
        "ours (native settings) ms | native ms | fused ms | ours/keras | "
        "ours/native | ours/fused | ours/our adam | state B/param | "
        "compiled ms | keras Adam compiled ms | compiled/eager | "
        "compiled/keras compiled |"
    )
    print("|---" * 18 + "|")
    for r in rows:
        print(
            f"| {r['backend']} | {r['optimizer']} | {r['case']} | "
            f"{_fmt(r['ours_ms'])} | {_fmt(r['keras_ms'])} | "
            f"{r['native'] or '-'} | {_fmt(r['ours_as_native_ms'])} | "
            f"{_fmt(r['native_ms'])} | "
            f"{_fmt(r['fused_ms'])} | {_fmt(r['ratio_vs_keras'])} | "
            f"{_fmt(r['ratio_vs_native'])} | {_fmt(r['ratio_vs_fused'])} | "
            f"{_fmt(r['ratio_vs_adam'])} | "
            f"{_fmt(r['state_bytes_per_param'], '.1f')} | "
            f"{_fmt(r['compiled_ms'])} | {_fmt(r['keras_compiled_ms'])} | "
            f"{_fmt(r['ratio_compiled_vs_eager'])} | "
            f"{_fmt(r['ratio_compiled_vs_keras_compiled'])} |"
        )
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
