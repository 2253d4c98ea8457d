"""CONTRIBUTING.md's worked example, run as written: its Lion module and
its oracle are taken from the page's diff, and the optimizer must match
``keras.optimizers.Lion`` and the oracle, save and load, and refuse a bad
argument as every optimizer does.

The module runs in a subprocess, so that registering ``keras_opts>Lion``
(which keras_opts does not ship) leaves this process' registry alone.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys
import textwrap

ROOT = pathlib.Path(__file__).resolve().parents[1]

CHECK = textwrap.dedent(
    """
    import json, sys
    import keras
    import numpy as np

    sys.path.insert(0, sys.argv[1])
    from lion import Lion
    from lion_oracle import LionOracle

    rng = np.random.default_rng(0)
    start = rng.standard_normal((5, 3)).astype("float32")
    grads = rng.standard_normal((6, 5, 3)).astype("float32")
    settings = {"beta_1": 0.5, "beta_2": 0.9}

    def run(optimizer):
        w = keras.Variable(start)
        for g in grads:
            optimizer.apply([keras.ops.convert_to_tensor(g)], [w])
        return keras.ops.convert_to_numpy(w)

    ours = run(Lion(learning_rate=0.01, **settings))
    theirs = run(keras.optimizers.Lion(learning_rate=0.01, **settings))
    oracle, param = LionOracle(**settings), start.astype("float64")
    state = oracle.init(param)
    for t, g in enumerate(grads, 1):
        param = oracle.step(param, g.astype("float64"), state, 0.01, t)

    opt = Lion(learning_rate=0.01, beta_1=0.3)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    try:
        Lion(beta_2=1.5)
        refused = ""
    except ValueError as error:
        refused = str(error)
    print(json.dumps({
        "keras": float(np.max(np.abs(ours - theirs))),
        "oracle": float(np.max(np.abs(ours - param))),
        "restored": [type(restored).__name__, restored.beta_1],
        "config": sorted(k for k in opt.get_config() if k.startswith("beta")),
        "refused": refused,
    }))
    """
)


def _block(text: str, path: str) -> str:
    """The added lines of ``path`` in the page's diff, without their
    ``+``."""
    match = re.search(
        rf"^\+\+\+ b/{re.escape(path)}\n((?:\+(?!\+\+ ).*\n|\n)*)",
        text,
        re.M,
    )
    assert match, f"CONTRIBUTING.md has no diff of {path}"
    return "\n".join(line[1:] for line in match.group(1).splitlines()) + "\n"


def test_the_worked_example_runs_as_written(tmp_path):
    text = (ROOT / "CONTRIBUTING.md").read_text()
    (tmp_path / "lion.py").write_text(
        _block(text, "keras_opts/optimizers/lion.py")
    )
    (tmp_path / "lion_oracle.py").write_text(
        _block(text, "tests/oracles/lion.py")
    )
    done = subprocess.run(
        [sys.executable, "-c", CHECK, str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # Lion's step is +-lr per entry: both differences are 0 unless a sign
    # differs, which would show as 2 * lr = 0.02. 1e-6 bounds the float32
    # rounding of six steps of 0.01 on weights of about 1.
    assert result["keras"] <= 1e-6
    assert result["oracle"] <= 1e-6
    assert result["restored"] == ["Lion", 0.3]
    assert result["config"] == ["beta_1", "beta_2"]
    assert (
        "`beta_2` must be in [0, 1). Received: beta_2=1.5"
        in (result["refused"])
    )
