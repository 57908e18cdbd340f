# The build recipe of a layer that holds only third-party requirements, for the Lambda
# target (python3.12, manylinux2014_x86_64), under python/ (on sys.path at /opt/python).
# A layer's Makefile sets LAYER (its logical id in template.yaml) and includes this file;
# `sam build` (BuildMethod: makefile) runs `make build-<LAYER>` with ARTIFACTS_DIR set.
#
# The requirements are resolved against the agentkit layer's pins (-c), then everything
# that layer already ships (pydantic, typing extensions, ...) is removed: a function sees
# one copy of each package, the pinned one, and the layer stays small.
SRC_DIR := $(patsubst %/,%,$(dir $(abspath $(firstword $(MAKEFILE_LIST)))))
LAYERS_DIR := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
ARTIFACTS_DIR ?= $(error ARTIFACTS_DIR is not set: run through `sam build`, or pass ARTIFACTS_DIR=<dir>)
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
PIP_TARGET_FLAGS ?= --platform manylinux2014_x86_64 --implementation cp --python-version 3.12 --only-binary=:all:
PY_DIR = $(ARTIFACTS_DIR)/python
SHARED_REQUIREMENTS = $(LAYERS_DIR)/agentkit/requirements.txt
SHARED_DIR = $(ARTIFACTS_DIR)/.shared
PIP_INSTALL = $(PIP) install --disable-pip-version-check --no-compile --quiet $(PIP_TARGET_FLAGS)

.PHONY: build-$(LAYER)

build-$(LAYER):
	rm -rf "$(PY_DIR)" "$(SHARED_DIR)"
	mkdir -p "$(PY_DIR)" "$(SHARED_DIR)"
	sed 's/\[[^]]*\]//' "$(SHARED_REQUIREMENTS)" > "$(SHARED_DIR)/constraints.txt"
	$(PIP_INSTALL) --target "$(PY_DIR)" -r "$(SRC_DIR)/requirements.txt" \
		-c "$(SHARED_DIR)/constraints.txt"
	$(PIP_INSTALL) --target "$(SHARED_DIR)/site" -r "$(SHARED_REQUIREMENTS)"
	for entry in $$(ls -A "$(SHARED_DIR)/site"); do rm -rf "$(PY_DIR)/$$entry"; done
	rm -rf "$(SHARED_DIR)" "$(PY_DIR)/bin"
	"$(LAYERS_DIR)/compile_pyc.sh" "$(PY_DIR)"
