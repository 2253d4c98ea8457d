"""The cost of the matrix preconditioners beside Adam: step time and state.

    KERAS_BACKEND=jax python -m benchmarks.preconditioners
    KERAS_BACKEND=torch python -m benchmarks.preconditioners --json out.json

For each optimizer (at its defaults, learning rate aside) and each model it
times the isolated update on fixed gradients, one step at a time, over
``--periods`` whole refresh periods, compiled as ``fit()`` compiles it:
``jax.jit`` of ``stateless_apply`` on JAX, a ``tf.function`` of ``apply``
with XLA on TensorFlow (``jit_compile=True``, the default of ``fit()``),
and ``apply`` as it runs eagerly on torch. It reports:

- ``step_ms``: the median step without a refresh of the preconditioner;
- ``refresh_ms``: the median step with a refresh of the preconditioner
  (Shampoo's roots, SOAP's eigenbasis), every ``precondition_frequency``
  steps;
- ``amortized_ms``: the mean step over a refresh period
  (``(refresh_ms + (f - 1) step_ms) / f`` at the default frequency ``f``);
  PSGD-Kron fits its preconditioner on a random fraction of steps, so its
  one figure is the median over all steps;
- each of those over Adam's step on the same model (``*_vs_adam``);
- ``state_bytes_per_param``: the optimizer's variables (scalars aside)
  over the number of parameters.

``--optimizers`` picks others: ``AdamW``, ``Muon`` (every matrix to
Muon, AdamW's epsilon as Keras adds it: ``keras.optimizers.Muon``'s
settings) and ``keras.Muon``, Keras' own, so that Muon's Newton-Schulz
products are timed beside AdamW's step and beside Keras' implementation;
and ``NAME:STATE_DTYPE`` (``Adam:int8``, ``Adam:bfloat16``), an
optimizer with its state stored in that dtype, so that the cost of
reading and writing 8-bit or bfloat16 state is timed beside float32's.

Models: ``mlp3``, the variables of a 784-512-512-10 MLP (kernels and
biases), and ``matrix2048``, one 2048 x 2048 matrix.

``--fit`` also times whole ``fit()`` steps (forward, backward and update)
of that MLP on batches of 128 random inputs, with the preconditioners
refreshed every ``--fit-frequency`` steps (10 by default; Shampoo and
SOAP take it as ``precondition_frequency``, PSGD-Kron keeps its own
schedule, which fits on every one of its first steps): each epoch is one
refresh period, and ``fit_ms`` is the median epoch over its steps, so a
refresh's cost is spread over the period (``fit_vs_adam`` against Adam's).
``--accumulate K`` trains with ``gradient_accumulation_steps=K`` (a period
is then ``K`` times as many batches) and times one batch, a micro-step.
The figures depend on the machine; the ones quoted in the docs state
theirs.
"""

from __future__ import annotations

import argparse
import inspect
import json
import statistics
import time

from benchmarks import step_time  # the MLP of its fit cases

MODELS = {
    "mlp3": [(784, 512), (512,), (512, 512), (512,), (512, 10), (10,)],
    "matrix2048": [(2048, 2048)],
}


#: The optimizers timed by default, Adam first: the ratios are to its step.
PRECONDITIONERS = ("Adam", "Shampoo", "SOAP", "PSGDKron")
#: Others ``--optimizers`` takes: Muon's Newton-Schulz products beside
#: AdamW's step and beside Keras' own Muon (``keras.Muon``), ours in its
#: settings (every matrix to Muon, AdamW's epsilon as Keras adds it).
OTHERS = ("AdamW", "Muon", "keras.Muon")


def _optimizers(names=PRECONDITIONERS):
    """``{name: class or factory}``, Adam first."""
    import functools

    import keras

    import keras_opts

    made = {}
    for name in ("Adam", *[n for n in names if n != "Adam"]):
        if name == "keras.Muon":
            made[name] = keras.optimizers.Muon
        elif ":" in name:  # "Adam:int8": the state in that dtype
            optimizer, state_dtype = name.split(":")
            made[name] = functools.partial(
                getattr(keras_opts, optimizer), state_dtype=state_dtype
            )
        elif name == "Muon":
            made[name] = functools.partial(
                keras_opts.Muon,
                exclude_output=False,
                adam_epsilon_mode="uncorrected",
            )
        else:
            made[name] = getattr(keras_opts, name)
    return made


def _frequency(optimizer) -> int:
    return int(getattr(optimizer, "precondition_frequency", 1))


def _stepper(optimizer, variables, grads):
    """A function that takes one step, as ``fit()`` runs it on this
    backend, and waits for it to finish."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        # The gradients are arguments, not constants of the program: XLA
        # would fold the products of constant gradients at compile time.
        @jax.jit
        def step(optimizer_values, gradients, values):
            return optimizer.stateless_apply(
                optimizer_values, gradients, values
            )

        state = {
            "optimizer": [v.value for v in optimizer.variables],
            "values": [v.value for v in variables],
        }

        def run():
            state["values"], state["optimizer"] = step(
                state["optimizer"], grads, state["values"]
            )
            jax.block_until_ready(state["values"])

        return run
    if backend == "tensorflow":
        import tensorflow as tf

        step = tf.function(
            lambda gradients: optimizer.apply(gradients, variables),
            jit_compile=True,
        )

        def run():
            step(grads)
            _ = variables[0].numpy()

        return run

    def run():  # torch: eager, as Keras runs it
        optimizer.apply(grads, variables)
        _ = keras.ops.convert_to_numpy(variables[0][..., :1])

    return run


def measure(name, cls, shapes, periods, seed=0):
    import keras
    import numpy as np

    rng = np.random.default_rng(seed)
    values = [rng.standard_normal(s).astype("float32") * 0.05 for s in shapes]
    grads = [
        keras.ops.convert_to_tensor(
            rng.standard_normal(s).astype("float32") * 1e-2
        )
        for s in shapes
    ]
    variables = [keras.Variable(v) for v in values]
    optimizer = cls(learning_rate=1e-3)
    optimizer.build(variables)
    frequency = _frequency(optimizer)
    run = _stepper(optimizer, variables, grads)
    # Compile, and go past any start step.
    warm = max(2 * frequency, 12)
    for _ in range(warm):
        run()
    iterations = warm
    plain, refresh = [], []
    for _ in range(periods * frequency):
        start = time.perf_counter()
        run()
        elapsed = 1e3 * (time.perf_counter() - start)
        is_refresh = frequency > 1 and iterations % frequency == 0
        (refresh if is_refresh else plain).append(elapsed)
        iterations += 1
    step_ms = statistics.median(plain)
    refresh_ms = statistics.median(refresh) if refresh else step_ms
    count = sum(int(np.prod(s)) for s in shapes)
    state = sum(
        int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize
        for v in optimizer.variables
        if len(v.shape) > 0
    )
    return {
        "optimizer": name,
        "backend": keras.backend.backend(),
        "frequency": frequency,
        "step_ms": step_ms,
        "refresh_ms": refresh_ms,
        "amortized_ms": (refresh_ms + (frequency - 1) * step_ms) / frequency,
        "state_bytes_per_param": state / count,
    }


def measure_fit(cls, frequency, periods, batch=128, seed=0, accumulate=1):
    """The median ``fit()`` step (ms) of the 784-512-512-10 MLP over
    epochs of ``frequency`` steps, after one epoch that compiles; with
    ``accumulate`` > 1, ``gradient_accumulation_steps``, and the time is
    that of one batch (a micro-step)."""
    import keras
    import numpy as np

    rng = np.random.default_rng(seed)
    batches = frequency * accumulate
    x = rng.standard_normal((batches * batch, 784)).astype("float32")
    y = rng.integers(0, 10, batches * batch)
    keras.utils.set_random_seed(seed)
    kwargs = {"learning_rate": 1e-3}
    if accumulate > 1:
        kwargs["gradient_accumulation_steps"] = accumulate
    if "precondition_frequency" in inspect.signature(cls).parameters:
        kwargs["precondition_frequency"] = frequency
    model = step_time.compiled_mlp("mlp3", cls(**kwargs))
    epochs = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            epochs.append(time.perf_counter() - self.start)

    model.fit(
        x,
        y,
        batch_size=batch,
        epochs=1 + periods,
        shuffle=False,
        verbose=0,
        callbacks=[Clock()],
    )
    return 1e3 * statistics.median(epochs[1:]) / batches


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.preconditioners",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--periods", type=int, default=3)
    parser.add_argument(
        "--models", nargs="*", default=list(MODELS), help="none: fit only"
    )
    parser.add_argument(
        "--optimizers",
        nargs="+",
        default=list(PRECONDITIONERS),
        help="names among "
        + ", ".join(PRECONDITIONERS + OTHERS)
        + ", or NAME:STATE_DTYPE (Adam:int8, AdamW:bfloat16)",
    )
    parser.add_argument("--json")
    parser.add_argument("--fit", action="store_true")
    parser.add_argument("--fit-frequency", type=int, default=10)
    parser.add_argument("--fit-periods", type=int, default=5)
    parser.add_argument(
        "--accumulate",
        type=int,
        default=1,
        help="gradient_accumulation_steps in fit(); times one batch",
    )
    args = parser.parse_args(argv)
    import keras

    print(f"backend: {keras.backend.backend()}")
    rows = []
    for model in args.models:
        results = [
            measure(name, cls, MODELS[model], args.periods)
            for name, cls in _optimizers(args.optimizers).items()
        ]
        adam = next(r for r in results if r["optimizer"] == "Adam")
        for r in results:
            r["model"] = model
            for key in ("step_ms", "refresh_ms", "amortized_ms"):
                r[key.replace("_ms", "_vs_adam")] = r[key] / adam["step_ms"]
            rows.append(r)
    header = (
        "| model | optimizer | f | step ms | refresh ms | amortized ms | "
        "step / Adam | amortized / Adam | state bytes / param |"
    )
    print(header)
    print("|" + "---|" * 9)
    for r in rows:
        print(
            f"| {r['model']} | {r['optimizer']} | {r['frequency']} | "
            f"{r['step_ms']:.2f} | {r['refresh_ms']:.2f} | "
            f"{r['amortized_ms']:.2f} | {r['step_vs_adam']:.2f} | "
            f"{r['amortized_vs_adam']:.2f} | "
            f"{r['state_bytes_per_param']:.2f} |"
        )
    if args.fit:
        fits = {
            name: measure_fit(
                cls,
                args.fit_frequency,
                args.fit_periods,
                accumulate=args.accumulate,
            )
            for name, cls in _optimizers(args.optimizers).items()
        }
        print(
            f"\nfit() of the MLP, batches of 128, refresh every "
            f"{args.fit_frequency} steps, accumulating {args.accumulate}"
        )
        print("| optimizer | fit step ms | fit step / Adam |")
        print("|---|---|---|")
        for name, ms in fits.items():
            ratio = ms / fits["Adam"]
            print(f"| {name} | {ms:.2f} | {ratio:.2f} |")
            rows.append(
                {
                    "optimizer": name,
                    "backend": keras.backend.backend(),
                    "model": "fit mlp3",
                    "frequency": args.fit_frequency,
                    "accumulate": args.accumulate,
                    "fit_ms": ms,
                    "fit_vs_adam": ratio,
                }
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
