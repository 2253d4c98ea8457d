"""KerasHub's tiny GPT-2 and Gemma backbones (random weights, no presets)
under keras_opts: a few fit() steps lower the loss, and a model saved
mid-training, loaded and trained on ends bitwise where the same model
trained on without the save does."""

import os

import keras
import numpy as np
import pytest

import keras_opts
from tests import helpers

keras_hub = pytest.importorskip("keras_hub")

VOCAB, SEQ, BATCH = 13, 8, 4


def _backbone(name):
    if name == "gpt2":
        return keras_hub.models.GPT2Backbone(
            vocabulary_size=VOCAB,
            num_layers=1,
            num_heads=2,
            hidden_dim=8,
            intermediate_dim=16,
            max_sequence_length=SEQ,
            dropout=0.0,  # no random state between the two runs
        )
    assert name == "gemma"
    return keras_hub.models.GemmaBackbone(
        vocabulary_size=VOCAB,
        num_layers=1,
        num_query_heads=2,
        num_key_value_heads=1,
        hidden_dim=8,
        intermediate_dim=16,
        head_dim=4,
    )


def _model(name, optimizer):
    """The backbone under a Dense head over the vocabulary, trained to
    predict each next token."""
    keras.utils.set_random_seed(0)
    backbone = _backbone(name)
    logits = keras.layers.Dense(VOCAB, name="lm_head")(backbone.output)
    model = keras.Model(backbone.input, logits)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def _data():
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, VOCAB, (BATCH, SEQ + 1)).astype("int32")
    x = {
        "token_ids": tokens[:, :-1],
        "padding_mask": np.ones((BATCH, SEQ), "int32"),
    }
    return x, tokens[:, 1:]


#: One optimizer of each family, at learning rates that lower the loss of
#: a random-init model within four steps.
OPTIMIZERS = {
    "adamw": lambda: keras_opts.AdamW(learning_rate=0.01),
    "sgd_momentum": lambda: keras_opts.SGD(learning_rate=0.3, momentum=0.9),
    "adam_mini": lambda: keras_opts.AdamMini(learning_rate=0.01),
    "schedule_free_adamw": lambda: keras_opts.ScheduleFreeAdamW(
        learning_rate=0.01
    ),
    "soap": lambda: keras_opts.SOAP(learning_rate=0.01),
}

#: Each optimizer on one backbone (each case compiles two models).
CASES = [
    ("gpt2", "adamw"),
    ("gpt2", "sgd_momentum"),
    pytest.param(
        "gpt2",
        "soap",
        marks=pytest.mark.skipif(
            helpers.BACKEND != "torch"
            and not os.environ.get("KERAS_OPTS_ALL_PATHS"),
            reason="SOAP's compiled step on a backbone compiles for 40 to "
            "60 s on 2 cores (its compiled paths are in test_paths.py); "
            "KERAS_OPTS_ALL_PATHS=1 runs it here",
        ),
    ),
    ("gemma", "adam_mini"),
    ("gemma", "schedule_free_adamw"),
]


@pytest.mark.parametrize("backbone, optimizer", CASES)
def test_fit_lowers_loss_and_resumes_bitwise(backbone, optimizer, tmp_path):
    """2 steps, save; 2 more steps on the model and on its loaded copy:
    the loss falls over the 4 steps and both copies end bitwise equal
    (same backend, same device, same compiled program)."""
    x, y = _data()
    model = _model(backbone, OPTIMIZERS[optimizer]())
    fit = dict(batch_size=BATCH, shuffle=False, verbose=0)
    losses = model.fit(x, y, epochs=2, **fit).history["loss"]
    path = str(tmp_path / "model.keras")
    model.save(path)
    resumed = keras.models.load_model(path)
    assert type(resumed.optimizer) is type(model.optimizer)
    assert int(resumed.optimizer.iterations) == 2
    losses += model.fit(x, y, epochs=2, **fit).history["loss"]
    resumed_losses = resumed.fit(x, y, epochs=2, **fit).history["loss"]

    assert np.all(np.isfinite(losses))
    assert losses[-1] < losses[0], losses
    assert resumed_losses == losses[2:]
    weights, resumed_weights = model.get_weights(), resumed.get_weights()
    assert len(weights) == len(resumed_weights)
    for a, b in zip(weights, resumed_weights):
        np.testing.assert_array_equal(a, b)
