"""Bad arguments fail at construction, naming the argument and the value.

The table is data: (argument, bad value, exception, message pattern). Each
row runs against every optimizer that has the argument, and the error must
come before any variable exists. Every error is a ``ValueError``, the type
Keras' own optimizers raise for a bad argument; one of the wrong type is a
``TypeError`` too.
"""

import math

import keras
import pytest

from tests import specs as registry

BAD = [
    (
        "learning_rate",
        0.0,
        ValueError,
        r"`learning_rate` must be in \(0, inf\)",
    ),
    ("learning_rate", -1e-3, ValueError, r"Received: learning_rate=-0.001"),
    ("learning_rate", math.nan, ValueError, r"`learning_rate` must be finite"),
    ("learning_rate", math.inf, ValueError, r"learning_rate=inf"),
    ("learning_rate", "fast", TypeError, r"learning_rate='fast'"),
    ("beta_1", 1.0, ValueError, r"`beta_1` must be in [\[(]0, 1\)"),
    ("beta_1", -0.1, ValueError, r"Received: beta_1=-0.1"),
    ("beta_2", 1.5, ValueError, r"Received: beta_2=1.5"),
    ("beta_2", None, TypeError, r"`beta_2` must be a real number"),
    ("epsilon", 0.0, ValueError, r"`epsilon` must be in \(0, inf\)"),
    ("epsilon", -1e-8, ValueError, r"Received: epsilon=-1e-08"),
    ("epsilon_mode", "outside", ValueError, r"`epsilon_mode` must be one of"),
    ("momentum", 1.5, ValueError, r"Received: momentum=1.5"),
    ("momentum", True, TypeError, r"momentum=True of type bool"),
    ("dampening", -0.5, ValueError, r"Received: dampening=-0.5"),
    ("nesterov", 1, TypeError, r"`nesterov` must be a bool"),
    ("momentum_form", "keras", ValueError, r"momentum_form='keras'"),
    ("dampen_first_step", "no", TypeError, r"dampen_first_step='no'"),
    ("amsgrad", "yes", TypeError, r"Received: amsgrad='yes'"),
    (
        "rectify_threshold",
        3.0,
        ValueError,
        r"`rectify_threshold` must be in \[4",
    ),
    ("coupled_weight_decay", -0.1, ValueError, r"coupled_weight_decay=-0.1"),
    ("rho", 1.0, ValueError, r"`rho` must be in \[0, 1\)"),
    ("centered", None, TypeError, r"Received: centered=None"),
    ("initial_accumulator_value", -1.0, ValueError, r"value=-1.0"),
    ("lr_decay", -0.5, ValueError, r"Received: lr_decay=-0.5"),
    (
        "momentum_decay",
        math.nan,
        ValueError,
        r"`momentum_decay` must be finite",
    ),
    ("weight_decay", -0.01, ValueError, r"Received: weight_decay=-0.01"),
    ("weight_decay", "0.1", TypeError, r"weight_decay='0.1' of type str"),
    (
        "weight_decay",
        keras.optimizers.schedules.ExponentialDecay,
        TypeError,
        r"`weight_decay` must be .* not a class",
    ),
    ("weight_decay_scaling", "lr", ValueError, r"weight_decay_scaling='lr'"),
    ("base_learning_rate", 0.0, ValueError, r"base_learning_rate=0.0"),
    ("clipnorm", -1.0, ValueError, r"Received: clipnorm=-1.0"),
    ("clipvalue", math.inf, ValueError, r"`clipvalue` must be finite"),
    ("global_clipnorm", "1", TypeError, r"global_clipnorm='1'"),
    ("loss_scale_factor", 0.0, ValueError, r"loss_scale_factor=0.0"),
    ("ema_momentum", 1.5, ValueError, r"ema_momentum=1.5"),
    ("gradient_accumulation_steps", 1, ValueError, r"steps=1"),
    ("beta_3", 1.0, ValueError, r"`beta_3` must be in \[0, 1\)"),
    ("trust_coefficient", 0.0, ValueError, r"trust_coefficient=0.0"),
    ("d0", -1e-6, ValueError, r"Received: d0=-1e-06"),
    ("grad_averaging", 1, TypeError, r"`grad_averaging` must be a bool"),
    ("bias_correction", "no", TypeError, r"bias_correction='no'"),
    ("lazy_rows", "yes", TypeError, r"Received: lazy_rows='yes'"),
    ("warmup_steps", -1, ValueError, r"Received: warmup_steps=-1"),
    ("warmup_steps", 2.5, TypeError, r"`warmup_steps` must be an integer"),
    ("r", -1.0, ValueError, r"`r` must be in \[0, inf\)"),
    ("weight_lr_power", math.nan, ValueError, r"weight_lr_power.* finite"),
    ("bias_correction_in", "v", ValueError, r"bias_correction_in='v'"),
    ("silent_sgd_phase", 0, TypeError, r"silent_sgd_phase=0 of type int"),
]

CASES = [
    pytest.param(
        spec, arg, value, error, pattern, id=f"{spec.name}-{arg}-{value!r}"
    )
    for spec in registry.SPECS
    for arg, value, error, pattern in BAD
    if arg in spec.cls().get_config()
    and not (
        arg == "epsilon" and value == 0 and "zero_epsilon" in spec.capabilities
    )
]


@pytest.fixture
def created_variables(monkeypatch):
    """Names of the ``keras.Variable``s created while the test runs."""
    created = []
    original = keras.Variable.__init__

    def spy(self, *args, **kwargs):
        created.append(kwargs.get("name"))
        original(self, *args, **kwargs)

    monkeypatch.setattr(keras.Variable, "__init__", spy)
    return created


@pytest.mark.parametrize("spec, arg, value, error, pattern", CASES)
def test_bad_argument_is_rejected_before_any_variable(
    spec, arg, value, error, pattern, created_variables
):
    kwargs = {arg: value}
    if arg == "ema_momentum":  # only checked when EMA is on
        kwargs["use_ema"] = True
    with pytest.raises(error, match=pattern) as raised:
        spec.cls(**kwargs)
    assert isinstance(raised.value, ValueError)  # as Keras would raise
    assert created_variables == []


def test_the_variable_spy_sees_construction(created_variables):
    registry.SPECS[0].cls()
    assert "iteration" in created_variables


@pytest.mark.parametrize(
    "spec", [pytest.param(s, id=s.name) for s in registry.SPECS]
)
def test_unknown_keyword_is_rejected(spec):
    with pytest.raises(ValueError, match="beta1"):
        spec.cls(beta1=0.9)


def test_every_table_argument_is_exercised():
    """Each row of the table reaches at least one optimizer."""
    tested = {arg for _, arg, *_ in (c.values for c in CASES)}
    assert tested == {arg for arg, *_ in BAD}


CONFIG_CASES = [pytest.param(s, id=s.name) for s in registry.SPECS]


@pytest.mark.parametrize("spec", CONFIG_CASES)
def test_from_config_rejects_extra_and_wrong_typed_fields(spec):
    """A missing field takes its default, as in Keras (see
    test_serialization.py); an unknown one or a bad value fails."""
    config = spec.cls().get_config()
    with pytest.raises(ValueError, match="beta9"):
        spec.cls.from_config({**config, "beta9": 0.5})
    with pytest.raises(TypeError, match="learning_rate='0.1'"):
        spec.cls.from_config({**config, "learning_rate": "0.1"})
    with pytest.raises(TypeError, match="must be a dict"):
        spec.cls.from_config([("learning_rate", 0.1)])


@pytest.mark.parametrize("spec", CONFIG_CASES)
def test_schedule_where_a_number_is_needed_and_the_reverse(spec):
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    with pytest.raises(TypeError, match="coupled_weight_decay=<"):
        spec.cls(coupled_weight_decay=schedule)
    with pytest.raises(TypeError, match="not a class"):
        spec.cls(learning_rate=keras.optimizers.schedules.ExponentialDecay)


def test_shared_arguments_follow_keras():
    """Where a Keras built-in checks an argument keras_opts shares, the
    same values pass and the same exception type is raised (keras_opts'
    further checks are listed in docs/porting.md)."""
    import keras_opts

    for cls in (keras.optimizers.SGD, keras_opts.SGD):
        for momentum in (0.0, 0.5, 1.0):
            assert cls(momentum=momentum).momentum == momentum
        for momentum in (-0.1, 1.5, True, "0.5"):
            with pytest.raises(ValueError):
                cls(momentum=momentum)
    for cls in (keras.optimizers.AdamW, keras_opts.AdamW):
        with pytest.raises(ValueError, match="weight_decay"):
            cls(weight_decay=None)


@pytest.mark.parametrize("spec", CONFIG_CASES)
def test_weight_decay_takes_a_schedule_or_a_callable(spec):
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    assert spec.cls(weight_decay=schedule).weight_decay is schedule
    assert spec.cls(weight_decay=lambda: 0.1).weight_decay() == 0.1


#: Arguments of an optimizer's signature that are not its hyperparameters:
#: Keras' (checked by the base class, saved by Keras) and the name.
NOT_DECLARED = {"self", "learning_rate", "name", "kwargs"}


@pytest.mark.parametrize("spec", registry.SPECS, ids=lambda s: s.name)
def test_every_argument_is_declared_once_with_its_rule(spec):
    """The signature is the source of each hyperparameter: every argument
    has a rule (so it is checked, set and saved without more code), the
    config holds exactly the declared ones beside Keras', and an optimizer
    built from its defaults has each default as its attribute."""
    import inspect

    from keras_opts._core import config
    from keras_opts._core.base import Optimizer

    declared = config.declared(spec.cls)
    parameters = inspect.signature(spec.cls.__init__).parameters
    undeclared = set(parameters) - NOT_DECLARED - set(declared)
    assert not undeclared, f"{spec.cls.__name__}: no rule for {undeclared}"
    optimizer = spec.cls()
    saved = optimizer.get_config()
    keras_keys = set(keras.optimizers.Optimizer(1.0).get_config())
    assert set(saved) - keras_keys == set(declared) - {"weight_decay"}
    for name in declared:
        if name in parameters and name != "weight_decay":
            default = parameters[name].default
            assert getattr(optimizer, name) == default, name
    assert set(config.declared(Optimizer)) <= set(declared)
