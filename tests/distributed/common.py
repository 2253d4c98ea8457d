"""What the distributed tests share: a small model, data and the
optimizer arguments each registry optimizer trains it with."""

from __future__ import annotations

import re

import keras
import numpy as np

from tests import helpers
from tests import specs as registry

BATCH = 16
STEPS = 6


def data(seed=0, features=8, outputs=4, batches=STEPS):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((BATCH * batches, features)).astype("float32")
    w = rng.standard_normal((features, outputs)).astype("float32")
    y = (np.tanh(x @ w) + 0.1 * rng.standard_normal((len(x), outputs))).astype(
        "float32"
    )
    return x, y


def model(features=8, outputs=4, hidden=16):
    """Biases start non-zero: a zero bias has no norm, and LARS then takes
    a plain ``learning_rate * g`` step on it, which at LARS' large rates
    makes training chaotic (and runs that differ by round-off part)."""
    keras.utils.set_random_seed(0)
    bias = keras.initializers.RandomNormal(stddev=0.1, seed=1)
    return keras.Sequential(
        [
            keras.Input((features,)),
            keras.layers.Dense(
                hidden,
                activation="tanh",
                bias_initializer=bias,
                name="dense_1",
            ),
            keras.layers.Dense(outputs, bias_initializer=bias, name="dense_2"),
        ]
    )


def optimizer(spec):
    """``spec``'s optimizer with its parabola settings (a learning rate
    that suits the method) and the richest test configuration."""
    kwargs = dict(max(spec.test_configs, key=len))
    kwargs.update(spec.convergence["parabola"][0])
    return spec.cls(**kwargs)


def weights(model):
    return [np.asarray(keras.ops.convert_to_numpy(w)) for w in model.weights]


def optimizer_state(optimizer):
    """Every optimizer variable by its name, less the model's name (which
    Keras numbers per process: ``sequential_2_dense_1_kernel_momentum``)."""
    return {
        re.sub(r"^sequential(_\d+)?_", "", v.name): np.asarray(
            keras.ops.convert_to_numpy(v)
        )
        for v in optimizer.variables
    }


def tolerance(arrays, steps=STEPS, factor=1.0):
    """``factor`` float32 roundings of the largest magnitude per step."""
    return factor * helpers.float32_tolerance([arrays], steps)


SPECS = registry.SPECS
