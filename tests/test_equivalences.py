"""Relationships the math implies, checked between our own optimizers."""

import numpy as np
import pytest

from keras_opts import SGD, Adam, AdamW, Nadam, RAdam
from tests import helpers

STEPS = 30


def _run(optimizer, seed=9):
    params, grads = helpers.random_problem(seed=seed, steps=STEPS)
    return params, grads, helpers.run_keras_optimizer(optimizer, params, grads)


def test_sgd_without_momentum_is_plain_gradient_descent():
    """Each step is ``p - 0.1 g`` rounded to float32, bitwise: either as
    two roundings (product, then difference) or as one fused multiply-add
    (torch's multi-tensor kernels use FMA where the CPU has it)."""
    params, grads, history = _run(SGD(learning_rate=0.1))
    lr = np.float32(0.1)
    previous = [np.asarray(p, np.float32) for p in params]
    for step, step_grads in enumerate(grads):
        for actual, p, g in zip(history[step], previous, step_grads):
            two_roundings = p - lr * g
            # float64 holds the product of two float32 exactly, so this
            # is the single rounding of p - lr g (up to a double rounding
            # tie, which these random values do not hit).
            fused = (p.astype(np.float64) - np.float64(lr) * g).astype(
                np.float32
            )
            assert np.all((actual == two_roundings) | (actual == fused))
        previous = [np.float32(a) for a in history[step]]


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


def test_nesterov_without_momentum_is_plain_gradient_descent():
    _, _, nesterov = _run(SGD(learning_rate=0.1, nesterov=True))
    _, _, plain = _run(SGD(learning_rate=0.1))
    helpers.assert_histories_close(nesterov, plain, 0.0, "nesterov mu=0")


@pytest.mark.parametrize("epsilon_mode", ["corrected", "uncorrected"])
def test_adamw_without_decay_is_adam(epsilon_mode):
    kwargs = {"learning_rate": 0.01, "epsilon_mode": epsilon_mode}
    _, _, adamw = _run(AdamW(weight_decay=0.0, **kwargs))
    _, _, adam = _run(Adam(**kwargs))
    # The same operations in the same order: bitwise equal.
    helpers.assert_histories_close(adamw, adam, 0.0, "adamw wd=0")


def test_adamw_schedule_scaling_with_a_constant_rate_decays_by_lambda():
    """Paper form, constant rate: eta_t = 1, so each step multiplies the
    weights by (1 - lambda) before Adam's step; the learning-rate form
    with weight_decay = lambda / lr is the same."""
    paper = AdamW(0.01, weight_decay=0.02, weight_decay_scaling="schedule")
    _, _, ours = _run(paper)
    _, _, torch_form = _run(AdamW(0.01, weight_decay=2.0))
    tol = helpers.float32_tolerance(torch_form, STEPS)
    helpers.assert_histories_close(ours, torch_form, tol, "scalings")


def test_nadam_without_momentum_is_adam_without_momentum():
    """beta_1 = 0 makes every mu_t = 0: the update is g / (sqrt(v_hat) +
    eps), Adam's with beta_1 = 0 (Dozat, section 3)."""
    _, _, nadam = _run(Nadam(learning_rate=0.01, beta_1=0.0))
    _, _, adam = _run(Adam(learning_rate=0.01, beta_1=0.0))
    tol = helpers.float32_tolerance(adam, STEPS)
    helpers.assert_histories_close(nadam, adam, tol, "nadam b1=0")
