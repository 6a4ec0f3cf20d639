# One command to start the system (make run), one to test it (make test).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BUN_VERSION := 1.4.4
STAMP := $(VENV)/.requirements.stamp
export REFLEX_TELEMETRY_ENABLED := false
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup run test test-deps lint bench soak sim clean deploy-test

setup: $(STAMP) $(VENV)/bin/bun

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): requirements.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

# Reflex's own bun installer downloads from the internet; the npm registry works offline.
$(VENV)/bin/bun: | $(PY)
	npm install --silent -g --prefix $(VENV) bun@$(BUN_VERSION)
	$(VENV)/bin/bun --version

# Development trades on the built-in simulator at any hour (paper only): a demo at 21:00 works.
run: setup
	$(PY) -m ats_app.cli db upgrade
	MARKET_HOURS=$${MARKET_HOURS:-$$([ "$${TRADING_MODE:-paper}" = paper ] && echo always || echo nse)} \
	  $(VENV)/bin/reflex run

# Debian packages the tests drive for real: chromium (browser tests), nginx and caddy
# (deployment config checks), tinyproxy (per-account egress proxy). Installed when absent.
TEST_DEBS := chromium nginx caddy tinyproxy-bin
TEST_BINS := /usr/bin/chromium /usr/sbin/nginx /usr/bin/caddy /usr/bin/tinyproxy
test-deps:
	@missing=0; for b in $(TEST_BINS); do [ -x $$b ] || missing=1; done; \
	if [ $$missing = 1 ]; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      $(TEST_DEBS) >/dev/null) \
	      || echo "warning: could not install $(TEST_DEBS)"; \
	  else echo "warning: some of $(TEST_BINS) missing and cannot be installed here"; fi; \
	fi

test: setup test-deps
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check ats_app tests bench

bench: setup
	$(PY) -m bench

# Load with faults at random, then an oracle over the three books (see bench/soak.py).
MINUTES ?= 60
soak: setup
	$(PY) -m bench.soak --minutes $(MINUTES) $(SOAK_ARGS)

# The Docker deploy built and run for real (deploy/test/): a private dockerd, Compose v2 and the
# base images brought when missing (cached in ~/.cache/ats-deploy-test), then the production
# docker-compose.yml over HTTPS: a paper alert, scaling, restarts, an upgrade, backup/restore.
deploy-test: setup
	bash deploy/test/deploy_test.sh

sim: setup
	$(PY) -m ats_app.cli sim --port 9100

clean:
	rm -rf .web .states __pycache__
