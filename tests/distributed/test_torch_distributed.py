"""torch.distributed: two CPU processes with the gloo backend.

Both ranks must end bit-identical (they apply the same all-reduced
gradients from the same state), and match a single process trained on
the global batch: the all-reduced gradient is the mean of the two halves'
means, the single process' the mean of the whole batch, the same value
summed in another order, so the bound is 16 float32 roundings of the
largest weight per step (as for JAX and TensorFlow).
"""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from tests.distributed import common

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "torch", reason="torch only"
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def _launch(rank, world, init_file, out):
    command = [sys.executable, "-m", "tests.distributed.torch_worker"]
    return subprocess.Popen(
        [*command, str(rank), str(world), init_file, out],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gloo")
    init = str(tmp / "init")
    outs = [str(tmp / f"rank{r}.npz") for r in range(2)]
    single = str(tmp / "single.npz")
    processes = [_launch(r, 2, init, outs[r]) for r in range(2)]
    processes.append(_launch(0, 1, init, single))
    for p in processes:
        log, _ = p.communicate(timeout=600)
        assert p.returncode == 0, log[-3000:]
    return [dict(np.load(path)) for path in [*outs, single]]


@pytest.mark.parametrize(
    "spec", [pytest.param(s, id=s.name) for s in common.SPECS]
)
def test_ranks_identical_and_equal_to_one_process(runs, spec):
    rank0, rank1, single = runs
    keys = [k for k in single if k.startswith(f"{spec.name}/")]
    assert keys and {k for k in rank0 if k.startswith(f"{spec.name}/")} == set(
        keys
    )
    for key in keys:
        np.testing.assert_array_equal(rank0[key], rank1[key], err_msg=key)
        tol = common.tolerance([single[key]], factor=16)
        np.testing.assert_allclose(
            rank0[key], single[key], rtol=1e-5, atol=tol, err_msg=key
        )
