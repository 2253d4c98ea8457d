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
counterpart), ``ratio_vs_adam`` (ours / our Adam, same backend and case),
``state_bytes_per_param`` and ``errors`` (the runners that failed, with
their error: their times are null).

A whole run takes hours and must survive one failure: a runner that fails
(Keras' built-in RMSprop on the Transformer's embedding gradient under
TensorFlow, a Keras bug) is reported in its row and left out; each backend's
child process appends every row to a file as it finishes and clears Keras'
session after each optimizer (memory stays that of one optimizer's
programs); a child that dies keeps the rows it wrote, and the next backend
runs. The peak memory of each child is printed.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial

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


def _keras_runner(make, values, grads):
    """A function that takes ``make()``'s update of ``values`` by
    ``grads`` (the optimizer is its ``optimizer``)."""
    import keras

    optimizer = make()
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
    run.optimizer = optimizer
    return run


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


def _fit_runner(make, model_name, jit_compile="auto"):
    """One epoch of ``model_name``'s ``fit()`` with ``make()``."""
    import keras
    import numpy as np

    optimizer = make()
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


def _built(runners: dict, errors: dict, key: str, make, *args) -> None:
    """``runners[key] = make(*args)``, or the error in ``errors[key]``
    where building (compiling, warming up) fails."""
    try:
        runners[key] = make(*args)
    except Exception as error:  # a failing runner is reported and skipped
        errors[key] = f"{type(error).__name__}: {_gist(str(error))}"
        print(f"\n{key} failed: {errors[key]}", file=sys.stderr, flush=True)


def _gist(message: str) -> str:
    """The line of an error message that says what went wrong: not a
    heading ("Graph execution error:"), a traceback's line or a node."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    for line in lines:
        if not line.endswith(":") and not line.startswith(
            ("File ", "Detected at", "[[", "defined at")
        ):
            return line[:300]
    return (lines or [""])[0][:300]


def _timed(runners: dict, repeats: int, per_run: int = 1) -> dict:
    return dict(
        zip(runners, _median_ms(list(runners.values()), repeats, per_run))
    )


def _row(backend, spec, case, timed, native, state, errors=None):
    ours = timed.get("ours")
    # ours under the native library's settings, where they differ from
    # Keras' (e.g. torch's epsilon placement): the native ratios use it.
    ours_as_native = timed.get("ours_as_native", ours)

    def ratio(key):
        if key in ("native", "fused"):
            return ratio_of(ours_as_native, timed.get(key))
        return ratio_of(ours, timed.get(key))

    compiled = timed.get("compiled")
    return {
        "backend": backend,
        "optimizer": spec.name,
        "case": case,
        # torch: fit() under torch.compile (jit_compile=True), ours and
        # Keras' built-in, against ours eager.
        "compiled_ms": compiled,
        "keras_compiled_ms": timed.get("keras_compiled"),
        "ratio_compiled_vs_eager": ratio_of(compiled, ours),
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
        "errors": errors or None,
    }


def measure_updates(specs, shapes, repeats, progress, write):
    import keras
    import numpy as np

    backend = keras.backend.backend()
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
        data = (values, grads)
        for spec in specs:
            ours_kwargs, keras_ref, native_ref = _settings(spec)
            runners, errors = {}, {}
            ours = partial(spec.cls, learning_rate=1e-3, **ours_kwargs)
            _built(runners, errors, "ours", _keras_runner, ours, *data)
            if keras_ref is not None:
                builtin = partial(
                    getattr(keras.optimizers, keras_ref.name),
                    learning_rate=1e-3,
                    **keras_ref.theirs,
                )
                _built(runners, errors, "keras", _keras_runner, builtin, *data)
            native = None
            if native_ref is not None and native_ref is not keras_ref:
                # Beside the native library, ours runs its settings.
                mine = partial(spec.cls, learning_rate=1e-3, **native_ref.ours)
                _built(
                    runners,
                    errors,
                    "ours_as_native",
                    _keras_runner,
                    mine,
                    *data,
                )
            if native_ref is not None and backend == "torch":
                native = f"torch.optim.{native_ref.name}(foreach)"
                for mode, key in (("foreach", "native"), ("fused", "fused")):
                    if mode == "foreach" or native_ref.name in FUSED:
                        _built(
                            runners,
                            errors,
                            key,
                            _torch_runner,
                            native_ref,
                            *data,
                            mode,
                        )
            elif native_ref is not None:
                native = f"optax.{native_ref.name}"
                _built(
                    runners, errors, "native", _optax_runner, native_ref, *data
                )
            timed = _timed(runners, repeats)
            optimizer = getattr(runners.get("ours"), "optimizer", None)
            state = None
            if optimizer is not None:
                state = sum(
                    int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize
                    for v in optimizer.variables
                    if len(v.shape) > 0
                )
                state /= params
            case = f"update {shape}"
            write(_row(backend, spec, case, timed, native, state, errors))
            del runners, optimizer
            _release()
            progress.add(1)


def measure_fit(specs, models, repeats, progress, write):
    import keras

    backend = keras.backend.backend()
    for model_name in models:
        for spec in specs:
            ours_kwargs, keras_ref, _ = _settings(spec)
            runners, errors = {}, {}
            ours = partial(spec.cls, learning_rate=1e-3, **ours_kwargs)
            _built(runners, errors, "ours", _fit_runner, ours, model_name)
            if keras_ref is not None:
                builtin = partial(
                    getattr(keras.optimizers, keras_ref.name),
                    learning_rate=1e-3,
                    **keras_ref.theirs,
                )
                _built(
                    runners, errors, "keras", _fit_runner, builtin, model_name
                )
            if backend == "torch" and model_name in COMPILED_MODELS:
                adam = partial(keras.optimizers.Adam, learning_rate=1e-3)
                for key, make in (("compiled", ours), ("keras_compiled", adam)):
                    _built(
                        runners,
                        errors,
                        key,
                        _fit_runner,
                        make,
                        model_name,
                        True,
                    )
            timed = _timed(runners, repeats, BATCHES)
            case = f"fit {model_name}"
            write(_row(backend, spec, case, timed, None, None, errors))
            del runners
            _release()
            progress.add(1)


def _release() -> None:
    """Frees one optimizer's programs and models before the next."""
    import keras

    keras.backend.clear_session()
    gc.collect()


def measure(names, shapes, models, repeats, out):
    """Times ``names`` (every optimizer if empty), appending each row to
    the file ``out`` as a JSON line as it finishes."""
    import keras

    from tests import specs as registry

    specs = [s for s in registry.SPECS if not names or s.name in names]
    progress = keras.utils.Progbar(len(specs) * (len(shapes) + len(models)))

    def write(row):
        with open(out, "a") as f:
            f.write(json.dumps(row) + "\n")

    measure_updates(specs, shapes, repeats, progress, write)
    measure_fit(specs, models, max(5, repeats // 2), progress, write)


def with_adam_ratios(rows: list) -> list:
    adam = {
        (r["backend"], r["case"]): r["ours_ms"]
        for r in rows
        if r["optimizer"] == "adam"
    }
    for r in rows:
        r["ratio_vs_adam"] = ratio_of(
            r["ours_ms"], adam.get((r["backend"], r["case"]))
        )
    return rows


def peak_memory_gib() -> float:
    """This process's peak resident memory (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


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
        measure(
            args.optimizers, args.shapes, args.models, args.repeats, args.child
        )
        print(f"\npeak memory: {peak_memory_gib():.1f} GiB", flush=True)
        return
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    rows = []
    for backend in args.backends.split(","):
        print(f"{backend}:", flush=True)
        env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": root}
        child_out = tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False)
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
        returncode = subprocess.run(command, env=env, cwd=root).returncode
        with open(child_out.name) as f:
            done = [json.loads(line) for line in f if line.strip()]
        os.unlink(child_out.name)
        if returncode:  # killed, or a crash no runner caught
            print(
                f"{backend}: the run stopped (exit status {returncode}) "
                f"after {len(done)} rows; they are kept",
                file=sys.stderr,
                flush=True,
            )
        rows = with_adam_ratios(rows + done)
        if args.json:  # after each backend, so that a later one's crash
            _write(args.json, rows)  # loses nothing finished
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
    failed = [r for r in rows if r.get("errors")]
    for r in failed:
        print(f"{r['backend']} {r['optimizer']} {r['case']}: {r['errors']}")


def _write(path: str, rows: list) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
