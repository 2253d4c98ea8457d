"""Optimizers, runs and the whole measurement of
``python -m benchmarks.workloads``."""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import os
import platform
import statistics
import time

import numpy as np

from benchmarks.workload_suite.problems import (
    BASELINE,
    CONDITION,
    LR_FACTORS,
    SEEDS,
    SELECT,
    STARTING_POINTS,
    TARGETS,
    WORKLOADS,
)

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
        "command": " ".join(["python", "-m", "benchmarks.workloads", *argv]),
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
