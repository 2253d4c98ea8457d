"""Mixed precision: under ``mixed_float16`` (``compile`` wraps the
optimizer in ``LossScaleOptimizer``) and ``mixed_bfloat16`` every
optimizer trains the small model of the distributed tests to a loss close
to the float32 run's, its slots stay float32, and nothing is NaN.

"Close": the final training loss within 5% (relative) of float32's plus
0.002. The forward and backward passes round to 8 (bfloat16) or 11
(float16) significant bits, so the trajectories differ by more than
float32 round-off; the measured worst share of this bound is printed with
``-s``.
"""

import keras
import numpy as np
import pytest

from tests.distributed import common

SPECS = [pytest.param(s, id=s.name) for s in common.SPECS]
EPOCHS = 4


def _train(spec, policy):
    keras.mixed_precision.set_dtype_policy(policy)
    try:
        x, y = common.data(batches=8)
        model = common.model()
        model.compile(optimizer=common.optimizer(spec), loss="mse")
        history = model.fit(
            x, y, batch_size=common.BATCH, epochs=EPOCHS, verbose=0
        )
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    return model, history.history["loss"]


_FLOAT32_LOSSES = {}  # one float32 run per optimizer, for both policies


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("spec", SPECS)
def test_mixed_precision_trains_like_float32(spec, policy):
    model, losses = _train(spec, policy)
    if spec.name not in _FLOAT32_LOSSES:
        _FLOAT32_LOSSES[spec.name] = _train(spec, "float32")[1]
    reference = _FLOAT32_LOSSES[spec.name]
    assert np.all(np.isfinite(losses)), losses
    optimizer = model.optimizer
    if policy == "mixed_float16":
        assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        optimizer = optimizer.inner_optimizer
    assert isinstance(optimizer, spec.cls)
    for variable in model.trainable_weights:
        assert variable.dtype == "float32", variable.path
    for variable in optimizer.variables:
        if variable.dtype.startswith(("int", "uint")):  # counts, seeds
            continue
        assert variable.dtype == "float32", variable.path
        assert np.all(np.isfinite(keras.ops.convert_to_numpy(variable)))
    bound = 0.05 * reference[-1] + 0.002
    gap = abs(losses[-1] - reference[-1])
    print(f"{spec.name} {policy}: loss {losses[-1]:.4f} vs {reference[-1]:.4f}")
    assert gap <= bound, (losses, reference)
    assert losses[-1] < losses[0]
