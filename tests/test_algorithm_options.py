"""Algorithm options beyond the registry's shared tests: a first step
checked by hand, and their edge cases."""

import keras
import numpy as np
import pytest

from keras_opts import MADGRAD, NovoGrad
from keras_opts.testing import oracles
from tests import helpers


def test_novograd_first_averaged_step_is_the_bracket():
    """m_1 = u_1 = g / ||g|| under grad_averaging (paper's moment
    initialisation, tensorflow-addons); (1 - beta_1) u_1 with
    average_first_step."""
    g = np.array([3.0, -4.0], np.float32)
    for first, factor in ((False, 1.0), (True, 0.05)):
        w = keras.Variable([1.0, -2.0])
        NovoGrad(
            0.1, beta_1=0.95, grad_averaging=True, average_first_step=first
        ).apply([g], [w])
        expected = np.array([1.0, -2.0]) - 0.1 * factor * g / 5.0
        np.testing.assert_allclose(w.numpy(), expected, rtol=1e-6)


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
