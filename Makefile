# churnml: every target bootstraps .venv from pyproject.toml when it is missing or stale.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=
SIM_DATA := data/raw/telco_sim/manifest.json

.PHONY: help venv train score lost review uplift validate simulate tune serve test test-fast bench lint format docs mlflow-ui clean

help: ## Show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'
	@echo '  Hydra overrides: make train ARGS="model=logreg label.horizon_days=30"'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing churnml and its dependencies into $(VENV) ..."
	@$(BIN)/pip install -q -e '.[dev,spark]' 2>&1 | { grep -v '^WARNING: Location' || true; }
	@touch $(STAMP)

venv: $(STAMP) ## Create or refresh the virtual environment

# The simulated default dataset is generated only when a run uses it and it is missing.
USES_DEFAULT_DATA := $(if $(filter data=% data.path=%,$(ARGS)),,$(SIM_DATA))
CHURNML := $(BIN)/churnml
TRACKING_URI := $${MLFLOW_TRACKING_URI:-sqlite:///$(CURDIR)/mlflow.db}
MODEL ?= churnml_telco_sim
PORT ?= 5001

$(SIM_DATA): | $(STAMP)
	$(CHURNML) simulate

simulate: $(STAMP) ## Generate the simulated telecom dataset (ARGS="simulate=large" for 1M subscribers)
	$(CHURNML) simulate $(ARGS)

train: $(STAMP) $(USES_DEFAULT_DATA) ## Validate, sample, build features, train, explain, log and register
	$(CHURNML) train $(ARGS)

score: $(STAMP) ## Batch scoring with the champion model (schedulers: call .venv/bin/churnml score)
	$(CHURNML) score $(ARGS)

lost: $(STAMP) ## Lost-customer table, early-warning report and win-back list (ARGS="scoring.date=...")
	$(CHURNML) lost $(ARGS)

validate: $(STAMP) ## Check a dataset against the data contract (ARGS="data.path=...")
	$(CHURNML) validate $(ARGS)

tune: $(STAMP) $(USES_DEFAULT_DATA) ## Hyper-parameter sweep (Hydra multirun with the Optuna sweeper)
	$(CHURNML) tune $(ARGS)

review: $(STAMP) $(USES_DEFAULT_DATA) ## Three-month review of the retention campaigns (report: reports/campaign_review.html)
	$(CHURNML) review $(ARGS)

uplift: $(STAMP) $(USES_DEFAULT_DATA) ## Train and register the uplift model from campaign history (scoring then ranks by it)
	$(CHURNML) uplift $(ARGS)

serve: $(STAMP) ## Serve the champion over HTTP on 127.0.0.1:$(PORT) (MODEL=churnml_<dataset>)
	PATH="$(CURDIR)/$(BIN):$$PATH" MLFLOW_TRACKING_URI="$(TRACKING_URI)" \
		$(BIN)/mlflow models serve -m "models:/$(MODEL)@champion" --env-manager local \
		--host 127.0.0.1 --port $(PORT)

test: $(STAMP) ## Run the whole test suite, slow tests included
	$(BIN)/pytest $(ARGS)

test-fast: $(STAMP) ## Run the tests not marked slow
	$(BIN)/pytest -m "not slow" $(ARGS)

bench: $(STAMP) ## Run the benchmarks (results: benchmarks/RESULTS.md)
	$(BIN)/python benchmarks/run_all.py $(ARGS)

lint: $(STAMP) ## ruff check and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## Apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

docs: $(STAMP) ## Regenerate docs/features.md and the contract's tables in docs/data-contract.md
	$(BIN)/python -m churnml.features.docs
	$(BIN)/python -m churnml.contract docs/data-contract.md

mlflow-ui: $(STAMP) ## Open the MLflow UI on http://127.0.0.1:5000
	$(BIN)/mlflow ui --backend-store-uri "$(TRACKING_URI)" --host 127.0.0.1 --port 5000

clean: ## Remove generated data, runs, reports, logs and the venv
	rm -rf $(VENV) data/raw data/interim data/scores reports logs mlruns mlflow.db .pytest_cache .ruff_cache
