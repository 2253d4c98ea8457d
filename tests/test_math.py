"""The shared ``keras.ops`` helpers against float64 NumPy, over many inputs.

The helpers run in float32; the claims checked are their relative errors,
a few float32 ulps (2**-23 = 1.2e-7), where the naive float32 formulas
lose up to five digits.
"""

import math

import keras
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_opts._core import formulas, kernels

ULP = float(np.finfo(np.float32).eps)
decays = st.floats(0.0, 0.99999)
steps = st.integers(1, 10**6)


def _value(x):
    return float(keras.ops.convert_to_numpy(x))


@settings(max_examples=200, deadline=None)
@given(decay=decays, step=steps)
def test_bias_correction_is_accurate(decay, step):
    t = keras.ops.convert_to_tensor(float(step))
    expected = -math.expm1(step * math.log(decay)) if decay else 1.0
    got = _value(formulas.bias_correction(decay, t))
    assert abs(got - expected) <= 4 * ULP * expected


@settings(max_examples=200, deadline=None)
@given(beta_2=st.floats(0.5, 0.99999), step=steps)
def test_radam_sma_length_is_accurate(beta_2, step):
    t = keras.ops.convert_to_tensor(float(step))
    rho_inf = 2 / (1 - beta_2) - 1
    # float64 with the same expm1 care, so that the reference is exact to
    # about 1e-12 even where beta_2 ** t is close to 1.
    one_minus_power = -math.expm1(step * math.log(beta_2))
    expected = rho_inf - 2 * step * (1 - one_minus_power) / one_minus_power
    got = _value(formulas.radam_sma_length(beta_2, t))
    assert abs(got - expected) <= 8 * ULP * expected


def test_radam_sma_length_first_step_is_one():
    for beta_2 in (0.9, 0.99, 0.999, 0.9999):
        t = keras.ops.convert_to_tensor(1.0)
        assert abs(_value(formulas.radam_sma_length(beta_2, t)) - 1) < 4 * ULP


@settings(max_examples=100, deadline=None)
@given(
    v=st.floats(0.0, 1e4),
    beta_2=st.floats(0.5, 0.9999),
    step=st.integers(1, 10**4),
    epsilon=st.floats(1e-8, 1e-2),
)
def test_adam_step_places_epsilon_as_documented(v, beta_2, step, epsilon):
    """``step_size / denominator(v)`` of an Adam-type step is the adaptive
    factor ``1 / sqrt(v_hat)`` with epsilon where each mode puts it (with
    ``learning_rate = 1`` and ``beta_1 = 0``, whose bias correction is 1)."""
    t = keras.ops.convert_to_tensor(float(step))
    v32 = float(np.float32(v))
    c = -math.expm1(step * math.log(beta_2))
    expected = {
        "corrected": 1 / (math.sqrt(v32 / c) + epsilon),
        "uncorrected": math.sqrt(c) / (math.sqrt(v32) + epsilon),
        "inside_sqrt": math.sqrt(c / (v32 + epsilon)),
    }
    k = kernels.Single(optimizer=None)  # on tensors: no assignments
    vt = keras.ops.convert_to_tensor(v32)
    one = keras.ops.convert_to_tensor(1.0)
    for mode, value in expected.items():
        scalars = formulas.adam_coefficients(one, t, 0.0, beta_2, epsilon, mode)
        got = scalars.step_size / formulas.denominator(
            k, vt, scalars.denominator_epsilon, mode
        )
        assert abs(_value(got) - value) <= 16 * ULP * value, mode
