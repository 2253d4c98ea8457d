"""Each pytest process runs one backend, chosen by ``KERAS_BACKEND``."""

import os

import keras
import numpy as np
import pytest
from hypothesis import settings

from tests import specs as registry

# The multi-device tests need a process set up for them (see
# tests/distributed/conftest.py); tools/run_tests.py runs them apart.
collect_ignore = (
    [] if os.environ.get("KERAS_OPTS_DISTRIBUTED") else ["distributed"]
)

# `pytest --hypothesis-profile=thorough` for a long local run.
settings.register_profile("ci", max_examples=6, deadline=None)
settings.register_profile("thorough", max_examples=300, deadline=None)
settings.load_profile("ci")


# NumPy's assert_allclose passes NaN against NaN unless told otherwise: two
# runs that diverged alike would pass. In this suite a NaN fails a
# comparison; a test that means to compare NaNs says equal_nan=True.
_assert_allclose = np.testing.assert_allclose


def _assert_allclose_nan_fails(actual, desired, *args, equal_nan=False, **kw):
    _assert_allclose(actual, desired, *args, equal_nan=equal_nan, **kw)


np.testing.assert_allclose = _assert_allclose_nan_fails


def pytest_report_header(config):
    return f"keras {keras.__version__}, backend {keras.backend.backend()}"


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)


def spec_params(specs=registry.SPECS):
    return [pytest.param(s, id=s.name) for s in specs]
