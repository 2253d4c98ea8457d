"""Adam-mini's blocks on Keras layers: the rule on each layout, parity with
the NumPy oracle and with the authors' package (adam-mini 1.1.1) on a
transformer block whose torch twin has the same blocks, the override and
its checks, and the state it saves."""

import functools
import warnings

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


# KerasHub's attention layouts. GPT-2 and BERT build their attention from
# Keras' MultiHeadAttention, query/key/value kernels (d, heads, head_dim);
# Llama's EinsumDense("bqm,muh->bquh") has the same layout; Gemma's
# EinsumDense("btd,ndh->btnh") puts the heads first, (heads, d, head_dim).
# Every output projection is (heads, head_dim, d). Tiny backbones: width
# 8, 2 query heads of 4, 1 key/value head where the model has GQA, a
# vocabulary of 13, LoRA rank 3 (a length no other axis has).
KH_VOCAB, KH_D, KH_HEADS, KH_HEAD_DIM, KH_RANK = 13, 8, 2, 4, 3


def _keras_hub_backbone(name):
    keras_hub = pytest.importorskip("keras_hub")
    common = dict(
        vocabulary_size=KH_VOCAB,
        num_layers=1,
        hidden_dim=KH_D,
        intermediate_dim=16,
    )
    if name == "gpt2":
        return keras_hub.models.GPT2Backbone(
            num_heads=KH_HEADS, max_sequence_length=8, **common
        )
    if name == "bert":
        return keras_hub.models.BertBackbone(
            num_heads=KH_HEADS, max_sequence_length=8, **common
        )
    if name == "gemma":
        return keras_hub.models.GemmaBackbone(
            num_query_heads=KH_HEADS,
            num_key_value_heads=1,
            head_dim=KH_HEAD_DIM,
            **common,
        )
    assert name == "llama"
    return keras_hub.models.LlamaBackbone(
        num_query_heads=KH_HEADS, num_key_value_heads=1, **common
    )


def _block_shapes(variables):
    """The second moment's shape of each variable, by path; any warning
    (an attention layout the rule cannot tell) fails."""
    optimizer = AdamMini()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        optimizer.build(variables)
    return {
        v.path: tuple(s.shape)
        for v, s in zip(variables, optimizer._slots["velocity"])
    }


_H, _HD, _D = KH_HEADS, KH_HEAD_DIM, KH_D
#: The second moment's shape of each attention variable (by the end of its
#: path), per backbone: queries and keys one per head, values one per
#: output neuron (head, head_dim), the output projection one per output
#: neuron, biases one per entry.
KH_BLOCKS = {
    "gpt2": {
        "self_attention/query/kernel": (1, _H, 1),
        "self_attention/key/kernel": (1, _H, 1),
        "self_attention/value/kernel": (1, _H, _HD),
        "self_attention/attention_output/kernel": (1, 1, _D),
        "self_attention/query/bias": (_H, _HD),
        "token_embedding/embeddings": (KH_VOCAB, 1),
        "position_embedding/embeddings": (8, 1),
    },
    "bert": {
        "self_attention_layer/query/kernel": (1, _H, 1),
        "self_attention_layer/key/kernel": (1, _H, 1),
        "self_attention_layer/value/kernel": (1, _H, _HD),
        "self_attention_layer/attention_output/kernel": (1, 1, _D),
        "self_attention_layer/value/bias": (_H, _HD),
    },
    "gemma": {  # heads first; one key/value head
        "attention/query/kernel": (_H, 1, 1),
        "attention/key/kernel": (1, 1, 1),
        "attention/value/kernel": (1, 1, _HD),
        "attention/attention_output/kernel": (1, 1, _D),
        "ffw_gating/kernel": (1, _D),
        "token_embedding/embeddings": (KH_VOCAB, 1),
    },
    "llama": {  # one key/value head; an untied output embedding (d, vocab)
        "self_attention/query/kernel": (1, _H, 1),
        "self_attention/key/kernel": (1, 1, 1),
        "self_attention/value/kernel": (1, 1, _HD),
        "self_attention/attention_output/kernel": (1, 1, _D),
        "token_embedding/embeddings": (KH_VOCAB, 1),
        "token_embedding/reverse_embeddings": (1, KH_VOCAB),  # per token
    },
}

#: With ``backbone.enable_lora(rank)`` (LoRA on query and value, the rest
#: frozen): factor A has the kernel's shape but its last axis, the rank,
#: and the kernel's blocks (a query's per head); factor B (rank, out) one
#: block per output neuron, as a Dense kernel.
_R = KH_RANK
KH_LORA_BLOCKS = {
    "gpt2": {
        "self_attention/query/lora_kernel_a": (1, _H, 1),
        "self_attention/query/lora_kernel_b": (1, _HD),
        "self_attention/value/lora_kernel_a": (1, _H, _R),
        "self_attention/value/lora_kernel_b": (1, _HD),
        "self_attention/query/bias": (_H, _HD),
    },
    "bert": {
        "self_attention_layer/query/lora_kernel_a": (1, _H, 1),
        "self_attention_layer/query/lora_kernel_b": (1, _HD),
        "self_attention_layer/value/lora_kernel_a": (1, _H, _R),
        "self_attention_layer/value/lora_kernel_b": (1, _HD),
    },
    "gemma": {
        "attention/query/lora_kernel_a": (_H, 1, 1),
        "attention/query/lora_kernel_b": (1, _HD),
        "attention/value/lora_kernel_a": (1, 1, _R),
        "attention/value/lora_kernel_b": (1, _HD),
    },
    "llama": {
        "self_attention/query/lora_kernel_a": (1, _H, 1),
        "self_attention/query/lora_kernel_b": (1, _HD),
        "self_attention/value/lora_kernel_a": (1, 1, _R),
        "self_attention/value/lora_kernel_b": (1, _HD),
    },
}


def _assert_blocks(shapes, expected):
    for suffix, shape in expected.items():
        found = [p for p in shapes if p.endswith(suffix)]
        assert found, suffix
        for path in found:
            assert shapes[path] == shape, (path, shapes[path])


@pytest.mark.parametrize("name", sorted(KH_BLOCKS))
def test_blocks_on_keras_hub_backbones(name):
    backbone = _keras_hub_backbone(name)
    _assert_blocks(_block_shapes(backbone.trainable_variables), KH_BLOCKS[name])


@pytest.mark.parametrize("name", sorted(KH_LORA_BLOCKS))
def test_blocks_on_keras_hub_lora_factors(name):
    backbone = _keras_hub_backbone(name)
    backbone.enable_lora(KH_RANK)
    variables = backbone.trainable_variables
    assert any("lora_kernel_a" in v.path for v in variables)
    _assert_blocks(_block_shapes(variables), KH_LORA_BLOCKS[name])


def test_warns_where_the_variables_cannot_tell_the_head_axis():
    """Gemma without grouped-query attention, LoRA on query and value only:
    the output projection is frozen and the query and value factors A are
    both (2, 8, rank), so no shape tells heads from width. The warning
    names the variable and the ``block_axes`` that fixes it; with that
    override the blocks are per head, without a warning."""
    keras_hub = pytest.importorskip("keras_hub")
    backbone = keras_hub.models.GemmaBackbone(
        vocabulary_size=KH_VOCAB,
        num_layers=1,
        num_query_heads=KH_HEADS,
        num_key_value_heads=KH_HEADS,
        hidden_dim=KH_D,
        intermediate_dim=16,
        head_dim=KH_HEAD_DIM,
    )
    backbone.enable_lora(KH_RANK)
    variables = backbone.trainable_variables
    query = "decoder_block_0/attention/query/lora_kernel_a"
    value = "decoder_block_0/attention/value/lora_kernel_a"
    with pytest.warns(UserWarning) as record:
        AdamMini().build(variables)
    messages = sorted(str(w.message) for w in record)
    assert len(messages) == 2
    assert query in messages[0] and value in messages[1]
    assert "block_axes={" + repr(query + "$") in messages[0]
    assert ": [1, 2]}" in messages[0] and ": [1]}" in messages[1]
    optimizer = AdamMini(block_axes={f"{query}$": [1, 2], f"{value}$": [1]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        optimizer.build(variables)
    shapes = {
        v.path: tuple(s.shape)
        for v, s in zip(variables, optimizer._slots["velocity"])
    }
    assert shapes[query] == (KH_HEADS, 1, 1)  # per head
    assert shapes[value] == (KH_HEADS, 1, KH_RANK)  # per output neuron
