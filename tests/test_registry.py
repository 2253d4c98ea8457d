"""The registry covers every exported optimizer and drives the README."""

import pathlib

import keras

import keras_opts
from tests import specs as registry

README = pathlib.Path(__file__).parents[1] / "README.md"


def _block(name):
    text = README.read_text()
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    return text.split(begin)[1].split(end)[0].strip()


def test_every_exported_optimizer_has_a_spec():
    exported = {
        obj
        for name in keras_opts.__all__
        if isinstance(obj := getattr(keras_opts, name), type)
        and issubclass(obj, keras.optimizers.Optimizer)
    }
    specs = {spec.cls for spec in registry.SPECS}
    assert exported == specs | set(registry.WRAPPERS)


def test_names_are_unique_and_lower_case():
    keys = [
        key
        for spec in registry.SPECS
        for key in {spec.name, spec.cls.__name__.lower(), *spec.aliases}
    ]
    assert len(keys) == len(set(keys))
    assert all(spec.name == spec.name.lower() for spec in registry.SPECS)


def test_every_spec_has_an_oracle_references_and_convergence():
    for spec in registry.SPECS:
        assert spec.test_configs and spec.references
        assert set(spec.convergence) == {"parabola", "rosenbrock"}
        # At least one other implementation of the same numerics.
        libraries = {*registry.TORCH_LIBRARIES, "optax"}
        assert {r.library for r in spec.references} & libraries


def test_readme_tables_are_generated_from_the_registry():
    hint = "README is stale: paste registry.{}() between the markers"
    assert _block("optimizers") == registry.markdown_table(), hint.format(
        "markdown_table"
    )
    assert _block("references") == registry.markdown_references(), hint.format(
        "markdown_references"
    )
