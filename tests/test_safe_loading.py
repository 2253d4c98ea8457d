"""keras_opts objects in .keras files load in safe mode, and broken files
fail loudly without touching the caller's objects."""

import json
import zipfile

import keras
import numpy as np
import pytest

import keras_opts
from tests import helpers, resume_worker
from tests import specs as registry

SPECS = [pytest.param(s, id=s.name) for s in registry.SPECS]


def _trained(spec, tmp_path):
    model = resume_worker.model(spec)
    resume_worker.fit(model, 1)
    path = tmp_path / "m.keras"
    model.save(path)
    return model, path


@pytest.mark.parametrize("spec", helpers.shared(SPECS, "loads_with_safe_mode"))
def test_loads_with_safe_mode(spec, tmp_path):
    """The optimizer and its nested schedules (Warmup of GeometricDecay)
    hold no lambdas or pickled code."""
    model, path = _trained(spec, tmp_path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert isinstance(
        loaded.optimizer._learning_rate, keras_opts.schedules.Warmup
    )


def test_truncated_files_raise_and_leave_the_model_alone(tmp_path):
    spec = registry.lookup("radam")
    model, path = _trained(spec, tmp_path)
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    # Keras' own error: the zip archive is unreadable.
    with pytest.raises(ValueError):
        keras.models.load_model(truncated)

    weights = tmp_path / "w.weights.h5"
    model.save_weights(weights)
    cut = tmp_path / "cut.weights.h5"
    cut.write_bytes(weights.read_bytes()[:1000])
    other = resume_worker.model(spec)
    resume_worker.fit(other, 1)
    before = [np.array(v.numpy()) for v in other.variables]
    before += [np.array(v.numpy()) for v in other.optimizer.variables]
    with pytest.raises(OSError, match="truncated file"):  # h5py's error
        other.load_weights(cut)
    after = [np.array(v.numpy()) for v in other.variables]
    after += [np.array(v.numpy()) for v in other.optimizer.variables]
    for a, b in zip(after, before):
        np.testing.assert_array_equal(a, b)


def test_a_bad_value_inside_a_file_fails_with_the_argument_named(tmp_path):
    spec = registry.lookup("adam")
    _, path = _trained(spec, tmp_path)
    edited = tmp_path / "edited.keras"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(edited, "w") as out:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                config["compile_config"]["optimizer"]["config"]["beta_1"] = 1.5
                data = json.dumps(config).encode()
            out.writestr(item, data)
    with pytest.raises(ValueError, match="beta_1=1.5"):
        keras.models.load_model(edited)
