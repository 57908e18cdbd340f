# Opspawn — everything a fresh machine needs is installed by these targets.
#   make demo   start the offline stack, deploy template.yaml, run a task over HTTPS, stop
#   make test   lint + scan + the whole offline suite (unit, moto, template checks, LocalStack e2e)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup test lint scan unit e2e demo up down deploy logs build clean chromium

$(STAMP): pyproject.toml
	@echo "==> creating $(VENV) and installing opspawn with its dev tools (first run: a few minutes)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --progress-bar off -e '.[dev,providers,mcp]'
	touch $@

# The infrastructure scanner (checkov) has a venv of its own: it pins boto3/botocore older
# than the project's. Every version comes from requirements-scan.txt.
SCAN_VENV := .venv-scan
SCAN_STAMP := $(SCAN_VENV)/.installed

$(SCAN_STAMP): requirements-scan.txt
	@echo "==> creating $(SCAN_VENV) with the infrastructure scanner (checkov)"
	$(PYTHON) -m venv $(SCAN_VENV)
	$(SCAN_VENV)/bin/pip install --quiet --progress-bar off -r requirements-scan.txt
	touch $@

MCP_STAMP := tests/mcp/node_modules/.installed

# The real MCP servers the tests run (npm; the PyPI one comes with the dev extra).
$(MCP_STAMP): tests/mcp/package-lock.json
	cd tests/mcp && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The browser the console's tests drive: Debian's chromium, through Playwright (its own
# browser download cannot be reached from here). Installed when missing (root, or sudo).
chromium:
	@command -v chromium >/dev/null || { \
		echo "==> installing Debian's chromium for the browser tests"; \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -q && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

setup: $(STAMP) $(SCAN_STAMP) $(MCP_STAMP) chromium
	$(BIN)/python -m opspawn.offline install

# ruff, and mypy (boto3 clients typed by the boto3-stubs packages) over the layer, the user
# side, the LocalStack plugin, the benchmarks and each function (every handler is an `app`
# module, so each is checked on its own with the layer on its path, as Lambda loads it).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy layers/agentkit/agentkit opspawn localstack-plugin/opspawn_localstack bench
	@for app in functions/*/app.py; do \
		MYPYPATH=layers/agentkit $(BIN)/mypy --no-error-summary $$app || exit 1; done

# checkov over template.yaml with .checkov.yaml (its skip list gives each skip's reason);
# offline: no platform download, no update check.
scan: $(SCAN_STAMP)
	CKV_SKIP_PACKAGE_UPDATE_CHECK=true BC_SKIP_MAPPING=TRUE \
		$(SCAN_VENV)/bin/checkov --config-file .checkov.yaml -f template.yaml

# The fast tiers (unit, moto integration, MCP, live skips) in two processes, a file per
# worker at a time; then the LocalStack e2e tier on its one shared stack.
test: setup lint scan
	$(BIN)/pytest -n 2 --dist loadfile --ignore=tests/e2e
	$(BIN)/pytest tests/e2e

# The template's unit tests run the scanner too.
unit: $(STAMP) $(SCAN_STAMP)
	$(BIN)/pytest -n 2 --dist loadfile tests/unit tests/integration

e2e: setup
	$(BIN)/pytest tests/e2e

demo: setup
	$(BIN)/python -m opspawn.demo

up: setup
	$(BIN)/python -m opspawn.offline up

deploy: setup
	$(BIN)/python -m opspawn.offline deploy

down:
	$(BIN)/python -m opspawn.offline down

logs:
	$(BIN)/python -m opspawn.offline logs $(FN)

build: $(STAMP)
	SAM_CLI_TELEMETRY=0 $(BIN)/sam build

clean: down
	rm -rf .offline .aws-sam $(SCAN_VENV)
