"""Configs, Keras serialization, lookup by name (``keras_opts.get``,
``keras.optimizers.get``, ``compile``), default names and ``.keras``
resume."""

import inspect
import re

import keras
import numpy as np
import pytest

import keras_opts
from tests import helpers
from tests import specs as registry
from tests.conftest import spec_params

CONFIGS = [
    pytest.param(spec, kwargs, id=f"{spec.name}-{i}")
    for spec in registry.SPECS
    for i, kwargs in enumerate(spec.test_configs)
]


def _schedule():
    """Warms up for 3 steps, decays until step 12, then stays: a resume at
    the wrong step would use the wrong rate."""
    return keras_opts.schedules.WarmupLinearDecay(
        0.01, total_steps=12, warmup_proportion=0.25, min_lr=1e-3
    )


def _decay_schedule():
    """A weight decay that changes at every step (one per batch below)."""
    return keras.optimizers.schedules.ExponentialDecay(0.05, 1, 0.8)


#: The lower-cased names of Keras' own optimizers: a keras_opts name among
#: them must keep meaning Keras' class in ``keras.optimizers.get``.
KERAS_NAMES = {name.lower() for name in dir(keras.optimizers)}


@pytest.mark.parametrize("spec", spec_params())
def test_config_lists_every_argument(spec):
    arguments = [
        name
        for name, p in inspect.signature(spec.cls.__init__).parameters.items()
        if name != "self" and p.kind is not p.VAR_KEYWORD
    ]
    config = spec.cls().get_config()
    assert sorted(set(arguments) - set(config)) == []


@pytest.mark.parametrize("spec, kwargs", CONFIGS)
def test_config_round_trip(spec, kwargs):
    optimizer = spec.cls(learning_rate=0.03, clipnorm=1.0, **kwargs)
    config = optimizer.get_config()
    assert config["learning_rate"] == 0.03
    for key, value in kwargs.items():
        if isinstance(value, dict) and "class_name" in value:  # an object
            assert config[key]["registered_name"] == value["class_name"]
            saved = config[key]["config"]
            assert {k: saved[k] for k in value["config"]} == value["config"]
        else:
            assert config[key] == value
    assert spec.cls.from_config(config).get_config() == config


@pytest.mark.parametrize("learning_rate", [1e-3, 3e-4, 0.1, 1 / 3, 2.5e-5])
def test_config_learning_rate_reads_as_written(learning_rate):
    """The learning rate is a float32 variable; its config is the shortest
    decimal of the stored value (0.001, not 0.0010000000474974513), and
    from_config gives the same stored value, bit for bit."""
    optimizer = keras_opts.RAdam(learning_rate=learning_rate)
    config = optimizer.get_config()
    assert config["learning_rate"] == float(str(np.float32(learning_rate)))
    if learning_rate in (1e-3, 3e-4, 0.1, 2.5e-5):
        assert config["learning_rate"] == learning_rate
    restored = keras_opts.RAdam.from_config(config)
    np.testing.assert_array_equal(
        restored._learning_rate.numpy(), optimizer._learning_rate.numpy()
    )
    assert restored.get_config() == config


@pytest.mark.parametrize("spec", spec_params())
def test_from_config_takes_defaults_for_missing_arguments(spec):
    """Keras' convention (``cls(**config)``), which
    ``keras.optimizers.get("keras_opts>RAdam")`` relies on."""
    default = spec.cls().get_config()
    for config in ({}, {"learning_rate": 0.25}):
        restored = spec.cls.from_config(config).get_config()
        expected = {**default, **config}
        del restored["name"], expected["name"]
        assert restored == expected


@helpers.needs_keras_string_lookup
@pytest.mark.parametrize("spec", spec_params())
def test_keras_get_takes_the_registered_name(spec):
    registered = f"keras_opts>{spec.cls.__name__}"
    optimizer = keras.optimizers.get(registered)
    assert type(optimizer) is spec.cls


@pytest.mark.parametrize("spec", spec_params())
def test_keras_get_and_compile_take_the_dict_form_on_every_keras(spec):
    registered = f"keras_opts>{spec.cls.__name__}"
    configured = keras.optimizers.get(
        {"class_name": registered, "config": {"learning_rate": 0.25}}
    )
    assert type(configured) is spec.cls
    assert configured.get_config()["learning_rate"] == 0.25
    model = _model({"class_name": registered, "config": {}})
    assert type(model.optimizer) is spec.cls


@pytest.mark.skipif(
    helpers.KERAS_GET_TAKES_NAMES, reason="Keras < 3.16 finds the names"
)
def test_keras_316_refuses_strings_as_readme_says():
    # README: on Keras 3.16 a string names Keras' own optimizers only;
    # should Keras find ours again, README and these tests must change.
    for name in ("radam", "keras_opts>RAdam"):
        with pytest.raises(ValueError, match="Could not interpret optimizer"):
            keras.optimizers.get(name)
    assert type(keras_opts.get("radam")) is keras_opts.RAdam


@helpers.needs_keras_string_lookup
@pytest.mark.parametrize("spec", spec_params())
def test_keras_get_takes_short_names_but_never_shadows_keras(spec):
    for name in (spec.name, spec.cls.__name__, *spec.aliases):
        optimizer = keras.optimizers.get(name)
        if name.lower() in KERAS_NAMES:  # Keras' own class, not ours
            assert type(optimizer).__module__.startswith("keras.")
            assert type(optimizer).__name__.lower() == name.lower()
        else:
            assert type(optimizer) is spec.cls


def test_keras_names_keep_their_meaning():
    """Keras looks its lower-cased names up among the custom objects
    first: keras_opts registers none of them."""
    for name in ("adam", "Adam", "sgd", "SGD", "rmsprop", "adamw", "nadam"):
        optimizer = keras.optimizers.get(name)
        assert type(optimizer).__module__.startswith("keras.")
    ours = {
        key.lower()
        for key, value in keras.saving.get_custom_objects().items()
        if ">" not in key and value.__module__.startswith("keras_opts.")
    }
    assert "radam" in ours
    assert not ours & KERAS_NAMES


@helpers.needs_keras_string_lookup
def test_compile_takes_a_registered_or_short_name():
    for name in ("keras_opts>Yogi", "Yogi", "yogi"):
        assert type(_model(name).optimizer) is keras_opts.Yogi
    model = _model("radam")
    assert type(model.optimizer) is keras_opts.RAdam
    model.fit(*_data(), batch_size=32, epochs=1, verbose=0)
    assert type(_model("adam").optimizer) is not keras_opts.Adam


def test_get_of_none_is_none():
    assert keras_opts.get(None) is None
    assert keras.optimizers.get(None) is None


@pytest.mark.parametrize("spec", spec_params())
def test_default_name_is_the_lower_cased_class_name(spec):
    """Not Keras' snake case of the class name (``r_adam``); made unique
    by Keras' counter, which Keras' own optimizers share."""
    lower = spec.cls.__name__.lower()
    first, second = spec.cls(), spec.cls()
    assert re.fullmatch(rf"{lower}(_\d+)?", first.name)
    assert re.fullmatch(rf"{lower}_\d+", second.name)
    assert first.name != second.name
    assert spec.cls(name="mine").name == "mine"


@pytest.mark.parametrize("spec", spec_params())
def test_keras_serialization_round_trip_with_schedule(spec):
    """Learning rate and weight decay both schedules."""
    kwargs = {**spec.test_configs[-1], "weight_decay": _decay_schedule()}
    optimizer = spec.cls(learning_rate=_schedule(), **kwargs)
    config = optimizer.get_config()
    assert config["weight_decay"]["class_name"] == "ExponentialDecay"
    serialized = keras.saving.serialize_keras_object(optimizer)
    assert serialized["registered_name"] == f"keras_opts>{spec.cls.__name__}"
    restored = keras.saving.deserialize_keras_object(serialized)
    assert type(restored) is spec.cls
    assert restored.get_config() == optimizer.get_config()
    assert keras_opts.get(serialized).get_config() == optimizer.get_config()


@pytest.mark.parametrize("spec", spec_params())
def test_get_resolves_names_aliases_and_short_configs(spec):
    for name in (spec.name, spec.cls.__name__, *spec.aliases):
        assert type(keras_opts.get(name)) is spec.cls
        assert type(keras_opts.get(name.upper())) is spec.cls
    short = {"class_name": spec.cls.__name__, "config": {"epsilon": 0.5}}
    if "epsilon" not in spec.cls().get_config():
        short["config"] = {}
    assert type(keras_opts.get(short)) is spec.cls
    instance = spec.cls()
    assert keras_opts.get(instance) is instance


def test_get_rejects_unknown_names_and_types():
    with pytest.raises(ValueError, match="Unknown keras_opts optimizer 'nope'"):
        keras_opts.get("nope")
    with pytest.raises(TypeError, match="identifier=3"):
        keras_opts.get(3)
    with pytest.raises(ValueError, match="class_name"):
        keras_opts.get({"name": "adam"})


def _data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 5)).astype("float32")
    y = (x @ rng.standard_normal((5, 1))).astype("float32")
    return x, y


def _model(optimizer):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Dense(8, activation="tanh"),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer=optimizer, loss="mse")
    return model


@pytest.mark.parametrize(
    "spec", helpers.shared(spec_params(), "fit_reduces_loss")
)
def test_fit_reduces_loss(spec):
    x, y = _data()
    model = _model(spec.cls(**spec.convergence["parabola"][0]))
    history = model.fit(x, y, batch_size=16, epochs=20, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize(
    "spec", helpers.shared(spec_params(), "saved_model_resumes_exactly")
)
def test_saved_model_resumes_exactly(spec, tmp_path):
    """2 epochs, save, load (no custom_objects), 2 more == 4 epochs straight.

    Learning rate and weight decay are schedules of the step. Same
    backend, same device, same compiled program: bitwise equal.
    """
    x, y = _data()
    kwargs = {**spec.test_configs[-1], "weight_decay": _decay_schedule()}

    def optimizer():
        return spec.cls(learning_rate=_schedule(), **kwargs)

    straight = _model(optimizer())
    straight.fit(x, y, batch_size=16, epochs=4, shuffle=False, verbose=0)

    first = _model(optimizer())
    first.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    path = str(tmp_path / "m.keras")
    first.save(path)
    resumed = keras.models.load_model(path)
    assert type(resumed.optimizer) is spec.cls
    assert resumed.optimizer.get_config() == first.optimizer.get_config()
    assert int(resumed.optimizer.iterations) == 8
    for saved, loaded in zip(
        first.optimizer.variables, resumed.optimizer.variables
    ):
        np.testing.assert_array_equal(saved.numpy(), loaded.numpy())
    resumed.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)

    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_schedule_from_config_takes_defaults_for_missing_arguments():
    """Keras' convention for keras_opts' schedules too: ``cls(**config)``;
    a bad value or an unknown key still fails."""
    cls = keras_opts.schedules.GeometricDecay
    config = cls(0.01, steps_per_epoch=3).get_config()
    short = {"learning_rate": 0.01, "steps_per_epoch": 3}
    assert cls.from_config(short).get_config() == config
    with pytest.raises(ValueError, match="steps_per_epoch=1.5"):
        cls.from_config({**short, "steps_per_epoch": 1.5})
    with pytest.raises(TypeError, match="unexpected keyword argument 'nope'"):
        cls.from_config({**short, "nope": 1})
