"""Relationships the math implies, checked between our own optimizers."""

import numpy as np
import pytest

from keras_opts import SGD, RAdam
from tests import helpers

STEPS = 30


def _run(optimizer, seed=9):
    params, grads = helpers.random_problem(seed=seed, steps=STEPS)
    return params, grads, helpers.run_keras_optimizer(optimizer, params, grads)


def test_sgd_without_momentum_is_plain_gradient_descent():
    params, grads, history = _run(SGD(learning_rate=0.1))
    expected = [np.asarray(p, np.float32) for p in params]
    for step, step_grads in enumerate(grads):
        # The same float32 operation per step: bitwise equal.
        expected = [
            p - np.float32(0.1) * g for p, g in zip(expected, step_grads)
        ]
        for actual, e in zip(history[step], expected):
            np.testing.assert_array_equal(actual, e)


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_forms_agree_under_a_constant_learning_rate(nesterov):
    """``v_step = -lr * v_gradient`` when lr is constant (Sutskever vs
    torch form); they differ only by float32 rounding."""
    kwargs = {"learning_rate": 0.05, "momentum": 0.9, "nesterov": nesterov}
    _, _, gradient_form = _run(SGD(**kwargs))
    _, _, step_form = _run(SGD(momentum_form="step", **kwargs))
    tol = helpers.float32_tolerance(gradient_form, STEPS)
    helpers.assert_histories_close(step_form, gradient_form, tol, "forms")


def test_radam_never_rectified_with_beta_1_zero_is_sgd():
    """Below the threshold RAdam steps along m_hat; with beta_1 = 0 that is
    the gradient itself, so RAdam is plain gradient descent."""
    _, _, radam = _run(
        RAdam(learning_rate=0.1, beta_1=0.0, rectify_threshold=1e9)
    )
    _, _, sgd = _run(SGD(learning_rate=0.1))
    tol = helpers.float32_tolerance(sgd, STEPS)
    helpers.assert_histories_close(radam, sgd, tol, "radam vs sgd")
