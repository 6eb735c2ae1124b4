# kassa: `make demo` and `make test` do all set-up on a fresh Debian/Ubuntu machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.kassa-installed
MOSQUITTO ?= /usr/sbin/mosquitto

.PHONY: demo up test check lock wheelhouse setup mosquitto chromium faketime bench soak fleet fuzz docs translations clean

demo: setup
	$(PY) -m tests.demo

# The demo's stack kept running for a person: cabinets, terminal, mail catcher; prints addresses and sign-ins.
up: setup
	$(PY) -m tests.demo.up

# Two pytest workers: most tests wait on real processes (agent, broker, worker), so two run in
# about half the time on 2 cores. TEST_WORKERS=0 runs them one by one.
TEST_WORKERS ?= 2
test: setup
	$(PY) -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

setup: $(STAMP) mosquitto chromium faketime

# The venv is (re)built when missing or when pyproject.toml or the lock changes. Every dependency, runtime and
# dev, comes from requirements.lock with its hashes; kassa itself is installed editable on top, without deps.
LOCK := requirements.lock
$(STAMP): pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "kassa needs Python >= 3.11; set PYTHON=python3.11")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip 2>/dev/null || true
	$(PY) -m pip install --quiet --require-hashes -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $@

# Refresh requirements.lock after changing dependencies in pyproject.toml: pins still allowed are kept;
# `make lock LOCK_UPGRADE=--upgrade` takes the newest releases within the bounds. uv rather than pip-tools: `--universal` resolves once for every platform and keeps the
# environment markers (evdev only on Linux, colorama/tzdata only on Windows), where pip-compile would pin
# what this one machine's interpreter happens to need; uv itself is pinned in the lock through the dev extra.
LOCK_UPGRADE ?=
lock: $(STAMP)
	$(VENV)/bin/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes --extra dev \
		$(LOCK_UPGRADE) --custom-compile-command 'make lock' --output-file $(LOCK) pyproject.toml

# Every wheel a terminal needs to install kassa with no internet: kassa's own and its runtime dependencies (no dev
# tools), versions and hashes from the lock, for linux WHEELHOUSE_ARCH (x86_64 or aarch64) and Debian 12's
# Python 3.11. Dependencies PyPI has only as sdists are built into wheels here (docs/deployment.md, "Offline
# install"). On the terminal: pip install --no-index --find-links wheelhouse kassa
WHEELHOUSE ?= build/wheelhouse
WHEELHOUSE_ARCH ?= $(shell uname -m)
WHEELHOUSE_ARGS ?=
wheelhouse: $(STAMP)
	$(PY) scripts/wheelhouse.py --arch $(WHEELHOUSE_ARCH) --out $(WHEELHOUSE) $(WHEELHOUSE_ARGS)

# Formatting, lint and types (scripts/check; configuration in pyproject.toml). Needs only the venv.
check: $(STAMP)
	scripts/check

# Mosquitto, and what the production broker's device-listener plugin (broker/production/
# kassa_device_acl.c) is built with: its headers (mosquitto_plugin.h from mosquitto-dev, mosquitto.h
# from libmosquitto-dev), OpenSSL's and a C compiler. Tests build the
# plugin into build/ when they first start the production broker.
mosquitto:
	@if [ ! -x $(MOSQUITTO) ] && ! command -v mosquitto >/dev/null || [ ! -f /usr/include/mosquitto_plugin.h ] \
			|| [ ! -f /usr/include/mosquitto.h ] || [ ! -f /usr/include/openssl/x509.h ] || ! command -v cc >/dev/null; then \
		echo "installing mosquitto, mosquitto-dev, libmosquitto-dev, libssl-dev, gcc (Debian packages)"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q mosquitto mosquitto-dev libmosquitto-dev libssl-dev gcc; \
	fi
	@$(PY) -m broker.device_acl_plugin --out build/kassa_device_acl.so >/dev/null

# Headless Chromium + its driver (Debian packages) for the POS API browser test.
CHROMIUM ?= /usr/bin/chromium
chromium:
	@if [ ! -x $(CHROMIUM) ] || ! command -v chromedriver >/dev/null; then \
		echo "installing chromium and chromium-driver (Debian packages)"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium chromium-driver; \
	fi

# libfaketime (Debian package) for the clock-jump fault test: the agent runs under LD_PRELOAD.
faketime:
	@if ! ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1; then \
		echo "installing libfaketime (Debian package)"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q libfaketime; \
	fi

bench: setup
	$(PY) -m bench.run_all

# 20 minutes of steady sales with periodic faults; the agent's RSS must not grow > 10 % (not part of `make test`).
soak: setup
	$(PY) -m bench.soak --minutes 20

# Property tests with fresh random examples (make test replays fixed ones): look for new breaking inputs.
fuzz: setup
	KASSA_HYPOTHESIS_PROFILE=explore $(PY) -m pytest tests/fuzz tests/broker/test_contract_parse.py tests/cloudlink/test_inbound.py -q

# Fleet simulation: 2,000 simulated terminals against one Mosquitto and the cloud (docs/fleet.md).
fleet: setup
	$(PY) -m bench.fleet --devices 2000

docs: setup
	$(PY) -m agent.config_doc > docs/configuration.md

# Message catalogues: extract the strings marked in agent/ (and the cabinets' in cloud_api/), merge them into the .po files,
# compile the .mo files; lists what still needs a translator. tests/agent/test_i18n.py fails until they are in step.
translations: setup
	$(PY) -m agent.i18n_catalogues update
	$(PY) -m agent.i18n_catalogues --domain cabinet update

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
