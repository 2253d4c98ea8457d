"""Every keras_opts schedule against its closed form and torch's schedulers.

Closed forms are NumPy float64 transcriptions of the docstring formulas;
the schedules compute in float32, so values agree to a few float32 ulps:
``rtol=1e-6`` (about 8 ulps, for the handful of operations each takes).
"""

import math

import keras
import numpy as np
import pytest

from keras_opts import schedules as S

RTOL = 1e-6
STEPS = np.arange(0, 120)


def _values(schedule, steps=STEPS):
    return np.array([float(schedule(int(s))) for s in steps])


def _epochs(steps, per_epoch, staircase):
    e = steps / per_epoch
    return np.floor(e) if staircase else e


EPOCH_CASES = [(1, False), (7, False), (7, True)]


@pytest.mark.parametrize("per_epoch, staircase", EPOCH_CASES)
def test_inverse_time_decay(per_epoch, staircase):
    s = S.InverseTimeDecay(0.2, 0.3, per_epoch, staircase)
    e = _epochs(STEPS, per_epoch, staircase)
    np.testing.assert_allclose(_values(s), 0.2 / (1 + 0.3 * e), rtol=RTOL)


@pytest.mark.parametrize("per_epoch, staircase", EPOCH_CASES)
def test_exponential_decay(per_epoch, staircase):
    s = S.ExponentialDecay(0.2, 0.05, per_epoch, staircase)
    e = _epochs(STEPS, per_epoch, staircase)
    np.testing.assert_allclose(_values(s), 0.2 * np.exp(-0.05 * e), rtol=RTOL)


@pytest.mark.parametrize("per_epoch, staircase", EPOCH_CASES)
def test_geometric_decay(per_epoch, staircase):
    s = S.GeometricDecay(0.2, 0.95, per_epoch, staircase)
    e = _epochs(STEPS, per_epoch, staircase)
    np.testing.assert_allclose(_values(s), 0.2 * 0.95**e, rtol=RTOL)


@pytest.mark.parametrize("per_epoch, staircase", EPOCH_CASES)
def test_inverse_sqrt_decay(per_epoch, staircase):
    s = S.InverseSqrtDecay(0.2, 0.5, per_epoch, staircase)
    e = np.maximum(_epochs(STEPS, per_epoch, staircase), 1.0)
    np.testing.assert_allclose(_values(s), 0.2 * 0.5 / np.sqrt(e), rtol=RTOL)


@pytest.mark.parametrize("per_epoch", [1, 4])
def test_staircase_decay(per_epoch):
    boundaries, values = [3, 7.5, 20], [0.3, 0.1, 0.05, 0.01]
    s = S.StaircaseDecay(boundaries, values, per_epoch)
    e = STEPS / per_epoch
    expected = np.array(values)[np.searchsorted(boundaries, e, side="right")]
    np.testing.assert_allclose(_values(s), expected, rtol=RTOL)


@pytest.mark.parametrize("shape", ["linear", "cosine", "sqrt"])
def test_warmup_stable_decay(shape):
    s = S.WarmupStableDecay(0.5, 100, 10, 30, 0.05, 0.01, shape)
    t = STEPS.astype(float)
    p = np.clip((t - 70) / 30, 0, 1)
    fraction = {
        "linear": 1 - p,
        "cosine": 0.5 * (1 + np.cos(np.pi * p)),
        "sqrt": 1 - np.sqrt(p),
    }[shape]
    expected = np.where(
        t < 10, 0.05 + (0.5 - 0.05) * t / 10, 0.01 + (0.5 - 0.01) * fraction
    )
    np.testing.assert_allclose(_values(s), expected, rtol=RTOL, atol=1e-9)


# torch.optim.lr_scheduler, stepped once per optimizer step: the rate it
# reports before step k is the rate of update k (0-based).
def _torch_rates(make, lr=1.0, steps=120):
    import torch

    param = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([param], lr=lr)
    scheduler = make(torch.optim.lr_scheduler, optimizer)
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return np.array(rates)


TORCH_CASES = {
    "ExponentialLR": (
        S.GeometricDecay(0.3, base=0.97),
        lambda L, o: L.ExponentialLR(o, gamma=0.97),
        0.3,
    ),
    "StepLR": (
        S.GeometricDecay(0.3, base=0.5, steps_per_epoch=9, staircase=True),
        lambda L, o: L.StepLR(o, step_size=9, gamma=0.5),
        0.3,
    ),
    "MultiStepLR": (
        S.StaircaseDecay([10, 25, 60], [0.3 * 0.2**i for i in range(4)]),
        lambda L, o: L.MultiStepLR(o, milestones=[10, 25, 60], gamma=0.2),
        0.3,
    ),
    **{
        f"CyclicLR-{mode}": (
            S.Cyclical(0.01, 0.2, step_size=8, mode=mode, gamma=0.98),
            lambda L, o, mode=mode: L.CyclicLR(
                o,
                0.01,
                0.2,
                step_size_up=8,
                mode=mode,
                gamma=0.98,
                cycle_momentum=False,
            ),
            0.01,
        )
        for mode in ("triangular", "triangular2", "exp_range")
    },
    **{
        f"OneCycleLR-{anneal}-{three}": (
            S.OneCycle(0.4, 120, 0.25, anneal, 20.0, 100.0, three),
            lambda L, o, anneal=anneal, three=three: L.OneCycleLR(
                o,
                0.4,
                total_steps=120,
                pct_start=0.25,
                anneal_strategy=anneal,
                div_factor=20.0,
                final_div_factor=100.0,
                three_phase=three,
                cycle_momentum=False,
            ),
            0.4,
        )
        for anneal in ("cos", "linear")
        for three in (False, True)
    },
    "LinearLR+ExponentialLR": (
        S.Warmup(S.GeometricDecay(0.3, 0.9), 12, start_learning_rate=0.03),
        lambda L, o: L.SequentialLR(
            o,
            [
                L.LinearLR(o, start_factor=0.1, total_iters=12),
                L.ExponentialLR(o, gamma=0.9),
            ],
            milestones=[12],
        ),
        0.3,
    ),
}


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", list(TORCH_CASES))
def test_matches_torch_scheduler(name):
    ours, make, lr = TORCH_CASES[name]
    theirs = _torch_rates(make, lr=lr)
    np.testing.assert_allclose(_values(ours), theirs, rtol=RTOL)


def test_warmup_of_polynomial_decay_is_the_addons_warmup():
    """tensorflow-addons' RectifiedAdam warm-up, composed from parts:
    Warmup(PolynomialDecay(power=1)) one step later."""
    total, proportion, peak, floor = 50, 0.2, 0.1, 0.001
    warmup = int(total * proportion)
    composed = S.Warmup(
        keras.optimizers.schedules.PolynomialDecay(
            peak, total - warmup, floor, power=1.0
        ),
        warmup,
    )
    addons = S.WarmupLinearDecay(peak, total, proportion, floor)
    # Both sides are float32 with different rounding (Keras' PolynomialDecay
    # rounds the fraction 1 - p): a few ulps of the peak, absolute.
    np.testing.assert_allclose(
        _values(addons), _values(composed, STEPS + 1), rtol=0, atol=4e-7 * peak
    )


ALL = [
    S.InverseTimeDecay(0.1, 0.5, 3, True),
    S.ExponentialDecay(0.1, 0.1, 2),
    S.GeometricDecay(0.1, 0.9),
    S.StaircaseDecay([2, 4], [0.1, 0.05, 0.01], 2),
    S.InverseSqrtDecay(0.1, 2.0, 3),
    S.Warmup(S.GeometricDecay(0.1, 0.9), 3, 0.01),
    S.Warmup(0.05, 4),
    S.WarmupStableDecay(0.1, 20, 3, 5, decay_shape="cosine"),
    S.Cyclical(0.01, 0.1, 3, "exp_range", 0.9),
    S.OneCycle(0.1, 16, three_phase=True),
    S.WarmupLinearDecay(0.1, 12, 0.25, 0.001),
]
IDS = [type(s).__name__ for s in ALL]


def test_every_exported_schedule_is_covered():
    assert {type(s) for s in ALL} == {getattr(S, n) for n in S.__all__}


@pytest.mark.parametrize("schedule", ALL, ids=IDS)
def test_config_round_trip(schedule):
    serialized = keras.saving.serialize_keras_object(schedule)
    assert serialized["registered_name"].startswith("keras_opts>")
    restored = keras.saving.deserialize_keras_object(serialized)
    assert type(restored) is type(schedule)
    assert restored.get_config() == schedule.get_config()
    np.testing.assert_array_equal(
        _values(restored, STEPS[:30]), _values(schedule, STEPS[:30])
    )


@pytest.mark.parametrize("schedule", ALL, ids=IDS)
def test_builtin_optimizer_resumes_schedule_from_keras_file(schedule, tmp_path):
    """A Keras built-in Adam on this schedule, saved after 8 steps of
    fit() and reloaded, continues exactly as a run that never stopped."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 4)).astype("float32")
    y = rng.standard_normal((32, 1)).astype("float32")

    def model():
        keras.utils.set_random_seed(0)
        m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        m.compile(keras.optimizers.Adam(schedule), loss="mse")
        return m

    straight = model()
    straight.fit(x, y, batch_size=8, epochs=4, shuffle=False, verbose=0)
    first = model()
    first.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    first.save(tmp_path / "m.keras")
    resumed = keras.models.load_model(tmp_path / "m.keras")
    assert int(resumed.optimizer.iterations) == 8
    np.testing.assert_allclose(
        float(resumed.optimizer.learning_rate), float(schedule(8)), rtol=RTOL
    )
    resumed.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "make, error, pattern",
    [
        (
            lambda: S.InverseTimeDecay(-0.1, 0.1),
            ValueError,
            "learning_rate=-0.1",
        ),
        (lambda: S.ExponentialDecay(0.1, -1.0), ValueError, "decay_rate=-1.0"),
        (lambda: S.GeometricDecay(0.1, 1.5), ValueError, "base=1.5"),
        (
            lambda: S.GeometricDecay(0.1, 0.9, 0),
            ValueError,
            "steps_per_epoch=0",
        ),
        (
            lambda: S.GeometricDecay(0.1, 0.9, 2.5),
            TypeError,
            "steps_per_epoch=2.5",
        ),
        (
            lambda: S.InverseSqrtDecay(0.1, staircase="no"),
            TypeError,
            "staircase='no'",
        ),
        (
            lambda: S.StaircaseDecay([3, 2], [1.0, 0.5, 0.1]),
            ValueError,
            "increasing",
        ),
        (lambda: S.StaircaseDecay([3], [1.0]), ValueError, "one more entry"),
        (lambda: S.StaircaseDecay(3, [1.0, 0.5]), TypeError, "boundaries=3"),
        (lambda: S.Warmup("fast", 3), TypeError, "schedule='fast'"),
        (lambda: S.Warmup(0.1, 0), ValueError, "warmup_steps=0"),
        (
            lambda: S.WarmupStableDecay(0.1, 10, 6, 6),
            ValueError,
            "must not exceed",
        ),
        (
            lambda: S.WarmupStableDecay(0.1, 10, 2, 2, decay_shape="exp"),
            ValueError,
            "decay_shape='exp'",
        ),
        (
            lambda: S.Cyclical(0.1, 0.01, 4),
            ValueError,
            "maximal_learning_rate=0.01",
        ),
        (
            lambda: S.Cyclical(0.01, 0.1, 4, mode="sine"),
            ValueError,
            "mode='sine'",
        ),
        (
            lambda: S.OneCycle(0.1, 100, pct_start=1.0),
            ValueError,
            "pct_start=1.0",
        ),
        (lambda: S.OneCycle(0.1, 1), ValueError, "total_steps=1"),
    ],
)
def test_bad_arguments(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make()


def test_math_pi_is_used_for_cosine():
    """Guard against a degrees/radians slip: the cosine decay is half-way
    at the middle of its decay phase."""
    s = S.WarmupStableDecay(1.0, 10, 0, 10, decay_shape="cosine")
    assert math.isclose(float(s(5)), 0.5, rel_tol=RTOL)


def test_figure_script_draws_every_schedule_and_readme_shows_it():
    import importlib.util
    import pathlib

    root = pathlib.Path(__file__).parents[1]
    path = root / "examples" / "plot_schedules.py"
    spec = importlib.util.spec_from_file_location("plot_schedules", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    drawn = {type(schedule) for _, schedule, _ in module.PANELS}
    assert drawn == {getattr(S, n) for n in S.__all__}
    assert "docs/images/schedules.png" in (root / "README.md").read_text()
    assert (root / "docs" / "images" / "schedules.png").exists()
