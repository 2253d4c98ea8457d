"""Every optimizer's defaults train: ``cls()``, nothing else, on a small
regression MLP and on a tiny Transformer, compiled ``fit()`` for
:data:`STEPS` steps, each case on one of the backends.

Both bounds are fractions of the loss before training, on all the data:
the final loss is at most :data:`FINAL_BOUND` of it, and no epoch's mean
training loss exceeds :data:`PEAK_BOUND` times it. A frozen optimizer (a
default rate far too small) ends near 1, a diverging one at NaN or above
its start, and one that overshoots and recovers (LARS at its former
default, whose zero-initialised biases took one step at the global rate
1.0: 181 times the initial loss, then 0.82 of it) fails the peak. The
slowest defaults, RAdam's and ScheduleFreeRAdam's (their warm-ups), end at
0.76 to 0.86 of their start; Yogi, Prodigy and MADGRAD below 0.04.

The MLP (8 inputs, two hidden layers of 64) fits a smooth target of
scale 4 (initial loss about 20); the Transformer (Embedding, one causal
keras ``MultiHeadAttention`` block with a residual and
``LayerNormalization``, a next-token head) learns 16 tokens, each
followed by the next one in a fixed random cycle (initial loss about
``log(16)``).
"""

import math

import keras
import numpy as np
import pytest

from keras_opts import registry
from tests import helpers

#: The final loss over the initial one, at most.
FINAL_BOUND = 0.9
#: Each epoch's mean training loss over the initial loss, at most.
PEAK_BOUND = 1.5
STEPS = 96
BATCH = 32
VOCAB = 16
LENGTH = 8
WIDTH = 16
SCALE = 4.0
HIDDEN = 64


def mlp_problem():
    """A 2-hidden-layer MLP and a smooth nonlinear target of 8 inputs."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH * 4, 8)).astype("float32")
    w = rng.standard_normal((8, 1)).astype("float32")
    y = SCALE * (np.sin(x @ w) + 0.5 * x[:, :1] ** 2)
    y = y.astype("float32")
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(HIDDEN, activation="relu"),
            keras.layers.Dense(HIDDEN, activation="relu"),
            keras.layers.Dense(1),
        ]
    )
    return model, x, y, "mse"


def transformer_problem():
    """Embedding, one causal self-attention block (keras
    ``MultiHeadAttention``, residual, ``LayerNormalization``) and a
    next-token head; each sequence walks a fixed random cycle of the
    16 tokens from a random start."""
    rng = np.random.default_rng(1)
    order = rng.permutation(VOCAB)
    successor = np.empty(VOCAB, "int32")
    successor[order] = np.roll(order, -1)
    starts = rng.integers(0, VOCAB, BATCH * 4)
    tokens = np.empty((BATCH * 4, LENGTH + 1), "int32")
    tokens[:, 0] = starts
    for i in range(LENGTH):
        tokens[:, i + 1] = successor[tokens[:, i]]
    x, y = tokens[:, :-1], tokens[:, 1:]
    inputs = keras.Input((LENGTH,), dtype="int32")
    h = keras.layers.Embedding(VOCAB, WIDTH)(inputs)
    attention = keras.layers.MultiHeadAttention(num_heads=2, key_dim=WIDTH // 2)
    h = keras.layers.LayerNormalization()(
        h + attention(h, h, use_causal_mask=True)
    )
    logits = keras.layers.Dense(VOCAB)(h)
    model = keras.Model(inputs, logits)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return model, x, y, loss


PROBLEMS = {"mlp": mlp_problem, "transformer": transformer_problem}


def loss_ratio(optimizer, problem):
    """``(final, peak)``: the final loss of ``problem`` trained by
    ``optimizer`` for :data:`STEPS` steps of compiled ``fit()``, and the
    largest epoch mean of its training loss, over the initial loss (the
    initial and final ones on all the data)."""
    keras.utils.set_random_seed(0)
    model, x, y, loss = PROBLEMS[problem]()
    model.compile(optimizer=optimizer, loss=loss)
    initial = _loss(model, loss, x, y)
    epochs = STEPS * BATCH // len(x)
    history = model.fit(
        x, y, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0
    )
    peak = max(history.history["loss"]) / initial
    return _loss(model, loss, x, y) / initial, peak


def _loss(model, loss, x, y):
    """The loss on all the data, eagerly (no second compiled function)."""
    loss = keras.losses.get(loss)
    value = loss(keras.ops.convert_to_tensor(y), model(x, training=False))
    return float(keras.ops.convert_to_numpy(keras.ops.mean(value)))


#: (optimizer, problem) cases, each on one backend (``helpers.shared``:
#: the three passes together run every case once, and
#: ``KERAS_OPTS_EVERY_BACKEND=1`` runs each everywhere). The update is the
#: same on every backend (the parity tests hold each to its oracle on all
#: three); 96 steps of each case on every backend took 6 to 15 minutes
#: per backend on 2 cores.
CASES = helpers.shared(
    [
        pytest.param(cls, problem, id=f"{name}-{problem}")
        for name, cls in registry.OPTIMIZERS.items()
        for problem in sorted(PROBLEMS)
    ],
    "the_defaults_train",
)


@pytest.mark.parametrize("cls, problem", CASES)
def test_the_defaults_train(cls, problem):
    final, peak = loss_ratio(cls(), problem)
    where = f"{cls.__name__}() on the {problem}, {helpers.BACKEND}"
    assert math.isfinite(final) and final < FINAL_BOUND, (
        f"{where}: loss at {final:.3g} of its start after {STEPS} steps"
    )
    assert peak < PEAK_BOUND, (
        f"{where}: training loss at {peak:.3g} of its start"
    )
