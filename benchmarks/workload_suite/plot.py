"""What the suite's figures share: the mean curves of the best rates and
the dressing of a (steps, seconds) pair of axes."""

from __future__ import annotations

import numpy as np

from benchmarks.workload_suite.problems import METRIC_NAMES, TARGETS


def curves(results, workload_name):
    """Per optimizer: (steps, seconds, metric), averaged over the seeds at
    the best rate (a diverged seed ends its curve)."""
    metric = TARGETS[workload_name][0]
    summary = results["workloads"][workload_name]["summary"]
    out = {}
    for name, row in summary.items():
        runs = [
            r
            for r in results["runs"]
            if r["workload"] == workload_name
            and r["optimizer"] == name
            and r["learning_rate"] == row["best_learning_rate"]
            and r["seed"] in row["seeds"]
        ]
        length = min(len(r["step"]) for r in runs)
        values = np.array(
            [
                [np.nan if v is None else v for v in r[metric][:length]]
                for r in runs
            ]
        )
        out[name] = (
            np.array(runs[0]["step"][:length]),
            np.mean([r["seconds"][:length] for r in runs], axis=0),
            np.mean(values, axis=0),
        )
    return out


def plotted(workload_name, values):
    """CNN accuracy is drawn as the validation error, on a log scale."""
    if workload_name == "cnn":
        return 1.0 - values
    return values


def dress(axes, workload_name, log=None):
    """The target line, axis labels, scale and grid of a (steps, seconds)
    pair of axes; returns the metric's label for the y axis. The y axis is
    logarithmic but for the Transformer's loss (in nats), unless ``log``."""
    metric, target, _ = TARGETS[workload_name]
    log = workload_name != "transformer" if log is None else log
    for ax, xlabel in zip(axes, ("steps", "training seconds")):
        ax.axhline(
            plotted(workload_name, np.array(target)),
            color="grey",
            linewidth=0.8,
            linestyle=":",
        )
        ax.set_xlabel(xlabel)
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
    if workload_name == "cnn":
        return "validation error (1 - accuracy)"
    return METRIC_NAMES[metric]
