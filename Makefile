# Every target installs what it needs first, so each works on a fresh machine.
# `make install` builds .venv from uv.lock (the exact, hash-checked set CI tests); uv itself comes from PyPI
# into .uv/, pinned here.
PYTHON ?= python3
UV_VERSION := 0.13.9
VENV ?= .venv
PY := $(VENV)/bin/python
UV := .uv/bin/uv
STAMP := $(VENV)/.installed
PYTEST_PROGRESS := -p no:cacheprovider -o console_output_style=count
# Interpreters for `make test-pythons`: pyenv's when it has them, else whatever is on PATH.
PYENV_ROOT ?= $(shell pyenv root 2>/dev/null || echo $(HOME)/.pyenv)
PYTHONS ?= 3.11 3.12 3.13

export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_LINK_MODE := copy

.PHONY: install system-deps test test-all test-core test-min test-pythons wheel-check dist demo lint bench clean

install: $(STAMP)

$(UV):
	$(PYTHON) -m venv .uv
	.uv/bin/python -m pip install --quiet uv==$(UV_VERSION)

$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --quiet --python $(PYTHON) --all-extras
	touch $(STAMP)

# espeak-ng generates the synthetic keyword dataset; openssh-server lets tests run a real SSH target;
# chromium renders the HTML report in a real browser.
system-deps:
	@missing=""; \
	command -v espeak-ng >/dev/null || missing="$$missing espeak-ng"; \
	command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || missing="$$missing openssh-server"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  echo "installing system packages:$$missing"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

# Lint (ruff, mypy), the full install's suite (slow tests excluded), then the built wheel installed alone, as a
# user gets it.
test: install system-deps
	$(MAKE) --no-print-directory lint
	$(PY) -m pytest $(PYTEST_PROGRESS)
	$(MAKE) --no-print-directory wheel-check

test-all: install system-deps
	$(PY) -m pytest $(PYTEST_PROGRESS) -m ''
	$(MAKE) --no-print-directory wheel-check

# sdist + wheel, twine check, the wheel alone in a fresh venv (core dependencies from uv.lock), its command set
# run against the bundled model, TensorFlow never imported, and the core tests against that install.
wheel-check: $(UV)
	PYTHON=$(PYTHON) UV=$(UV) bash .ci/wheel-check

# What a CI job of a user installs: the wheel, the sdist, and the core's exact requirements with hashes.
dist: $(UV)
	rm -rf dist
	$(UV) build --quiet --out-dir dist .
	$(UV) export --quiet --frozen --no-emit-project -o dist/requirements-core.txt

# The core suite (tests marked `core`) in a core-only venv: DIR, PY_VERSION and RESOLUTION pick the variant.
test-core: $(UV)
	PYTHON=$(PYTHON) UV=$(UV) bash .ci/core-suite $(or $(PY_VERSION),$(PYTHON)) $(or $(RESOLUTION),locked)

# The lowest versions pyproject.toml allows (every direct dependency at its lower bound), core suite.
test-min: $(UV)
	PYTHON=$(PYTHON) UV=$(UV) bash .ci/core-suite 3.11 lowest

# The core suite on each supported Python (pyenv's interpreters, or uv's when pyenv lacks one).
test-pythons: $(UV)
	@for v in $(PYTHONS); do \
	  PYTHON=$(PYTHON) UV=$(UV) bash .ci/core-suite $$v locked || exit 1; \
	done

demo: install
	$(VENV)/bin/ondevice-audit demo

# ruff, then mypy over the package (settings in pyproject.toml's [tool.mypy]).
lint: install
	$(VENV)/bin/ruff check ondevice_audit tests benchmarks
	$(VENV)/bin/mypy ondevice_audit

bench: install
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) .uv .venv-core* build dist *.egg-info .pytest_cache
