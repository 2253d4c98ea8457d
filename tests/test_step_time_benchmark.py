"""python -m benchmarks.step_time survives a failing runner: the row says
which runner failed and why, the others are timed, and every row reaches
the output file as it finishes."""

from __future__ import annotations

import json

import keras
import pytest

from benchmarks import step_time


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setattr(step_time, "SHAPES", {"1k/2": (1000, 2)})
    monkeypatch.setattr(step_time, "MODELS", {"mlp3": (8, [4], 3)})
    monkeypatch.setattr(step_time, "BATCHES", 2)
    # torch.compile's runs take a minute to compile: not in a smoke test.
    monkeypatch.setattr(step_time, "COMPILED_MODELS", ())


def test_a_failing_runner_is_reported_and_the_rest_timed(tiny, tmp_path):
    built = step_time._keras_runner

    def keras_fails(make, values, grads):
        if not type(make()).__module__.startswith("keras_opts"):
            raise RuntimeError("indices[0] = 3677 is not in [0, 513)\nmore")
        return built(make, values, grads)

    step_time._keras_runner = keras_fails
    out = tmp_path / "rows.jsonl"
    try:
        step_time.measure(["adam"], ["1k/2"], ["mlp3"], 3, str(out))
    finally:
        step_time._keras_runner = built
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["case"] for r in rows] == ["update 1k/2", "fit mlp3"]
    update, fit = rows
    assert update["errors"] == {
        "keras": "RuntimeError: indices[0] = 3677 is not in [0, 513)"
    }
    assert update["keras_ms"] is None and update["ratio_vs_keras"] is None
    assert update["ours_ms"] > 0 and update["state_bytes_per_param"] == 8
    assert fit["errors"] is None and fit["ours_ms"] > 0 and fit["keras_ms"] > 0
    with_ratios = step_time.with_adam_ratios(rows)
    assert [r["ratio_vs_adam"] for r in with_ratios] == [1.0, 1.0]
    assert keras.backend.backend() == update["backend"]
