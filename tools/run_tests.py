"""Runs the whole suite: ruff, the docs build, then pytest per backend.

Keras fixes its backend at import, so each backend gets its own pytest
process. Every backend runs even if an earlier one fails; the exit status is
non-zero if anything failed. Extra arguments go to every pytest run, e.g.
``python tools/run_tests.py -k radam``. ``BACKENDS=jax,torch`` picks a subset.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

ROOT = pathlib.Path(__file__).resolve().parents[1]
BACKENDS = os.environ.get("BACKENDS", "tensorflow,jax,torch").split(",")


#: The docs build's environment: mkdocstrings reads the sources statically,
#: but a backend is fixed so that nothing imports TensorFlow by default.
DOCS_ENV = {"KERAS_BACKEND": "jax", "NO_MKDOCS_2_WARNING": "1"}


def docs_command(site_dir: str | os.PathLike) -> list[str]:
    """The docs build: ``mkdocs build --strict`` into ``site_dir``.

    Never with ``--quiet`` (or ``-q``): it sets the ``mkdocs`` logger to
    ERROR, and mkdocs 1.6 counts for ``--strict`` only the warnings that
    logger lets through, so a quiet strict build passes whatever the
    warnings.
    """
    return [
        sys.executable,
        "-m",
        "mkdocs",
        "build",
        "--strict",
        "--site-dir",
        str(site_dir),
    ]


#: pytest's exit status when the arguments select no test (``-k`` that
#: matches nothing in one of the runs, such as the distributed one).
NO_TESTS = 5


def _status(returncode: int, what: str) -> int:
    """A run's status, where selecting nothing is not a failure (the
    whole suite selecting nothing is, in :func:`main`)."""
    if returncode == NO_TESTS:
        print(f"{what}: no test selected by these arguments", flush=True)
        return 0
    return returncode


def counts(junit: pathlib.Path) -> dict[str, int]:
    if not junit.exists():
        return {"passed": 0, "failed": 1, "skipped": 0}
    if not junit.read_text().strip():
        return {"passed": 0, "failed": 0, "skipped": 0}
    suite = ET.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite[0]
    total = int(suite.get("tests", 0))
    failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    skipped = int(suite.get("skipped", 0))
    return {
        "passed": total - failed - skipped,
        "failed": failed,
        "skipped": skipped,
    }


def _without_workers(extra: list[str]) -> list[str]:
    """``extra`` with pytest-xdist off: the distributed tests run their
    own processes."""
    kept, skip = [], False
    for arg in extra:
        if skip:
            skip = False
        elif arg in ("-n", "--numprocesses"):
            skip = True
        elif not arg.startswith(("-n", "--numprocesses")):
            kept.append(arg)
    return [*kept, "-p", "no:xdist"]


def _backend_env(backend: str) -> dict[str, str]:
    return {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}


def _distributed(extra: list[str], tmp: pathlib.Path) -> list:
    """The multi-device tests, one process per backend, one after the
    other.

    Each needs a process set up for it: JAX's virtual devices and
    TensorFlow's logical ones must be set before the backend starts;
    torch's tests launch their own ranks. Run at the same time, they
    took 182 s against about 260 s, but TensorFlow's MirroredStrategy
    then once continued a reloaded LARS 1 ulp away from the saved model
    (its bitwise resume check): until that is understood they run
    apart. Returns (backend, exit status, seconds) per backend.
    """
    runs = []
    for backend in BACKENDS:
        what = f"{backend} distributed"
        command = [
            sys.executable,
            "-m",
            "pytest",
            f"--junitxml={tmp / f'{what}.xml'}",
            *_without_workers(extra),
            "tests/distributed",
        ]
        env = {
            **_backend_env(backend),
            "KERAS_OPTS_DISTRIBUTED": "1",
            "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
        }
        print(f"\n===== {backend}: distributed =====", flush=True)
        start = time.perf_counter()
        returncode = subprocess.run(command, cwd=ROOT, env=env).returncode
        runs.append((backend, returncode, time.perf_counter() - start))
    return runs


def main(extra: list[str]) -> int:
    began = time.perf_counter()
    if not any(arg.startswith(("-n", "--numprocesses")) for arg in extra):
        # pytest-xdist: one worker per core of the 2-core target machine.
        extra = ["-n", str(min(2, os.cpu_count() or 1)), *extra]
    check = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "."], cwd=ROOT
    )
    style = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "."], cwd=ROOT
    )
    with tempfile.TemporaryDirectory() as site:
        docs = subprocess.run(
            docs_command(site), cwd=ROOT, env={**os.environ, **DOCS_ENV}
        )
    lint_failed = (
        check.returncode != 0 or style.returncode != 0 or docs.returncode != 0
    )
    rows, status = [], int(lint_failed)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        for backend in BACKENDS:
            junit = tmp / f"{backend}.xml"
            print(f"\n===== backend: {backend} =====", flush=True)
            start = time.perf_counter()
            result = subprocess.run(
                [sys.executable, "-m", "pytest", f"--junitxml={junit}", *extra],
                cwd=ROOT,
                env=_backend_env(backend),
            )
            seconds = time.perf_counter() - start
            status = status or _status(result.returncode, backend)
            rows.append((backend, counts(junit), seconds))
        for backend, returncode, seconds in _distributed(extra, tmp):
            what = f"{backend} distributed"
            status = status or _status(returncode, what)
            rows.append((what, counts(tmp / f"{what}.xml"), seconds))
    print("\n| backend | passed | failed | skipped | seconds |")
    print("|---|---|---|---|---|")
    for backend, c, seconds in rows:
        print(
            f"| {backend} | {c['passed']} | {c['failed']} | "
            f"{c['skipped']} | {seconds:.0f} |"
        )
    ruff = "failed" if check.returncode or style.returncode else "clean"
    print(f"ruff check and format: {ruff}")
    built = "failed" if docs.returncode else "built"
    print(f"docs, mkdocs build --strict: {built}")
    passed = sum(c["passed"] for _, c, _ in rows)
    failed = sum(c["failed"] for _, c, _ in rows) + lint_failed
    skipped = sum(c["skipped"] for _, c, _ in rows)
    print(f"all backends: {passed} passed, {failed} failed, {skipped} skipped")
    print(f"wall time: {time.perf_counter() - began:.0f} s")
    if passed + failed + skipped == 0:
        print("no test selected on any backend: check the arguments")
        return 1
    return 1 if status or failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
