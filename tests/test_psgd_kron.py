"""PSGD-Kron beyond the shared tests: against pytorch-optimizer's ``Kron``
given the same probes, one compiled step whatever the coin says, the
preconditioner's layout, and the whitening it is fitted for.

The shared tests (tests/specs.py) compare every configuration with the
float64 oracle, which draws the optimizer's coin and probes from a
``SeedGenerator`` with the same seed (``tests.oracles.psgd_kron.seeded``).
"""

import keras
import numpy as np
import pytest

from keras_opts import PSGDKron
from keras_opts._core import kron
from tests import helpers
from tests.oracles.psgd_kron import KerasDraws

STEPS = 30


def _run_pytorch_optimizer(kwargs, schedule, lr, params, grad_steps, probes):
    """pytorch-optimizer's Kron in float64, its ``torch.randn_like`` giving
    ``probes[step][k]``, the k-th probe it asks for at that step (it asks
    only on the steps it fits, one per parameter, in order)."""
    torch = pytest.importorskip("torch")
    psgd = pytest.importorskip("pytorch_optimizer.optimizer.psgd")
    tensors = [torch.tensor(p, dtype=torch.float64) for p in params]
    optimizer = psgd.Kron(
        tensors,
        lr=lr,
        pre_conditioner_update_probability=psgd.precondition_update_prob_schedule(
            **schedule
        ),
        precondition_dtype=torch.float64,
        **kwargs,
    )
    # Every fit rebalances the factors, as ours does (it leaves P as it is).
    optimizer.balance_prob = 1.0
    asked = []
    original = torch.randn_like

    def randn_like(like, dtype=None):
        step, k = asked[-1], len(asked) - 1
        asked.append(step)
        return torch.tensor(probes[step][k], dtype=dtype or like.dtype)

    history = []
    torch.randn_like = randn_like
    try:
        for step, grads in enumerate(grad_steps):
            asked[:] = [step]
            for tensor, grad in zip(tensors, grads):
                tensor.grad = torch.tensor(grad, dtype=torch.float64)
            optimizer.step()
            history.append([t.detach().numpy().copy() for t in tensors])
    finally:
        torch.randn_like = original
    return history


PYTORCH_OPTIMIZER = [
    pytest.param({"beta_1": 0.9}, {"momentum": 0.9}, id="defaults"),
    pytest.param(
        {"beta_1": 0.5, "weight_decay": 0.05, "memory_save_mode": "one_diag"},
        {"momentum": 0.5, "weight_decay": 0.05, "memory_save_mode": "one_diag"},
        id="decay-one-diag",
    ),
]


@pytest.mark.parametrize("ours, theirs", PYTORCH_OPTIMIZER)
def test_matches_pytorch_optimizer_kron(ours, theirs):
    """pytorch-optimizer 4.1's ``Kron`` (kron_torch's algorithm) and ours
    under the settings of the docstring's porting map, fed our probes:
    the same trajectory within float32 rounding (its triangular solves
    run in float32 even in float64). Its schedule is shortened so that the
    run has fitted and skipped steps; it decays only tensors of rank >= 2,
    so the vector is excluded from ours."""
    lr = 0.01
    schedule = {"min_prob": 0.3, "decay": 0.2, "flat_start": 5}
    params, grads = helpers.random_problem(seed=2, steps=STEPS)
    draws = KerasDraws(seed=7)
    probes = [[draws.probe(p.shape) for p in params] for _ in range(STEPS)]
    optimizer = PSGDKron(
        learning_rate=lr,
        seed=7,
        precond_update_schedule="counter",
        momentum_into_precond_update=True,
        precond_update_prob_min=schedule["min_prob"],
        precond_update_prob_decay=schedule["decay"],
        precond_update_flat_steps=schedule["flat_start"],
        **ours,
    )
    optimizer.exclude_from_weight_decay(var_names=["p0"])
    mine = helpers.run_keras_optimizer(optimizer, params, grads)
    theirs = _run_pytorch_optimizer(theirs, schedule, lr, params, grads, probes)
    tol = helpers.float32_tolerance(theirs, STEPS)
    helpers.assert_histories_close(mine, theirs, tol, "pytorch-optimizer")


def test_one_trace_whether_fitted_or_not():
    """Under ``jax.jit`` (TensorFlow's ``tf.function``) the fit is a
    ``keras.ops.cond``: one trace serves the steps the coin fits and the
    steps it skips."""
    traces = []

    class Counting(PSGDKron):
        def _begin_update(self):
            traces.append(1)
            super()._begin_update()

    params, grads = helpers.random_problem(seed=4, steps=12)
    optimizer = Counting(
        learning_rate=0.01,
        seed=0,
        precond_update_prob=0.5,
        precond_update_prob_min=0.5,
    )
    variables = helpers.make_variables(params)
    apply = helpers.compiled_apply(optimizer, variables)
    factor = optimizer._factors[1][0]
    fitted = []
    for step_grads in grads:
        before = np.array(factor.numpy())
        apply(step_grads)
        fitted.append(not np.array_equal(before, factor.numpy()))
    assert any(fitted) and not all(fitted), fitted
    if helpers.BACKEND != "torch":  # torch runs eagerly, as Keras does
        assert len(traces) == 1
