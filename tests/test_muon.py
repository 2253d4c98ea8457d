"""Muon beyond the shared tests: parity with keras.optimizers.Muon,
torch.optim.Muon and optax.contrib.muon in their settings, the choice of
variables and matrices from Keras layers, and its own arguments.

The shared tests (tests/specs.py) check it against the float64 oracle of
tests/oracles/muon.py on every backend and run it through every path.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_opts.optimizers.muon import Muon
from keras_opts.optimizers.muon_family import AdaMuon, NorMuon
from tests.oracles.muon import MuonOracle
from tests.oracles.muon import newton_schulz as oracle_newton_schulz

BACKEND = keras.backend.backend()
STEPS = 8


def _problem(shapes, seed=0):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(s).astype("float32") for s in shapes]
    grads = [
        [rng.standard_normal(s).astype("float32") for s in shapes]
        for _ in range(STEPS)
    ]
    return params, grads


def _run(optimizer, params, grads):
    variables = [keras.Variable(p, name=f"w{i}") for i, p in enumerate(params)]
    for step in grads:
        optimizer.apply(
            [keras.ops.convert_to_tensor(g) for g in step], variables
        )
    return [keras.ops.convert_to_numpy(v) for v in variables]


def _largest_difference(a, b):
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


@pytest.mark.parametrize("nesterov", [True, False])
def test_matches_keras_muon(nesterov):
    """keras.optimizers.Muon (rank-2 weights by Muon, others by its AdamW)
    in the settings the class docstring maps."""
    params, grads = _problem([(7,), (3, 4), (6, 2)])
    settings = {"momentum": 0.9, "nesterov": nesterov}
    theirs = keras.optimizers.Muon(
        learning_rate=0.01,
        adam_beta_1=0.8,
        adam_beta_2=0.95,
        adam_weight_decay=0.05,
        epsilon=1e-7,
        weight_decay=0.1,
        rms_rate=0.2,
        **settings,
    )
    ours = Muon(
        learning_rate=0.01,
        rms_rate=0.2,
        weight_decay=0.1,
        adam_beta_1=0.8,
        adam_beta_2=0.95,
        adam_epsilon=1e-7,
        adam_epsilon_mode="uncorrected",
        adam_weight_decay=0.05,
        exclude_output=False,
        **settings,
    )
    ours = _run(ours, params, grads)
    difference = _largest_difference(ours, _run(theirs, params, grads))
    # Keras keeps the momentum as a sum (mu m + g), keras_opts as an
    # average ((1 - mu) times it): the same direction once normalized, but
    # epsilon 1e-7 then weighs 1 / (1 - mu) = 10 times more in Keras'
    # normalization, about 1e-6 of the norm here, which the iterations
    # carry into the step (lr 0.01 * scale 0.4). Each step also rounds the
    # float32 weights, which two orders of operations may round one ulp
    # apart.
    eps = float(np.finfo("float32").eps)
    scale = max(float(np.max(np.abs(p))) for p in ours)
    assert difference <= STEPS * (eps * scale + 1e-6 * 0.01 * 0.4)


def test_matches_the_oracle_at_float32():
    """The parity bound of the shared tests, here with every kind of
    variable of this file's problems."""
    params, grads = _problem([(7,), (3, 4), (2, 3, 2), (5, 3)])
    ours = _run(Muon(learning_rate=0.01), params, grads)
    oracle = MuonOracle()
    expected = [p.astype("float64") for p in params]
    states = [oracle.init(p) for p in expected]
    for t, step in enumerate(grads, 1):
        expected = [
            oracle.step(p, g.astype("float64"), s, 0.01, t)
            for p, g, s in zip(expected, step, states)
        ]
    scale = max(float(np.max(np.abs(p))) for p in expected)
    eps = float(np.finfo("float32").eps)
    assert _largest_difference(ours, expected) <= STEPS * eps * scale


@pytest.mark.skipif(BACKEND != "torch", reason="torch.optim.Muon: torch")
@pytest.mark.parametrize("adjust", [None, "match_rms_adamw"])
def test_matches_torch_muon(adjust):
    """torch.optim.Muon runs its iterations in bfloat16; so does
    ``ns_dtype="bfloat16"``. Its weights are ``(out, in)``: given the
    transposed matrices, it computes the transposed update."""
    import torch

    params, grads = _problem([(3, 4), (6, 2), (5, 5)])
    settings = {"momentum": 0.9, "nesterov": True, "weight_decay": 0.1}
    torch_params = [
        torch.nn.Parameter(torch.tensor(p.T.copy())) for p in params
    ]
    theirs = torch.optim.Muon(
        torch_params, lr=0.01, eps=1e-7, adjust_lr_fn=adjust, **settings
    )
    for step in grads:
        for p, g in zip(torch_params, step):
            p.grad = torch.tensor(g.T.copy())
        theirs.step()
    ours = _run(
        Muon(
            learning_rate=0.01,
            ns_dtype="bfloat16",
            adjust_learning_rate=adjust or "original",
            **settings,
        ),
        params,
        grads,
    )
    theirs = [p.detach().numpy().T for p in torch_params]
    # bfloat16 keeps 8 bits: each product of the five iterations is
    # rounded to 2**-8 relative (0.4%), differently where torch fuses a
    # scale and a sum (addmm) that Keras' ops round apart, and each
    # iteration carries the previous ones' roundings on (its slope at small
    # singular values is a = 3.4445). The update is 0.01 * scale per entry
    # at most; eight bfloat16 roundings of it (2**-5) per step bound the
    # difference (measured: 1.2% and 1.6% of 8 * 0.01 * scale).
    scale = 0.2 * np.sqrt(6) if adjust else np.sqrt(2)
    assert _largest_difference(ours, theirs) <= STEPS * 0.01 * scale * 2**-5


@pytest.mark.skipif(BACKEND != "jax", reason="optax runs on JAX")
@pytest.mark.parametrize("consistent_rms", [None, 0.2])
def test_matches_optax_muon(consistent_rms):
    import jax.numpy as jnp
    import optax

    params, grads = _problem([(3, 4), (6, 2), (4, 4)])
    transform = optax.contrib.muon(
        learning_rate=0.01,
        beta=0.9,
        eps=1e-8,
        weight_decay=0.1,
        nesterov=True,
        consistent_rms=consistent_rms,
    )
    tree = {f"w{i}": jnp.asarray(p) for i, p in enumerate(params)}
    state = transform.init(tree)
    for step in grads:
        grad_tree = {f"w{i}": jnp.asarray(g) for i, g in enumerate(step)}
        updates, state = transform.update(grad_tree, state, tree)
        tree = optax.apply_updates(tree, updates)
    ours = _run(
        Muon(
            learning_rate=0.01,
            momentum=0.9,
            epsilon=1e-8,
            weight_decay=0.1,
            bias_correction=True,
            adjust_learning_rate=(
                "match_rms_adamw" if consistent_rms else "original"
            ),
            rms_rate=consistent_rms or 0.2,
        ),
        params,
        grads,
    )
    theirs = [np.asarray(tree[f"w{i}"]) for i in range(len(params))]
    scale = max(float(np.max(np.abs(p))) for p in theirs)
    eps = float(np.finfo("float32").eps)
    assert _largest_difference(ours, theirs) <= STEPS * eps * scale


def _pytorch_optimizer_run(monkeypatch, name, settings, params, grads):
    """pytorch_optimizer's ``name`` on the transposed matrices, in float64
    with its Newton-Schulz iterations in float64 (its default is
    bfloat16): a float64 reference of the same update."""
    import functools

    import torch
    from pytorch_optimizer.optimizer.muon import adamuon, base, normuon
    from pytorch_optimizer.optimizer.utils import matrix

    wide = functools.partial(
        matrix.zero_power_via_newton_schulz_5, dtype=torch.float64
    )
    for module in (adamuon, base, normuon):
        monkeypatch.setattr(module, "zero_power_via_newton_schulz_5", wide)
    import pytorch_optimizer

    tensors = [
        torch.tensor(p.T.astype("float64"), requires_grad=True) for p in params
    ]
    group = {"params": tensors, "use_muon": True, **settings}
    optimizer = getattr(pytorch_optimizer, name)([group], foreach=False)
    for step in grads:
        for t, g in zip(tensors, step):
            t.grad = torch.tensor(g.T.astype("float64"))
        optimizer.step()
    return [t.detach().numpy().T for t in tensors]


def _float32_bound(expected):
    """One float32 rounding of the largest weight per step."""
    scale = max(float(np.max(np.abs(p))) for p in expected)
    return STEPS * float(np.finfo("float32").eps) * scale


@pytest.mark.skipif(BACKEND != "torch", reason="pytorch_optimizer: torch")
@pytest.mark.parametrize("rescale", ["preserve", "orthogonal"])
def test_matches_pytorch_optimizer_normuon(monkeypatch, rescale):
    """``update_scale="preserve_norm"`` is ``rescale="preserve"`` with
    Jordan's scale; ``"match_rms"`` is ``rescale="orthogonal"`` with
    Moonlight's (their RMS 0.2: the paper's Algorithm 1)."""
    params, grads = _problem([(3, 4), (6, 2), (5, 5)])
    theirs = _pytorch_optimizer_run(
        monkeypatch,
        "NorMuon",
        {
            "lr": 0.01,
            "momentum": 0.9,
            "beta2": 0.8,
            "weight_decay": 0.1,
            "eps": 1e-6,
            "update_scale": (
                "preserve_norm" if rescale == "preserve" else "match_rms"
            ),
        },
        params,
        grads,
    )
    ours = _run(
        NorMuon(
            learning_rate=0.01,
            momentum=0.9,
            beta_2=0.8,
            weight_decay=0.1,
            normalization_epsilon=1e-6,
            rescale=rescale,
            epsilon=1e-30,  # theirs divides by max(norm, 1e-7)
            adjust_learning_rate=(
                "original" if rescale == "preserve" else "match_rms_adamw"
            ),
            exclude_output=False,
        ),
        params,
        grads,
    )
    assert _largest_difference(ours, theirs) <= _float32_bound(theirs)


@pytest.mark.skipif(BACKEND != "torch", reason="pytorch_optimizer: torch")
def test_matches_pytorch_optimizer_adamuon(monkeypatch):
    params, grads = _problem([(3, 4), (6, 2), (5, 5)])
    theirs = _pytorch_optimizer_run(
        monkeypatch,
        "AdaMuon",
        {"lr": 0.01, "betas": (0.9, 0.99), "weight_decay": 0.1, "eps": 1e-6},
        params,
        grads,
    )
    ours = _run(
        AdaMuon(
            learning_rate=0.01,
            momentum=0.9,
            nesterov=False,
            beta_2=0.99,
            weight_decay=0.1,
            normalization_epsilon=1e-6,
            epsilon=1e-30,  # theirs divides by max(norm, 1e-7)
            exclude_output=False,
        ),
        params,
        grads,
    )
    assert _largest_difference(ours, theirs) <= _float32_bound(theirs)


@pytest.mark.parametrize("cls", [NorMuon, AdaMuon])
def test_the_family_keeps_its_second_moment_in_the_matrices_shape(cls):
    """NorMuon: one number per output neuron (per head's, per output
    channel); AdaMuon: one per entry of the matrix."""
    inputs = keras.Input((5, 8))
    x = keras.layers.MultiHeadAttention(2, 4, name="mha")(inputs, inputs)
    x = keras.layers.Conv1D(6, 3, name="conv")(x)
    model = keras.Model(inputs, x)
    optimizer = cls(split_heads=True, exclude_output=False)
    optimizer.build(model.trainable_variables)
    shapes = {
        v.path.rsplit("/", 1)[-1]: tuple(v.shape) for v in optimizer.variables
    }
    neurons = cls is NorMuon
    # NorMuon's in the matrices' shape with one row; AdaMuon's a slot
    # like the variable's (sharded as it is under keras.distribution).
    assert shapes["mha_query_kernel_velocity"] == (
        (2, 1, 4) if neurons else (8, 2, 4)
    )
    assert shapes["conv_kernel_velocity"] == ((1, 6) if neurons else (3, 8, 6))


def test_polar_express_orthogonalizes():
    """Eight Polar Express iterations bring every singular value of a
    well-conditioned matrix to 1 within 1%; Jordan's quintic to within
    its documented band (0.7, 1.2) (Amsel et al. 2025, Figure 4)."""
    rng = np.random.default_rng(1)
    matrix = rng.standard_normal((6, 4))
    from keras_opts.optimizers import muon

    for name, steps, low, high in (
        ("polar_express", 8, 0.99, 1.01),
        ("quintic", 5, 0.6, 1.25),
    ):
        x = muon.newton_schulz(
            keras.ops.convert_to_tensor(matrix.astype("float32")),
            muon.COEFFICIENTS[name],
            steps,
            1e-7,
            "float32",
            muon.POLAR_EXPRESS_SAFETY if name == "polar_express" else 1.0,
        )
        singular = np.linalg.svd(
            keras.ops.convert_to_numpy(x), compute_uv=False
        )
        assert low < singular.min() and singular.max() < high, name


def _assignment(model, **kwargs):
    optimizer = Muon(**kwargs)
    optimizer.build(model.trainable_variables)
    return optimizer.assignment()


def test_dense_and_convolution_kernels_get_muon_and_the_rest_adamw():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv2d")(inputs)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(16, name="dense")(x)
    x = keras.layers.LayerNormalization(name="layer_normalization")(x)
    outputs = keras.layers.Dense(10, name="dense_1")(x)
    chosen = _assignment(keras.Model(inputs, outputs))
    kinds = chosen
    assert kinds["conv2d/kernel"] == "muon (27, 4)"
    assert kinds["dense/kernel"] == "muon (144, 16)"
    assert kinds["dense_1/kernel"] == "adamw (output head)"
    assert kinds["conv2d/bias"] == "adamw (rank 1)"
    assert kinds["layer_normalization/gamma"] == "adamw (rank 1)"


def test_embeddings_heads_and_excluded_layers_get_adamw():
    inputs = keras.Input((5,), dtype="int32")
    x = keras.layers.Embedding(20, 8, name="tokens")(inputs)
    x = keras.layers.Dense(8, name="mix")(x)
    x = keras.layers.Dense(8, name="skip_me")(x)
    outputs = keras.layers.Dense(20, name="logits")(x)
    model = keras.Model(inputs, outputs)
    chosen = _assignment(model, exclude_layers=["skip_me"])
    kinds = chosen
    assert kinds["tokens/embeddings"] == "adamw (embedding)"
    assert kinds["mix/kernel"] == "muon (8, 8)"
    assert kinds["skip_me/kernel"] == "adamw (exclude_layers)"
    assert kinds["logits/kernel"] == "adamw (output head)"
    kept = _assignment(model, exclude_embeddings=False, exclude_output=False)
    kinds = kept
    assert kinds["tokens/embeddings"] == "muon (20, 8)"
    assert kinds["logits/kernel"] == "muon (8, 20)"


@pytest.mark.parametrize("split_heads", [False, True])
def test_attention_kernels_in_both_layouts(split_heads):
    """MultiHeadAttention's query kernel is (d, heads, head_dim); an
    EinsumDense laid out as Gemma's, (heads, d, head_dim), is read from
    the layer's output projection (d = 8, 2 heads of 4)."""
    inputs = keras.Input((5, 8))
    x = keras.layers.MultiHeadAttention(2, 4, name="mha")(inputs, inputs)
    model = keras.Model(inputs, x)
    chosen = _assignment(model, split_heads=split_heads)
    kinds = chosen
    if split_heads:
        assert kinds["mha/query/kernel"] == "muon 2 x (8, 4)"
        assert kinds["mha/attention_output/kernel"] == "muon 2 x (4, 8)"
    else:
        assert kinds["mha/query/kernel"] == "muon (8, 8)"
        assert kinds["mha/attention_output/kernel"] == "muon (8, 8)"
    assert kinds["mha/query/bias"] == "adamw (bias)"

    # Gemma's layout from KerasHub's layers: EinsumDense kernels
    # (heads, d, head_dim) and (heads, head_dim, d).
    tokens = keras.Input((5, 8))
    query = keras.layers.EinsumDense(
        "btd,ndh->btnh", output_shape=(None, 2, 4), name="query"
    )(tokens)
    output = keras.layers.EinsumDense(
        "btnh,nhd->btd", output_shape=(None, 8), name="attention_output"
    )(query)
    gemma = keras.Model(tokens, output)
    assert [tuple(v.shape) for v in gemma.trainable_variables] == [
        (2, 8, 4),
        (2, 4, 8),
    ]
    optimizer = Muon(split_heads=split_heads, exclude_output=False)
    optimizer.build(gemma.trainable_variables)
    kinds = list(optimizer.assignment().values())
    if split_heads:
        assert kinds == ["muon 2 x (8, 4)", "muon 2 x (4, 8)"]
    else:
        assert kinds == ["muon (8, 8)", "muon (8, 8)"]


def test_split_heads_orthogonalizes_each_head():
    rng = np.random.default_rng(2)
    kernel = rng.standard_normal((8, 2, 4)).astype("float32")  # (d, n, h)
    grad = rng.standard_normal((8, 2, 4)).astype("float32")
    with keras.name_scope("mha"), keras.name_scope("query"):
        variable = keras.Variable(kernel, name="kernel")
    optimizer = Muon(
        learning_rate=0.1, momentum=0.0, split_heads=True, exclude_output=False
    )
    optimizer.apply([keras.ops.convert_to_tensor(grad)], [variable])
    expected = kernel.astype("float64").copy()
    for head in range(2):
        x = oracle_newton_schulz(
            grad[:, head, :], [(3.4445, -4.7750, 2.0315)], 5, 1e-7, 1.0
        )
        expected[:, head, :] -= 0.1 * 0.2 * np.sqrt(8) * x
    got = keras.ops.convert_to_numpy(variable)
    assert np.max(np.abs(got - expected)) < 1e-5


def test_muon_variables_keep_one_slot():
    """Muon keeps one tensor (the momentum) per matrix; AdamW two."""
    model = keras.Sequential(
        [keras.Input((16,)), keras.layers.Dense(32), keras.layers.Dense(4)]
    )
    optimizer = Muon()
    optimizer.build(model.trainable_variables)
    sizes = sum(int(np.prod(v.shape)) for v in optimizer.variables[2:])
    matrix = 16 * 32  # the hidden kernel: momentum only
    others = 32 + 32 * 4 + 4  # AdamW: momentum and velocity
    assert sizes == matrix + 2 * others


@pytest.mark.parametrize(
    "value",
    ["cubic", (1.0, 2.0), [[1.0, 2.0, float("nan")]], 3],
)
def test_bad_coefficients_are_refused(value):
    with pytest.raises(ValueError, match="ns_coefficients"):
        Muon(ns_coefficients=value)


# Another optimizer for the variables Muon leaves.

#: The keras_opts optimizers a fallback may be: a step entry by entry, with
#: slots like the variable. The others are refused, by name.
FALLBACKS = (
    "AdaBelief",
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adan",
    "AdEMAMix",
    "ADOPT",
    "RAdam",
    "RMSprop",
    "SGD",
    "Yogi",
)


def _fallback_kwargs(name):
    return {
        "AdamW": {"weight_decay": 0.1},
        "SGD": {"momentum": 0.9, "nesterov": True},
        "RMSprop": {"momentum": 0.5, "centered": True},
    }.get(name, {})


def _optimizer_names():
    import keras_opts

    return sorted(
        name
        for name in keras_opts.optimizers.__all__
        if name not in ("Muon", "NorMuon", "AdaMuon")
    )


@pytest.mark.parametrize("name", _optimizer_names())
def test_fallback_steps_as_the_optimizer_alone(name):
    """The vectors under Muon(fallback=X) move exactly as under X alone at
    the same learning rate (one code path, the keras.ops loop); X without
    an entry-by-entry step is refused, naming the argument."""
    import keras_opts

    cls = getattr(keras_opts, name)
    if name not in FALLBACKS:
        with pytest.raises(ValueError, match="`fallback` must be"):
            Muon(fallback=cls())
        return
    params, grads = _problem([(7,), (3,), (4, 5)])
    alone = cls(**_fallback_kwargs(name))
    alone.use_foreach = False
    learning_rate = float(keras.ops.convert_to_numpy(alone.learning_rate))
    expected = _run(alone, params[:2], [g[:2] for g in grads])
    muon = Muon(learning_rate, fallback=cls(**_fallback_kwargs(name)))
    got = _run(muon, params, grads)
    for x, y in zip(got[:2], expected):
        np.testing.assert_array_equal(x, y)
    kind = name.lower()
    assert list(muon.assignment().values()) == [
        f"{kind} (rank 1)",
        f"{kind} (rank 1)",
        "muon (4, 5)",
    ]


def test_fallback_trains_in_fit_saves_and_resumes(tmp_path):
    """Compiled fit() (jit, tf.function, the torch loop), then the .keras
    file: the fallback and its state come back, and the resumed run takes
    the same next steps as the uninterrupted one."""
    import keras_opts

    def model():
        keras.utils.set_random_seed(1)
        net = keras.Sequential(
            [
                keras.Input((6,)),
                keras.layers.Dense(8, activation="tanh"),
                keras.layers.Dense(3),
            ]
        )
        net.compile(
            optimizer=Muon(
                0.01,
                fallback=keras_opts.SGD(momentum=0.9, weight_decay=0.01),
                cautious_weight_decay=True,
                weight_decay=0.05,
            ),
            loss="mse",
        )
        return net

    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 6)).astype("float32")
    y = rng.standard_normal((32, 3)).astype("float32")
    first = model()
    first.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    first.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.optimizer.fallback, keras_opts.SGD)
    assert loaded.optimizer.fallback.momentum == 0.9
    for a, b in zip(first.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b)
        )
    for net in (first, loaded):
        net.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(first.trainable_variables, loaded.trainable_variables):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b)
        )


def test_fallback_state_follows_state_dtype():
    import keras_opts

    optimizer = Muon(state_dtype="bfloat16", fallback=keras_opts.Adam())
    optimizer.build([keras.Variable(np.ones((4,), "float32"), name="b")])
    slots = optimizer._slots
    assert slots["momentum"] == [None]
    assert [s.dtype for s in slots["fallback_momentum"]] == ["bfloat16"]
    assert optimizer._rounding_seed is not None


def test_fallback_8_bit_second_moment_takes_the_unsigned_map():
    """The fallback's second moments use the unsigned map, as Adam's own
    do; its first moments, and Muon's momentum, the signed one."""
    import keras_opts

    optimizer = Muon(state_dtype="int8", fallback=keras_opts.Adam())
    # A vector (the fallback's) large enough for 8 bits.
    optimizer.build([keras.Variable(np.ones((4096,), "float32"), name="b")])
    signed = {
        name: optimizer._slots[name][0].signed_codes
        for name in ("fallback_momentum", "fallback_velocity")
    }
    assert signed == {"fallback_momentum": True, "fallback_velocity": False}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"fallback": "adam"}, "keras_opts optimizer"),
        ({"fallback": 3}, "keras_opts optimizer"),
        ({"fallback": "keras_opts>Adam", "adam_beta_1": 0.8}, "adam_beta_1"),
        (
            {
                "fallback": {
                    "class_name": "keras_opts>Adam",
                    "config": {"clipnorm": 1.0},
                }
            },
            "clipnorm",
        ),
        (
            {
                "fallback": {
                    "class_name": "keras_opts>Adam",
                    "config": {"learning_rate": 0.1},
                }
            },
            "adam_lr_ratio",
        ),
    ],
)
def test_bad_fallbacks_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Muon(**kwargs)


@keras.saving.register_keras_serializable(package="keras_opts_tests")
def skip_the_mixer(variable):
    """An `exclude_layers` callable, saved by its registered name."""
    return "mix" in variable.path


def test_exclude_layers_takes_a_callable_and_saves_it():
    inputs = keras.Input((5,))
    x = keras.layers.Dense(8, name="mix")(inputs)
    x = keras.layers.Dense(8, name="hidden")(x)
    outputs = keras.layers.Dense(2, name="logits")(x)
    model = keras.Model(inputs, outputs)
    optimizer = Muon(exclude_layers=skip_the_mixer)
    optimizer.build(model.trainable_variables)
    chosen = optimizer.assignment()
    assert chosen["mix/kernel"] == "adamw (exclude_layers)"
    assert chosen["hidden/kernel"] == "muon (8, 8)"
    config = optimizer.get_config()
    again = Muon.from_config(config)
    assert again.exclude_layers is skip_the_mixer
    assert again.get_config() == config
