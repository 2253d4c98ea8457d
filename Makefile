# Two commands do all set-up on a machine with Python 3.11+ and make:
#   make mnist   - the main job: MNIST fit() with every keras_opts optimizer
#   make test    - ruff, the docs build and the whole suite on tensorflow,
#                  jax and torch
# Both create .venv. `make mnist` installs only what it needs
# (requirements/mnist.txt, plus the backend KERAS_BACKEND names if it is not
# jax); `make test` installs the pinned set of requirements/test.txt.
#   make test-nightly - the Keras-facing part of the suite on the three
#                  backends against keras-nightly (the next Keras), in a
#                  venv of its own (.venv-nightly)
# PIP_ARGS passes options to every pip install, e.g. on Linux
#   make test PIP_ARGS="--extra-index-url https://download.pytorch.org/whl/cpu"
# for torch's CPU-only wheel instead of the CUDA one.

PYTHON ?= python3
comma := ,
VENV := .venv
PY := $(VENV)/bin/python
PIP_ARGS ?=
PIP := -m pip install --quiet $(PIP_ARGS)
cksum = $(shell cat $(1) | cksum | cut -d' ' -f1)
STAMP := $(VENV)/.installed-$(call cksum,requirements/test.txt \
	requirements/keras-hub.txt pyproject.toml)
BACKEND := $(or $(KERAS_BACKEND),jax)
MNIST_STAMP := $(VENV)/.mnist-$(BACKEND)-$(call cksum,requirements/mnist.txt \
	requirements/test.txt pyproject.toml)
NIGHTLY := .venv-nightly
NEWEST := .venv-newest
#: The test tools and parity references, unpinned for test-newest.
NEWEST_TOOLS := pytest pytest-xdist hypothesis ruff setuptools optax \
	madgrad prodigyopt pytorch-optimizer schedulefree adam-mini mlxtend
NIGHTLY_TESTS ?= tests/test_parity.py tests/test_serialization.py \
	tests/test_resume.py tests/test_wrappers.py tests/test_keras_features.py \
	tests/test_registry.py tests/test_torch_compile.py \
	tests/test_mixed_precision.py
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: test mnist install test-nightly test-paths docs-check test-newest

install: $(STAMP)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): requirements/test.txt requirements/keras-hub.txt pyproject.toml \
		| $(VENV)/bin/python
	$(PY) $(PIP) -r requirements/test.txt
	$(PY) $(PIP) --no-deps -r requirements/keras-hub.txt
	$(PY) $(PIP) --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-*
	touch $@

# Another backend comes from keras-opts' own extra (tensorflow-cpu on
# Linux), at the version requirements/test.txt pins.
$(MNIST_STAMP): requirements/mnist.txt requirements/test.txt pyproject.toml \
		| $(VENV)/bin/python
	@case "$(BACKEND)" in jax|tensorflow|torch) ;; *) echo \
	  "KERAS_BACKEND must be jax, tensorflow or torch; got '$(BACKEND)'" \
	  >&2; exit 2;; esac
	$(PY) $(PIP) -c requirements/test.txt -r requirements/mnist.txt \
		-e ".[$(BACKEND)]"
	rm -f $(VENV)/.mnist-$(BACKEND)-*
	touch $@

test: $(STAMP)
	$(PY) tools/run_tests.py $(ARGS)

# The execution-path matrix with every (optimizer, path) cell, torch.compile
# and XLA of the matrix preconditioners included (minutes per backend);
# `make test` runs the cheaper part of it.
test-paths: $(STAMP)
	status=0; for backend in $(subst $(comma), ,$(or $(BACKENDS),\
		tensorflow$(comma)jax$(comma)torch)); do \
	  KERAS_OPTS_ALL_PATHS=1 KERAS_BACKEND=$$backend $(PY) -m pytest -n 2 \
	    tests/test_paths.py $(ARGS) || status=1; \
	done; exit $$status

mnist: $(MNIST_STAMP)
	KERAS_BACKEND=$(BACKEND) $(PY) examples/mnist_fit.py $(ARGS)

# keras-nightly installs as the module `keras`. The pinned set goes in
# first (its TensorFlow brings the released keras, removed after), then the
# newest keras-nightly in its place, reinstalled each run. `pip check` then
# reports keras missing for tensorflow and keras-opts: keras-nightly
# provides the module under another distribution name. The tests also load
# files saved with the pinned Keras of .venv, and the other way round.
test-nightly: $(STAMP)
	test -x $(NIGHTLY)/bin/python || $(PYTHON) -m venv $(NIGHTLY)
	echo '*' > $(NIGHTLY)/.gitignore
	$(NIGHTLY)/bin/python $(PIP) -r requirements/test.txt
	$(NIGHTLY)/bin/python $(PIP) --no-deps -r requirements/keras-hub.txt
	$(NIGHTLY)/bin/python -m pip uninstall --quiet --yes keras keras-nightly
	$(NIGHTLY)/bin/python $(PIP) --upgrade --force-reinstall --no-deps \
		"keras-nightly>=3.16.0.dev0"
	$(NIGHTLY)/bin/python $(PIP) --no-deps --no-build-isolation -e .
	KERAS_BACKEND=jax $(NIGHTLY)/bin/python -c \
		"import keras; print('keras', keras.__version__)"
	status=0; for backend in $(subst $(comma), ,$(or $(BACKENDS),\
		tensorflow$(comma)jax$(comma)torch)); do \
	  echo "===== keras-nightly, backend: $$backend ====="; \
	  KERAS_OPTS_OTHER_KERAS=$(abspath $(PY)) KERAS_BACKEND=$$backend \
	    $(NIGHTLY)/bin/python -m pytest -q -n 2 $(NIGHTLY_TESTS) \
	    -k "not distributed" $(ARGS) || status=1; \
	done; exit $$status

# The built docs as a reader sees them: every page opened from disk in
# headless Chromium (Debian: apt-get install chromium), failing on a
# formula MathJax left as raw LaTeX or a blockquote inside a table.
docs-check: $(STAMP)
	$(PY) tools/docs_check.py $(ARGS)

# What a new user gets today: the newest releases keras-opts' extras allow
# (keras, jax, torch, tensorflow; the docs and examples extras; the test
# tools and references unpinned), upgraded each run, in a venv of its own,
# then the whole suite. On Linux, torch from PyPI is the CUDA build: pass
# PIP_ARGS="--extra-index-url https://download.pytorch.org/whl/cpu".
test-newest:
	test -x $(NEWEST)/bin/python || $(PYTHON) -m venv $(NEWEST)
	echo '*' > $(NEWEST)/.gitignore
	$(NEWEST)/bin/python $(PIP) --upgrade \
		-e ".[jax,torch,tensorflow,docs,examples]" $(NEWEST_TOOLS)
	$(NEWEST)/bin/python $(PIP) --no-deps -r requirements/keras-hub.txt
	$(NEWEST)/bin/python -m pip list 2>/dev/null | grep -iE \
		"^(keras|jax|jaxlib|torch|tensorflow[-_]cpu|tensorflow|numpy) "
	$(NEWEST)/bin/python tools/run_tests.py $(ARGS)
