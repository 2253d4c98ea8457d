# Two commands do all set-up on a machine with Python 3.10+:
#   make mnist   - the main job: MNIST fit() with keras_opts optimizers
#   make test    - ruff and the whole test suite on tensorflow, jax and torch
# Both create .venv and install the pinned versions of requirements/test.txt.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements/test.txt pyproject.toml | cksum | cut -d' ' -f1)
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: test mnist install

install: $(STAMP)

$(STAMP): requirements/test.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements/test.txt
	$(PY) -m pip install --quiet --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $@

test: $(STAMP)
	$(PY) tools/run_tests.py $(ARGS)

mnist: $(STAMP)
	KERAS_BACKEND=$${KERAS_BACKEND:-jax} $(PY) examples/mnist_fit.py $(ARGS)
