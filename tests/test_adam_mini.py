"""Adam-mini's blocks on Keras layers: the rule on each layout, parity with
the NumPy oracle and with the authors' package (adam-mini 1.1.1) on a
transformer block whose torch twin has the same blocks, the override and
its checks, and the state it saves."""

import functools

import keras
import numpy as np
import pytest

from keras_opts import AdamMini
from tests import helpers
from tests.oracles.adam_mini import AdamMiniOracle

D, HEADS, VOCAB, HIDDEN, SEQ = 8, 2, 11, 16, 3
STEPS = 10
EXCLUDED = ["bias", "gamma", "beta"]  # the authors' "bias", "norm", "ln"


@functools.cache
def _variables():
    """The trainable variables of a small transformer block, built without
    a model (tracing one costs seconds): embedding, attention, layer norm,
    MLP, output layer."""
    embed = keras.layers.Embedding(VOCAB, D, name="embed")
    embed.build((None, SEQ))
    attn = keras.layers.MultiHeadAttention(HEADS, D // HEADS, name="attn")
    attn.build((None, SEQ, D), (None, SEQ, D))
    norm = keras.layers.LayerNormalization(name="norm")
    norm.build((None, SEQ, D))
    mlp = keras.layers.Dense(HIDDEN, name="mlp")
    mlp.build((None, SEQ, D))
    head = keras.layers.Dense(VOCAB, name="lm_head")
    head.build((None, SEQ, HIDDEN))
    layers = (embed, attn, norm, mlp, head)
    return tuple(v for layer in layers for v in layer.trainable_variables)


#: Keras path -> (the torch name the authors' package partitions the same
#: way, whether the torch layout is the transpose: a torch Linear weight
#: is (out, in), a Keras kernel (in, out), flattened to 2-D around the
#: input axes). Biases and the rest keep their entries, flattened.
TRANSPOSED = "T"
TORCH = {
    "embed/embeddings": ("embed.weight", None),
    **{
        f"attn/{ours}/{kind}": (f"attn.{theirs}.{name}", layout)
        for ours, theirs in (
            ("query", "q_proj"),
            ("key", "k_proj"),
            ("value", "v_proj"),
            ("attention_output", "o_proj"),
        )
        for kind, name, layout in (
            ("kernel", "weight", TRANSPOSED),
            ("bias", "bias", None),
        )
    },
    "norm/gamma": ("norm.weight", None),
    "norm/beta": ("norm.bias", None),
    "mlp/kernel": ("mlp.weight", TRANSPOSED),
    "mlp/bias": ("mlp.bias", None),
    "lm_head/kernel": ("lm_head.weight", TRANSPOSED),
    "lm_head/bias": ("lm_head.bias", None),
}


def _to_torch(value, path):
    """A Keras value in the torch layout (the attention output's kernel
    (heads, head_dim, d) flattens its first two axes, the others their
    last two)."""
    if TORCH[path][1] != TRANSPOSED:
        return value.reshape(-1) if "bias" in path else value
    if path.endswith("attention_output/kernel"):
        return value.reshape(-1, value.shape[-1]).T
    return value.reshape(value.shape[0], -1).T


def _to_keras(value, path, shape):
    if TORCH[path][1] != TRANSPOSED:
        return value.reshape(shape)
    return value.T.reshape(shape)


#: The blocks of each variable: the shape of its second moment.
BLOCKS = {
    "embed/embeddings": (VOCAB, 1),  # per token
    "attn/query/kernel": (1, HEADS, 1),  # per head
    "attn/key/kernel": (1, HEADS, 1),
    "attn/value/kernel": (1, HEADS, D // HEADS),  # per output neuron
    "attn/attention_output/kernel": (1, 1, D),
    "attn/query/bias": (HEADS, D // HEADS),  # per entry
    "norm/gamma": (1,),  # one block
    "norm/beta": (D,),  # an offset: per entry, as a bias
    "mlp/kernel": (1, HIDDEN),
    "lm_head/kernel": (1, VOCAB),  # per token
}


def _problem(variables, seed=0):
    rng = np.random.default_rng(seed)
    params = [
        rng.standard_normal(v.shape).astype(np.float32) for v in variables
    ]
    grads = [
        [
            (rng.standard_normal(v.shape) * 10 ** rng.uniform(-1, 1)).astype(
                np.float32
            )
            for v in variables
        ]
        for _ in range(STEPS)
    ]
    return params, grads


def _run_ours(optimizer, variables, params, grads):
    for v, p in zip(variables, params):
        v.assign(p)
    history = []
    for step in grads:
        optimizer.apply(
            [keras.ops.convert_to_tensor(g) for g in step], variables
        )
        history.append([np.asarray(v.numpy(), np.float64) for v in variables])
    return history


def _run_authors(variables, params, grads, lr, **kwargs):
    """adam_mini.Adam_mini in float64 on torch tensors laid out as torch
    layers hold them, read back in Keras' layout."""
    import torch
    from adam_mini import Adam_mini

    paths = [v.path for v in variables]
    tensors = [
        torch.tensor(_to_torch(p, path).copy(), dtype=torch.float64)
        for p, path in zip(params, paths)
    ]
    for t in tensors:
        t.requires_grad_(True)
    named = [(TORCH[path][0], t) for path, t in zip(paths, tensors)]
    optimizer = Adam_mini(
        named, lr=lr, dim=D, n_heads=HEADS, verbose=False, **kwargs
    )
    history = []
    for step in grads:
        for t, g, path in zip(tensors, step, paths):
            t.grad = torch.tensor(
                _to_torch(g, path).copy(), dtype=torch.float64
            )
        optimizer.step()
        history.append(
            [
                _to_keras(t.detach().numpy().copy(), path, v.shape)
                for t, path, v in zip(tensors, paths, variables)
            ]
        )
    return history


def test_blocks_follow_the_layers():
    variables = _variables()
    optimizer = AdamMini()
    optimizer.build(variables)
    shapes = {
        v.path: tuple(s.shape)
        for v, s in zip(variables, optimizer._slots["velocity"])
    }
    for path, shape in BLOCKS.items():
        assert shapes[path] == shape, path


def test_matches_oracle_and_the_authors_package():
    """Weight decay 0.1 on all but biases and norms, as the authors'
    package decays; 10 steps of gradients of mixed scales."""
    variables = _variables()
    params, grads = _problem(variables)
    lr = 0.01
    optimizer = AdamMini(lr, beta_2=0.99, weight_decay=0.1)
    optimizer.exclude_from_weight_decay(var_names=EXCLUDED)
    ours = _run_ours(optimizer, variables, params, grads)
    theirs = _run_authors(
        variables, params, grads, lr, betas=(0.9, 0.99), weight_decay=0.1
    )
    tol = helpers.float32_tolerance(theirs, STEPS)
    helpers.assert_histories_close(ours, theirs, tol, "adam_mini")
    # The oracle, float64, with the decay of the harness on the decayed
    # variables only: the same trajectories to float64 roundings.
    decayed = [not any(x in v.path for x in EXCLUDED) for v in variables]
    oracle = AdamMiniOracle(beta_2=0.99, names=[v.path for v in variables])
    expected = _run_oracle(oracle, params, grads, lr, 0.1, decayed)
    helpers.assert_histories_close(theirs, expected, 1e-12, "oracle")


def _run_oracle(oracle, params, grads, lr, weight_decay, decayed):
    params = [np.asarray(p, np.float64) for p in params]
    states = [oracle.init(p) for p in params]
    history = []
    for t, step in enumerate(grads, start=1):
        params = [
            oracle.step(p - lr * weight_decay * p if d else p, g, s, lr, t)
            for p, g, s, d in zip(params, step, states, decayed)
        ]
        history.append(params)
    return history


def test_block_axes_overrides_the_rule():
    variables = _variables()
    optimizer = AdamMini(
        block_axes={
            "embeddings": [],
            r"^mlp/kernel": [0, 1],
            r"^mlp/bias": [-1],
            "query/kernel": [0],
        }
    )
    optimizer.build(variables)
    shapes = {
        v.path: tuple(s.shape)
        for v, s in zip(variables, optimizer._slots["velocity"])
    }
    assert shapes["embed/embeddings"] == (VOCAB, D)  # Adam
    assert shapes["mlp/kernel"] == (1, 1)  # one block
    assert shapes["mlp/bias"] == (1,)
    assert shapes["attn/query/kernel"] == (1, HEADS, D // HEADS)
    assert shapes["attn/key/kernel"] == (1, HEADS, 1)  # the rule


@pytest.mark.parametrize(
    "block_axes, error, match",
    [
        ([0], TypeError, "block_axes"),
        ({1: [0]}, TypeError, "keys must be strings"),
        ({"(": [0]}, ValueError, "not a regular expression"),
        ({"x": 0}, TypeError, "lists of axes"),
        ({"x": [0.5]}, TypeError, "lists of axes"),
        ({"x": [True]}, TypeError, "lists of axes"),
    ],
)
def test_bad_block_axes(block_axes, error, match):
    with pytest.raises(error, match=match):
        AdamMini(block_axes=block_axes)


def test_axes_beyond_the_rank_fail_before_any_variable():
    variables = _variables()
    optimizer = AdamMini(block_axes={"mlp/kernel": [2]})
    with pytest.raises(ValueError, match="mlp/kernel"):
        optimizer.build(variables)
    assert not optimizer.built
    assert not [v for v in optimizer.variables if "velocity" in v.path]


def test_state_is_about_half_of_adams():
    """The figures of the class docstring: numbers of state per weight."""
    variables = _variables()
    weights = sum(int(np.prod(v.shape)) for v in variables)
    optimizer = AdamMini()
    optimizer.build(variables)
    moments = sum(int(np.prod(s.shape)) for s in optimizer._slots["momentum"])
    blocks = sum(int(np.prod(s.shape)) for s in optimizer._slots["velocity"])
    assert moments == weights
    assert (weights, blocks) == (ADAM_MINI_WEIGHTS, ADAM_MINI_BLOCKS)
    assert round((moments + blocks) / weights, 2) == 1.17  # Adam: 2


#: Counted from the shapes: embedding 11 x 8, attention 4 (8 x 8 + 8),
#: norm 2 x 8, MLP 8 x 16 + 16, output 16 x 11 + 11; blocks 11 + 2 + 2 +
#: 8 + 8 (per head, per neuron) + 4 x 8 biases + 1 + 8 + 16 + 16 + 11 + 11.
ADAM_MINI_WEIGHTS = 88 + 4 * 72 + 16 + 144 + 187
ADAM_MINI_BLOCKS = 11 + 2 + 2 + 8 + 8 + 32 + 1 + 8 + 16 + 16 + 11 + 11
