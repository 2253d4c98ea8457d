"""``model.compile(jit_compile=True)`` on torch: the optimizer step traces
into ``torch.compile``'s graph with no graph break, no recompilation and
no host sync of its own.

Counted with ``torch._dynamo``'s counters over the same ``fit()`` as
Keras' own Adam, measured in the same test: Keras' ``train_step`` itself
breaks the graph at ``loss.backward()`` (three graphs in all), and an
optimizer adds nothing to that. A break inside the step splits it into
graphs run eagerly between them; a Python number that changes every step
(a bias correction read with ``.item()``) recompiles each step until
dynamo's limit and then runs eagerly, with warnings to the user.

Two levels. Every cell of the execution-path matrix compiles
``optimizer.apply`` alone (no break, one graph, as Keras' Adam: about a
second each). ``fit()`` compiles the whole train step (seconds of tracing
per optimizer): one optimizer of each step family in ``make test``, every
cell in ``make test-paths``.

Dynamo's ``eager`` backend stands for inductor here: breaks and
recompilations are decided while tracing, before any backend compiles;
``tests/test_paths.py`` trains each step family with inductor itself
against the eager weights.
"""

from __future__ import annotations

import functools

import keras
import numpy as np
import pytest

import keras_opts
from tests import helpers, test_paths

pytestmark = pytest.mark.skipif(
    helpers.BACKEND != "torch", reason="torch.compile is torch's"
)

STEPS = 4


def _dynamo_counts():
    from torch._dynamo.utils import counters

    breaks = dict(counters["graph_break"])
    graphs = counters["stats"]["unique_graphs"]
    return sum(breaks.values()), graphs, sorted(breaks)


def _apply_counts(make_optimizer):
    """(graph breaks, graphs compiled, break reasons) of ``STEPS`` calls
    of ``optimizer.apply`` compiled alone, with new gradients each step."""
    import torch
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    rng = np.random.default_rng(0)
    shapes = ((6, 8), (8,), (8, 3))
    variables = [
        keras.Variable(rng.normal(size=shape).astype("float32"), name=name)
        for shape, name in zip(shapes, ("kernel", "bias", "kernel_1"))
    ]
    optimizer = make_optimizer()
    optimizer.build(variables)

    @torch.compile(backend="eager")
    def step(grads):
        optimizer.apply(grads, variables)

    for _ in range(STEPS):
        step(
            [
                torch.tensor(rng.normal(size=s), dtype=torch.float32)
                for s in shapes
            ]
        )
    return _dynamo_counts()


def _counts(make_optimizer, monkeypatch, sam=False):
    """(graph breaks, graphs compiled, break reasons) of ``STEPS`` steps
    of ``fit()`` with ``jit_compile=True``."""
    import torch
    from torch._dynamo.utils import counters

    monkeypatch.setattr(
        torch, "compile", functools.partial(torch.compile, backend="eager")
    )
    torch._dynamo.reset()
    counters.clear()
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(3),
        ]
    )
    trained = keras_opts.SAM(model, rho=0.05) if sam else model
    trained.compile(
        optimizer=make_optimizer(),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=True,
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4 * STEPS, 6)).astype("float32")
    y = rng.integers(0, 3, 4 * STEPS).astype("int32")
    trained.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
    return _dynamo_counts()


@pytest.fixture(scope="module")
def keras_adam_counts():
    with pytest.MonkeyPatch.context() as monkeypatch:
        return _counts(lambda: keras.optimizers.Adam(1e-2), monkeypatch)


def _check(counts, baseline, cell):
    """No break of a kind the baseline lacks, and as many breaks and
    graphs. Where the baseline breaks in Keras' own code (a cell of
    :data:`KERAS_BASELINES`), dynamo counts one break per frame that the
    break unwinds, and keras_opts' ``apply`` adds a frame: the graphs are
    compared there, not the breaks."""
    breaks, graphs, reasons = counts
    base_breaks, base_graphs, base_reasons = baseline
    assert base_graphs >= 1 and graphs >= 1  # dynamo did trace the step
    known = {r.splitlines()[0] for r in base_reasons}
    new = [r.splitlines()[0] for r in reasons]
    new = [r for r in new if r not in known]
    assert not new, f"{cell}: graph breaks of its own: {new}"
    if cell in KERAS_BASELINES:
        breaks = base_breaks
    assert (breaks, graphs) == (base_breaks, base_graphs), (
        f"{cell}: {breaks} graph breaks and {graphs} graphs over "
        f"{STEPS} steps; Keras' Adam: {base_breaks} and {base_graphs}"
    )


@pytest.fixture(scope="module")
def keras_adam_apply_counts():
    return _apply_counts(lambda: keras.optimizers.Adam(1e-2))


#: Cells whose options Keras' own optimizer has too, compared with Keras'
#: Adam of the same options: Keras' EMA overwrite branches on a tensor
#: (``keras.ops.cond``, a Python ``if`` on torch) and breaks the graph
#: there itself.
KERAS_BASELINES = {
    "adam-clipnorm-ema": lambda: keras.optimizers.Adam(
        1e-2, global_clipnorm=0.5, use_ema=True, ema_overwrite_frequency=2
    ),
}

#: Whose step runs eagerly inside a compiled train step, by design:
#: inductor did not finish compiling PSGDKron's preconditioner fit in 15
#: minutes on 2 cores (README, Performance). Checked by
#: :func:`test_psgdkron_steps_outside_the_compiled_graph`.
STEPS_EAGERLY = test_paths.STEPS_EAGERLY


def _cells(names):
    """``names`` as parameters, without :data:`STEPS_EAGERLY`."""
    return [pytest.param(c, id=c) for c in names if c not in STEPS_EAGERLY]


@pytest.mark.parametrize("cell", _cells(sorted(test_paths.CELLS)))
def test_apply_compiles_to_one_graph_as_keras_adam_does(
    cell, keras_adam_apply_counts
):
    baseline = keras_adam_apply_counts
    if cell in KERAS_BASELINES:
        baseline = _apply_counts(KERAS_BASELINES[cell])
    else:
        assert baseline[:2] == (0, 1)
    _check(_apply_counts(test_paths.CELLS[cell]), baseline, cell)


#: ``fit()`` traces the whole train step (tens of seconds a cell on 2
#: cores): Adam and a wrapper in ``make test``, every cell in
#: ``make test-paths``.
FIT_CELLS = (
    sorted(test_paths.CELLS) if test_paths.ALL_PATHS else ["adam", "lookahead"]
)


@pytest.mark.parametrize("cell", _cells(FIT_CELLS))
def test_the_compiled_fit_breaks_and_recompiles_no_more_than_keras_adam(
    cell, keras_adam_counts, monkeypatch
):
    baseline = keras_adam_counts
    if cell in KERAS_BASELINES:
        baseline = _counts(KERAS_BASELINES[cell], monkeypatch)
    counts = _counts(test_paths.CELLS[cell], monkeypatch)
    _check(counts, baseline, cell)


def test_sam_compiles_as_keras_adam_does(monkeypatch):
    # SAM's train_step takes two gradients, so two backward() breaks of
    # Keras' own Adam under SAM are its baseline.
    baseline = _counts(
        lambda: keras.optimizers.Adam(1e-2), monkeypatch, sam=True
    )
    counts = _counts(lambda: keras_opts.Adam(1e-2), monkeypatch, sam=True)
    _check(counts, baseline, "sam")


def test_psgdkron_steps_outside_the_compiled_graph():
    """Compiled, PSGDKron's ``apply`` breaks the graph only at its own
    ``torch.compiler.disable`` (measured: 2 breaks and no graph over 4
    steps, where Keras' Adam compiles 1 graph), and moves the variables
    exactly as the eager ``apply`` does, under inductor."""
    import torch

    breaks, graphs, reasons = _apply_counts(test_paths.CELLS["psgdkron"])
    assert breaks >= 1, (breaks, graphs)
    assert all(
        "disable" in r.lower() or "skip" in r.lower() for r in reasons
    ), reasons
    rng = np.random.default_rng(1)
    shapes = ((6, 8), (8,))
    grads = [
        [torch.tensor(rng.normal(size=s), dtype=torch.float32) for s in shapes]
        for _ in range(STEPS)
    ]
    runs = []
    for compiled in (False, True):
        variables = [
            keras.Variable(np.ones(s, "float32"), name=f"w{i}")
            for i, s in enumerate(shapes)
        ]
        optimizer = test_paths.CELLS["psgdkron"]()
        optimizer.build(variables)

        def step(g, optimizer=optimizer, variables=variables):
            optimizer.apply(g, variables)

        if compiled:
            step = torch.compile(step, backend="inductor")
        for g in grads:
            step(g)
        runs.append([keras.ops.convert_to_numpy(v) for v in variables])
    for eager, compiled in zip(*runs):
        np.testing.assert_array_equal(compiled, eager)
