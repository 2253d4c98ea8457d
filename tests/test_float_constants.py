"""Constants are formed from Python floats, not in float32.

``1 - beta_2`` computed in float32 from ``float32(0.9999)`` is off by
1.7e-4 relative (``float32(0.9999) = 0.99989998``), and an EMA built with
it drifts from the float64 algorithm by about that much: ADOPT, at 50 steps,
by 2.6e-5 of the distance it moved. Every registry optimizer runs here at
decay rates close to 1 (``Spec.decays_near_one``) in float32 against its
float64 NumPy oracle.

Error measure: the largest entry-wise distance between the float32 and the
oracle's trajectories, over the 50 steps, divided by the largest entry-wise
displacement ``|theta_50 - theta_0|`` of the oracle. The starting point is
small (1e-4 of a standard normal; each optimizer moves at least 25 times
that far), so the magnitudes float32 rounds at are those of the
displacement. The bound is 10 roundings (10 * 2**-23 = 1.2e-6) of the
displacement: each step rounds the parameter once and its update a few
times, which over 50 steps add up as a random walk to a few roundings
(measured: at most 4.9, on every backend). A constant formed in float32
costs more: before they were formed from Python floats, ADOPT drifted by
215 roundings, AdEMAMix (its warmed-up ``1 - beta_3``) by 44 and NovoGrad
by 20 (its second moment starts at ``||g_1||^2``, so the ``1 - beta_2``
terms are a small part of it).
"""

import math

import keras
import numpy as np
import pytest

from keras_opts import Nadam
from keras_opts._core import formulas
from tests import helpers
from tests import specs as registry
from tests.conftest import spec_params

STEPS = 50
BOUND = 10 * helpers.FLOAT32_EPS
START_SCALE = np.float32(1e-4)


def test_every_spec_has_decays_near_one():
    for spec in registry.SPECS:
        assert spec.decays_near_one, spec.name


@pytest.mark.parametrize(
    "spec",
    helpers.shared(
        spec_params(), "float32_follows_the_float64_oracle_at_decays_near_one"
    ),
)
def test_float32_follows_the_float64_oracle_at_decays_near_one(spec):
    kwargs = dict(spec.decays_near_one)
    params, grads = helpers.random_problem(seed=4, steps=STEPS)
    params = [START_SCALE * p for p in params]
    optimizer = spec.cls(learning_rate=spec.lr, **kwargs)
    ours = helpers.run_keras_optimizer(optimizer, params, grads)
    expected = helpers.run_oracle(
        spec, kwargs, params, grads, [spec.lr] * STEPS
    )
    displacement = max(
        float(np.max(np.abs(p - p0))) for p, p0 in zip(expected[-1], params)
    )
    start = max(float(np.max(np.abs(p0))) for p0 in params)
    assert displacement >= 25 * start, "the problem no longer moves enough"
    error = helpers.max_abs_difference(ours, expected)
    assert error <= BOUND * displacement, (
        f"{spec.name}: float32 drifted by {error / displacement:.3g} of the "
        f"displacement (bound {BOUND:.3g})"
    )


def test_nadam_one_minus_mu_is_formed_from_python_floats():
    """``1 - mu_t`` with ``mu_t = beta_1`` (``momentum_decay=1e6``): from
    ``float32(mu_t)`` it would be off by 1.3e-5 relative at 0.999."""
    beta_1, beta_2, lr = 0.999, 0.9999, 0.01
    optimizer = Nadam(lr, beta_1, beta_2, momentum_decay=1e6)
    optimizer.build([keras.Variable([1.0])])
    optimizer._begin_update()  # the product of the mu_i, i <= 1
    product = float(keras.ops.convert_to_numpy(optimizer._mu_product))
    one = keras.ops.convert_to_tensor(1.0)
    c = optimizer._coefficients(lr * one, one)
    got = float(keras.ops.convert_to_numpy(c.gradient_step))
    expected = lr * math.sqrt(1 - beta_2) * (1 - beta_1) / (1 - product)
    assert abs(got - expected) <= 4 * helpers.FLOAT32_EPS * abs(expected)


def test_an_ema_with_a_tensor_decay_needs_its_weight():
    decay = keras.ops.convert_to_tensor(0.9999)
    with pytest.raises(TypeError, match="pass its `weight`"):
        formulas.ema_weight(decay)
    assert formulas.ema_weight(decay, 1e-4) == 1e-4
    assert formulas.ema_weight(0.25) == 0.75
