"""python -m benchmarks.workloads: a smoke run writes its results, figures and
tables; a run that reuses a compiled model equals a fresh one; the convex
problem's optimum is exact; the docs quote the committed results."""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import platform
import sysconfig

import keras
import numpy as np
import pytest

import keras_opts
from benchmarks import workloads
from benchmarks.workload_suite import problems, report, runs

PNG = b"\x89PNG\r\n\x1a\n"


def test_smoke_run_writes_results_figures_and_tables(tmp_path, capsys):
    results = workloads.main(
        ["--smoke", "--optimizers", "Adam", "--out", str(tmp_path)]
    )
    out = capsys.readouterr().out
    written = json.loads((tmp_path / "results.json").read_text())
    assert written == json.loads(json.dumps(results))
    setup = results["setup"]
    assert setup["backend"] == keras.backend.backend()
    assert setup["python"] == platform.python_version()
    assert setup["command"].endswith(
        "--smoke --optimizers Adam --out " + str(tmp_path)
    )
    corpus = results["workloads"]["transformer"]["corpus"]
    assert corpus["python"] == platform.python_version()
    size, seeds = problems.SMOKE, setup["seeds"]
    points = size.steps // size.eval_every + 1
    for name in problems.WORKLOADS:
        mine = [r for r in results["runs"] if r["workload"] == name]
        rates = runs.learning_rates("Adam", setup["lr_factors"])
        # The sweep on the first seed, then the other seeds at the best rate.
        row = results["workloads"][name]["summary"]["Adam"]
        assert [(r["learning_rate"], r["seed"]) for r in mine] == [
            *((rate, seeds[0]) for rate in rates),
            *((row["best_learning_rate"], s) for s in seeds[1:]),
        ]
        for run in mine:
            assert run["step"] == list(range(0, size.steps + 1, 2))
            assert len(run["seconds"]) == points and run["seconds"][0] == 0
            assert all(
                b > a for a, b in zip(run["seconds"], run["seconds"][1:])
            )
            assert not run["diverged"]
        metric = problems.TARGETS[name][0]
        assert row["final"] == [
            r[metric][-1]
            for r in mine
            if r["learning_rate"] == row["best_learning_rate"]
        ]
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == PNG
        assert problems.TITLES[name] in out
    assert (tmp_path / "sweep.png").read_bytes()[:8] == PNG
    # The convex run starts at zero, a unit distance from the optimum.
    convex = [r for r in results["runs"] if r["workload"] == "convex"]
    assert all(
        math.isclose(r["distance"][0], 1.0, rel_tol=1e-6) for r in convex
    )


def test_a_reused_compiled_run_equals_a_fresh_one():
    """Each run resets the weights and the optimizer's variables of a model
    compiled once; a run after another one must be the run of a new model
    and a new optimizer. Prodigy's state holds the initial weights and a
    ``d`` that starts at ``d0``, not zero."""
    workload = problems.LeastSquares(problems.SMOKE)
    cls = keras_opts.optimizers.Prodigy
    keras.utils.set_random_seed(1)
    start = workload.model().get_weights()
    start[0] = np.full_like(start[0], 0.5)  # not zeros: x0 matters
    x, y = workload.batches(1)

    fresh = workload.model()
    fresh.set_weights(start)
    workload.compile(fresh, cls(learning_rate=0.5))
    expected = runs.train(workload, fresh, x, y)

    reused = workload.model()
    workload.compile(reused, cls(learning_rate=2.0))
    runs.train(workload, reused, *workload.batches(0))
    runs.reset(reused, start, cls(learning_rate=0.5))
    got = runs.train(workload, reused, x, y)
    # The same compiled step on the same inputs: bit for bit.
    assert got["distance"] == expected["distance"]
    assert got["loss"] == expected["loss"]
    for a, b in zip(reused.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_new_optimizer_of_another_structure_is_refused():
    workload = problems.LeastSquares(problems.SMOKE)
    model = workload.model()
    workload.compile(model, keras_opts.optimizers.Adam(learning_rate=0.1))
    model.optimizer.build(model.trainable_variables)
    with pytest.raises(ValueError, match="SGD: a new optimizer's variables"):
        runs.reset(model, model.get_weights(), keras_opts.optimizers.SGD(0.1))


def test_least_squares_has_the_stated_conditioning_and_an_exact_optimum():
    size = dataclasses.replace(problems.SMOKE, dimension=16, examples=64)
    x, y, w_star, eigenvalues = problems.least_squares(size)
    x64, y64 = x.astype("float64"), y.astype("float64")[:, 0]
    hessian = 2.0 * x64.T @ x64 / len(x64)  # of mean((X w - y)^2)
    found = np.linalg.eigvalsh(hessian)
    # float32 data: its eigenvalues are the stated ones to float32 rounding.
    np.testing.assert_allclose(np.sort(found), np.sort(eigenvalues), rtol=1e-5)
    assert math.isclose(
        found.max() / found.min(), problems.CONDITION, rel_tol=1e-5
    )
    # w* zeroes the float64 gradient of the float32 problem.
    gradient = 2.0 * x64.T @ (x64 @ w_star - y64) / len(x64)
    assert np.linalg.norm(gradient) < 1e-14
    assert math.isclose(np.linalg.norm(w_star), 1.0, rel_tol=1e-5)


def test_the_corpus_is_fixed_and_recorded():
    train, validation, info = problems.corpus()
    assert problems.corpus() == (train, validation, info)
    assert info["modules"] == sorted(problems.CORPUS_MODULES)
    assert info["python"] == platform.python_version()
    stdlib = pathlib.Path(sysconfig.get_paths()["stdlib"])
    sizes = [(stdlib / f"{m}.py").stat().st_size for m in info["modules"]]
    assert len(train) + len(validation) == sum(
        min(size, problems.CORPUS_BYTES) for size in sizes
    )
    assert b"def " in train and b"def " in validation
    ids = problems.tokens(train)
    assert ids.dtype == np.int32 and ids.max() < problems.VOCABULARY


def _record(metric, values, rate, seed=0, phase="sweep"):
    return {
        "optimizer": "X",
        "learning_rate": rate,
        "seed": seed,
        "phase": phase,
        "step": [0, 10, 20, 30][: len(values)],
        "seconds": [0.0, 1.0, 2.0, 3.0][: len(values)],
        "cpu_seconds": [0.0, 0.5, 1.0, 1.5][: len(values)],
        metric: values,
        "diverged": values[-1] is None,
    }


def test_summary_chooses_the_rate_and_the_first_crossing():
    """Convex target: distance <= 0.05. The largest rate diverges, the
    best final distance is the middle rate's, and one of its three seeds
    never reaches the target."""
    m = "distance"
    records = [
        _record(m, [1.0, 0.5, 0.2, 0.1], 0.1),
        _record(m, [1.0, 0.04, 0.08, 0.03], 0.3),
        _record(m, [1.0, None], 1.0),
        _record(m, [1.0, 0.5, 0.2, 0.06], 0.3, seed=1, phase="seed"),
        _record(m, [1.0, 0.3, 0.05, 0.01], 0.3, seed=2, phase="seed"),
    ]
    row = runs.summarize(records, "convex")["X"]
    assert row["best_learning_rate"] == 0.3 and not row["best_at_edge"]
    assert row["sweep"] == {"0.1": 0.1, "0.3": 0.03, "1": None}
    assert row["seeds"] == [0, 1, 2]
    assert row["steps_to_target"] == [10, None, 20]
    assert row["seconds_to_target"] == [1.0, None, 2.0]
    assert row["reached"] == 2
    # The median counts the run that never reached it as the longest.
    assert row["median_steps_to_target"] == 20
    assert row["final_mean"] == pytest.approx((0.03 + 0.06 + 0.01) / 3)
    assert row["ms_per_step"] == pytest.approx(100.0)
    assert row["cpu_ms_per_step"] == pytest.approx(50.0)
    # The largest rate wins when the others diverge: at the grid's edge.
    records[0]["distance"][-1] = records[1]["distance"][-1] = None
    records[0]["diverged"] = records[1]["diverged"] = True
    records[2] = _record(m, [1.0, 0.2, 0.1, 0.09], 1.0)
    row = runs.summarize(records[:3], "convex")["X"]
    assert row["best_learning_rate"] == 1.0 and row["best_at_edge"]
    assert row["median_steps_to_target"] is None


def test_every_keras_opts_optimizer_joins_with_a_grid():
    names = runs.optimizer_names()
    assert names == ["keras.Adam", *keras_opts.optimizers.__all__]
    for name in names:
        rate, source = runs.starting_point(name)
        rates = runs.learning_rates(name)
        assert len(rates) == len(problems.LR_FACTORS)
        assert rates == sorted(rates) and rate in rates, (name, source)
    adam_rate, _ = runs.starting_point("Adam")
    assert runs.starting_point("keras.Adam") == (
        adam_rate,
        "docs/starting_points.json (Adam)",
    )


def _committed():
    path = problems.OUT / "results.json"
    if not path.exists():
        pytest.skip("no committed results")
    return report.load_results(problems.OUT)


def test_the_docs_quote_the_committed_results():
    """docs/choosing.md's tables and each optimizer page's sentence are
    those that ``--render-only --write-docs`` writes from the committed
    results; the figures they show exist."""
    results = _committed()
    for path, text in report.docs(results).items():
        assert path.read_text() == text, (
            f"{path}: run --render-only --write-docs"
        )
    for name in (*results["workloads"], "sweep"):
        assert (problems.OUT / f"{name}.png").read_bytes()[:8] == PNG
    names = set(results["workloads"]["cnn"]["summary"])
    assert {"keras.Adam", "Adam", "SGD"} <= names


def _part(optimizer, command, seconds, size=None):
    return {
        "setup": {
            "command": command,
            "backend": "jax",
            "python": "3",
            "versions": {},
            "size": size or dataclasses.asdict(problems.SMOKE),
            "lr_factors": [1.0],
            "seconds": seconds,
            "targets": {"cnn": {}},
            "select": {"cnn": "val_loss"},
        },
        "workloads": {
            "cnn": {
                "data": "digits",
                "starting_points": {optimizer: 1},
                "compile_seconds": {optimizer: 2},
                "summary": {optimizer: {}},
            }
        },
        "runs": [{"workload": "cnn", "optimizer": optimizer, "seed": 0}],
    }


def test_merge_combines_parts_in_the_suite_order():
    """Parts of one workload run at once in separate processes: one
    results dict, its optimizers in the order of a single run."""
    merged = report.merge(
        [
            _part("SGD", "a", 5.0),
            _part("keras.Adam", "b", 7.0),
        ]
    )
    assert merged["setup"]["command"] == ["a", "b"]
    assert merged["setup"]["seconds"] == 7.0
    entry = merged["workloads"]["cnn"]
    assert entry["data"] == "digits"
    for key in ("starting_points", "compile_seconds", "summary"):
        assert list(entry[key]) == ["keras.Adam", "SGD"]
    assert [r["optimizer"] for r in merged["runs"]] == ["keras.Adam", "SGD"]
    other = dataclasses.asdict(dataclasses.replace(problems.SMOKE, steps=8))
    with pytest.raises(ValueError, match="different size"):
        report.merge(
            [
                _part("SGD", "a", 5.0),
                _part("Adam", "b", 7.0, size=other),
            ]
        )
