# kassa: `make demo` and `make test` do all set-up on a fresh Debian/Ubuntu machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.kassa-installed
MOSQUITTO ?= /usr/sbin/mosquitto

.PHONY: demo test setup mosquitto chromium bench docs clean

demo: setup
	$(PY) -m tests.demo

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

setup: $(STAMP) mosquitto chromium

# The venv is (re)built when missing or when pyproject.toml changes.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "kassa needs Python >= 3.11; set PYTHON=python3.11")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip 2>/dev/null || true
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

mosquitto:
	@if [ ! -x $(MOSQUITTO) ] && ! command -v mosquitto >/dev/null; then \
		echo "installing mosquitto (Debian package)"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q mosquitto; \
	fi

# Headless Chromium + its driver (Debian packages) for the POS API browser test.
CHROMIUM ?= /usr/bin/chromium
chromium:
	@if [ ! -x $(CHROMIUM) ] || ! command -v chromedriver >/dev/null; then \
		echo "installing chromium and chromium-driver (Debian packages)"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium chromium-driver; \
	fi

bench: setup
	$(PY) bench/run_all.py

docs: setup
	$(PY) -m agent.config_doc > docs/configuration.md

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
