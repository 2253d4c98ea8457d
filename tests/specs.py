"""What the tests and the docs know of each optimizer, written as data.

Each :class:`Spec` says what an optimizer is (class, paper), how the shared
tests exercise it (argument sets, NumPy oracle, convergence settings), which
other libraries implement the same numerics under which settings, and what it
supports. Every shared test is driven from :data:`SPECS`, and
``tools/generate.py`` writes from it the tables of ``README.md`` and
``docs/index.md`` and the docs navigation (in the order of :data:`SPECS`,
:data:`WRAPPERS` and :data:`SCHEDULES`).

An optimizer's registry name and aliases are not repeated here: they come
from :mod:`keras_opts.registry`, which the package derives from its exports.
Hyperparameter ranges and decay rates close to 1 are declared once per
argument name (:data:`RANGES`, :data:`NEAR_ONE`); a spec lists the names it
takes, with an override where its range differs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from keras_opts import registry as runtime
from keras_opts.optimizers.adabelief import AdaBelief
from keras_opts.optimizers.adadelta import Adadelta
from keras_opts.optimizers.adagrad import Adagrad
from keras_opts.optimizers.adam import Adam
from keras_opts.optimizers.adam_mini import AdamMini
from keras_opts.optimizers.adamw import AdamW
from keras_opts.optimizers.adan import Adan
from keras_opts.optimizers.ademamix import AdEMAMix
from keras_opts.optimizers.adopt import ADOPT
from keras_opts.optimizers.lars import LARS
from keras_opts.optimizers.madgrad import MADGRAD
from keras_opts.optimizers.mars import MARS
from keras_opts.optimizers.muon import Muon
from keras_opts.optimizers.muon_family import AdaMuon, NorMuon
from keras_opts.optimizers.nadam import Nadam
from keras_opts.optimizers.novograd import NovoGrad
from keras_opts.optimizers.prodigy import Prodigy
from keras_opts.optimizers.psgd_kron import PSGDKron
from keras_opts.optimizers.radam import RAdam
from keras_opts.optimizers.rmsprop import RMSprop
from keras_opts.optimizers.schedule_free_adamw import ScheduleFreeAdamW
from keras_opts.optimizers.schedule_free_radam import ScheduleFreeRAdam
from keras_opts.optimizers.schedule_free_sgd import ScheduleFreeSGD
from keras_opts.optimizers.sgd import SGD
from keras_opts.optimizers.shampoo import Shampoo
from keras_opts.optimizers.soap import SOAP
from keras_opts.optimizers.yogi import Yogi
from keras_opts.schedules.cyclical import Cyclical, OneCycle
from keras_opts.schedules.decays import (
    ExponentialDecay,
    GeometricDecay,
    InverseSqrtDecay,
    InverseTimeDecay,
    StaircaseDecay,
)
from keras_opts.schedules.warmup import Warmup, WarmupStableDecay
from keras_opts.schedules.warmup_linear_decay import WarmupLinearDecay
from keras_opts.wrappers.lookahead import Lookahead
from keras_opts.wrappers.sam import SAM
from keras_opts.wrappers.swa import SWA
from tests.oracles.adabelief import AdaBeliefOracle
from tests.oracles.adadelta import AdadeltaOracle
from tests.oracles.adagrad import AdagradOracle
from tests.oracles.adam import AdamOracle
from tests.oracles.adam_mini import AdamMiniOracle
from tests.oracles.adamw import AdamWOracle
from tests.oracles.adan import AdanOracle
from tests.oracles.ademamix import AdEMAMixOracle
from tests.oracles.adopt import ADOPTOracle
from tests.oracles.lars import LARSOracle
from tests.oracles.madgrad import MADGRADOracle
from tests.oracles.mars import MARSOracle
from tests.oracles.muon import AdaMuonOracle, MuonOracle, NorMuonOracle
from tests.oracles.nadam import NadamOracle
from tests.oracles.novograd import NovoGradOracle
from tests.oracles.prodigy import ProdigyOracle
from tests.oracles.psgd_kron import seeded as psgd_kron_oracle
from tests.oracles.radam import RAdamOracle
from tests.oracles.rmsprop import RMSpropOracle
from tests.oracles.schedule_free import (
    ScheduleFreeAdamWOracle,
    ScheduleFreeRAdamOracle,
    ScheduleFreeSGDOracle,
)
from tests.oracles.sgd import SGDOracle
from tests.oracles.shampoo import ShampooOracle
from tests.oracles.soap import SOAPOracle
from tests.oracles.yogi import YogiOracle

#: Argument name -> its valid range for the property tests, as data:
#: ``("float", low, high)``, ``("logfloat", low, high)``, ``("bool",)`` or
#: ``("choice", options)``. A spec whose optimizer takes the argument with
#: another range overrides it (:func:`space`).
RANGES: dict[str, tuple] = {
    # Decay rates and momenta.
    "beta_1": ("float", 0.0, 0.99),
    "beta_2": ("float", 0.5, 0.9999),
    "beta_3": ("float", 0.5, 0.9999),
    "rho": ("float", 0.0, 0.999),
    "momentum": ("float", 0.0, 0.99),
    "dampening": ("float", 0.0, 0.99),
    "momentum_decay": ("logfloat", 1e-4, 1e6),
    # Denominators.
    "epsilon": ("logfloat", 1e-8, 1e-2),
    "epsilon_mode": ("choice", ("corrected", "uncorrected", "inside_sqrt")),
    "initial_accumulator_value": ("float", 0.0, 1.0),
    # Weight decay.
    "coupled_weight_decay": ("float", 0.0, 0.5),
    "weight_decay": ("float", 0.0, 0.5),
    "weight_decay_scaling": ("choice", ("learning_rate", "schedule")),
    # Switches.
    "amsgrad": ("bool",),
    "nesterov": ("bool",),
    "centered": ("bool",),
    "bias_correction": ("bool",),
    "momentum_form": ("choice", ("gradient", "step")),
    "dampen_first_step": ("bool",),
    "rectify": ("bool",),
    "clipping": ("bool",),
    "grad_averaging": ("bool",),
    "average_first_step": ("bool",),
    "adapt_vectors": ("bool",),
    # Arguments of one optimizer.
    "rectify_threshold": ("float", 4.0, 8.0),
    "lr_decay": ("float", 0.0, 0.5),
    "alpha": ("float", 0.0, 10.0),
    "trust_coefficient": ("logfloat", 1e-4, 1e-1),
    "d0": ("logfloat", 1e-3, 1e-1),
    "grafting": ("choice", ("adagrad", "adam", "sgd", None)),
    "block_size": ("choice", (2, 3, 512)),
    "precondition_frequency": ("choice", (1, 3, 20)),
    "start_preconditioning_step": ("choice", (1, 2, 10)),
    "shampoo_beta": ("float", 0.5, 0.999),
    "max_precond_dim": ("choice", (3, 10000)),
}

#: The epsilon modes of the optimizers that divide by a root alone
#: (Adagrad, RMSprop): epsilon inside or outside the square root.
ROOT_EPSILON_MODES = ("choice", ("inside_sqrt", "outside_sqrt"))

#: Decay rate -> a value close to 1, where a constant such as ``1 - beta``
#: formed in float32 instead of from the Python float is off by up to
#: 1.7e-4 relative (tests/test_float_constants.py).
NEAR_ONE: dict[str, float] = {
    "beta_1": 0.999,
    "beta_2": 0.9999,
    "beta_3": 0.9999,
    "rho": 0.9999,
    "momentum": 0.999,
    "dampening": 0.9999,
}

#: The test configuration of coupled (L2) weight decay shared by the
#: Adam-like optimizers: short memories, so that the decay term shows.
COUPLED_DECAY: Mapping[str, Any] = {
    "beta_1": 0.5,
    "beta_2": 0.9,
    "coupled_weight_decay": 0.1,
}


def space(*names: str, **overrides: tuple) -> dict[str, tuple]:
    """The search space of an optimizer taking ``names`` (their
    :data:`RANGES`) and ``overrides`` (argument -> its own range)."""
    shared = set(names) & set(overrides)
    if shared:
        raise ValueError(f"Named and overridden: {sorted(shared)}")
    return {**{name: RANGES[name] for name in names}, **overrides}


def near_one(*names: str, **others: Any) -> dict[str, Any]:
    """The arguments of the float32-constants test: each decay rate in
    ``names`` at its :data:`NEAR_ONE` value, then ``others`` as given (the
    other constants, or a decay rate's own value)."""
    shared = set(names) & set(others)
    if shared:
        raise ValueError(f"Named and given: {sorted(shared)}")
    return {**{name: NEAR_ONE[name] for name in names}, **others}


@dataclasses.dataclass(frozen=True)
class Reference:
    """Another library's optimizer that computes the same update.

    ``library`` is ``"torch"`` (a ``torch.optim`` class), ``"optax"`` (an
    ``optax`` function), ``"keras"`` (a ``keras.optimizers`` class) or the
    authors' own torch package (``"madgrad"``, ``"prodigyopt"``) or
    ``"pytorch_optimizer"``;
    ``name`` is the attribute there. ``ours`` are our arguments and
    ``theirs`` theirs; the learning rate is passed to both separately.
    """

    library: str
    name: str
    ours: Mapping[str, Any]
    theirs: Mapping[str, Any]
    #: The library keeps some state in float32 even for float64 parameters
    #: (torch.optim.NAdam's ``mu_product``), so it is only float32-exact.
    float32_state: bool = False


@dataclasses.dataclass(frozen=True)
class Spec:
    cls: type
    paper: str
    paper_url: str
    oracle: type
    #: Learning rate of the parity tests.
    lr: float
    #: Argument sets the oracle parity test runs (learning rate excluded).
    test_configs: tuple[Mapping[str, Any], ...]
    references: tuple[Reference, ...]
    #: Problem name -> (constructor arguments, number of steps), optionally
    #: with a third element: the largest final distance to the minimiser
    #: that passes, where the problem's default does not suit the method.
    convergence: Mapping[str, tuple]
    #: Argument name -> its valid range for property tests (:func:`space`).
    #: The learning rate is drawn by the tests.
    search_space: Mapping[str, tuple] = dataclasses.field(default_factory=dict)
    #: Arguments with every decay rate close to 1 (0.999, 0.9999), where a
    #: constant such as ``1 - beta`` formed in float32 instead of from the
    #: Python float is off by up to 1.7e-4 relative; tests/
    #: test_float_constants.py runs them in float32 against the oracle.
    #: An optimizer without decay rates gives its other constants
    #: (:func:`near_one`).
    decays_near_one: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    #: ``"owns_weight_decay"``: ``weight_decay`` is an algorithm argument
    #: (AdamW), so the base-class decay tests do not add it again.
    #: ``"global_state"``: one state couples all variables (Prodigy's d),
    #: so a variable's trajectory depends on the others.
    #: ``"zero_epsilon"``: ``epsilon = 0`` is allowed (the paper's value,
    #: or the setting that matches a reference).
    #: ``"float32_variables"``: float16 and bfloat16 variables are refused
    #: with a ValueError at build (Prodigy).
    #: ``"matrix_state"``: state beyond one tensor per slot and variable
    #: (Shampoo's statistics and roots, one square matrix per block).
    #: ``"matrix_references"``: the other libraries' versions update 2-D
    #: weights only (Muon), so tests/test_<name>.py compares on matrices.
    #: ``"random"``: the step draws random numbers (PSGD-Kron's probes)
    #: from a seeded generator that is optimizer state; every test
    #: configuration names a ``seed``, and the oracle (built with it) draws
    #: the same numbers, so the shared tests stay deterministic. Two
    #: optimizers agree only if they were given the same seed. Its oracle
    #: takes ``compiled=True`` to draw as a compiled step does.
    #: ``"factored_state"``: state not shaped like the variables (the
    #: Kronecker factors of PSGD-Kron), besides per-variable slots.
    #: ``"path_blocks"``: the state's shape and the update depend on each
    #: variable's path (Adam-mini's blocks), so a variable renamed is
    #: updated differently.
    #: ``"float32_scalars"``: state shared by every variable is kept in
    #: float32 whatever their dtype (the schedule-free averaging weights).
    capabilities: frozenset[str] = frozenset()
    #: Arguments of the conformance tests' cases, which check that a few
    #: steps move the weights: for an optimizer whose defaults take no step
    #: at first (ScheduleFreeRAdam's silent phase).
    conformance_kwargs: Mapping[str, Any] = dataclasses.field(
        default_factory=dict
    )

    @property
    def name(self) -> str:
        """The registry name (:mod:`keras_opts.registry`)."""
        return runtime.registry_name(self.cls)

    @property
    def aliases(self) -> tuple[str, ...]:
        """The other names that find it (:mod:`keras_opts.registry`)."""
        return runtime.aliases(self.name)


SPECS: tuple[Spec, ...] = (
    Spec(
        cls=SGD,
        paper="Sutskever et al. 2013, On the importance of initialization "
        "and momentum in deep learning",
        paper_url="https://proceedings.mlr.press/v28/sutskever13.html",
        oracle=SGDOracle,
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
        search_space=space(
            "momentum",
            "dampening",
            "nesterov",
            "momentum_form",
            "dampen_first_step",
            "coupled_weight_decay",
        ),
        decays_near_one=near_one(
            "momentum", "dampening", dampen_first_step=False
        ),
        convergence={
            "parabola": ({"learning_rate": 0.1, "momentum": 0.5}, 100),
            "rosenbrock": ({"learning_rate": 5e-4, "momentum": 0.9}, 4000),
        },
    ),
    Spec(
        cls=Adagrad,
        paper="Duchi et al. 2011, Adaptive Subgradient Methods for Online "
        "Learning and Stochastic Optimization",
        paper_url="https://jmlr.org/papers/v12/duchi11a.html",
        oracle=AdagradOracle,
        lr=0.05,
        test_configs=(
            {},
            {"initial_accumulator_value": 0.1},
            {"epsilon_mode": "outside_sqrt", "epsilon": 1e-10},
            {"lr_decay": 0.05, "coupled_weight_decay": 0.1},
        ),
        references=(
            Reference(
                "torch",
                "Adagrad",
                {
                    "initial_accumulator_value": 0.1,
                    "epsilon": 1e-10,
                    "epsilon_mode": "outside_sqrt",
                    "lr_decay": 0.01,
                    "coupled_weight_decay": 0.05,
                },
                {
                    "initial_accumulator_value": 0.1,
                    "eps": 1e-10,
                    "lr_decay": 0.01,
                    "weight_decay": 0.05,
                },
            ),
            Reference(
                "keras",
                "Adagrad",
                {"initial_accumulator_value": 0.1, "epsilon": 1e-7},
                {"initial_accumulator_value": 0.1, "epsilon": 1e-7},
            ),
            Reference(
                "optax",
                "adagrad",
                {"initial_accumulator_value": 0.1, "epsilon": 1e-7},
                {"initial_accumulator_value": 0.1, "eps": 1e-7},
            ),
        ),
        search_space=space(
            "initial_accumulator_value",
            "lr_decay",
            "coupled_weight_decay",
            epsilon=("logfloat", 1e-10, 1e-2),
            epsilon_mode=ROOT_EPSILON_MODES,
        ),
        decays_near_one=near_one(lr_decay=0.01, initial_accumulator_value=0.1),
        convergence={
            "parabola": ({"learning_rate": 0.5}, 300),
            "rosenbrock": ({"learning_rate": 0.5}, 4000),
        },
    ),
    Spec(
        cls=RMSprop,
        paper="Tieleman & Hinton 2012, Lecture 6.5 rmsprop; Graves 2013 "
        "(centered)",
        paper_url="https://www.cs.toronto.edu/~tijmen/csc321/slides/"
        "lecture_slides_lec6.pdf",
        oracle=RMSpropOracle,
        lr=0.01,
        test_configs=(
            {},
            {"centered": True},
            {"momentum": 0.9},
            {"momentum": 0.9, "momentum_form": "step", "centered": True},
            {"rho": 0.99, "epsilon": 1e-8, "epsilon_mode": "outside_sqrt"},
            {"rho": 0.8, "coupled_weight_decay": 0.1},
        ),
        references=(
            Reference(
                "torch",
                "RMSprop",
                {"rho": 0.99, "epsilon": 1e-8, "epsilon_mode": "outside_sqrt"},
                {"alpha": 0.99, "eps": 1e-8},
            ),
            Reference(
                "torch",
                "RMSprop",
                {
                    "rho": 0.9,
                    "epsilon": 1e-8,
                    "epsilon_mode": "outside_sqrt",
                    "momentum": 0.9,
                    "centered": True,
                    "coupled_weight_decay": 0.05,
                },
                {
                    "alpha": 0.9,
                    "eps": 1e-8,
                    "momentum": 0.9,
                    "centered": True,
                    "weight_decay": 0.05,
                },
            ),
            Reference(
                "keras",
                "RMSprop",
                {"momentum": 0.9, "centered": True, "momentum_form": "step"},
                {"momentum": 0.9, "centered": True},
            ),
            Reference(
                "optax",
                "rmsprop",
                {"momentum": 0.9, "centered": True, "momentum_form": "step"},
                {"decay": 0.9, "eps": 1e-7, "centered": True, "momentum": 0.9},
            ),
        ),
        search_space=space(
            "momentum",
            "epsilon",
            "centered",
            "momentum_form",
            "coupled_weight_decay",
            # Centered RMSprop divides by s - m^2, which cancels for small
            # rho; there float32 cannot follow a float64 oracle.
            rho=("float", 0.5, 0.999),
            epsilon_mode=ROOT_EPSILON_MODES,
        ),
        decays_near_one=near_one("rho", "momentum", centered=True),
        convergence={
            "parabola": ({"learning_rate": 0.003}, 1000),
            "rosenbrock": ({"learning_rate": 0.002}, 4000),
        },
    ),
    Spec(
        cls=Adadelta,
        paper="Zeiler 2012, ADADELTA: An Adaptive Learning Rate Method",
        paper_url="https://arxiv.org/abs/1212.5701",
        oracle=AdadeltaOracle,
        lr=1.0,
        test_configs=(
            {},
            {"rho": 0.9, "epsilon": 1e-3},
            {"epsilon": 1e-2, "coupled_weight_decay": 0.1},
        ),
        references=(
            Reference(
                "torch",
                "Adadelta",
                {"rho": 0.9, "epsilon": 1e-3, "coupled_weight_decay": 0.05},
                {"rho": 0.9, "eps": 1e-3, "weight_decay": 0.05},
            ),
            Reference(
                "keras",
                "Adadelta",
                {"rho": 0.95, "epsilon": 1e-3},
                {"rho": 0.95, "epsilon": 1e-3},
            ),
            Reference(
                "optax",
                "adadelta",
                {"rho": 0.9, "epsilon": 1e-3},
                {"rho": 0.9, "eps": 1e-3},
            ),
        ),
        search_space=space(
            "rho",
            "coupled_weight_decay",
            epsilon=("logfloat", 1e-8, 1e-1),
        ),
        decays_near_one=near_one("rho"),
        convergence={
            # At learning rate 1 the curvature-4 direction can lock into a
            # period-2 orbit (seen on the torch backend); 0.5 settles.
            "parabola": ({"learning_rate": 0.5, "epsilon": 1e-4}, 1000),
            # Adadelta's steps keep the size of its recent updates, so on
            # Rosenbrock it reaches the curved valley and then hovers along
            # it (from distance 2.2 to about 0.3) instead of settling.
            "rosenbrock": (
                {"learning_rate": 0.1, "epsilon": 1e-5, "rho": 0.95},
                12000,
                0.5,
            ),
        },
    ),
    Spec(
        cls=Adam,
        paper="Kingma & Ba 2015, Adam: A Method for Stochastic Optimization",
        paper_url="https://arxiv.org/abs/1412.6980",
        oracle=AdamOracle,
        lr=0.01,
        test_configs=(
            {},
            {"amsgrad": True},
            {"epsilon_mode": "uncorrected", "epsilon": 1e-7},
            {"epsilon_mode": "inside_sqrt", "epsilon": 1e-6},
            COUPLED_DECAY,
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
        search_space=space(
            "beta_1",
            "beta_2",
            "epsilon",
            "amsgrad",
            "epsilon_mode",
            "coupled_weight_decay",
        ),
        decays_near_one=near_one("beta_1", "beta_2", amsgrad=True),
        convergence={
            "parabola": ({"learning_rate": 0.1}, 300),
            "rosenbrock": ({"learning_rate": 0.05}, 2000),
        },
    ),
    Spec(
        cls=AdamW,
        paper="Loshchilov & Hutter 2019, Decoupled Weight Decay Regularization",
        paper_url="https://arxiv.org/abs/1711.05101",
        oracle=AdamWOracle,
        lr=0.01,
        test_configs=(
            {"weight_decay": 0.1},
            {"weight_decay": 0.0},
            {
                "weight_decay": 0.5,
                "weight_decay_scaling": "schedule",
                "base_learning_rate": 0.02,
            },
            {
                "weight_decay": 0.1,
                "amsgrad": True,
                "epsilon_mode": "uncorrected",
                "epsilon": 1e-7,
            },
        ),
        references=(
            Reference(
                "torch", "AdamW", {"weight_decay": 0.05}, {"weight_decay": 0.05}
            ),
            Reference(
                "torch",
                "AdamW",
                {"weight_decay": 0.05, "amsgrad": True, "beta_2": 0.9},
                {"weight_decay": 0.05, "amsgrad": True, "betas": (0.9, 0.9)},
            ),
            Reference(
                "keras",
                "AdamW",
                {
                    "weight_decay": 0.05,
                    "epsilon_mode": "uncorrected",
                    "epsilon": 1e-7,
                },
                {"weight_decay": 0.05, "epsilon": 1e-7},
            ),
            Reference(
                "optax", "adamw", {"weight_decay": 0.05}, {"weight_decay": 0.05}
            ),
        ),
        search_space=space(
            "weight_decay",
            "weight_decay_scaling",
            "beta_1",
            "beta_2",
            "epsilon",
            "amsgrad",
        ),
        decays_near_one=near_one("beta_1", "beta_2", weight_decay=0.1),
        convergence={
            "parabola": ({"learning_rate": 0.1, "weight_decay": 0.01}, 300),
            "rosenbrock": ({"learning_rate": 0.05, "weight_decay": 0.0}, 2000),
        },
        capabilities=frozenset({"owns_weight_decay"}),
    ),
    Spec(
        cls=Nadam,
        paper="Dozat 2016, Incorporating Nesterov Momentum into Adam",
        paper_url="https://openreview.net/forum?id=OM0jvwB8jIp57ZJjtNEZ",
        oracle=NadamOracle,
        lr=0.01,
        test_configs=(
            {},
            {"momentum_decay": 1.0},
            {"momentum_decay": 1e6},
            {"momentum_decay": 0.0},
            COUPLED_DECAY,
        ),
        references=(
            Reference("torch", "NAdam", {}, {}, float32_state=True),
            Reference(
                "torch",
                "NAdam",
                {"momentum_decay": 0.01, "coupled_weight_decay": 0.05},
                {"momentum_decay": 0.01, "weight_decay": 0.05},
                float32_state=True,
            ),
            Reference(
                "torch",
                "NAdam",
                {"weight_decay": 0.05},
                {"weight_decay": 0.05, "decoupled_weight_decay": True},
                float32_state=True,
            ),
            Reference(
                "keras",
                "Nadam",
                {"momentum_decay": 1.0, "epsilon": 1e-7},
                {"epsilon": 1e-7},
            ),
            Reference("optax", "nadam", {"momentum_decay": 1e6}, {}),
        ),
        search_space=space(
            "beta_1",
            "beta_2",
            "epsilon",
            "momentum_decay",
            "coupled_weight_decay",
        ),
        decays_near_one=near_one("beta_1", "beta_2"),
        convergence={
            "parabola": ({"learning_rate": 0.1}, 300),
            "rosenbrock": ({"learning_rate": 0.01}, 4000),
        },
    ),
    Spec(
        cls=RAdam,
        paper="Liu et al. 2019, On the Variance of the Adaptive Learning "
        "Rate and Beyond",
        paper_url="https://arxiv.org/abs/1908.03265",
        oracle=RAdamOracle,
        lr=0.01,
        test_configs=(
            {},
            {"beta_2": 0.9},
            {"beta_2": 0.9, "epsilon_mode": "uncorrected", "epsilon": 1e-6},
            {"beta_2": 0.9, "epsilon_mode": "corrected", "epsilon": 1e-6},
            {"beta_2": 0.95, "rectify_threshold": 6.0},
            COUPLED_DECAY,
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
        search_space=space(
            "beta_1",
            "beta_2",
            "epsilon",
            "epsilon_mode",
            "rectify_threshold",
            "coupled_weight_decay",
        ),
        decays_near_one=near_one("beta_1", "beta_2"),
        convergence={
            "parabola": ({"learning_rate": 0.1}, 300),
            # Its first steps are un-adapted momentum steps, so a large
            # learning rate diverges on Rosenbrock's gradients (~200).
            "rosenbrock": ({"learning_rate": 0.002, "beta_2": 0.9}, 4000),
        },
    ),
    Spec(
        cls=Yogi,
        paper="Zaheer et al. 2018, Adaptive Methods for Nonconvex Optimization",
        paper_url="https://papers.nips.cc/paper/"
        "8186-adaptive-methods-for-nonconvex-optimization",
        oracle=YogiOracle,
        lr=0.01,
        test_configs=(
            {},
            {"bias_correction": True},
            {"initial_accumulator_value": 0.0, "epsilon": 1e-6},
            COUPLED_DECAY,
        ),
        references=(
            Reference(
                "optax",
                "scale_by_yogi",
                {
                    "initial_accumulator_value": 0.0,
                    "bias_correction": True,
                },
                {"initial_accumulator_value": 0.0},
            ),
            Reference(
                "optax",
                "scale_by_yogi",
                {
                    "beta_2": 0.9,
                    "epsilon": 1e-6,
                    "initial_accumulator_value": 0.0,
                    "bias_correction": True,
                },
                {"b2": 0.9, "eps": 1e-6, "initial_accumulator_value": 0.0},
            ),
        ),
        search_space=space(
            "beta_1",
            "beta_2",
            "initial_accumulator_value",
            "bias_correction",
            "coupled_weight_decay",
            epsilon=("logfloat", 1e-6, 1e-2),
        ),
        decays_near_one=near_one("beta_1", "beta_2", bias_correction=True),
        convergence={
            "parabola": ({"learning_rate": 0.1}, 300),
            "rosenbrock": ({"learning_rate": 0.02}, 3000),
        },
    ),
    Spec(
        cls=AdaBelief,
        paper="Zhuang et al. 2020, AdaBelief Optimizer: Adapting Stepsizes "
        "by the Belief in Observed Gradients",
        paper_url="https://arxiv.org/abs/2010.07468",
        oracle=AdaBeliefOracle,
        lr=0.01,
        test_configs=(
            {},
            {"epsilon": 1e-8},
            {"rectify": True},
            {"rectify": True, "beta_2": 0.9, "rectify_threshold": 6.0},
            {"amsgrad": True},
            {"amsgrad": True, "rectify": True, "beta_2": 0.9},
            {
                "beta_1": 0.5,
                "beta_2": 0.9,
                "amsgrad": True,
                "coupled_weight_decay": 0.1,
            },
        ),
        references=(
            Reference(
                "optax",
                "adabelief",
                {"epsilon": 1e-12},
                {"eps": 1e-12, "eps_root": 1e-12},
            ),
            Reference(
                "optax",
                "adabelief",
                {"beta_2": 0.9},
                {"b2": 0.9},
            ),
        ),
        search_space=space(
            "beta_2",
            "amsgrad",
            "rectify",
            "coupled_weight_decay",
            # g - m_t = beta_1 (g - m_{t-1}) cancels for small beta_1: float32
            # keeps ~1e-7 / beta_1 of it, which the belief amplifies.
            beta_1=("float", 0.5, 0.99),
            epsilon=("logfloat", 1e-16, 1e-3),
        ),
        decays_near_one=near_one("beta_1", "beta_2", amsgrad=True),
        convergence={
            "parabola": ({"learning_rate": 0.1}, 300),
            "rosenbrock": ({"learning_rate": 0.01}, 4000),
        },
    ),
    Spec(
        cls=ADOPT,
        paper="Taniguchi et al. 2024, ADOPT: Modified Adam Can Converge "
        "with Any beta_2 with the Optimal Rate",
        paper_url="https://arxiv.org/abs/2411.02853",
        oracle=ADOPTOracle,
        lr=0.01,
        test_configs=(
            {},
            {"clipping": False, "beta_2": 0.99},
            {"beta_2": 0.999, "epsilon": 1e-3},
            COUPLED_DECAY,
        ),
        references=(
            Reference("optax", "contrib.adopt", {}, {}),
            Reference(
                "optax",
                "contrib.adopt",
                {"beta_2": 0.99, "clipping": False},
                {"b2": 0.99, "use_clipping": False},
            ),
        ),
        search_space=space(
            "beta_1",
            "beta_2",
            "clipping",
            "coupled_weight_decay",
            epsilon=("logfloat", 1e-6, 1e-2),
        ),
        decays_near_one=near_one("beta_2"),
        convergence={
            "parabola": ({"learning_rate": 0.1}, 300),
            # beta_2 = 0.9999 keeps v near the first, large gradients for
            # thousands of steps, so it crawls along the valley.
            "rosenbrock": ({"learning_rate": 0.02, "beta_2": 0.99}, 4000),
        },
    ),
    Spec(
        cls=AdEMAMix,
        paper="Pagliardini et al. 2024, The AdEMAMix Optimizer: Better, "
        "Faster, Older",
        paper_url="https://arxiv.org/abs/2409.03137",
        oracle=AdEMAMixOracle,
        lr=0.01,
        test_configs=(
            {},
            {"alpha": 8.0, "beta_3": 0.999},
            {"alpha_warmup_steps": 20, "beta_3_warmup_steps": 30},
            COUPLED_DECAY,
        ),
        references=(
            Reference("optax", "contrib.ademamix", {}, {}),
            Reference(
                "optax",
                "contrib.ademamix",
                {"beta_3": 0.999, "alpha": 8.0, "epsilon": 1e-6},
                {"b3": 0.999, "alpha": 8.0, "eps": 1e-6},
            ),
        ),
        search_space=space(
            "beta_2",
            "alpha",
            "epsilon",
            "coupled_weight_decay",
            beta_1=("float", 0.01, 0.99),
            beta_3=("float", 0.9, 0.9999),
        ),
        # The slow momentum (beta_3 = 0.9999) overshoots a problem solved
        # in a few hundred steps; these runs remember ~100 steps.
        decays_near_one=near_one(
            "beta_1",
            "beta_2",
            beta_3=0.99999,
            alpha=50.0,
            alpha_warmup_steps=100,
            beta_3_warmup_steps=50,
        ),
        convergence={
            "parabola": (
                {"learning_rate": 0.02, "alpha": 1.0, "beta_3": 0.99},
                1000,
            ),
            "rosenbrock": (
                {"learning_rate": 0.01, "alpha": 1.0, "beta_3": 0.99},
                4000,
            ),
        },
    ),
    Spec(
        cls=Adan,
        paper="Xie et al. 2022, Adan: Adaptive Nesterov Momentum Algorithm "
        "for Faster Optimizing Deep Models",
        paper_url="https://arxiv.org/abs/2208.06677",
        oracle=AdanOracle,
        lr=0.01,
        test_configs=(
            {},
            {"bias_correction": False},
            {"beta_1": 0.9, "beta_2": 0.5, "beta_3": 0.999},
            {"beta_2": 0.0, "coupled_weight_decay": 0.1},
        ),
        references=(
            Reference(
                "optax", "adan", {"beta_2": 0.5}, {"b2": 0.5, "eps_root": 0.0}
            ),
            Reference(
                "optax",
                "adan",
                {"beta_1": 0.9, "beta_2": 0.5, "beta_3": 0.999},
                {"b1": 0.9, "b2": 0.5, "b3": 0.999, "eps_root": 0.0},
            ),
        ),
        search_space=space(
            "beta_1",
            "beta_3",
            "epsilon",
            "bias_correction",
            "coupled_weight_decay",
            beta_2=("float", 0.0, 0.99),
        ),
        decays_near_one=near_one("beta_1", "beta_3", beta_2=0.999),
        convergence={
            "parabola": ({"learning_rate": 0.05}, 600),
            "rosenbrock": ({"learning_rate": 0.01}, 4000),
        },
    ),
    Spec(
        cls=NovoGrad,
        paper="Ginsburg et al. 2019, Stochastic Gradient Methods with "
        "Layer-wise Adaptive Moments for Training of Deep Networks",
        paper_url="https://arxiv.org/abs/1905.11286",
        oracle=NovoGradOracle,
        lr=0.01,
        test_configs=(
            {},
            {"weight_decay": 0.1},
            {"grad_averaging": True, "weight_decay": 0.05},
            {"grad_averaging": True, "average_first_step": True},
            {"beta_1": 0.5, "beta_2": 0.25, "epsilon": 1e-6},
            {"coupled_weight_decay": 0.1},
        ),
        references=(
            Reference(
                "optax",
                "novograd",
                {"weight_decay": 0.1},
                {"b1": 0.95, "b2": 0.98, "eps": 1e-8, "weight_decay": 0.1},
            ),
            Reference(
                "optax",
                "novograd",
                {"beta_1": 0.5, "beta_2": 0.25, "epsilon": 1e-6},
                {"b1": 0.5, "b2": 0.25, "eps": 1e-6},
            ),
        ),
        search_space=space(
            "beta_1",
            "epsilon",
            "weight_decay",
            "grad_averaging",
            "average_first_step",
            beta_2=("float", 0.0, 0.999),
        ),
        decays_near_one=near_one("beta_1", "beta_2", grad_averaging=True),
        convergence={
            "parabola": ({"learning_rate": 0.01}, 600),
            "rosenbrock": ({"learning_rate": 0.001}, 4000),
        },
        capabilities=frozenset({"owns_weight_decay"}),
    ),
    Spec(
        cls=LARS,
        paper="You et al. 2017, Large Batch Training of Convolutional Networks",
        paper_url="https://arxiv.org/abs/1708.03888",
        oracle=LARSOracle,
        # lr * trust_coefficient = 1e-3 at the default trust 0.1, the
        # step the tests took at the former default trust 0.001 and lr 1.
        lr=0.01,
        test_configs=(
            {},
            {"weight_decay": 0.01},
            {"momentum": 0.0, "trust_coefficient": 0.01},
            {"nesterov": True, "weight_decay": 0.01, "epsilon": 1e-3},
            {"exclude_from_layer_adaptation": ["p1"], "weight_decay": 0.01},
            {"adapt_vectors": False, "momentum": 0.5},
            {"momentum": 0.5, "coupled_weight_decay": 0.1},
        ),
        references=(
            Reference(
                "optax",
                "lars",
                {"trust_coefficient": 0.1},
                {"trust_coefficient": 0.1},
            ),
            Reference(
                "optax",
                "lars",
                {"nesterov": True, "trust_coefficient": 0.01},
                {"nesterov": True, "trust_coefficient": 0.01},
            ),
        ),
        search_space=space(
            "momentum",
            "trust_coefficient",
            "epsilon",
            "nesterov",
            "adapt_vectors",
            weight_decay=("float", 0.0, 0.1),
        ),
        # lr 0.01 x trust 10: the step of the former lr 1 x trust 0.1.
        decays_near_one=near_one("momentum", trust_coefficient=10.0),
        # The former rates / 100: the default trust is 0.1, was 0.001.
        convergence={
            "parabola": ({"learning_rate": 0.1}, 600),
            "rosenbrock": ({"learning_rate": 0.01}, 4000),
        },
        capabilities=frozenset({"owns_weight_decay", "zero_epsilon"}),
    ),
    Spec(
        cls=MADGRAD,
        paper="Defazio & Jelassi 2021, Adaptivity without Compromise: A "
        "Momentumized, Adaptive, Dual Averaged Gradient Method for "
        "Stochastic Optimization",
        paper_url="https://arxiv.org/abs/2101.11075",
        oracle=MADGRADOracle,
        lr=0.01,
        test_configs=(
            {},
            {"momentum": 0.0},
            # Before the epsilon=0 config: the shared base-feature tests
            # take the first of the longest configs, and with momentum=0
            # MADGRAD recovers theta_0 from the weights, so Keras'
            # decoupled decay (applied to the weights before the step)
            # enters theta_0 as in the authors' code, while the oracle
            # keeps theta_0 fixed.
            {"momentum": 0.5, "epsilon": 1e-3},
            {"momentum": 0.0, "epsilon": 0.0},
            {"coupled_weight_decay": 0.1},
        ),
        references=(
            Reference(
                "madgrad",
                "MADGRAD",
                {"epsilon": 0.0},
                {"momentum": 0.9, "eps": 0.0},
            ),
            Reference(
                "madgrad",
                "MADGRAD",
                {"momentum": 0.5, "epsilon": 0.0, "coupled_weight_decay": 0.1},
                {"momentum": 0.5, "eps": 0.0, "weight_decay": 0.1},
            ),
        ),
        search_space=space("momentum", "epsilon", "coupled_weight_decay"),
        decays_near_one=near_one("momentum"),
        convergence={
            "parabola": ({"learning_rate": 0.01}, 600),
            "rosenbrock": ({"learning_rate": 0.001}, 4000),
        },
        capabilities=frozenset({"zero_epsilon"}),
    ),
    Spec(
        cls=Prodigy,
        paper="Mishchenko & Defazio 2024, Prodigy: An Expeditiously "
        "Adaptive Parameter-Free Learner",
        paper_url="https://arxiv.org/abs/2306.06101",
        oracle=ProdigyOracle,
        lr=1.0,
        # d0 = 1e-2 (not the default 1e-6): d_hat divides sums of
        # <g, theta_0 - theta>, and with tiny steps theta_0 - theta is a
        # few float32 roundings of theta, so float32 runs drift from the
        # float64 oracle through d. At 1e-2 the worst drift measured over 3
        # seeds x 50 steps is 0.55 of the parity bound (1.26 at 1e-3 with
        # weight decay).
        test_configs=(
            {"d0": 1e-2},
            {"d0": 1e-2, "weight_decay": 0.1},
            {"d0": 1e-2, "bias_correction": True, "beta_3": 0.9},
            {"d0": 0.1, "beta_1": 0.5, "beta_2": 0.9, "epsilon": 1e-4},
        ),
        references=(
            Reference(
                "prodigyopt",
                "Prodigy",
                {"d0": 1e-2, "epsilon": 1e-30, "weight_decay": 0.1},
                {"d0": 1e-2, "eps": 1e-30, "weight_decay": 0.1},
            ),
            Reference(
                "optax",
                "contrib.prodigy",
                {"d0": 1e-2, "epsilon": 0.0, "bias_correction": True},
                {"estim_lr0": 1e-2, "eps": 0.0},
            ),
        ),
        search_space=space(
            "beta_1", "beta_2", "epsilon", "d0", "bias_correction"
        ),
        decays_near_one=near_one("beta_1", "beta_2", "beta_3", d0=1e-2),
        convergence={
            "parabola": ({"learning_rate": 1.0}, 600),
            "rosenbrock": ({"learning_rate": 1.0}, 4000),
        },
        capabilities=frozenset(
            {
                "owns_weight_decay",
                "global_state",
                "float32_variables",
                "zero_epsilon",
            }
        ),
    ),
    Spec(
        cls=AdamMini,
        paper="Zhang et al. 2024, Adam-mini: Use Fewer Learning Rates To "
        "Gain More",
        paper_url="https://arxiv.org/abs/2406.16793",
        oracle=AdamMiniOracle,
        lr=0.01,
        # The shared problem's variables are p0 (7,), p1 (3, 4) and p2
        # (2, 3, 2): unnamed, one block each by default; block_axes gives
        # them the other partitions (tests/test_adam_mini.py has the
        # layers' own).
        test_configs=(
            {},
            {"block_axes": {"p0": [], "p1": [0], "p2": [0, 2]}},
            {
                "beta_1": 0.5,
                "beta_2": 0.9,
                "coupled_weight_decay": 0.1,
                # Also the sparse tests' embedding and its dense twin
                # (a variable named "table"): one block per token each.
                "block_axes": {"p1": [1], "p2": [-1], "embeddings|table": [1]},
            },
        ),
        references=(
            Reference(
                "adam_mini",
                "Adam_mini",
                {"weight_decay": 0.1},
                {"weight_decay": 0.1},
            ),
        ),
        search_space=space("beta_1", "beta_2", "epsilon"),
        decays_near_one=near_one("beta_1", "beta_2"),
        convergence={
            "parabola": ({"learning_rate": 0.1}, 300),
            "rosenbrock": ({"learning_rate": 0.05}, 2000),
        },
        capabilities=frozenset({"path_blocks"}),
    ),
    Spec(
        cls=MARS,
        paper="Yuan et al. 2024, MARS: Unleashing the Power of Variance "
        "Reduction for Training Large Models",
        paper_url="https://arxiv.org/abs/2411.10438",
        oracle=MARSOracle,
        lr=0.01,
        test_configs=(
            {},
            {"mars_type": "lion", "weight_decay": 0.1},
            {
                "optimize_1d": True,
                "previous_gradient_init": "zeros",
                "epsilon_mode": "uncorrected",
                "epsilon": 1e-3,
                "weight_decay": 0.1,
            },
            # pytorch-optimizer's rule: the rank-3 variable of the shared
            # problem takes the MARS step, not AdamW's.
            {"higher_rank_mars": True, "weight_decay": 0.1},
            # The richest: the shared base-feature tests take it, and its
            # rank-1 variable has no decay of its own (weight_decay_1d),
            # so that excluding it from Keras' decay leaves none.
            {
                "beta_1": 0.5,
                "beta_2": 0.9,
                "gamma": 0.5,
                "learning_rate_1d_scale": 0.5,
                "beta_1_1d": 0.5,
                "beta_2_1d": 0.9,
                "weight_decay_1d": 0.0,
                "coupled_weight_decay": 0.1,
            },
        ),
        references=(
            # epsilon 1e-2: pytorch-optimizer also adds 1e-15 to v under
            # the root, which at epsilon 1e-8 moves its float64 trajectory
            # 6e-12 from the oracle's (4e-14 at 1e-2, under the 1e-12 of
            # test_reference_settings_match_oracle).
            Reference(
                "pytorch_optimizer",
                "MARS",
                {
                    "weight_decay": 0.1,
                    "epsilon": 1e-2,
                    "epsilon_mode": "uncorrected",
                    "previous_gradient_init": "zeros",
                    "higher_rank_mars": True,
                },
                {"lr_1d": 0.01, "weight_decay": 0.1, "eps": 1e-2},
            ),
            Reference(
                "pytorch_optimizer",
                "MARS",
                {
                    "mars_type": "lion",
                    "optimize_1d": True,
                    "gamma": 0.1,
                    "previous_gradient_init": "zeros",
                },
                {"mars_type": "lion", "optimize_1d": True, "gamma": 0.1},
            ),
        ),
        search_space=space(
            "beta_1",
            "beta_2",
            "epsilon",
            "weight_decay",
            gamma=("float", 0.0, 1.0),
            mars_type=("choice", ("adamw", "lion")),
            optimize_1d=("bool",),
            higher_rank_mars=("bool",),
            previous_gradient_init=("choice", ("first", "zeros")),
        ),
        decays_near_one=near_one(
            "beta_1", "beta_2", beta_1_1d=0.999, beta_2_1d=0.9999
        ),
        convergence={
            "parabola": ({"learning_rate": 0.01}, 600),
            "rosenbrock": ({"learning_rate": 0.001}, 4000),
        },
        capabilities=frozenset({"owns_weight_decay"}),
    ),
    Spec(
        cls=PSGDKron,
        paper="Li 2018, Preconditioned Stochastic Gradient Descent; Li "
        "2024, Stochastic Hessian Fittings with Lie Groups",
        paper_url="https://arxiv.org/abs/1512.04202",
        oracle=psgd_kron_oracle,
        lr=0.01,
        # Short schedules, so that 50 steps see fitted and skipped steps.
        test_configs=(
            {"seed": 1},
            {
                "seed": 2,
                "beta_1": 0.5,
                "precond_update_prob_min": 0.3,
                "precond_update_flat_steps": 5,
                "precond_update_prob_decay": 0.2,
                "memory_save_mode": "one_diag",
                "merge_dims": True,
                "min_ndim_triangular": 1,
                "precond_init_scale": 0.5,
                "precond_lr": 0.3,
                "clip_update_rms": None,
            },
            {
                "seed": 3,
                "beta_1": 0.0,
                "precond_update_schedule": "counter",
                "precond_update_flat_steps": 3,
                "precond_update_prob_decay": 0.3,
                "momentum_into_precond_update": True,
                "coupled_weight_decay": 0.1,
            },
        ),
        # pytorch-optimizer's Kron draws its probes with torch.randn_like:
        # tests/test_psgd_kron.py feeds it ours and compares whole runs.
        # Here, without a fit (P = I), the rest of its step: the corrected
        # momentum, the RMS clipping of the update.
        references=(
            Reference(
                "pytorch_optimizer",
                "Kron",
                {
                    "seed": 0,
                    "beta_1": 0.5,
                    "precond_update_prob": 0.0,
                    "precond_update_prob_min": 0.0,
                    "precond_update_schedule": "counter",
                },
                {"momentum": 0.5, "pre_conditioner_update_probability": 0.0},
                # It preconditions in float32 even for float64 weights.
                float32_state=True,
            ),
        ),
        search_space=space(
            "beta_1",
            "coupled_weight_decay",
            precond_lr=("logfloat", 1e-2, 1.0),
            precond_update_schedule=("choice", ("random", "counter")),
            memory_save_mode=(
                "choice",
                (None, "one_diag", "smart_one_diag", "all_diag"),
            ),
            merge_dims=("bool",),
            momentum_into_precond_update=("bool",),
        ),
        decays_near_one=near_one("beta_1", seed=5),
        convergence={
            "parabola": ({"learning_rate": 0.01, "seed": 0}, 600),
            "rosenbrock": (
                {"learning_rate": 2e-3, "seed": 0, "min_ndim_triangular": 1},
                4000,
            ),
        },
        capabilities=frozenset({"global_state", "random", "factored_state"}),
    ),
    Spec(
        cls=Shampoo,
        paper="Gupta, Koren & Singer 2018, Shampoo: Preconditioned "
        "Stochastic Tensor Optimization; Anil et al. 2020, Scalable Second "
        "Order Optimization for Deep Learning",
        paper_url="https://arxiv.org/abs/1802.09568",
        oracle=ShampooOracle,
        lr=0.01,
        # Small blocks (2, 3) cut the (3, 4) and (2, 3, 2) -> (6, 2)
        # variables of the parity problem into padded blocks; frequencies
        # 3 and 4 put kept roots between refreshes. Worst error measured
        # against the oracle over 50 steps: 0.19 of the parity bound.
        test_configs=(
            {},
            {
                "block_size": 2,
                "precondition_frequency": 3,
                "start_preconditioning_step": 2,
            },
            # The richest config, which the base-feature tests take.
            # epsilon 1e-2, not the default 1e-6: without a graft the step
            # is scaled by (lambda + epsilon)^(-1/4), and the zero
            # eigenvalues of a rank-deficient statistic come out of eigh
            # as float32 noise (about 1e-7 of the largest) that differs
            # between runs summing a batch in different orders (gradient
            # accumulation, the distributed tests). Measured: the mirrored
            # fit's roots differ by 1.4e-4 (relative) at 1e-4 and pass at
            # 1e-3; 1e-2 leaves a margin.
            {
                "grafting": None,
                "beta_1": 0.0,
                "beta_2": 1.0,
                "start_preconditioning_step": 1,
                "precondition_frequency": 1,
                "epsilon": 1e-2,
            },
            {"grafting": "adagrad", "beta_2": 0.9, "block_size": 3},
            # The last config, which the resume tests take: epsilon 1e-3.
            # At 1e-6 the roots of the rank-deficient statistics of the
            # resume model (5-6-1) amplify each backend's float32
            # roundings to 2.4e-6 in a weight after 8 steps, over the 9.5e-7
            # of one rounding per step; at 1e-3, 1.8e-7 at most.
            {
                "grafting": "sgd",
                "beta_1": 0.5,
                "precondition_frequency": 4,
                "start_preconditioning_step": 1,
                "coupled_weight_decay": 0.1,
                "epsilon": 1e-3,
            },
        ),
        # pytorch-optimizer's Shampoo and ScalableShampoo precondition
        # tensors of every rank with one factor per dimension, so they
        # match on matrices only: tests/test_preconditioners.py.
        references=(),
        search_space=space(
            "beta_1",
            "epsilon",
            "grafting",
            "block_size",
            "precondition_frequency",
            "start_preconditioning_step",
            "coupled_weight_decay",
            beta_2=("float", 0.5, 0.9999),
        ),
        # beta_1 = 0.99, not 0.999: Shampoo's momentum has no bias
        # correction, and at 0.999 the weights move too little in 50 steps
        # for the test's measure.
        decays_near_one=near_one("beta_2", beta_1=0.99),
        convergence={
            "parabola": ({"learning_rate": 0.1}, 300),
            "rosenbrock": ({"learning_rate": 0.05}, 2000),
        },
        capabilities=frozenset({"matrix_state", "zero_epsilon"}),
    ),
    Spec(
        cls=SOAP,
        paper="Vyas et al. 2025, SOAP: Improving and Stabilizing Shampoo "
        "using Adam",
        paper_url="https://arxiv.org/abs/2409.11321",
        oracle=SOAPOracle,
        lr=0.01,
        # Refreshes every 2 to 10 steps; max_precond_dim=3 leaves the
        # 4-wide dimension of the (3, 4) variable unrotated. Worst error
        # measured against the oracle over 50 steps: 0.055 of the parity
        # bound. merge_dims is tested on a square result in
        # tests/test_preconditioners.py: merged (2, 3, 2) -> (6, 2) factors
        # of rank 2 leave a 4-dimensional eigenspace whose basis the
        # authors' construction (canonical_basis=False) leaves to rounding.
        test_configs=(
            {},
            {"precondition_frequency": 3, "beta_1": 0.9, "beta_2": 0.99},
            # The richest config, which the base-feature tests take: with
            # gradient centralization the (3, 4) gradient has rank 2, and
            # only a 3 x 3 factor keeps its eigenvectors unique. Its null
            # direction (the column means) then carries only rounding
            # noise, which Adam in the eigenbasis divides by its own size:
            # epsilon 1e-3 keeps that noise (about 1e-8 after clipnorm)
            # from becoming an O(1) step, as the float64 oracle's does.
            {
                "precondition_frequency": 2,
                "max_precond_dim": 3,
                "shampoo_beta": 0.8,
                "beta_1": 0.9,
                "epsilon": 1e-3,
            },
            # The last config, which the resume tests take: frequency 20,
            # so the 16 steps of the resume model refresh the basis once,
            # at step 1 (before the save). A power-iteration refresh of a
            # factor with near-equal small eigenvalues (the 6 x 6 factor of
            # a (6, 1) kernel has rank 1 after a step) picks its basis by
            # rounding, and each backend rounds its own way: at frequency
            # 3 a model saved by torch continued on TensorFlow 2.2e-6
            # apart after 8 steps, over the 9.5e-7 of one rounding per
            # step; at 20, 6e-8 at most.
            {
                "precondition_frequency": 20,
                "bias_correction": False,
                "coupled_weight_decay": 0.1,
            },
        ),
        # pytorch-optimizer's SOAP matches the authors' construction
        # (canonical_basis=False) on matrices whose factors have no
        # repeated eigenvalue: tests/test_preconditioners.py. The default
        # canonical basis matches no other library.
        references=(),
        search_space=space(
            "beta_1",
            "beta_2",
            "shampoo_beta",
            "precondition_frequency",
            "max_precond_dim",
            "bias_correction",
            "coupled_weight_decay",
            epsilon=("logfloat", 1e-8, 1e-2),
        ),
        decays_near_one=near_one("beta_1", "beta_2", shampoo_beta=0.999),
        convergence={
            "parabola": ({"learning_rate": 0.1}, 300),
            "rosenbrock": ({"learning_rate": 0.05}, 2000),
        },
        capabilities=frozenset({"matrix_state"}),
    ),
    Spec(
        cls=Muon,
        paper="Jordan et al. 2024, Muon: An optimizer for hidden layers in "
        "neural networks",
        paper_url="https://kellerjordan.github.io/posts/muon/",
        oracle=MuonOracle,
        lr=0.01,
        # The shared problem's (3, 4) and (2, 3, 2) variables take Muon's
        # step (the second as a (6, 2) matrix), the (7,) one AdamW's.
        test_configs=(
            {},
            {
                "nesterov": False,
                "momentum": 0.9,
                "adjust_learning_rate": "original",
                "adam_epsilon_mode": "uncorrected",
                "adam_weight_decay": 0.05,
            },
            {
                "ns_coefficients": "polar_express",
                "ns_steps": 6,
                "bias_correction": True,
                "adam_lr_ratio": 0.5,
                "adam_epsilon_mode": "inside_sqrt",
            },
            {
                "ns_coefficients": [[3.0, -3.2, 1.2], [2.0, -1.5, 0.5]],
                "adjust_learning_rate": None,
                "rms_rate": 0.3,
                "weight_decay": 0.1,
                # Another optimizer for the (7,) variable, with a decay.
                "fallback": {
                    "class_name": "keras_opts>Yogi",
                    "config": {
                        "beta_1": 0.8,
                        "bias_correction": True,
                        "weight_decay": 0.05,
                    },
                },
            },
            # The richest, which the base-feature and resume tests take.
            {
                "momentum": 0.8,
                "adam_beta_1": 0.5,
                "adam_beta_2": 0.9,
                "epsilon": 1e-6,
                "weight_decay": 0.1,
                "coupled_weight_decay": 0.1,
            },
        ),
        references=(),
        search_space=space(
            "momentum",
            "nesterov",
            "bias_correction",
            "weight_decay",
            "coupled_weight_decay",
            adam_beta_1=("float", 0.0, 0.99),
            adam_beta_2=("float", 0.5, 0.9999),
            adam_epsilon=("logfloat", 1e-8, 1e-2),
            ns_steps=("choice", (1, 3, 5, 8)),
            ns_coefficients=("choice", ("quintic", "polar_express")),
            adjust_learning_rate=(
                "choice",
                ("original", "match_rms_adamw", None),
            ),
        ),
        decays_near_one=near_one(
            "momentum", adam_beta_1=0.999, adam_beta_2=0.9999
        ),
        # The problems' variables are vectors: Muon's AdamW updates them.
        convergence={
            "parabola": ({"learning_rate": 0.1}, 300),
            "rosenbrock": ({"learning_rate": 0.01}, 4000),
        },
        capabilities=frozenset(
            {"owns_weight_decay", "path_blocks", "matrix_references"}
        ),
    ),
)


#: The arguments the schedule-free optimizers share, with their ranges:
#: beta_1 is an interpolation in (0, 1) (x is recovered by dividing by it).
SCHEDULE_FREE_SPACE: Mapping[str, tuple] = {
    "beta_1": ("float", 0.5, 0.99),
    "r": ("float", 0.0, 2.0),
    "weight_lr_power": ("float", 0.0, 4.0),
    "weight_decay": ("float", 0.0, 0.5),
}

SCHEDULE_FREE_SPECS: tuple[Spec, ...] = (
    Spec(
        cls=ScheduleFreeSGD,
        paper="Defazio et al. 2024, The Road Less Scheduled",
        paper_url="https://arxiv.org/abs/2405.15682",
        oracle=ScheduleFreeSGDOracle,
        lr=0.05,
        test_configs=(
            {},
            {"beta_1": 0.5, "weight_decay": 0.1, "warmup_steps": 10},
            {"r": 1.0, "weight_lr_power": 0.0, "coupled_weight_decay": 0.1},
        ),
        references=(
            Reference(
                "schedulefree",
                "SGDScheduleFree",
                {"weight_decay": 0.1, "warmup_steps": 5},
                {"momentum": 0.9, "weight_decay": 0.1, "warmup_steps": 5},
            ),
            Reference(
                "schedulefree",
                "SGDScheduleFree",
                {"beta_1": 0.5, "r": 1.0, "weight_lr_power": 0.0},
                {"momentum": 0.5, "r": 1.0, "weight_lr_power": 0.0},
            ),
        ),
        search_space=space(
            "coupled_weight_decay",
            **SCHEDULE_FREE_SPACE,
            warmup_steps=("choice", (0, 5)),
        ),
        decays_near_one=near_one("beta_1"),
        convergence={
            "parabola": ({"learning_rate": 0.3}, 600),
            # Uniform averaging (r = 0) keeps the early iterates, far up the
            # valley, in x for long; r = 1 weighs recent ones more.
            "rosenbrock": (
                {"learning_rate": 2e-3, "beta_1": 0.5, "r": 1.0},
                4000,
            ),
        },
        capabilities=frozenset({"owns_weight_decay", "float32_scalars"}),
    ),
    Spec(
        cls=ScheduleFreeAdamW,
        paper="Defazio et al. 2024, The Road Less Scheduled",
        paper_url="https://arxiv.org/abs/2405.15682",
        oracle=ScheduleFreeAdamWOracle,
        lr=0.01,
        test_configs=(
            {},
            {
                "bias_correction_in": "second_moment",
                "warmup_steps": 10,
                "weight_decay": 0.1,
            },
            {"beta_1": 0.5, "beta_2": 0.9, "epsilon": 1e-3, "r": 1.0},
        ),
        references=(
            Reference(
                "schedulefree",
                "AdamWScheduleFreePaper",
                {"weight_decay": 0.1, "warmup_steps": 5},
                {"weight_decay": 0.1, "warmup_steps": 5},
            ),
            Reference(
                "schedulefree",
                "AdamWScheduleFree",
                {
                    "bias_correction_in": "second_moment",
                    "weight_decay": 0.1,
                    "warmup_steps": 5,
                    "r": 1.0,
                },
                {"weight_decay": 0.1, "warmup_steps": 5, "r": 1.0},
            ),
        ),
        search_space=space(
            "beta_2",
            "epsilon",
            "coupled_weight_decay",
            **SCHEDULE_FREE_SPACE,
            warmup_steps=("choice", (0, 5)),
            bias_correction_in=("choice", ("learning_rate", "second_moment")),
        ),
        decays_near_one=near_one("beta_1", "beta_2"),
        convergence={
            "parabola": ({"learning_rate": 0.1}, 600),
            "rosenbrock": ({"learning_rate": 0.03, "r": 1.0}, 4000),
        },
        capabilities=frozenset({"owns_weight_decay", "float32_scalars"}),
    ),
    Spec(
        cls=ScheduleFreeRAdam,
        paper="Defazio et al. 2024, The Road Less Scheduled",
        paper_url="https://arxiv.org/abs/2405.15682",
        oracle=ScheduleFreeRAdamOracle,
        lr=0.01,
        test_configs=(
            {},
            {"silent_sgd_phase": False, "weight_decay": 0.1},
            {"beta_2": 0.9, "r": 0.5, "weight_lr_power": 1.0},
        ),
        references=(
            Reference(
                "schedulefree",
                "RAdamScheduleFree",
                {"weight_decay": 0.1},
                {"weight_decay": 0.1},
            ),
            Reference(
                "schedulefree",
                "RAdamScheduleFree",
                {"silent_sgd_phase": False, "beta_2": 0.9, "r": 1.0},
                {"silent_sgd_phase": False, "betas": (0.9, 0.9), "r": 1.0},
            ),
        ),
        search_space=space(
            "beta_2",
            "epsilon",
            "coupled_weight_decay",
            **SCHEDULE_FREE_SPACE,
            silent_sgd_phase=("bool",),
        ),
        # Without the silent phase: at beta_2 = 0.9999 the rectifier stays
        # tiny for the whole run and the weights would barely move.
        decays_near_one=near_one("beta_1", "beta_2", silent_sgd_phase=False),
        convergence={
            "parabola": ({"learning_rate": 0.3}, 600),
            "rosenbrock": ({"learning_rate": 0.1}, 6000),
        },
        capabilities=frozenset({"owns_weight_decay", "float32_scalars"}),
        conformance_kwargs={"silent_sgd_phase": False},
    ),
)

SPECS = SPECS + SCHEDULE_FREE_SPECS


def _muon_variant(cls, oracle, paper, paper_url, configs, **space_):
    """NorMuon's and AdaMuon's spec: Muon's, with their own arguments
    added to each of its argument sets, in turn, and to its ranges."""
    (muon,) = [spec for spec in SPECS if spec.cls is Muon]
    own = list(configs)
    test_configs = tuple(
        {**kwargs, **own[i % len(own)]}
        for i, kwargs in enumerate(muon.test_configs)
    )
    return dataclasses.replace(
        muon,
        cls=cls,
        oracle=oracle,
        paper=paper,
        paper_url=paper_url,
        test_configs=test_configs,
        search_space={**muon.search_space, **space_},
        decays_near_one={**muon.decays_near_one, "beta_2": 0.9999},
    )


SPECS = SPECS + (
    _muon_variant(
        NorMuon,
        NorMuonOracle,
        "Li et al. 2025, NorMuon: Making Muon more efficient and scalable",
        "https://arxiv.org/abs/2510.05491",
        (
            {},
            {"rescale": "orthogonal", "beta_2": 0.9},
            {"normalization_epsilon": 1e-6},
            {"beta_2": 0.5, "rescale": "orthogonal"},
            {"beta_2": 0.8, "normalization_epsilon": 1e-3},
        ),
        beta_2=("float", 0.0, 0.999),
        rescale=("choice", ("preserve", "orthogonal")),
    ),
    _muon_variant(
        AdaMuon,
        AdaMuonOracle,
        "Si et al. 2025, AdaMuon: Adaptive Muon Optimizer",
        "https://arxiv.org/abs/2507.11005",
        (
            {},
            {"beta_2": 0.9},
            {"normalization_epsilon": 1e-6},
            {"beta_2": 0.5},
            {"beta_2": 0.95, "normalization_epsilon": 1e-3},
        ),
        beta_2=("float", 0.0, 0.9999),
    ),
)


#: The wrappers, in the order of the docs: of an optimizer (Lookahead, SWA,
#: tested in tests/test_wrappers.py against their own NumPy transcriptions
#: around the inner optimizer's) and of a model (SAM).
WRAPPERS: tuple[type, ...] = (Lookahead, SWA, SAM)

#: The schedules, in the order of the docs (closed forms in
#: tests/test_schedules.py).
SCHEDULES: tuple[type, ...] = (
    InverseTimeDecay,
    ExponentialDecay,
    GeometricDecay,
    StaircaseDecay,
    InverseSqrtDecay,
    Warmup,
    WarmupStableDecay,
    WarmupLinearDecay,
    Cyclical,
    OneCycle,
)

_BY_CLASS = {spec.cls: spec for spec in SPECS}


def lookup(name: str) -> Spec:
    """The spec for a registry name, class name or alias (any case)."""
    return _BY_CLASS[runtime.lookup(name)]


def _call(name: str, kwargs: Mapping[str, Any]) -> str:
    arguments = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    if name.split(".")[-1].startswith("scale_by_"):
        return (
            f"`optax.chain({name}({arguments}), "
            "optax.scale_by_learning_rate(lr))`"
        )
    return f"`{name}(lr, {arguments})`" if arguments else f"`{name}(lr)`"


_PREFIX = {
    "torch": "torch.optim.",
    "optax": "optax.",
    "keras": "keras.optimizers.",
    "madgrad": "madgrad.",
    "prodigyopt": "prodigyopt.",
    "pytorch_optimizer": "pytorch_optimizer.",
    "adam_mini": "adam_mini.",
    "schedulefree": "schedulefree.",
}

#: Libraries whose optimizers run on torch tensors (``torch.optim`` and the
#: authors' torch packages).
TORCH_LIBRARIES = (
    "torch",
    "madgrad",
    "prodigyopt",
    "pytorch_optimizer",
    "adam_mini",
    "schedulefree",
)


def markdown_references() -> str:
    """The README's table of settings that reproduce other libraries, one
    row per reference that the parity tests check."""
    rows = ["| this call | equals |", "|---|---|"]
    for spec in SPECS:
        for ref in spec.references:
            theirs = _call(_PREFIX[ref.library] + ref.name, ref.theirs)
            ours = _call(f"keras_opts.{spec.cls.__name__}", ref.ours)
            rows.append(f"| {theirs} | {ours} |")
    return "\n".join(rows)


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
