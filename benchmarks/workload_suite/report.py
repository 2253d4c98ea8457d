"""Figures, markdown tables, docs, merging and the results file: the
report of ``python -m benchmarks.workloads``."""

from __future__ import annotations

import json
import math
import pathlib

import numpy as np

from benchmarks.workload_suite import gallery, plot
from benchmarks.workload_suite.problems import (
    BASELINE,
    BEGIN,
    END,
    METRIC_NAMES,
    ROOT,
    SELECT,
    STARTING_POINT_END,
    TARGETS,
    TITLES,
    WORKLOADS,
)
from benchmarks.workload_suite.runs import optimizer_names

# Figures, tables and docs.


def _style(names):
    import matplotlib

    colors = matplotlib.colormaps["tab20"].colors
    styles = {}
    others = [n for n in names if n != BASELINE]
    for i, name in enumerate(others):
        styles[name] = {
            "color": colors[i % len(colors)],
            "linestyle": ("-", "-.")[i % 2],
            "linewidth": 1.3,
        }
    styles[BASELINE] = {"color": "black", "linestyle": "--", "linewidth": 2}
    return styles


def figures(results, out):
    """``<workload>.png`` for each workload and ``sweep.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = pathlib.Path(out)
    written = []
    for workload_name in results["workloads"]:
        curves = plot.curves(results, workload_name)
        styles = _style(list(curves))
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
        for name, (steps, seconds, values) in curves.items():
            shown = plot.plotted(workload_name, values)
            axes[0].plot(steps, shown, label=name, **styles[name])
            axes[1].plot(seconds, shown, label=name, **styles[name])
        label = plot.dress(axes, workload_name)
        axes[0].set_ylabel(
            f"{label} (mean of {len(results['setup']['seeds'])} seeds)"
        )
        fig.suptitle(
            f"{TITLES[workload_name]}: each optimizer at its best rate; "
            "dotted line: the target"
        )
        axes[1].legend(
            fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5)
        )
        fig.tight_layout()
        path = out / f"{workload_name}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    fig, axes = plt.subplots(
        1,
        len(results["workloads"]),
        figsize=(5 * len(results["workloads"]), 4.5),
        squeeze=False,
    )
    for ax, workload_name in zip(axes[0], results["workloads"]):
        summary = results["workloads"][workload_name]["summary"]
        styles = _style(list(summary))
        starts = results["workloads"][workload_name]["starting_points"]
        for name, row in summary.items():
            factors = [
                float(k) / starts[name]["learning_rate"] for k in row["sweep"]
            ]
            values = [np.nan if v is None else v for v in row["sweep"].values()]
            ax.plot(
                factors,
                values,
                marker="o",
                markersize=3,
                label=name,
                **styles[name],
            )
        ax.set_xscale("log")
        if workload_name != "transformer":
            ax.set_yscale("log")
        ax.set_xlabel("learning rate / documented starting point")
        ax.set_ylabel(f"final {METRIC_NAMES[SELECT[workload_name]]}, seed 0")
        ax.set_title(TITLES[workload_name], fontsize=10)
        ax.grid(alpha=0.3, which="both")
    axes[0][-1].legend(
        fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5)
    )
    fig.tight_layout()
    path = out / "sweep.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    written.append(path)
    path = gallery.preconditioner_figure(results, out)
    if path is not None:
        written.append(path)
    return written


def _format(metric, value):
    if value is None:
        return "diverged"
    if metric == "distance":
        return f"{value:.3g}"
    return f"{value:.3f}"


def _target_text(workload_name):
    metric, target, higher = TARGETS[workload_name]
    return f"{METRIC_NAMES[metric]} {'≥' if higher else '≤'} {target:g}"


def _order(summary, workload_name):
    """Fewest steps to the target first (seconds on a busy machine are
    noisier), then the fewest seconds, then the best final metric."""
    higher = TARGETS[workload_name][2]

    def key(item):
        row = item[1]
        steps = row["median_steps_to_target"]
        seconds = row["median_seconds_to_target"]
        value = row["final_mean"]
        value = math.inf if value is None else (-value if higher else value)
        return (
            math.inf if steps is None else steps,
            math.inf if seconds is None else seconds,
            value,
        )

    return sorted(summary.items(), key=key)


def _to_target(row, key, spec):
    if row[key] is None:
        return f"not reached ({row['reached']} of {len(row['seeds'])})"
    return format(row[key], spec)


def markdown_table(results, workload_name):
    """The table of one workload, fastest to its target first."""
    metric = TARGETS[workload_name][0]
    seeds = len(results["setup"]["seeds"])
    summary = results["workloads"][workload_name]["summary"]
    rows = [
        f"| optimizer | best rate | final {METRIC_NAMES[metric]} "
        f"(mean of {seeds} seeds) | steps to target | seconds to target | "
        "ms per step | CPU ms per step |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in _order(summary, workload_name):
        rates = row["learning_rates"]
        edge = ""
        if row["best_at_edge"]:
            edge = " ↑" if row["best_learning_rate"] == max(rates) else " ↓"

        label = f"{name} (baseline)" if name == BASELINE else name
        rows.append(
            f"| {label} | {row['best_learning_rate']:g}{edge} | "
            f"{_format(metric, row['final_mean'])} | "
            f"{_to_target(row, 'median_steps_to_target', 'g')} | "
            f"{_to_target(row, 'median_seconds_to_target', '.1f')} | "
            f"{row['ms_per_step']:.1f} | {row['cpu_ms_per_step']:.1f} |"
        )
    return "\n".join(rows)


def _commands(command):
    """`a`, or `a`, `b` and `c`, run apart, then merged."""
    if isinstance(command, str):
        return f"`{command}`"
    quoted = [f"`{c}`" for c in command]
    return (
        f"{', '.join(quoted[:-1])} and {quoted[-1]} (as separate processes, "
        "then merged with `--merge`)"
    )


def markdown_block(results, images="images/workloads"):
    """What goes between the markers of docs/choosing.md."""
    setup = results["setup"]
    size = setup["size"]
    parts = []
    for workload_name, entry in results["workloads"].items():
        parts += [
            f"### {TITLES[workload_name]}",
            "",
            f"![{TITLES[workload_name]}]({images}/{workload_name}.png)",
            "",
            f"Data: {entry['data']}. Model: {entry['model']}. "
            f"{size['steps']} steps of batches of "
            f"{size[workload_name + '_batch']}, "
            f"evaluated every {size['eval_every']} steps. Target: "
            f"{_target_text(workload_name)}; steps and seconds to it are "
            f"medians over the seeds, at the resolution of the evaluations.",
            "",
            markdown_table(results, workload_name),
            "",
        ]
    parts += [
        "### The learning-rate sweep",
        "",
        f"![The learning-rate sweep]({images}/sweep.png)",
        "",
        f"Measured with {_commands(setup['command'])} on the "
        f"{BACKENDS.get(setup['backend'], setup['backend'])} backend "
        f"(Python {setup['python']}, "
        + ", ".join(f"{k} {v}" for k, v in setup["versions"].items())
        + f"), {setup['cpus']} CPU cores.",
    ]
    return "\n".join(parts)


BACKENDS = {"jax": "JAX", "tensorflow": "TensorFlow", "torch": "PyTorch"}
SHORT = {
    "cnn": "the small CNN",
    "transformer": "the character Transformer",
    "convex": "least squares",
}


def _factor(f):
    """1/3 for a third, else the number."""
    if f < 1 and math.isclose(1 / f, round(1 / f)):
        return f"1/{round(1 / f)}"
    return f"{f:g}"


def page_sentence(results, name):
    """The sentence of an optimizer's page: its best rate per workload."""
    parts = []
    steps = results["setup"]["size"]["steps"]
    for workload_name, entry in results["workloads"].items():
        row = entry["summary"].get(name)
        if row is None:
            continue
        median = row["median_steps_to_target"]
        reached = (
            f"{_target_text(workload_name)} after {median:g} steps"
            if median is not None
            else f"{_target_text(workload_name)} not reached in {steps} steps"
        )
        parts.append(
            f"{row['best_learning_rate']:g} for {SHORT[workload_name]} "
            f"({reached})"
        )
    if not parts:
        return None
    factors = results["setup"]["lr_factors"]
    return (
        "On the workloads of [Choosing an optimizer](../choosing.md), with "
        "the default arguments otherwise and rates of "
        f"{_factor(min(factors))} to {_factor(max(factors))} times the "
        "recommended one "
        f"above, the best rate was {'; '.join(parts)}; medians of "
        f"{len(results['setup']['seeds'])} seeds."
    )


def _replace_block(text, body, where):
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        raise ValueError(f"{where}: needs one {BEGIN!r} and one {END!r}")
    head, rest = text.split(BEGIN)
    _, tail = rest.split(END)
    return f"{head}{BEGIN}\n{body}\n{END}{tail}"


def docs(results, root=ROOT):
    """{path: text} of docs/choosing.md and of the optimizer pages with a
    result; a page without the workloads markers gets them after its
    measured starting-point block."""
    out = {}
    choosing = root / "docs" / "choosing.md"
    out[choosing] = _replace_block(
        choosing.read_text(), markdown_block(results), choosing
    )
    names = {
        n for entry in results["workloads"].values() for n in entry["summary"]
    }
    for name in sorted(names - {BASELINE}):
        page = root / "docs" / "optimizers" / f"{name}.md"
        if not page.exists():
            continue
        text = page.read_text()
        if BEGIN not in text:
            head, marker, tail = text.partition(STARTING_POINT_END)
            if not marker:
                continue
            text = f"{head}{marker}\n\n{BEGIN}\n{END}{tail}"
        out[page] = _replace_block(text, page_sentence(results, name), page)
    return out


def merge(parts):
    """One results dict from runs of parts of the workloads and optimizers
    (run at once, in separate processes); ``setup`` is the first's, with
    every command and the longest part's seconds."""
    setup = dict(parts[0]["setup"])
    for part in parts[1:]:
        other = part["setup"]
        for key in ("backend", "python", "versions", "size", "lr_factors"):
            if other[key] != setup[key]:
                raise ValueError(f"cannot merge runs of different {key}")
    setup["command"] = [  # a merged part's commands, one by one
        command
        for p in parts
        for command in (
            p["setup"]["command"]
            if isinstance(p["setup"]["command"], list)
            else [p["setup"]["command"]]
        )
    ]
    setup["seconds"] = max(p["setup"]["seconds"] for p in parts)
    for key in ("targets", "select"):
        setup[key] = {k: v for p in parts for k, v in p["setup"][key].items()}
    rank = {n: i for i, n in enumerate(optimizer_names())}
    workloads = {}
    for name in WORKLOADS:
        entries = [
            p["workloads"][name] for p in parts if name in p["workloads"]
        ]
        if not entries:
            continue
        entry = dict(entries[0])
        for key in ("starting_points", "compile_seconds", "summary"):
            merged = {k: v for e in entries for k, v in e[key].items()}
            entry[key] = dict(
                sorted(merged.items(), key=lambda kv: rank.get(kv[0], -1))
            )
        workloads[name] = entry
    runs = [r for p in parts for r in p["runs"]]
    runs.sort(
        key=lambda r: (
            list(WORKLOADS).index(r["workload"]),
            rank.get(r["optimizer"], -1),
        )
    )
    return {"setup": setup, "workloads": workloads, "runs": runs}


def load_results(directory):
    """The results dict of ``directory``'s ``results.json``."""
    return json.loads((pathlib.Path(directory) / "results.json").read_text())


def write_results(results, directory):
    """Writes ``results`` to ``directory``'s ``results.json``; its path."""
    path = pathlib.Path(directory) / "results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1) + "\n")
    return path


def print_tables(results):
    for workload_name in results["workloads"]:
        print(
            f"\n{TITLES[workload_name]}: target {_target_text(workload_name)}"
        )
        print(markdown_table(results, workload_name))
