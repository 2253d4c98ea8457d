"""Algorithm options beyond the registry's shared tests: a first step
checked by hand, and their edge cases."""

import keras
import numpy as np
import pytest

from keras_opts import NovoGrad


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
