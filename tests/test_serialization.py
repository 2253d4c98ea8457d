"""Configs, Keras serialization, ``keras_opts.get`` and ``.keras`` resume."""

import inspect

import keras
import numpy as np
import pytest

import keras_opts
from keras_opts import registry
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
    for key, value in kwargs.items():
        assert config[key] == value
    assert spec.cls.from_config(config).get_config() == config


@pytest.mark.parametrize("spec", spec_params())
def test_keras_serialization_round_trip_with_schedule(spec):
    optimizer = spec.cls(learning_rate=_schedule(), **spec.test_configs[-1])
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


@pytest.mark.parametrize("spec", spec_params())
def test_fit_reduces_loss(spec):
    x, y = _data()
    model = _model(spec.cls(**spec.convergence["parabola"][0]))
    history = model.fit(x, y, batch_size=16, epochs=20, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("spec", spec_params())
def test_saved_model_resumes_exactly(spec, tmp_path):
    """2 epochs, save, load (no custom_objects), 2 more == 4 epochs straight.

    Same backend, same device, same compiled program: bitwise equal.
    """
    x, y = _data()
    kwargs = dict(spec.test_configs[-1])

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
