"""Algorithm options beyond the registry's shared tests: a first step
checked by hand, and their edge cases."""

import keras
import numpy as np
import pytest

from keras_opts import LARS, MADGRAD, AdaBelief, NovoGrad
from tests import helpers, oracles


def test_novograd_first_averaged_step_is_the_bracket():
    """m_1 = u_1 = g / ||g|| under grad_averaging (paper's moment
    initialisation, tensorflow-addons); (1 - beta_1) u_1 with
    average_first_step."""
    g = np.array([3.0, -4.0], np.float32)
    for first, factor in ((False, 1.0), (True, 0.05)):
        w = keras.Variable([1.0, -2.0])
        NovoGrad(
            0.1, beta_1=0.95, grad_averaging=True, average_first_step=first
        ).apply([keras.ops.convert_to_tensor(g)], [w])
        expected = np.array([1.0, -2.0]) - 0.1 * factor * g / 5.0
        # A few float32 roundings of weights of magnitude up to 2.
        atol = 8 * helpers.FLOAT32_EPS
        np.testing.assert_allclose(w.numpy(), expected, rtol=0, atol=atol)


def test_novograd_average_first_step_must_be_a_bool():
    with pytest.raises(TypeError, match="average_first_step=1"):
        NovoGrad(average_first_step=1)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_madgrad_without_epsilon_leaves_a_never_seen_coordinate(momentum):
    """``epsilon=0`` (the authors' package's setting in the parity tests):
    where every gradient so far was 0, ``s = nu = 0`` and ``s / nu^(1/3)``
    is 0/0. The coordinate stays where it is. With ``momentum=0`` that is
    every coordinate at step 1, where theta_0 is recovered from
    ``s_0 / nu_0^(1/3)``."""
    params = [np.array([1.0, -2.0, 0.5], np.float32)]
    grads = [
        [np.array(g, np.float32)]
        for g in ([0.5, 0.0, -1.0], [0.25, 0.0, 2.0], [1.0, 0.0, 0.0])
    ]
    kwargs = {"momentum": momentum, "epsilon": 0.0}
    ours = helpers.run_keras_optimizer(MADGRAD(0.1, **kwargs), params, grads)
    expected = oracles.run(
        oracles.MADGRADOracle(**kwargs), params, grads, [0.1] * len(grads)
    )
    assert all(np.isfinite(step[0]).all() for step in expected)
    assert all(step[0][1] == -2.0 for step in ours)
    tol = helpers.float32_tolerance(expected, len(grads))
    helpers.assert_histories_close(ours, expected, tol, "madgrad")


def _dense_step(**kwargs):
    """One LARS step on a Dense layer's kernel and bias (names ``kernel``
    and ``bias``), gradients of ones: the weights before and after."""
    layer = keras.layers.Dense(3)
    layer.build((None, 2))
    layer.bias.assign([0.5, -1.0, 2.0])
    variables = [layer.kernel, layer.bias]
    before = [np.array(v.numpy(), np.float64) for v in variables]
    grads = [keras.ops.ones((2, 3)), keras.ops.ones((3,))]
    optimizer = LARS(0.1, momentum=0.0, trust_coefficient=0.01, **kwargs)
    optimizer.apply(grads, variables)
    return before, [np.array(v.numpy(), np.float64) for v in variables]


def _lars_ratio(weights, grad_norm):
    return 0.01 * np.linalg.norm(weights) / grad_norm


# A few float32 roundings of weights of magnitude up to 2.
ATOL = 8 * helpers.FLOAT32_EPS


@pytest.mark.parametrize(
    "kwargs",
    [
        {"exclude_from_layer_adaptation": ["bias"]},
        {"exclude_from_layer_adaptation": ("gamma", "bia")},
        {"adapt_vectors": False},
    ],
)
def test_lars_excluded_variables_take_the_global_rate(kwargs):
    (kernel, bias), (new_kernel, new_bias) = _dense_step(**kwargs)
    ratio = _lars_ratio(kernel, np.sqrt(6))
    np.testing.assert_allclose(new_bias, bias - 0.1, rtol=0, atol=ATOL)
    expected = kernel - 0.1 * ratio
    np.testing.assert_allclose(new_kernel, expected, rtol=0, atol=ATOL)


def test_lars_adapts_every_variable_by_default():
    (kernel, bias), (new_kernel, new_bias) = _dense_step()
    expected = bias - 0.1 * _lars_ratio(bias, np.sqrt(3))
    np.testing.assert_allclose(new_bias, expected, rtol=0, atol=ATOL)
    expected = kernel - 0.1 * _lars_ratio(kernel, np.sqrt(6))
    np.testing.assert_allclose(new_kernel, expected, rtol=0, atol=ATOL)


def test_lars_exclusion_round_trips_its_config():
    optimizer = LARS(exclude_from_layer_adaptation=("bias",))
    config = optimizer.get_config()
    assert config["exclude_from_layer_adaptation"] == ["bias"]
    assert config["adapt_vectors"] is True
    restored = LARS.from_config(config)
    assert restored.exclude_from_layer_adaptation == ["bias"]


@pytest.mark.parametrize(
    "value, error, message",
    [
        ("bias", TypeError, "list of regular expressions"),
        ([3], TypeError, "must hold strings"),
        (["bias("], ValueError, "invalid regular expression 'bias\\('"),
    ],
)
def test_lars_exclusion_patterns_are_checked(value, error, message):
    with pytest.raises(error, match=message) as info:
        LARS(exclude_from_layer_adaptation=value)
    assert f"exclude_from_layer_adaptation={value!r}" in str(info.value)


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adabelief_amsgrad_slot_exists_only_with_amsgrad(amsgrad):
    """Optimizer variables are saved by position: the maximum comes last,
    one per variable in their order, and only with ``amsgrad``."""
    variables = [keras.Variable(np.ones(3), name="a"), keras.Variable(2.0)]
    optimizer = AdaBelief(amsgrad=amsgrad)
    optimizer.build(variables)
    names = [v.name for v in optimizer.variables[2:]]
    slots = ["momentum", "belief"] + (["max_belief"] if amsgrad else [])
    assert len(names) == 2 * len(slots)
    for i, slot in enumerate(slots):
        assert all(slot in name for name in names[2 * i : 2 * i + 2])
        assert "max_belief" not in names[2 * i] or slot == "max_belief"


def test_adabelief_amsgrad_divides_by_the_largest_belief():
    """A large gradient, then small ones: the belief decays (beta = 0.5),
    but with amsgrad the step keeps the denominator of the large one."""
    grads = [[np.array([10.0], np.float32)]] + [
        [np.array([0.1], np.float32)]
    ] * 20
    params = [np.array([1.0], np.float32)]
    moved = {}
    for amsgrad in (False, True):
        optimizer = AdaBelief(0.01, 0.5, 0.5, amsgrad=amsgrad)
        history = helpers.run_keras_optimizer(optimizer, params, grads)
        moved[amsgrad] = abs(history[-1][0][0] - history[-2][0][0])
    assert moved[True] < 0.1 * moved[False]
