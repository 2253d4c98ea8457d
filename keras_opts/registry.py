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

from keras_opts.adabelief import AdaBelief
from keras_opts.adadelta import Adadelta
from keras_opts.adagrad import Adagrad
from keras_opts.adam import Adam
from keras_opts.adamw import AdamW
from keras_opts.adan import Adan
from keras_opts.ademamix import AdEMAMix
from keras_opts.adopt import ADOPT
from keras_opts.lars import LARS
from keras_opts.lookahead import Lookahead
from keras_opts.madgrad import MADGRAD
from keras_opts.nadam import Nadam
from keras_opts.novograd import NovoGrad
from keras_opts.prodigy import Prodigy
from keras_opts.radam import RAdam
from keras_opts.rmsprop import RMSprop
from keras_opts.sgd import SGD
from keras_opts.swa import SWA
from keras_opts.testing import oracles
from keras_opts.yogi import Yogi


@dataclasses.dataclass(frozen=True)
class Reference:
    """Another library's optimizer that computes the same update.

    ``library`` is ``"torch"`` (a ``torch.optim`` class), ``"optax"`` (an
    ``optax`` function), ``"keras"`` (a ``keras.optimizers`` class) or the
    authors' own torch package (``"madgrad"``, ``"prodigyopt"``);
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
    #: Problem name -> (constructor arguments, number of steps), optionally
    #: with a third element: the largest final distance to the minimiser
    #: that passes, where the problem's default does not suit the method.
    convergence: Mapping[str, tuple]
    #: Argument name -> its valid range for property tests, as data:
    #: ``("float", low, high)``, ``("logfloat", low, high)``,
    #: ``("bool",)`` or ``("choice", options)``. The learning rate is
    #: drawn by the tests.
    search_space: Mapping[str, tuple] = dataclasses.field(default_factory=dict)
    #: Arguments with every decay rate close to 1 (0.999, 0.9999), where a
    #: constant such as ``1 - beta`` formed in float32 instead of from the
    #: Python float is off by up to 1.7e-4 relative; tests/
    #: test_float_constants.py runs them in float32 against the oracle.
    #: An optimizer without decay rates gives its other constants.
    decays_near_one: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    #: ``"owns_weight_decay"``: ``weight_decay`` is an algorithm argument
    #: (AdamW), so the base-class decay tests do not add it again.
    #: ``"global_state"``: one state couples all variables (Prodigy's d),
    #: so a variable's trajectory depends on the others.
    #: ``"zero_epsilon"``: ``epsilon = 0`` is allowed (the paper's value,
    #: or the setting that matches a reference).
    #: ``"float32_variables"``: float16 and bfloat16 variables are refused
    #: with a ValueError at build (Prodigy).
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
        search_space={
            "momentum": ("float", 0.0, 0.99),
            "dampening": ("float", 0.0, 0.99),
            "nesterov": ("bool",),
            "momentum_form": ("choice", ("gradient", "step")),
            "dampen_first_step": ("bool",),
            "coupled_weight_decay": ("float", 0.0, 0.5),
        },
        decays_near_one={
            "momentum": 0.999,
            "dampening": 0.9999,
            "dampen_first_step": False,
        },
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
        search_space={
            "beta_1": ("float", 0.0, 0.99),
            "beta_2": ("float", 0.5, 0.9999),
            "epsilon": ("logfloat", 1e-8, 1e-2),
            "amsgrad": ("bool",),
            "epsilon_mode": (
                "choice",
                ("corrected", "uncorrected", "inside_sqrt"),
            ),
            "coupled_weight_decay": ("float", 0.0, 0.5),
        },
        decays_near_one={"beta_1": 0.999, "beta_2": 0.9999, "amsgrad": True},
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
        search_space={
            "beta_1": ("float", 0.0, 0.99),
            "beta_2": ("float", 0.5, 0.9999),
            "epsilon": ("logfloat", 1e-8, 1e-2),
            "epsilon_mode": (
                "choice",
                ("corrected", "uncorrected", "inside_sqrt"),
            ),
            "rectify_threshold": ("float", 4.0, 8.0),
            "coupled_weight_decay": ("float", 0.0, 0.5),
        },
        decays_near_one={"beta_1": 0.999, "beta_2": 0.9999},
        convergence={
            "parabola": ({"learning_rate": 0.1}, 300),
            # Its first steps are un-adapted momentum steps, so a large
            # learning rate diverges on Rosenbrock's gradients (~200).
            "rosenbrock": ({"learning_rate": 0.002, "beta_2": 0.9}, 4000),
        },
        aliases=("rectified_adam", "rectifiedadam"),
    ),
    Spec(
        name="adagrad",
        cls=Adagrad,
        paper="Duchi et al. 2011, Adaptive Subgradient Methods for Online "
        "Learning and Stochastic Optimization",
        paper_url="https://jmlr.org/papers/v12/duchi11a.html",
        oracle=oracles.AdagradOracle,
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
        search_space={
            "initial_accumulator_value": ("float", 0.0, 1.0),
            "epsilon": ("logfloat", 1e-10, 1e-2),
            "epsilon_mode": ("choice", ("inside_sqrt", "outside_sqrt")),
            "lr_decay": ("float", 0.0, 0.5),
            "coupled_weight_decay": ("float", 0.0, 0.5),
        },
        decays_near_one={"lr_decay": 0.01, "initial_accumulator_value": 0.1},
        convergence={
            "parabola": ({"learning_rate": 0.5}, 300),
            "rosenbrock": ({"learning_rate": 0.5}, 4000),
        },
    ),
    Spec(
        name="rmsprop",
        cls=RMSprop,
        paper="Tieleman & Hinton 2012, Lecture 6.5 rmsprop; Graves 2013 "
        "(centered)",
        paper_url="https://www.cs.toronto.edu/~tijmen/csc321/slides/"
        "lecture_slides_lec6.pdf",
        oracle=oracles.RMSpropOracle,
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
        search_space={
            # Centered RMSprop divides by s - m^2, which cancels for small
            # rho; there float32 cannot follow a float64 oracle.
            "rho": ("float", 0.5, 0.999),
            "momentum": ("float", 0.0, 0.99),
            "epsilon": ("logfloat", 1e-8, 1e-2),
            "centered": ("bool",),
            "epsilon_mode": ("choice", ("inside_sqrt", "outside_sqrt")),
            "momentum_form": ("choice", ("gradient", "step")),
            "coupled_weight_decay": ("float", 0.0, 0.5),
        },
        decays_near_one={"rho": 0.9999, "momentum": 0.999, "centered": True},
        convergence={
            "parabola": ({"learning_rate": 0.003}, 1000),
            "rosenbrock": ({"learning_rate": 0.002}, 4000),
        },
    ),
    Spec(
        name="adadelta",
        cls=Adadelta,
        paper="Zeiler 2012, ADADELTA: An Adaptive Learning Rate Method",
        paper_url="https://arxiv.org/abs/1212.5701",
        oracle=oracles.AdadeltaOracle,
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
        search_space={
            "rho": ("float", 0.0, 0.999),
            "epsilon": ("logfloat", 1e-8, 1e-1),
            "coupled_weight_decay": ("float", 0.0, 0.5),
        },
        decays_near_one={"rho": 0.9999},
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
        name="adamw",
        cls=AdamW,
        paper="Loshchilov & Hutter 2019, Decoupled Weight Decay Regularization",
        paper_url="https://arxiv.org/abs/1711.05101",
        oracle=oracles.AdamWOracle,
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
        search_space={
            "weight_decay": ("float", 0.0, 0.5),
            "weight_decay_scaling": ("choice", ("learning_rate", "schedule")),
            "beta_1": ("float", 0.0, 0.99),
            "beta_2": ("float", 0.5, 0.9999),
            "epsilon": ("logfloat", 1e-8, 1e-2),
            "amsgrad": ("bool",),
        },
        decays_near_one={
            "beta_1": 0.999,
            "beta_2": 0.9999,
            "weight_decay": 0.1,
        },
        convergence={
            "parabola": ({"learning_rate": 0.1, "weight_decay": 0.01}, 300),
            "rosenbrock": ({"learning_rate": 0.05, "weight_decay": 0.0}, 2000),
        },
        capabilities=frozenset({"owns_weight_decay"}),
    ),
    Spec(
        name="nadam",
        cls=Nadam,
        paper="Dozat 2016, Incorporating Nesterov Momentum into Adam",
        paper_url="https://openreview.net/forum?id=OM0jvwB8jIp57ZJjtNEZ",
        oracle=oracles.NadamOracle,
        lr=0.01,
        test_configs=(
            {},
            {"momentum_decay": 1.0},
            {"momentum_decay": 1e6},
            {"momentum_decay": 0.0},
            {"beta_1": 0.5, "beta_2": 0.9, "coupled_weight_decay": 0.1},
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
        search_space={
            "beta_1": ("float", 0.0, 0.99),
            "beta_2": ("float", 0.5, 0.9999),
            "epsilon": ("logfloat", 1e-8, 1e-2),
            "momentum_decay": ("logfloat", 1e-4, 1e6),
            "coupled_weight_decay": ("float", 0.0, 0.5),
        },
        decays_near_one={"beta_1": 0.999, "beta_2": 0.9999},
        convergence={
            "parabola": ({"learning_rate": 0.1}, 300),
            "rosenbrock": ({"learning_rate": 0.01}, 4000),
        },
    ),
    Spec(
        name="yogi",
        cls=Yogi,
        paper="Zaheer et al. 2018, Adaptive Methods for Nonconvex Optimization",
        paper_url="https://papers.nips.cc/paper/"
        "8186-adaptive-methods-for-nonconvex-optimization",
        oracle=oracles.YogiOracle,
        lr=0.01,
        test_configs=(
            {},
            {"bias_correction": True},
            {"initial_accumulator_value": 0.0, "epsilon": 1e-6},
            {"beta_1": 0.5, "beta_2": 0.9, "coupled_weight_decay": 0.1},
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
        search_space={
            "beta_1": ("float", 0.0, 0.99),
            "beta_2": ("float", 0.5, 0.9999),
            "epsilon": ("logfloat", 1e-6, 1e-2),
            "initial_accumulator_value": ("float", 0.0, 1.0),
            "bias_correction": ("bool",),
            "coupled_weight_decay": ("float", 0.0, 0.5),
        },
        decays_near_one={
            "beta_1": 0.999,
            "beta_2": 0.9999,
            "bias_correction": True,
        },
        convergence={
            "parabola": ({"learning_rate": 0.1}, 300),
            "rosenbrock": ({"learning_rate": 0.02}, 3000),
        },
    ),
    Spec(
        name="adabelief",
        cls=AdaBelief,
        paper="Zhuang et al. 2020, AdaBelief Optimizer: Adapting Stepsizes "
        "by the Belief in Observed Gradients",
        paper_url="https://arxiv.org/abs/2010.07468",
        oracle=oracles.AdaBeliefOracle,
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
        search_space={
            # g - m_t = beta_1 (g - m_{t-1}) cancels for small beta_1: float32
            # keeps ~1e-7 / beta_1 of it, which the belief amplifies.
            "beta_1": ("float", 0.5, 0.99),
            "beta_2": ("float", 0.5, 0.9999),
            "epsilon": ("logfloat", 1e-16, 1e-3),
            "amsgrad": ("bool",),
            "rectify": ("bool",),
            "coupled_weight_decay": ("float", 0.0, 0.5),
        },
        decays_near_one={"beta_1": 0.999, "beta_2": 0.9999, "amsgrad": True},
        convergence={
            "parabola": ({"learning_rate": 0.1}, 300),
            "rosenbrock": ({"learning_rate": 0.01}, 4000),
        },
    ),
    Spec(
        name="adopt",
        cls=ADOPT,
        paper="Taniguchi et al. 2024, ADOPT: Modified Adam Can Converge "
        "with Any beta_2 with the Optimal Rate",
        paper_url="https://arxiv.org/abs/2411.02853",
        oracle=oracles.ADOPTOracle,
        lr=0.01,
        test_configs=(
            {},
            {"clipping": False, "beta_2": 0.99},
            {"beta_2": 0.999, "epsilon": 1e-3},
            {"beta_1": 0.5, "beta_2": 0.9, "coupled_weight_decay": 0.1},
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
        search_space={
            "beta_1": ("float", 0.0, 0.99),
            "beta_2": ("float", 0.5, 0.9999),
            "epsilon": ("logfloat", 1e-6, 1e-2),
            "clipping": ("bool",),
            "coupled_weight_decay": ("float", 0.0, 0.5),
        },
        decays_near_one={"beta_2": 0.9999},
        convergence={
            "parabola": ({"learning_rate": 0.1}, 300),
            # beta_2 = 0.9999 keeps v near the first, large gradients for
            # thousands of steps, so it crawls along the valley.
            "rosenbrock": ({"learning_rate": 0.02, "beta_2": 0.99}, 4000),
        },
    ),
    Spec(
        name="ademamix",
        cls=AdEMAMix,
        paper="Pagliardini et al. 2024, The AdEMAMix Optimizer: Better, "
        "Faster, Older",
        paper_url="https://arxiv.org/abs/2409.03137",
        oracle=oracles.AdEMAMixOracle,
        lr=0.01,
        test_configs=(
            {},
            {"alpha": 8.0, "beta_3": 0.999},
            {"alpha_warmup_steps": 20, "beta_3_warmup_steps": 30},
            {"beta_1": 0.5, "beta_2": 0.9, "coupled_weight_decay": 0.1},
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
        search_space={
            "beta_1": ("float", 0.01, 0.99),
            "beta_2": ("float", 0.5, 0.9999),
            "beta_3": ("float", 0.9, 0.9999),
            "alpha": ("float", 0.0, 10.0),
            "epsilon": ("logfloat", 1e-8, 1e-2),
            "coupled_weight_decay": ("float", 0.0, 0.5),
        },
        # The slow momentum (beta_3 = 0.9999) overshoots a problem solved
        # in a few hundred steps; these runs remember ~100 steps.
        decays_near_one={
            "beta_1": 0.999,
            "beta_2": 0.9999,
            "beta_3": 0.99999,
            "alpha": 50.0,
            "alpha_warmup_steps": 100,
            "beta_3_warmup_steps": 50,
        },
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
        name="adan",
        cls=Adan,
        paper="Xie et al. 2022, Adan: Adaptive Nesterov Momentum Algorithm "
        "for Faster Optimizing Deep Models",
        paper_url="https://arxiv.org/abs/2208.06677",
        oracle=oracles.AdanOracle,
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
        search_space={
            "beta_1": ("float", 0.0, 0.99),
            "beta_2": ("float", 0.0, 0.99),
            "beta_3": ("float", 0.5, 0.9999),
            "epsilon": ("logfloat", 1e-8, 1e-2),
            "bias_correction": ("bool",),
            "coupled_weight_decay": ("float", 0.0, 0.5),
        },
        decays_near_one={"beta_1": 0.999, "beta_2": 0.999, "beta_3": 0.9999},
        convergence={
            "parabola": ({"learning_rate": 0.05}, 600),
            "rosenbrock": ({"learning_rate": 0.01}, 4000),
        },
    ),
    Spec(
        name="novograd",
        cls=NovoGrad,
        paper="Ginsburg et al. 2019, Stochastic Gradient Methods with "
        "Layer-wise Adaptive Moments for Training of Deep Networks",
        paper_url="https://arxiv.org/abs/1905.11286",
        oracle=oracles.NovoGradOracle,
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
        search_space={
            "beta_1": ("float", 0.0, 0.99),
            "beta_2": ("float", 0.0, 0.999),
            "epsilon": ("logfloat", 1e-8, 1e-2),
            "weight_decay": ("float", 0.0, 0.5),
            "grad_averaging": ("bool",),
            "average_first_step": ("bool",),
        },
        decays_near_one={
            "beta_1": 0.999,
            "beta_2": 0.9999,
            "grad_averaging": True,
        },
        convergence={
            "parabola": ({"learning_rate": 0.01}, 600),
            "rosenbrock": ({"learning_rate": 0.001}, 4000),
        },
        capabilities=frozenset({"owns_weight_decay"}),
    ),
    Spec(
        name="lars",
        cls=LARS,
        paper="You et al. 2017, Large Batch Training of Convolutional Networks",
        paper_url="https://arxiv.org/abs/1708.03888",
        oracle=oracles.LARSOracle,
        lr=1.0,
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
            Reference("optax", "lars", {}, {}),
            Reference(
                "optax",
                "lars",
                {"nesterov": True, "trust_coefficient": 0.01},
                {"nesterov": True, "trust_coefficient": 0.01},
            ),
        ),
        search_space={
            "momentum": ("float", 0.0, 0.99),
            "weight_decay": ("float", 0.0, 0.1),
            "trust_coefficient": ("logfloat", 1e-4, 1e-1),
            "epsilon": ("logfloat", 1e-8, 1e-2),
            "nesterov": ("bool",),
            "adapt_vectors": ("bool",),
        },
        decays_near_one={"momentum": 0.999, "trust_coefficient": 0.1},
        convergence={
            "parabola": ({"learning_rate": 10.0}, 600),
            "rosenbrock": ({"learning_rate": 1.0}, 4000),
        },
        capabilities=frozenset({"owns_weight_decay", "zero_epsilon"}),
    ),
    Spec(
        name="madgrad",
        cls=MADGRAD,
        paper="Defazio & Jelassi 2021, Adaptivity without Compromise: A "
        "Momentumized, Adaptive, Dual Averaged Gradient Method for "
        "Stochastic Optimization",
        paper_url="https://arxiv.org/abs/2101.11075",
        oracle=oracles.MADGRADOracle,
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
        search_space={
            "momentum": ("float", 0.0, 0.99),
            "epsilon": ("logfloat", 1e-8, 1e-2),
            "coupled_weight_decay": ("float", 0.0, 0.5),
        },
        decays_near_one={"momentum": 0.999},
        convergence={
            "parabola": ({"learning_rate": 0.01}, 600),
            "rosenbrock": ({"learning_rate": 0.001}, 4000),
        },
        capabilities=frozenset({"zero_epsilon"}),
    ),
    Spec(
        name="prodigy",
        cls=Prodigy,
        paper="Mishchenko & Defazio 2024, Prodigy: An Expeditiously "
        "Adaptive Parameter-Free Learner",
        paper_url="https://arxiv.org/abs/2306.06101",
        oracle=oracles.ProdigyOracle,
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
        search_space={
            "beta_1": ("float", 0.0, 0.99),
            "beta_2": ("float", 0.5, 0.9999),
            "epsilon": ("logfloat", 1e-8, 1e-2),
            "d0": ("logfloat", 1e-3, 1e-1),
            "bias_correction": ("bool",),
        },
        decays_near_one={
            "d0": 1e-2,
            "beta_1": 0.999,
            "beta_2": 0.9999,
            "beta_3": 0.9999,
        },
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
)


#: The optimizers that wrap another one (tested in tests/test_wrappers.py,
#: against their own NumPy transcriptions around the inner optimizer's).
WRAPPERS: tuple[type, ...] = (Lookahead, SWA)


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
}

#: Libraries whose optimizers run on torch tensors (``torch.optim`` and the
#: authors' torch packages).
TORCH_LIBRARIES = ("torch", "madgrad", "prodigyopt")


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
