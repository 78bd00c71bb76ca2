# Two commands do all the set-up on a fresh machine: `make study` and `make test`.
# Each creates (or reuses) a virtual environment and installs what it needs, without root: the photos travel with the
# repository, and a browser comes from Debian where installed or from Playwright for the user. Run as root on
# Debian (as CI does), `make test` also installs Chromium and the Debian photo packages that two tests compare with.
PYTHON ?= python3
# The Keras backend. auto: TensorFlow where it publishes wheels (Linux x86_64 and aarch64), JAX alone elsewhere; in
# .venv. jax: JAX only, TensorFlow not installed, on any platform; in .venv-jax.
BACKEND ?= auto
ifeq ($(BACKEND),auto)
VENV ?= .venv
EXTRAS := cpu,jax,dev,lab,survey
else ifeq ($(BACKEND),jax)
VENV ?= .venv-jax
EXTRAS := jax,dev,lab,survey
export KERAS_BACKEND := jax
else
$(error BACKEND must be auto or jax, not '$(BACKEND)')
endif
PY := $(VENV)/bin/python
PROFILE ?= demo
STAMP := $(VENV)/.installed
APT_PHOTOS := gcompris-qt-data mate-backgrounds lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 plasma-workspace-wallpapers lxqt-themes palapeli-data scratch
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONUNBUFFERED := 1
# What must also pass with no TensorFlow installed: training, colorizing and the backend cross-checks (their
# TensorFlow halves skip there). `make test-jax` runs them, and the `ci` study, in .venv-jax.
JAX_TESTS := tests/test_train.py tests/test_colorize.py tests/test_backends.py
PYTHON_CHECK := import sys; v = sys.version_info[:2]; sys.exit(0 if (3, 11) <= v < (3, 14) else \
	f"koalarization needs Python 3.11 to 3.13 (its pinned wheels); $(PYTHON) is {v[0]}.{v[1]}: run make PYTHON=python3.12")

.PHONY: study test test-jax test-fast lint lab bench venv system-photos browser clean

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c '$(PYTHON_CHECK)'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements.lock -e ".[$(EXTRAS)]"
	$(PY) -m ipykernel install --sys-prefix --name koalarization --display-name "Python (koalarization)" >/dev/null
	@$(PY) -c 'import koalarization, keras; print(f"installed in $(VENV): Keras backend {keras.backend.backend()}")'
	touch $(STAMP)

venv: $(STAMP)

system-photos:  ## the eight Debian packages the stored photos were copied from (root; only `koala photos rebuild` reads them)
	@bash scripts/apt-install.sh $(APT_PHOTOS)

browser: $(STAMP)  ## a headless Chromium: Debian's where installed, else Playwright's own for this user
	@bash scripts/get-browser.sh $(PY)

study: $(STAMP) browser  ## run the whole study for PROFILE (default: demo) into results/PROFILE
	$(VENV)/bin/koala study --profile $(PROFILE) $(STUDY_ARGS)

test: $(STAMP) browser lint  ## everything CI runs as root: style and types, unit, integration, browser, notebook (ci, paper) and rebuild tests
	@bash scripts/apt-install.sh --optional $(APT_PHOTOS)
	$(PY) -m pytest -q -ra $(PYTEST_ARGS)

test-jax:  ## the JAX-only route, TensorFlow not installed: the `ci` study, then training, colorizing and backend tests
	$(MAKE) BACKEND=jax study PROFILE=ci
	KERAS_BACKEND=jax .venv-jax/bin/python -m pytest -q -ra -p no:cacheprovider $(JAX_TESTS) $(PYTEST_ARGS)

lint: $(STAMP)  ## style, import order and types: ruff over the code, mypy over the package (configured in pyproject.toml)
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/mypy

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not browser" $(PYTEST_ARGS)

bench: $(STAMP)  ## performance benchmarks -> results/bench/bench.json
	$(PY) benchmarks/run.py

lab: $(STAMP)  ## JupyterLab on notebooks/ with the package's kernel
	@if [ "$$(id -u)" = 0 ]; then echo "running as root (as in a container): starting JupyterLab with --allow-root"; fi
	$(VENV)/bin/jupyter lab notebooks/ $$( [ "$$(id -u)" = 0 ] && echo --allow-root )

clean:
	rm -rf work/ results/ci
