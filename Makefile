# Two commands do all the set-up on a fresh machine: `make study` and `make test`.
# Each creates (or reuses) the virtual environment in .venv and installs what it needs, system packages included.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PROFILE ?= demo
STAMP := $(VENV)/.installed
APT_PHOTOS := gcompris-qt-data mate-backgrounds lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 plasma-workspace-wallpapers lxqt-themes palapeli-data scratch
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONUNBUFFERED := 1
# The tests that must pass on every Keras backend: `make test` runs them a second time under JAX (tests/test_backends.py
# already crosses the backends, with TensorFlow blocked on the JAX side).
JAX_TESTS := tests/test_train.py tests/test_colorize.py

.PHONY: study test test-fast lint lab bench venv system-photos browser clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements.lock -e ".[cpu,jax,dev,lab,survey]"
	$(PY) -m ipykernel install --sys-prefix --name koalarization --display-name "Python (koalarization)" >/dev/null
	touch $(STAMP)

venv: $(STAMP)

system-photos:  ## the offline photo collection of DESIGN.md section 4 (Debian packages)
	@bash scripts/apt-install.sh $(APT_PHOTOS)

browser:  ## Debian's Chromium, for the real-browser survey test
	@bash scripts/apt-install.sh chromium

study: $(STAMP) system-photos  ## run the whole study for PROFILE (default: demo) into results/PROFILE
	$(VENV)/bin/koala study --profile $(PROFILE) $(STUDY_ARGS)

test: $(STAMP) system-photos browser  ## everything CI runs: unit, integration, browser, notebook (ci, paper) tests, then training and colorizing again under JAX
	$(PY) -m pytest -q -ra $(PYTEST_ARGS)
	KERAS_BACKEND=jax $(PY) -m pytest -q -ra -p no:cacheprovider $(JAX_TESTS) $(PYTEST_ARGS)

lint: $(STAMP)  ## style, import order and types: ruff over the code, mypy over the package (configured in pyproject.toml)
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/mypy

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not browser" $(PYTEST_ARGS)

bench: $(STAMP) system-photos  ## performance benchmarks -> results/bench/bench.json
	$(PY) benchmarks/run.py

lab: $(STAMP)  ## JupyterLab on notebooks/ with the package's kernel
	@if [ "$$(id -u)" = 0 ]; then echo "running as root (as in a container): starting JupyterLab with --allow-root"; fi
	$(VENV)/bin/jupyter lab notebooks/ $$( [ "$$(id -u)" = 0 ] && echo --allow-root )

clean:
	rm -rf work/ results/ci
