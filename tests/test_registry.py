"""The registry covers every exported optimizer and drives the README."""

import pathlib

import keras

import keras_opts
from keras_opts import registry

README = pathlib.Path(__file__).parents[1] / "README.md"
BEGIN, END = "<!-- optimizers:begin -->", "<!-- optimizers:end -->"


def test_every_exported_optimizer_has_a_spec():
    exported = {
        obj
        for name in keras_opts.__all__
        if isinstance(obj := getattr(keras_opts, name), type)
        and issubclass(obj, keras.optimizers.Optimizer)
    }
    assert exported == {spec.cls for spec in registry.SPECS}


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
        assert {r.library for r in spec.references} >= {"torch"}


def test_readme_table_is_generated_from_the_registry():
    text = README.read_text()
    table = text.split(BEGIN)[1].split(END)[0].strip()
    assert table == registry.markdown_table(), (
        "README table is stale: paste the output of "
        "`python -c 'from keras_opts import registry; "
        "print(registry.markdown_table())'`"
    )
