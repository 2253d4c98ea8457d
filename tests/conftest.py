"""Each pytest process runs one backend, chosen by ``KERAS_BACKEND``."""

import os

import keras
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


def pytest_report_header(config):
    return f"keras {keras.__version__}, backend {keras.backend.backend()}"


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)


def spec_params(specs=registry.SPECS):
    return [pytest.param(s, id=s.name) for s in specs]
