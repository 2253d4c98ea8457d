"""A figure of the report for the docs' gallery: the matrix
preconditioners beside Adam."""

from __future__ import annotations

import pathlib

from benchmarks.workload_suite import plot
from benchmarks.workload_suite.problems import TITLES

#: Adam and the matrix preconditioners, for ``preconditioners.png``.
PRECONDITIONED = ("Adam", "Shampoo", "SOAP", "PSGDKron")


def preconditioner_figure(results, out):
    """``preconditioners.png``: does a matrix preconditioner pay? Adam
    and the preconditioners of ``PRECONDITIONED``, if they ran, each at its
    best rate, on the CNN and on least squares (the workload built to be
    ill-conditioned), against steps and against seconds. None if no
    preconditioner ran."""
    import matplotlib.pyplot as plt

    workloads = [w for w in ("cnn", "convex") if w in results["workloads"]]
    if not workloads:
        return None
    names = [
        n
        for n in PRECONDITIONED
        if all(n in results["workloads"][w]["summary"] for w in workloads)
    ]
    if len(names) < 2 or "Adam" not in names:
        return None
    fig, axes = plt.subplots(
        len(workloads), 2, figsize=(11, 4 * len(workloads)), squeeze=False
    )
    colors = ("black", "tab:blue", "tab:orange", "tab:green")
    for row, workload_name in zip(axes, workloads):
        curves = plot.curves(results, workload_name)
        for color, name in zip(colors, names):
            steps, seconds, values = curves[name]
            shown = plot.plotted(workload_name, values)
            rate = results["workloads"][workload_name]["summary"][name][
                "best_learning_rate"
            ]
            label = f"{name} (lr {rate:g})"
            row[0].plot(steps, shown, color=color, label=label)
            row[1].plot(seconds, shown, color=color, label=label)
        row[0].set_ylabel(plot.dress(row, workload_name, log=True))
        for ax in row:
            ax.set_title(TITLES[workload_name], fontsize=10)
        row[1].legend(fontsize=8)
    fig.suptitle(
        "Matrix preconditioners beside Adam: each at its best rate, mean of "
        f"{len(results['setup']['seeds'])} seeds; dotted line: the target"
    )
    fig.tight_layout()
    path = pathlib.Path(out) / "preconditioners.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
