# Every target creates the local environment when it is missing: on a fresh machine with
# Python 3.11+ and make, `make up` and `make test` are all a user types.
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV := .venv
SYNCED := $(VENV)/.synced
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: up test test-fast bench lint fmt install clean w3c-vc-suite

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# native/ is built into the environment (chain.smt's tree in C): a change there re-syncs too
NATIVE := native/pyproject.toml native/setup.py $(wildcard native/src/smartcity_native/*)

$(SYNCED): pyproject.toml uv.lock $(NATIVE) | $(UV)
	$(UV) sync --locked --compile-bytecode --python $(PYTHON)
	touch $(SYNCED)

install: $(SYNCED)

up: $(SYNCED)
	$(VENV)/bin/smartcity up $(if $(SIMULATE),--simulate,) $(if $(CRYPTO),--crypto $(CRYPTO),)

test: $(SYNCED)
	bash .ci/browser-deps
	$(VENV)/bin/pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

# The suite without the slow tests (real processes, clusters, the end-to-end stories) and without
# the browser tests: a few minutes, for the edit-test loop. `make test` before pushing.
test-fast: $(SYNCED)
	$(VENV)/bin/pytest -n 2 --dist loadgroup -m "not slow" --ignore=tests/browser $(PYTEST_ARGS)

bench: $(SYNCED)
	$(VENV)/bin/python -m bench $(BENCH_ARGS)

# The W3C vc-jose-cose-test-suite against `smartcity vc`, without Docker (Node 20+ and npm;
# W3C_VC_SUITE=a checkout to use instead of GitHub's). docs/identity.md has the last results.
w3c-vc-suite: $(SYNCED)
	bash .ci/w3c-vc-suite $(W3C_VC_SUITE)

lint: $(SYNCED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --explicit-package-bases tests bench .ci/module_sizes.py  # tests.*, bench.*: less strict
	$(VENV)/bin/lint-imports  # the import contracts in pyproject.toml [tool.importlinter]
	$(VENV)/bin/python .ci/module_sizes.py  # [tool.smartcity.module-sizes] in pyproject.toml

fmt: $(SYNCED)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) .tools .mypy_cache .ruff_cache .pytest_cache
