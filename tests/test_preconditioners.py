"""What the shared tests do not cover of the matrix preconditioners
(Shampoo, SOAP): parity with pytorch-optimizer on matrices, the refresh of the
roots under ``keras.ops.cond`` (once traced, run only on refresh steps),
the rule for variables of rank above 2, and the argument checks that tie
two arguments together.

Matrices of 6 x 4 and 8 x 8 (blocks of 4 where blocking is on), 30 steps,
refreshes every 1 to 4 steps; the parity tolerance is the suite's, one
float32 rounding of the largest parameter per step
(``helpers.float32_tolerance``).
"""

import keras
import numpy as np
import pytest

from keras_opts import SOAP, Shampoo
from tests import helpers, oracles
from tests.oracles.shampoo import ShampooOracle
from tests.oracles.soap import SOAPOracle
from tests.specs import Reference

STEPS = 30
MATRICES = ((6, 4), (8, 8))

PYTORCH_OPTIMIZER = [
    pytest.param(
        Reference(
            "pytorch_optimizer",
            "Shampoo",
            {
                "beta_1": 0.0,
                "beta_2": 1.0,
                "epsilon": 1e-4,
                "grafting": None,
                "start_preconditioning_step": 1,
                "precondition_frequency": 1,
            },
            {
                "momentum": 0.0,
                "matrix_eps": 1e-4,
                "preconditioning_compute_steps": 1,
            },
        ),
        id="Shampoo",
    ),
    pytest.param(
        Reference(
            "pytorch_optimizer",
            "ScalableShampoo",
            {
                "beta_1": 0.5,
                "beta_2": 0.9,
                "epsilon": 1e-10,
                "grafting": "sgd",
                "block_size": 8,
                "start_preconditioning_step": 1,
                "precondition_frequency": 1,
            },
            {
                "betas": (0.5, 0.9),
                "moving_average_for_momentum": True,
                "start_preconditioning_step": 1,
                "preconditioning_compute_steps": 1,
                "block_size": 8,
                "shape_interpretation": False,
                "graft_type": 1,  # LayerWiseGrafting.SGD
                "nesterov": False,
                # It decays matrix_eps * I with the statistics, where the
                # paper adds epsilon * I before the root: the two agree
                # where epsilon is far below the statistics' eigenvalues
                # (the gradient has no part along their null space).
                "matrix_eps": 1e-10,
                "use_svd": True,
            },
        ),
        id="ScalableShampoo",
    ),
]


@pytest.mark.parametrize("reference", PYTORCH_OPTIMIZER)
def test_shampoo_matches_pytorch_optimizer_on_matrices(reference):
    pytest.importorskip("pytorch_optimizer")
    lr = 0.01
    params, grads = helpers.random_problem(seed=4, steps=STEPS, shapes=MATRICES)
    optimizer = Shampoo(learning_rate=lr, **reference.ours)
    ours = helpers.run_keras_optimizer(optimizer, params, grads)
    theirs = helpers.run_reference(reference, lr, params, grads)
    tol = helpers.float32_tolerance(theirs, STEPS)
    helpers.assert_histories_close(ours, theirs, tol, reference.name)
    # The documented settings are the paper's algorithm (the oracle's), to
    # a few float64 roundings.
    expected = oracles.run(
        ShampooOracle(**reference.ours), params, grads, [lr] * STEPS
    )
    helpers.assert_histories_close(theirs, expected, 1e-10, "oracle")


def _root(optimizer, variable):
    index = optimizer._get_variable_index(variable)
    return np.array(
        keras.ops.convert_to_numpy(optimizer._slots["left_root"][index])
    )


def test_roots_change_only_on_refresh_steps():
    """Every 3 steps from the first, and at the start step (5)."""
    params, grads = helpers.random_problem(seed=5, steps=8, shapes=((6, 4),))
    optimizer = Shampoo(
        learning_rate=0.01,
        precondition_frequency=3,
        start_preconditioning_step=5,
    )
    (variable,) = helpers.make_variables(params)
    apply = helpers.compiled_apply(optimizer, [variable])
    changed, before = [], None
    for step_grads in grads:
        apply(step_grads)
        root = _root(optimizer, variable)
        changed.append(before is None or not np.array_equal(root, before))
        before = root
    assert changed == [True, False, False, True, True, False, True, False]


@pytest.mark.skipif(helpers.BACKEND != "jax", reason="counts jax.jit traces")
def test_jitted_step_traces_once_across_refreshes():
    import jax

    params, grads = helpers.random_problem(seed=6, steps=7, shapes=((6, 4),))
    optimizer = Shampoo(
        learning_rate=0.01,
        precondition_frequency=3,
        start_preconditioning_step=1,
    )
    (variable,) = helpers.make_variables(params)
    optimizer.build([variable])
    traces = []

    @jax.jit
    def step(optimizer_values, grads, values):
        traces.append(None)
        return optimizer.stateless_apply(optimizer_values, grads, values)

    index = [v.path for v in optimizer.variables].index(
        optimizer._slots["left_root"][0].path
    )
    optimizer_values = [v.value for v in optimizer.variables]
    values = [variable.value]
    roots = []
    for step_grads in grads:
        values, optimizer_values = step(
            optimizer_values, [jax.numpy.asarray(step_grads[0])], values
        )
        roots.append(np.asarray(optimizer_values[index]))
    assert len(traces) == 1
    changed = [True] + [
        not np.array_equal(a, b) for a, b in zip(roots[1:], roots[:-1])
    ]
    assert changed == [True, False, False, True, False, False, True]


def test_higher_rank_is_the_merged_matrix():
    """A (2, 3, 2) variable steps as the (6, 2) matrix of its last
    dimension against the others (a convolution kernel's rule)."""
    params, grads = helpers.random_problem(seed=7, steps=6, shapes=((2, 3, 2),))
    kwargs = {"start_preconditioning_step": 1, "precondition_frequency": 2}
    tensor = helpers.run_keras_optimizer(
        Shampoo(learning_rate=0.05, **kwargs), params, grads
    )
    matrix = helpers.run_keras_optimizer(
        Shampoo(learning_rate=0.05, **kwargs),
        [p.reshape(6, 2) for p in params],
        [[g.reshape(6, 2) for g in step] for step in grads],
    )
    for a, b in zip(tensor, matrix):
        np.testing.assert_array_equal(a[0].reshape(6, 2), b[0])


@pytest.mark.skipif(
    helpers.BACKEND == "jax", reason="float64 needs jax_enable_x64"
)
def test_float64_preconditioner_matches_oracle():
    params, grads = helpers.random_problem(seed=8, steps=STEPS, shapes=MATRICES)
    kwargs = {
        "block_size": 4,
        "precondition_frequency": 2,
        "start_preconditioning_step": 3,
        "preconditioner_dtype": "float64",
    }
    optimizer = Shampoo(learning_rate=0.01, **kwargs)
    ours = helpers.run_keras_optimizer(optimizer, params, grads)
    assert optimizer._slots["left"][0].dtype == "float64"
    expected = oracles.run(
        ShampooOracle(**kwargs), params, grads, [0.01] * STEPS
    )
    tol = helpers.float32_tolerance(expected, STEPS)
    helpers.assert_histories_close(ours, expected, tol, "oracle")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"grafting": "adam", "beta_2": 1.0}, "beta_2=1.0"),
        ({"grafting": "rmsprop"}, "grafting='rmsprop'"),
        ({"block_size": 0}, "block_size=0"),
        ({"precondition_frequency": 1.5}, "precondition_frequency=1.5"),
        ({"preconditioner_dtype": "float16"}, "float16"),
    ],
)
def test_shampoo_rejects(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Shampoo(**kwargs)


# SOAP. Square matrices, and one whose wide dimension exceeds
# max_precond_dim. pytorch-optimizer's SOAP (the authors' construction,
# canonical_basis=False) takes its first basis from an eigendecomposition:
# it matches on factors of full rank from the first gradient, where no
# eigenvalue repeats and the basis is unique up to signs (which cancel in
# SOAP's step); a repeated one leaves the basis of its eigenspace to the
# eigensolver, and Adam in that space depends on the choice.
SOAP_MATRICES = ((4, 4), (8, 8), (4, 8))
SOAP_REFERENCE = Reference(
    "pytorch_optimizer",
    "SOAP",
    {
        "beta_1": 0.9,
        "beta_2": 0.95,
        "shampoo_beta": 0.8,
        "precondition_frequency": 3,
        "max_precond_dim": 4,
        "canonical_basis": False,
    },
    {
        "betas": (0.9, 0.95),
        "shampoo_beta": 0.8,
        "weight_decay": 0.0,
        "precondition_frequency": 3,
        "max_precondition_dim": 4,
    },
)


def test_soap_matches_pytorch_optimizer():
    pytest.importorskip("pytorch_optimizer")
    lr = 0.01
    params, grads = helpers.random_problem(
        seed=4, steps=STEPS, shapes=SOAP_MATRICES
    )
    optimizer = SOAP(learning_rate=lr, **SOAP_REFERENCE.ours)
    ours = helpers.run_keras_optimizer(optimizer, params, grads)
    theirs = helpers.run_reference(SOAP_REFERENCE, lr, params, grads)
    tol = helpers.float32_tolerance(theirs, STEPS)
    helpers.assert_histories_close(ours, theirs, tol, "SOAP")
    # Their QR runs in float32 even here: float32-close to the oracle.
    expected = oracles.run(
        SOAPOracle(**SOAP_REFERENCE.ours), params, grads, [lr] * STEPS
    )
    helpers.assert_histories_close(theirs, expected, tol, "oracle")


def _embedding_gradients(seed, steps, shape=(12, 4), rows=3):
    """Gradients of an embedding table: ``rows`` random rows a step, the
    others exactly zero, so that the left factor has rank at most 3 after
    a step and a null space (the unused rows) throughout."""
    rng = np.random.default_rng(seed)
    grads = []
    for _ in range(steps):
        g = np.zeros(shape, "float32")
        g[rng.choice(shape[0], rows, replace=False)] = rng.standard_normal(
            (rows, shape[1])
        )
        grads.append([g])
    return grads


def test_soap_canonical_basis_matches_oracle():
    """The canonical basis (the default) against the float64 oracle, on
    the matrices of full-rank factors and on an embedding's gradients,
    whose left factor is rank-deficient at every step: a continuous
    construction leaves no choice to rounding, so the float32 step
    follows the float64 one to the parity bound on both."""
    lr = 0.01
    kwargs = dict(SOAP_REFERENCE.ours, canonical_basis=True)
    params, grads = helpers.random_problem(
        seed=4, steps=STEPS, shapes=SOAP_MATRICES
    )
    params.append(np.full((12, 4), 0.1))
    for step, extra in zip(grads, _embedding_gradients(3, STEPS)):
        step.extend(extra)
    ours = helpers.run_keras_optimizer(
        SOAP(learning_rate=lr, **kwargs), params, grads
    )
    expected = oracles.run(SOAPOracle(**kwargs), params, grads, [lr] * STEPS)
    tol = helpers.float32_tolerance(expected, STEPS)
    helpers.assert_histories_close(ours, expected, tol, "oracle")
    # The authors' construction on the same problem: the embedding's
    # unused rows get an eigensolver's basis, far from the oracle's.
    theirs = helpers.run_keras_optimizer(
        SOAP(learning_rate=lr, **SOAP_REFERENCE.ours), params, grads
    )
    assert helpers.max_abs_difference(theirs, expected) > 100 * tol


def _displacement(weights, start):
    return float(
        np.sqrt(sum(np.sum((w - s) ** 2) for w, s in zip(weights, start)))
    )


def _fit_embedding_model(mode, **options):
    """A (3,) token sequence -> Embedding(12, 4) -> Flatten -> Dense(1)
    model fit for 12 steps of 8 sequences; its initial and final weights.
    The (12, 4) table's left factor has rank at most 4 a step (the
    Embedding's gradient has at most 24 nonzero rows, from 4 columns)."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 12, (96, 3)).astype("int32")
    y = rng.standard_normal((96, 1)).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((3,), dtype="int32"),
            keras.layers.Embedding(12, 4),
            keras.layers.Flatten(),
            keras.layers.Dense(1),
        ]
    )
    start = [np.asarray(w, np.float64) for w in model.get_weights()]
    optimizer = SOAP(learning_rate=0.01, precondition_frequency=2, **options)
    model.compile(optimizer=optimizer, loss="mse", **mode)
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    return start, [np.asarray(w, np.float64) for w in model.get_weights()]


#: The ways of fitting the same model that round differently from the
#: eager fit, per backend: compiled where the backend traces (torch's
#: compiled fit takes minutes here), and the preconditioner in float64
#: where the backend computes in it.
SOAP_FIT_MODES = {
    "jax": {"jit": ({"jit_compile": True}, {})},
    "tensorflow": {
        "graph": ({"jit_compile": False}, {}),
        "xla": ({"jit_compile": True}, {}),
        "float64": ({"run_eagerly": True}, {"preconditioner_dtype": "float64"}),
    },
    "torch": {
        "float64": ({"run_eagerly": True}, {"preconditioner_dtype": "float64"})
    },
}


def test_soap_fit_does_not_depend_on_rounding():
    """An embedding model fit eagerly and as each backend's other programs
    (SOAP_FIT_MODES): the weights' displacements over 12 steps agree to
    1e-4 of their size. Each program rounds its own way, a few 2^-24 ~
    6e-8 of each quantity per operation; the shifted power iteration can
    magnify a rounding of a factor by up to 1 / BASIS_SHIFT = 1e3 in the
    columns it keeps (6e-5), and 1e-4 allows that. A basis that rounding
    chooses (eigh of a rank-deficient factor) moves them by O(1): 0.14
    (JAX's jit), 0.33 (TensorFlow's XLA), 0.34 and 0.38 (float64 on
    TensorFlow and torch) apart with ``canonical_basis=False``; 1e-5 at
    most with the canonical basis."""
    start, eager = _fit_embedding_model({"run_eagerly": True})
    size = _displacement(eager, start)
    assert size > 0.01
    for name, (mode, options) in SOAP_FIT_MODES[helpers.BACKEND].items():
        _, other = _fit_embedding_model(mode, **options)
        difference = _displacement(other, eager) / size
        assert difference < 1e-4, (name, difference)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_soap_step_is_continuous_in_the_gradient(dtype):
    """One entry of the first gradient of an embedding table scaled by
    1 + 2^-22 (two float32 ulps): after 8 steps, refreshing every 2, the
    weights move by a small multiple of that, relative to their
    displacement. With the preconditioner in float64 the move is the
    step's derivative times the perturbation, 0.3 to 2.8 x 2^-22 over
    this gradient's entries: below 8 x 2^-22. In float32 the perturbed
    run also rounds differently downstream, which the rotations into and
    out of the basis magnify: 0.5 to 60 x 2^-22 over the entries and
    backends (1e-5, the difference test_soap_fit_does_not_depend_on_rounding
    sees between programs): below 256 x 2^-22. The eigensolver's basis of
    the factor's null space (``canonical_basis=False``) jumped with the
    perturbation: 1e6 x 2^-22 (0.26)."""
    if dtype == "float64" and helpers.BACKEND == "jax":
        pytest.skip("float64 needs jax_enable_x64")
    grads = _embedding_gradients(1, 8)
    perturbed = [[g.copy() for g in step] for step in grads]
    first = perturbed[0][0]
    index = tuple(np.argwhere(first != 0)[0])
    first[index] *= np.float32(1 + 2**-22)
    params = [np.full((12, 4), 0.1)]
    runs = [
        helpers.run_keras_optimizer(
            SOAP(
                learning_rate=0.01,
                precondition_frequency=2,
                preconditioner_dtype=dtype,
            ),
            params,
            g,
        )[-1]
        for g in (grads, perturbed)
    ]
    size = _displacement(runs[0], params)
    assert size > 0.01
    bound = (8 if dtype == "float64" else 256) * 2**-22
    move = _displacement(runs[1], runs[0]) / size
    assert move < bound, move / 2**-22


def test_soap_without_skipping_the_first_step_matches_oracle():
    params, grads = helpers.random_problem(
        seed=9, steps=STEPS, shapes=SOAP_MATRICES[:2]
    )
    # At step 1 the rotated gradient Q_L^T G Q_R is the diagonal of G's
    # SVD: its other entries are rounding noise, which Adam's first step
    # divides by itself unless epsilon is far above it.
    kwargs = {
        "skip_first_step": False,
        "precondition_frequency": 4,
        "epsilon": 0.1,
    }
    ours = helpers.run_keras_optimizer(
        SOAP(learning_rate=0.01, **kwargs), params, grads, compiled=True
    )
    expected = oracles.run(SOAPOracle(**kwargs), params, grads, [0.01] * STEPS)
    tol = helpers.float32_tolerance(expected, STEPS)
    helpers.assert_histories_close(ours, expected, tol, "oracle")
    assert not np.array_equal(ours[0][0], params[0])  # step 1 moved


def test_soap_merge_dims_is_the_merged_tensor():
    """(2, 2, 4) with max_precond_dim=4 steps as the (4, 4) matrix."""
    params, grads = helpers.random_problem(seed=7, steps=8, shapes=((2, 2, 4),))
    kwargs = {"precondition_frequency": 2, "max_precond_dim": 4}
    merged = helpers.run_keras_optimizer(
        SOAP(learning_rate=0.05, merge_dims=True, **kwargs), params, grads
    )
    matrix = helpers.run_keras_optimizer(
        SOAP(learning_rate=0.05, **kwargs),
        [p.reshape(4, 4) for p in params],
        [[g.reshape(4, 4) for g in step] for step in grads],
    )
    for a, b in zip(merged, matrix):
        np.testing.assert_array_equal(a[0].reshape(4, 4), b[0])


@pytest.mark.skipif(helpers.BACKEND != "jax", reason="counts jax.jit traces")
def test_soap_jitted_step_traces_once_across_refreshes():
    import jax

    params, grads = helpers.random_problem(seed=6, steps=7, shapes=((4, 4),))
    optimizer = SOAP(learning_rate=0.01, precondition_frequency=3)
    (variable,) = helpers.make_variables(params)
    optimizer.build([variable])
    traces = []

    @jax.jit
    def step(optimizer_values, grads, values):
        traces.append(None)
        return optimizer.stateless_apply(optimizer_values, grads, values)

    basis = optimizer._factors[0][0][1]
    index = [v.path for v in optimizer.variables].index(basis.path)
    optimizer_values = [v.value for v in optimizer.variables]
    values = [variable.value]
    bases = []
    for step_grads in grads:
        values, optimizer_values = step(
            optimizer_values, [jax.numpy.asarray(step_grads[0])], values
        )
        bases.append(np.asarray(optimizer_values[index]))
    assert len(traces) == 1
    changed = [True] + [
        not np.array_equal(a, b) for a, b in zip(bases[1:], bases[:-1])
    ]
    # Step 1: eigh; then QR at steps 4 and 7 (the 3rd and 6th counted).
    assert changed == [True, False, False, True, False, False, True]


@pytest.mark.skipif(
    helpers.BACKEND not in helpers.TRACING_BACKENDS,
    reason="torch's fit() has one mode here: eager",
)
@pytest.mark.parametrize("cls", [Shampoo, SOAP], ids=["Shampoo", "SOAP"])
def test_fit_agrees_eager_traced_and_compiled(cls):
    """A 5-6-1 model (its (6, 1) kernel has a 1 x 1 right statistic) fit
    eagerly, as a graph and compiled, refreshing every 2 steps: the same
    weights to float32 round-off. TensorFlow 2.21's graph optimizer once
    turned the 1 x 1 root into 0 in the uncompiled graph only (5e-3 off
    in a weight after 8 steps).

    Shampoo at epsilon 1e-3: at the default 1e-6 the roots of the
    rank-deficient statistics amplify the rounding differences of a fused
    and an unfused program past one rounding per step. SOAP with every
    factor, at its default canonical basis: the 6 x 6 left factor of the
    (6, 1) kernel has rank 1 after the first step, and the authors' basis
    (``canonical_basis=False``), which rounding picks in its null space,
    put JAX's eager and compiled fit 1.2e-5 apart after 8 steps."""
    x = np.random.default_rng(0).standard_normal((32, 5)).astype("float32")
    y = np.tanh(x[:, :1]) - x[:, 1:2]
    runs = []
    for mode in ({"run_eagerly": True}, {"jit_compile": False}, {}):
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [
                keras.Input((5,)),
                keras.layers.Dense(6, activation="tanh"),
                keras.layers.Dense(1),
            ]
        )
        options = (
            {"start_preconditioning_step": 1, "epsilon": 1e-3}
            if cls is Shampoo
            else {}
        )
        optimizer = cls(learning_rate=0.01, precondition_frequency=2, **options)
        model.compile(optimizer=optimizer, loss="mse", **mode)
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        runs.append(model.get_weights())
    tol = helpers.float32_tolerance([runs[0]], 8)
    for run, mode in zip(runs[1:], ("graph", "compiled")):
        for a, b in zip(run, runs[0]):
            np.testing.assert_allclose(a, b, rtol=0, atol=tol, err_msg=mode)


def _decompositions(jaxpr):
    """The operand shapes of every ``eigh`` and ``qr`` of a jaxpr, in the
    branches of its conditionals too."""
    found = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in ("eigh", "qr", "geqrf", "householder_product"):
            found.append(tuple(eqn.invars[0].aval.shape))
        for param in eqn.params.values():
            for sub in param if isinstance(param, (list, tuple)) else [param]:
                inner = getattr(sub, "jaxpr", None)
                if inner is not None:
                    found += _decompositions(getattr(inner, "jaxpr", inner))
    return found


@pytest.mark.skipif(helpers.BACKEND != "jax", reason="inspects a jaxpr")
@pytest.mark.parametrize("cls", [Shampoo, SOAP], ids=["Shampoo", "SOAP"])
def test_jax_decomposes_one_matrix_per_call(cls):
    """No batched ``eigh`` or ``qr`` in the compiled step: JAX's CPU
    kernel for a batch blocks a thread of XLA's pool on tasks queued to
    the same pool, and two such calls at once (the blocks of two
    factors) hung the step on a 2-core machine."""
    import jax

    shapes = ((10, 6), (6, 6))
    variables = [keras.Variable(np.ones(s, "float32")) for s in shapes]
    options = {"block_size": 4} if cls is Shampoo else {"merge_dims": False}
    optimizer = cls(learning_rate=0.01, **options)
    optimizer.build(variables)
    grads = [jax.numpy.ones(s) for s in shapes]
    jaxpr = jax.make_jaxpr(optimizer.stateless_apply)(
        [v.value for v in optimizer.variables],
        grads,
        [v.value for v in variables],
    )
    found = _decompositions(jaxpr.jaxpr)
    assert found and all(len(shape) == 2 for shape in found), found
