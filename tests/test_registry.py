"""The specs cover every exported optimizer, the runtime lookup covers every
spec, and the data of tests/specs.py is declared once and used."""

import ast
import importlib
import inspect
import pathlib

import keras

import keras_opts
from keras_opts import optimizers, schedules, wrappers
from keras_opts import registry as runtime
from keras_opts._core import config as declared_config
from tests import specs as registry

PACKAGE = pathlib.Path(keras_opts.__file__).parent


def _classes(module):
    return {
        obj
        for name in module.__all__
        if isinstance(obj := getattr(module, name), type)
    }


def test_every_exported_optimizer_has_a_spec_and_every_spec_is_exported():
    exported = _classes(optimizers)
    specs = {spec.cls for spec in registry.SPECS}
    assert exported - specs == set(), "exported without a spec"
    assert specs - exported == set(), "a spec of a class not exported"
    assert set(runtime.OPTIMIZERS.values()) == specs


def test_every_public_class_is_an_optimizer_a_wrapper_or_a_schedule():
    specs = {spec.cls for spec in registry.SPECS}
    assert _classes(keras_opts) == specs | set(registry.WRAPPERS)
    assert _classes(wrappers) == set(registry.WRAPPERS)
    assert _classes(schedules) == set(registry.SCHEDULES)
    assert all(
        issubclass(cls, keras.optimizers.Optimizer)
        for cls in _classes(optimizers)
    )


def test_names_are_unique_and_lower_case():
    # Two classes whose names differ only in case would share a name.
    assert len(runtime.OPTIMIZERS) == len(_classes(optimizers))
    keys = [
        key
        for spec in registry.SPECS
        for key in {spec.name, spec.cls.__name__.lower(), *spec.aliases}
    ]
    assert len(keys) == len(set(keys))
    for spec in registry.SPECS:
        # Each name finds its class, in keras_opts and in Keras' registry.
        assert type(keras_opts.get(spec.name.upper())) is spec.cls
        registered = f"keras_opts>{spec.cls.__name__}"
        assert keras.saving.get_registered_object(registered) is spec.cls
    assert set(runtime.ALIASES.values()) <= set(runtime.OPTIMIZERS)
    assert not set(runtime.ALIASES) & set(runtime.OPTIMIZERS)


def test_aliases_find_their_optimizer():
    assert registry.lookup("rectified_adam").cls is keras_opts.RAdam
    assert registry.lookup("RAdam").aliases == (
        "rectified_adam",
        "rectifiedadam",
    )
    assert type(keras_opts.get("Rectified-Adam")) is keras_opts.RAdam


def test_the_package_imports_nothing_from_the_tests():
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            for module in modules:
                assert module.split(".")[0] != "tests", (path, module)


def test_every_spec_has_an_oracle_references_and_convergence():
    import tests.test_preconditioners as matrix_tests

    for spec in registry.SPECS:
        assert spec.test_configs
        assert set(spec.convergence) == {"parabola", "rosenbrock"}
        if "matrix_state" in spec.capabilities:
            # Shampoo's and SOAP's references match on matrices only (not
            # on the shared problem's vector and rank-3 tensor): they are
            # checked in tests/test_preconditioners.py.
            assert hasattr(
                matrix_tests, f"test_{spec.name}_matches_pytorch_optimizer"
            ) or hasattr(
                matrix_tests,
                f"test_{spec.name}_matches_pytorch_optimizer_on_matrices",
            ), spec.name
            continue
        if "matrix_references" in spec.capabilities:
            # The Muon family's references (torch.optim.Muon, optax's,
            # pytorch_optimizer's) take 2-D weights only and give the rest
            # to an AdamW of their own: tests/test_muon.py checks them on
            # matrices, as test_matches_<library>_<name>.
            module = importlib.import_module("tests.test_muon")
            libraries = {*registry.TORCH_LIBRARIES, "optax"}
            assert any(
                hasattr(module, f"test_matches_{library}_{spec.name}")
                for library in libraries
            ), spec.name
            continue
        assert spec.references
        # At least one other implementation of the same numerics.
        libraries = {*registry.TORCH_LIBRARIES, "optax"}
        assert {r.library for r in spec.references} & libraries


def test_every_tested_argument_is_a_constructor_argument():
    # Every class's own __init__: on torch, Keras' Optimizer is a
    # subclass whose signature is (*args, **kwargs).
    keras_arguments = {
        name
        for cls in keras.optimizers.Optimizer.__mro__
        if "__init__" in vars(cls)
        for name in inspect.signature(cls.__init__).parameters
    }
    for spec in registry.SPECS:
        # With the arguments a subclass passes on to its base (NorMuon's
        # of Muon), which the base class declares.
        arguments = (
            keras_arguments
            | set(inspect.signature(spec.cls).parameters)
            | set(declared_config.declared(spec.cls))
        )
        configs = [
            *spec.test_configs,
            *(ref.ours for ref in spec.references),
            *(kwargs for kwargs, *_ in spec.convergence.values()),
            spec.search_space,
            spec.decays_near_one,
        ]
        for config in configs:
            assert set(config) <= arguments, (spec.name, config)


def test_every_shared_range_and_decay_rate_is_used():
    spaces = [spec.search_space for spec in registry.SPECS]
    for name, bounds in registry.RANGES.items():
        assert any(space.get(name) == bounds for space in spaces), name
    decays = [spec.decays_near_one for spec in registry.SPECS]
    for name, value in registry.NEAR_ONE.items():
        assert any(d.get(name) == value for d in decays), name
