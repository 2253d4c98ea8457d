"""keras_opts.schedules against closed forms and tensorflow-addons' numerics."""

import keras
import numpy as np
import pytest

import keras_opts
from tests import helpers
from tests import specs as registry


def addons_warmup(step, lr, total_steps, warmup_proportion, min_lr):
    """tensorflow-addons RectifiedAdam's learning rate at ``iterations=step``,
    transcribed from its ``_resource_apply`` in float64."""
    local_step = step + 1.0
    warmup_steps = total_steps * warmup_proportion
    decay_steps = max(total_steps - warmup_steps, 1.0)
    decay_rate = (min_lr - lr) / decay_steps
    if local_step <= warmup_steps:
        return lr * (local_step / warmup_steps)
    return lr + decay_rate * min(local_step - warmup_steps, decay_steps)


SETTINGS = [
    (1e-3, 100, 0.1, 1e-5),
    (0.5, 37, 0.3, 0.0),
    (2e-2, 10, 0.0, 1e-3),
    (1.0, 1, 1.0, 0.1),
]


@pytest.mark.parametrize("lr, total, proportion, min_lr", SETTINGS)
def test_warmup_linear_decay_matches_addons_curve(
    lr, total, proportion, min_lr
):
    schedule = keras_opts.schedules.WarmupLinearDecay(
        lr, total_steps=total, warmup_proportion=proportion, min_lr=min_lr
    )
    steps = np.arange(3 * total + 5)
    ours = np.array([float(schedule(int(s))) for s in steps])
    expected = np.array(
        [addons_warmup(s, lr, total, proportion, min_lr) for s in steps]
    )
    # A handful of float32 operations on values up to `lr`: a few ulps.
    np.testing.assert_allclose(ours, expected, rtol=0, atol=4e-7 * lr)


def test_warmup_linear_decay_config_round_trip():
    schedule = keras_opts.schedules.WarmupLinearDecay(
        0.1, total_steps=50, warmup_proportion=0.2, min_lr=0.01
    )
    serialized = keras.saving.serialize_keras_object(schedule)
    restored = keras.saving.deserialize_keras_object(serialized)
    assert type(restored) is type(schedule)
    assert restored.get_config() == schedule.get_config()


@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        ({"learning_rate": 0.0}, ValueError, r"learning_rate=0.0"),
        ({"total_steps": 0}, ValueError, r"total_steps=0"),
        ({"total_steps": 10.5}, TypeError, r"total_steps=10.5"),
        ({"warmup_proportion": 1.5}, ValueError, r"warmup_proportion=1.5"),
        ({"min_lr": -1.0}, ValueError, r"min_lr=-1.0"),
    ],
)
def test_warmup_linear_decay_rejects_bad_arguments(kwargs, error, pattern):
    arguments = {"learning_rate": 0.1, "total_steps": 10, **kwargs}
    with pytest.raises(error, match=pattern):
        keras_opts.schedules.WarmupLinearDecay(**arguments)


def test_radam_with_warmup_reproduces_addons_rectified_adam():
    """tensorflow-addons' RectifiedAdam(lr, total_steps, warmup_proportion,
    min_lr, epsilon=1e-7, sma_threshold=5): its epsilon on sqrt(v_hat),
    threshold 5 and the warm-up learning rate per step."""
    steps = 50
    lr, total, proportion, min_lr = 0.05, 40, 0.2, 1e-3
    schedule = keras_opts.schedules.WarmupLinearDecay(
        lr, total_steps=total, warmup_proportion=proportion, min_lr=min_lr
    )
    settings = {
        "beta_2": 0.9,
        "epsilon": 1e-7,
        "epsilon_mode": "corrected",
        "rectify_threshold": 5.0,
    }
    params, grads = helpers.random_problem(seed=11, steps=steps)
    optimizer = keras_opts.RAdam(schedule, **settings)
    ours = helpers.run_keras_optimizer(optimizer, params, grads)
    lrs = [
        addons_warmup(s, lr, total, proportion, min_lr) for s in range(steps)
    ]
    expected = helpers.run_oracle(
        registry.lookup("radam"), settings, params, grads, lrs
    )
    tol = helpers.float32_tolerance(expected, steps)
    helpers.assert_histories_close(ours, expected, tol, "addons RAdam")
