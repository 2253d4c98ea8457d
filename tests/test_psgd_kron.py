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
from keras_opts._core import counter_random
from keras_opts.optimizers import psgd_kron
from tests import helpers, oracles
from tests.oracles.psgd_kron import CounterDraws, seeded

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
    draws = CounterDraws(seed=7)
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


@pytest.mark.parametrize(
    "shape, kwargs, factor_shapes",
    [
        ((), {}, [(1,)]),
        ((7,), {}, [(7,)]),
        ((7,), {"min_ndim_triangular": 1}, [(7, 7)]),
        ((3, 4), {}, [(3, 3), (4, 4)]),
        ((3, 1), {}, [(3, 3), (1,)]),
        ((3, 4), {"max_size_triangular": 3}, [(3, 3), (4,)]),
        ((3, 4), {"memory_save_mode": "one_diag"}, [(3, 3), (4,)]),
        ((4, 4), {"memory_save_mode": "one_diag"}, [(4, 4), (4,)]),
        ((4, 4), {"memory_save_mode": "smart_one_diag"}, [(4, 4), (4, 4)]),
        ((3, 4), {"memory_save_mode": "all_diag"}, [(3,), (4,)]),
        ((2, 3, 2), {}, [(2, 2), (3, 3), (2, 2)]),
        ((2, 3, 2), {"merge_dims": True}, [(6, 6), (2, 2)]),
    ],
)
def test_factor_shapes(shape, kwargs, factor_shapes):
    """The factors each variable gets, and their memory: a 3 x 4 matrix
    keeps its momentum (12 numbers) and 9 + 16 numbers of factors."""
    variable = keras.Variable(np.zeros(shape, "float32"))
    optimizer = PSGDKron(seed=0, **kwargs)
    optimizer.build([variable])
    assert [tuple(q.shape) for q in optimizer._factors[0]] == factor_shapes
    names = [v.path for v in optimizer.variables]
    assert sum("seed_generator" in n for n in names) == 1
    assert all(q.dtype == "float32" for q in optimizer._factors[0])


def test_the_fit_whitens_the_gradients():
    """What the preconditioner is fitted for: with gradients of covariance
    ``C = L L^T`` (a Kronecker product), ``P`` approaches ``C^{-1/2}``, so
    ``P C P`` approaches the identity (Li 2024, the whitening criterion):
    from a condition number of 619, after 200 steps (the float64 oracle's
    math gives 3.7 and eigenvalues in [0.50, 1.83] with these draws). A
    fit with a sign flipped in ``T_i - S_i`` moves away from it."""
    rng = np.random.default_rng(0)
    d = 4
    left = np.tril(rng.standard_normal((d, d))) + 2 * np.eye(d)
    right = np.tril(rng.standard_normal((d, d))) + 2 * np.eye(d)
    triangular = (True, True)
    factors = [np.eye(d, dtype="float32"), np.eye(d, dtype="float32")]
    for _ in range(200):
        z = rng.standard_normal((d, d))
        g = (left @ z @ right.T).astype("float32")
        v = rng.standard_normal((d, d)).astype("float32")
        factors = [
            np.asarray(keras.ops.convert_to_numpy(q))
            for q in psgd_kron.fitted(
                [keras.ops.convert_to_tensor(q) for q in factors],
                triangular,
                keras.ops.convert_to_tensor(g),
                keras.ops.convert_to_tensor(v),
                0.1,
            )
        ]
    q = np.kron(factors[0], factors[1]).astype(np.float64)
    p = q.T @ q
    c = np.kron(left @ left.T, right @ right.T)
    whitened = p @ c @ p
    eigenvalues = np.linalg.eigvalsh((whitened + whitened.T) / 2)
    # A stochastic fit with a constant step: it hovers near the identity.
    assert eigenvalues.min() > 1 / 3 and eigenvalues.max() < 3, eigenvalues
    assert eigenvalues.max() / eigenvalues.min() < 6, eigenvalues


@pytest.fixture
def float64():
    """Float64 arrays: JAX computes in float64 only with
    ``jax_enable_x64``, here for this test only."""
    if helpers.BACKEND != "jax":
        yield
        return
    import jax

    with jax.enable_x64(True):
        yield


#: Every path of the fit: triangular factors (on rank 1 with
#: ``min_ndim_triangular=1``, rank 2, rank 3), a diagonal one, the RMS clip.
FLOAT64_KWARGS = {
    "seed": 3,
    "beta_1": 0.5,
    "precond_lr": 0.3,
    "precond_update_prob": 0.7,
    "precond_update_prob_min": 0.7,
    "min_ndim_triangular": 1,
    "max_size_triangular": 3,
    "clip_update_rms": 0.5,
    "preconditioner_dtype": "float64",
}


def test_float64_matches_the_float64_oracle(float64):
    """float64 variables with ``preconditioner_dtype="float64"`` follow the
    NumPy float64 oracle to float64 round-off: 20 steps within 1e-13
    (3.3e-16 on each backend), where computing in float32 anywhere
    (Keras' torch ``tensordot``, ``matmul``, ``norm``, ``prod``,
    ``mean``, ``maximum`` and ``minimum`` do on float64, JAX's ``norm``)
    was off by 4.9e-8 on torch and 1.6e-8 on JAX. The learning rate and
    ``beta_1`` are exact in float32, the dtype of Keras' learning rate
    and of the bias correction."""
    steps = 20
    params, grads = helpers.random_problem(seed=6, steps=steps)
    variables = [
        keras.Variable(p.astype(np.float64), dtype="float64", name=f"p{i}")
        for i, p in enumerate(params)
    ]
    optimizer = PSGDKron(learning_rate=0.0625, **FLOAT64_KWARGS)
    history = []
    for step in grads:
        optimizer.apply(
            [keras.ops.convert_to_tensor(g, "float64") for g in step],
            variables,
        )
        history.append(
            [np.asarray(keras.ops.convert_to_numpy(v)) for v in variables]
        )
    assert all(v.dtype == np.float64 for v in history[-1])
    assert all(
        keras.backend.standardize_dtype(q.dtype) == "float64"
        for factors in optimizer._factors
        for q in factors
    )
    expected = oracles.run(
        seeded(**FLOAT64_KWARGS), params, grads, [0.0625] * steps
    )
    assert helpers.max_abs_difference(history, expected) < 1e-13


# The generator of the coin, the probes and state_dtype's stochastic
# rounding (keras_opts._core.counter_random).


def _draw(name, shape, seed, compiled, calls=2, **kwargs):
    """``calls`` successive draws of ``counter_random.<name>`` from a
    ``SeedGenerator(seed)``, eager or compiled as ``fit()`` compiles."""
    generator = keras.random.SeedGenerator(seed)
    draw = getattr(counter_random, name)

    def draws():
        return [draw(shape, generator, **kwargs) for _ in range(calls)]

    if compiled and helpers.BACKEND == "tensorflow":
        import tensorflow as tf

        values = tf.function(draws, jit_compile=True)()
    elif compiled and helpers.BACKEND == "jax":
        import jax

        def stateless(state):
            mapping = [(generator.state, state)]
            with keras.StatelessScope(state_mapping=mapping):
                return draws()

        values = jax.jit(stateless)(generator.state.value)
    else:
        values = draws()
    return [np.asarray(keras.ops.convert_to_numpy(v)) for v in values]


def _transcribed(name, shape, seed, calls=2):
    draws = CounterDraws(seed)
    if name == "bits":
        size = int(np.prod(shape, dtype=np.int64))
        return [
            draws.words(size).view(np.int32).reshape(shape)
            for _ in range(calls)
        ]
    return [getattr(draws, name)(shape) for _ in range(calls)]


@pytest.mark.parametrize(
    "compiled",
    [False] + ([True] if helpers.BACKEND in helpers.TRACING_BACKENDS else []),
)
@pytest.mark.parametrize("seed", [0, 12345, 2**31 - 1])
def test_generator_matches_its_numpy_transcription_bitwise(seed, compiled):
    """Words, uniform and normal numbers (two successive calls, so the
    counter too) equal the NumPy transcription bit for bit, eagerly and
    compiled (``tf.function(jit_compile=True)``, ``jax.jit``): the same
    numbers on every backend. The normals cover 2^16 values (every
    octant of the cosine, radii up to 4.4)."""
    for name, shape in (
        ("bits", (7, 3)),
        ("uniform", (1000,)),
        ("normal", (256, 256)),
    ):
        ours = _draw(name, shape, seed, compiled)
        expected = _transcribed(name, shape, seed)
        for a, b in zip(ours, expected):
            assert a.dtype == b.dtype, name
            np.testing.assert_array_equal(a, b, err_msg=name)
        assert not np.array_equal(ours[0], ours[1]), name


@pytest.mark.skipif(
    helpers.BACKEND == "jax", reason="float64 needs jax_enable_x64"
)
def test_generator_float64_normals_are_the_float32_ones():
    ours = _draw("normal", (500,), 3, False, dtype="float64")
    assert ours[0].dtype == np.float64
    np.testing.assert_array_equal(ours[0], _transcribed("normal", (500,), 3)[0])


N = 100_000


def _ks_bound(n, alpha=1e-6):
    """The Dvoretzky-Kiefer-Wolfowitz bound (Massart's constant): the
    empirical CDF of ``n`` draws is further than this from the true CDF
    with probability at most ``alpha``."""
    return float(np.sqrt(np.log(2 / alpha) / (2 * n)))


def test_generator_uniform_statistics():
    """10^5 uniform numbers: mean 1/2 and variance 1/12 within 5 standard
    errors (``sqrt(1/12 / n)``; ``sqrt(1/180 / n)``, 1/180 the variance of
    ``(u - 1/2)^2``), the empirical CDF within the DKW bound of the
    identity (0.0084 at alpha = 1e-6), and two successive calls
    uncorrelated within 5 standard errors (``1 / sqrt(n)``)."""
    u, v = _draw("uniform", (N,), 11, False)
    assert u.min() >= 0 and u.max() < 1
    assert abs(u.mean() - 0.5) < 5 * np.sqrt(1 / 12 / N)
    assert abs(u.var() - 1 / 12) < 5 * np.sqrt(1 / 180 / N)
    ordered = np.sort(u.astype(np.float64))
    steps = np.arange(1, N + 1) / N
    distance = max(np.max(steps - ordered), np.max(ordered - (steps - 1 / N)))
    assert distance < _ks_bound(N)
    assert abs(np.corrcoef(u, v)[0, 1]) < 5 / np.sqrt(N)


def test_generator_normal_statistics():
    """10^5 normal numbers: mean 0 and variance 1 within 5 standard errors
    (``1 / sqrt(n)``, ``sqrt(2 / n)``), the empirical CDF within the DKW
    bound of the normal CDF, neighbours and successive calls uncorrelated
    within 5 standard errors."""
    special = pytest.importorskip("scipy.special")
    z, w = (x.astype(np.float64) for x in _draw("normal", (N,), 12, False))
    assert abs(z.mean()) < 5 / np.sqrt(N)
    assert abs(z.var() - 1) < 5 * np.sqrt(2 / N)
    cdf = special.ndtr(np.sort(z))
    steps = np.arange(1, N + 1) / N
    distance = max(np.max(steps - cdf), np.max(cdf - (steps - 1 / N)))
    assert distance < _ks_bound(N)
    assert abs(np.corrcoef(z, w)[0, 1]) < 5 / np.sqrt(N)
    assert abs(np.corrcoef(z[:-1], z[1:])[0, 1]) < 5 / np.sqrt(N)
