"""The one list of keras_opts optimizers, written as data.

Each :class:`Spec` says what an optimizer is (class, paper), how the shared
tests exercise it (argument sets, NumPy oracle, convergence settings), which
other libraries implement the same numerics under which settings, and what it
supports. The string lookup of :func:`keras_opts.get`, the README table and
every shared test are driven from :data:`SPECS`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from keras_opts.adam import Adam
from keras_opts.radam import RAdam
from keras_opts.sgd import SGD
from keras_opts.testing import oracles


@dataclasses.dataclass(frozen=True)
class Reference:
    """Another library's optimizer that computes the same update.

    ``library`` is ``"torch"`` (a ``torch.optim`` class), ``"optax"`` (an
    ``optax`` function) or ``"keras"`` (a ``keras.optimizers`` class);
    ``name`` is the attribute there. ``ours`` are our arguments and
    ``theirs`` theirs; the learning rate is passed to both separately.
    """

    library: str
    name: str
    ours: Mapping[str, Any]
    theirs: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class Spec:
    name: str
    cls: type
    paper: str
    paper_url: str
    oracle: type
    #: Learning rate of the parity tests.
    lr: float
    #: Argument sets the oracle parity test runs (learning rate excluded).
    test_configs: tuple[Mapping[str, Any], ...]
    references: tuple[Reference, ...]
    #: Problem name -> (constructor arguments, number of steps).
    convergence: Mapping[str, tuple[Mapping[str, Any], int]]
    aliases: tuple[str, ...] = ()
    capabilities: frozenset[str] = frozenset()


SPECS: tuple[Spec, ...] = (
    Spec(
        name="sgd",
        cls=SGD,
        paper="Sutskever et al. 2013, On the importance of initialization "
        "and momentum in deep learning",
        paper_url="https://proceedings.mlr.press/v28/sutskever13.html",
        oracle=oracles.SGDOracle,
        lr=0.05,
        test_configs=(
            {},
            {"momentum": 0.9},
            {"momentum": 0.9, "nesterov": True},
            {"momentum": 0.8, "dampening": 0.3},
            {"momentum": 0.8, "dampening": 0.3, "dampen_first_step": False},
            {"momentum": 0.9, "momentum_form": "step"},
            {"momentum": 0.9, "nesterov": True, "momentum_form": "step"},
            {"momentum": 0.5, "coupled_weight_decay": 0.1},
        ),
        references=(
            Reference(
                "torch",
                "SGD",
                {
                    "momentum": 0.8,
                    "dampening": 0.3,
                    "dampen_first_step": False,
                    "coupled_weight_decay": 0.05,
                },
                {"momentum": 0.8, "dampening": 0.3, "weight_decay": 0.05},
            ),
            Reference(
                "torch",
                "SGD",
                {"momentum": 0.9, "nesterov": True},
                {"momentum": 0.9, "nesterov": True},
            ),
            Reference(
                "keras",
                "SGD",
                {"momentum": 0.9, "momentum_form": "step"},
                {"momentum": 0.9},
            ),
            Reference(
                "keras",
                "SGD",
                {"momentum": 0.9, "nesterov": True, "momentum_form": "step"},
                {"momentum": 0.9, "nesterov": True},
            ),
            Reference(
                "optax",
                "sgd",
                {"momentum": 0.9, "nesterov": True},
                {"momentum": 0.9, "nesterov": True},
            ),
        ),
        convergence={
            "parabola": ({"learning_rate": 0.1, "momentum": 0.5}, 100),
            "rosenbrock": ({"learning_rate": 5e-4, "momentum": 0.9}, 4000),
        },
    ),
    Spec(
        name="adam",
        cls=Adam,
        paper="Kingma & Ba 2015, Adam: A Method for Stochastic Optimization",
        paper_url="https://arxiv.org/abs/1412.6980",
        oracle=oracles.AdamOracle,
        lr=0.01,
        test_configs=(
            {},
            {"amsgrad": True},
            {"epsilon_mode": "uncorrected", "epsilon": 1e-7},
            {"epsilon_mode": "inside_sqrt", "epsilon": 1e-6},
            {"beta_1": 0.5, "beta_2": 0.9, "coupled_weight_decay": 0.1},
            {"beta_1": 0.0, "amsgrad": True, "epsilon": 1e-3},
        ),
        references=(
            Reference("torch", "Adam", {}, {}),
            Reference(
                "torch",
                "Adam",
                {"amsgrad": True, "coupled_weight_decay": 0.05},
                {"amsgrad": True, "weight_decay": 0.05},
            ),
            Reference(
                "keras",
                "Adam",
                {"epsilon_mode": "uncorrected", "epsilon": 1e-7},
                {"epsilon": 1e-7},
            ),
            Reference(
                "keras",
                "Adam",
                {"epsilon_mode": "uncorrected", "amsgrad": True},
                {"epsilon": 1e-8, "amsgrad": True},
            ),
            Reference("optax", "adam", {"beta_2": 0.99}, {"b2": 0.99}),
        ),
        convergence={
            "parabola": ({"learning_rate": 0.1}, 300),
            "rosenbrock": ({"learning_rate": 0.05}, 2000),
        },
    ),
    Spec(
        name="radam",
        cls=RAdam,
        paper="Liu et al. 2019, On the Variance of the Adaptive Learning "
        "Rate and Beyond",
        paper_url="https://arxiv.org/abs/1908.03265",
        oracle=oracles.RAdamOracle,
        lr=0.01,
        test_configs=(
            {},
            {"beta_2": 0.9},
            {"beta_2": 0.9, "epsilon_mode": "uncorrected", "epsilon": 1e-6},
            {"beta_2": 0.9, "epsilon_mode": "corrected", "epsilon": 1e-6},
            {"beta_2": 0.95, "rectify_threshold": 6.0},
            {"beta_1": 0.5, "beta_2": 0.9, "coupled_weight_decay": 0.1},
        ),
        references=(
            Reference(
                "torch",
                "RAdam",
                {
                    "beta_2": 0.9,
                    "epsilon_mode": "uncorrected",
                    "rectify_threshold": 5.0,
                },
                {"betas": (0.9, 0.9)},
            ),
            Reference(
                "torch",
                "RAdam",
                {
                    "beta_2": 0.95,
                    "epsilon_mode": "uncorrected",
                    "rectify_threshold": 5.0,
                    "coupled_weight_decay": 0.05,
                },
                {"betas": (0.9, 0.95), "weight_decay": 0.05},
            ),
            Reference(
                "torch",
                "RAdam",
                {
                    "beta_2": 0.9,
                    "epsilon_mode": "uncorrected",
                    "rectify_threshold": 5.0,
                    "weight_decay": 0.05,
                },
                {
                    "betas": (0.9, 0.9),
                    "weight_decay": 0.05,
                    "decoupled_weight_decay": True,
                },
            ),
            Reference(
                "optax",
                "radam",
                {
                    "beta_2": 0.9,
                    "epsilon_mode": "corrected",
                    "rectify_threshold": 5.0,
                },
                {"b2": 0.9, "threshold": 5.0},
            ),
        ),
        convergence={
            "parabola": ({"learning_rate": 0.1}, 300),
            # Its first steps are un-adapted momentum steps, so a large
            # learning rate diverges on Rosenbrock's gradients (~200).
            "rosenbrock": ({"learning_rate": 0.002, "beta_2": 0.9}, 4000),
        },
        aliases=("rectified_adam", "rectifiedadam"),
    ),
)


def _index() -> dict[str, Spec]:
    index: dict[str, Spec] = {}
    for spec in SPECS:
        for key in (spec.name, spec.cls.__name__.lower(), *spec.aliases):
            index[key] = spec
    return index


_BY_NAME = _index()


def lookup(name: str) -> Spec:
    """The spec for a registry name, class name or alias (any case)."""
    key = name.lower().replace("-", "_")
    if key not in _BY_NAME:
        raise ValueError(
            f"Unknown keras_opts optimizer {name!r}. "
            f"Known names: {', '.join(sorted(_BY_NAME))}."
        )
    return _BY_NAME[key]


def markdown_table() -> str:
    """The README's optimizer table, generated from :data:`SPECS`."""
    rows = [
        "| name | class | paper | same numerics as (with documented "
        "settings) |",
        "|---|---|---|---|",
    ]
    for spec in SPECS:
        refs = sorted({f"{r.library} `{r.name}`" for r in spec.references})
        rows.append(
            f"| `{spec.name}` | `keras_opts.{spec.cls.__name__}` | "
            f"[{spec.paper}]({spec.paper_url}) | {', '.join(refs)} |"
        )
    return "\n".join(rows)
