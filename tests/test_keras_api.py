"""The seam to Keras' private API, ``keras_opts/_core/keras_api.py``.

Every private name it uses exists in the installed Keras, with the
arguments keras_opts passes: when Keras changes, the failure names the
symbol. No other module of the package names a private attribute of a Keras
optimizer, model or variable, or imports from ``keras.src``. Checked on the
backend the suite runs on (each backend's optimizer, trainer and variable
classes differ).
"""

import importlib
import inspect
import pathlib
import re

import keras
import numpy as np
import pytest

import keras_opts
from keras_opts._core import keras_api
from tests import helpers

PACKAGE = pathlib.Path(keras_opts.__file__).parent
SEAM = PACKAGE / "_core" / "keras_api.py"

#: The functions keras_api.py imports from ``keras.src``.
PRIVATE_FUNCTIONS = [
    ("keras.src.utils.naming", "auto_name"),
    ("keras.src.backend.common.stateless_scope", "in_stateless_scope"),
]
#: Private methods of ``keras.optimizers.Optimizer`` keras_api.py calls,
#: with the arguments it passes (after ``self``).
OPTIMIZER_METHODS = {
    "_use_weight_decay": ("variable",),
    "_get_variable_index": ("variable",),
    "_track_variable": ("variable",),
}


def _missing(what: str) -> str:
    return (
        f"Keras {keras.__version__} has no {what}, which "
        "keras_opts/_core/keras_api.py uses"
    )


def _arguments(function) -> tuple[str, ...]:
    parameters = list(inspect.signature(function).parameters)
    return tuple(p for p in parameters if p != "self")


def _built_optimizer():
    variables = [
        keras.Variable(np.ones((2, 3), "float32"), name="kernel"),
        keras.Variable(np.ones(3, "float32"), name="bias"),
    ]
    optimizer = keras.optimizers.Optimizer(
        learning_rate=0.1,
        weight_decay=0.1,
        use_ema=True,
        gradient_accumulation_steps=2,
    )
    optimizer.build(variables)
    optimizer.exclude_from_weight_decay(var_names=["bias"])
    return optimizer, variables


def _compiled_model():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    return model


@pytest.mark.parametrize(
    "module, name", PRIVATE_FUNCTIONS, ids=[n for _, n in PRIVATE_FUNCTIONS]
)
def test_private_functions_exist(module, name):
    try:
        found = importlib.import_module(module)
    except ImportError:
        pytest.fail(_missing(f"module {module}"))
    assert callable(getattr(found, name, None)), _missing(f"{module}.{name}")


def test_the_function_list_is_what_the_seam_imports():
    imported = re.findall(
        r"from (keras\.src[\w.]*) import \(?\s*(\w+)", SEAM.read_text()
    )
    assert sorted(imported) == sorted(PRIVATE_FUNCTIONS)


@pytest.mark.parametrize("name", sorted(OPTIMIZER_METHODS))
def test_private_optimizer_methods_take_our_arguments(name):
    method = getattr(keras.optimizers.Optimizer, name, None)
    assert method is not None, _missing(f"keras.optimizers.Optimizer.{name}")
    assert _arguments(method) == OPTIMIZER_METHODS[name], (
        f"keras.optimizers.Optimizer.{name} now takes "
        f"{_arguments(method)}; keras_opts/_core/keras_api.py passes "
        f"{OPTIMIZER_METHODS[name]}"
    )


@pytest.mark.parametrize("name", sorted(keras_api.HOOKS))
def test_overridden_hooks_keep_their_signatures(name):
    """``keras_api.Hooks`` overrides these; Keras must still call them with
    the same arguments (on this backend's optimizer class)."""
    hook = getattr(keras.optimizers.Optimizer, name, None)
    assert hook is not None, _missing(f"hook keras.optimizers.Optimizer.{name}")
    assert _arguments(hook) == keras_api.HOOKS[name], (
        f"Keras' hook {name} now takes {_arguments(hook)}; "
        f"keras_opts/_core/keras_api.py overrides it as "
        f"{keras_api.HOOKS[name]}"
    )


def test_private_optimizer_attributes_hold_what_we_read():
    optimizer, variables = _built_optimizer()
    for name in ("_iterations", "_trainable_variables", "_variables"):
        assert hasattr(optimizer, name), _missing(f"optimizer.{name}")
    assert hasattr(optimizer, "_learning_rate"), _missing(
        "optimizer._learning_rate"
    )
    counter = keras_api.own_iterations(optimizer)
    assert isinstance(counter, keras.Variable) and int(counter.numpy()) == 0
    assert any(v is counter for v in keras_api.own_variables(optimizer))
    assert keras_api.built_variables(optimizer) == variables
    assert isinstance(keras_api.stored_learning_rate(optimizer), keras.Variable)
    assert [keras_api.variable_index(optimizer, v) for v in variables] == [0, 1]
    assert [keras_api.uses_weight_decay(optimizer, v) for v in variables] == [
        True,
        False,
    ]
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    scheduled = keras.optimizers.Optimizer(learning_rate=schedule)
    assert keras_api.stored_learning_rate(scheduled) is schedule


def test_private_variable_value_is_the_stored_tensor():
    variable = keras.Variable(np.arange(3.0, dtype="float32"))
    assert hasattr(variable, "_value"), _missing("keras.Variable._value")
    stored = keras_api.stored_value(variable)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(stored), [0, 1, 2])
    if helpers.BACKEND == "torch":  # the fast path writes to it in place
        import torch

        with torch.no_grad():
            stored.add_(1.0)
        np.testing.assert_array_equal(variable.numpy(), [1, 2, 3])


def test_stateless_scope_is_seen():
    assert not keras_api.in_stateless_scope()
    with keras.StatelessScope():
        assert keras_api.in_stateless_scope()


def test_auto_name_counts_as_keras_does():
    first, second = keras_api.auto_name("r2seam"), keras_api.auto_name("r2seam")
    assert first != second
    assert first.startswith("r2seam") and second.startswith("r2seam")


def test_private_model_attributes_hold_what_we_read():
    model = _compiled_model()
    assert hasattr(model, "_loss_tracker"), _missing("Model._loss_tracker")
    assert isinstance(keras_api.loss_tracker(model), keras.metrics.Mean)
    if helpers.BACKEND == "jax":
        method = getattr(model, "_update_metrics_variables", None)
        assert method is not None, _missing(
            "JAX Model._update_metrics_variables"
        )
        assert len(_arguments(method)) == 6, (
            "JAX Model._update_metrics_variables now takes "
            f"{_arguments(method)}; keras_opts/_core/keras_api.py passes "
            "(metrics_variables, loss, x, y, y_pred, sample_weight)"
        )


def _keras_private_names() -> set[str]:
    """Private attribute names of Keras' optimizer, model and variable on
    this backend: those of the classes and of instances in use."""
    optimizer, variables = _built_optimizer()
    model = _compiled_model()
    names = set()
    for obj in (optimizer, variables[0], model):
        for candidate in (*dir(type(obj)), *vars(obj)):
            if candidate.startswith("_") and not candidate.startswith("__"):
                names.add(candidate)
    return names


def test_no_module_but_the_seam_names_private_keras_api():
    """The grep the seam promises: ``keras.src`` and every private name of
    a Keras optimizer, model or variable (used as ``x._name`` or defined
    as ``def _name``, which would override it) appear in keras_api.py
    only."""
    private = _keras_private_names()
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == SEAM:
            continue
        text = path.read_text()
        where = path.relative_to(PACKAGE.parent)
        if "keras.src" in text:
            found.append(f"{where}: keras.src")
        used = re.findall(r"(?:\.|\bdef )(_[A-Za-z]\w*)\b", text)
        found += [f"{where}: {n}" for n in sorted(set(used) & private)]
    assert not found, (
        "private Keras API outside keras_opts/_core/keras_api.py: "
        + ", ".join(found)
    )
