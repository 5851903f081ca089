# safe-rlhf-lightning: set-up, the embedded demo, tests and lint.
#   make demo   create .venv, install, generate the embedded benchmark, train the SFT policy
#   make reward train the round-1 reward model (after SFT); make cost: the cost model
#   make ppo    PPO-Lagrangian from the round's SFT policy, reward and cost models (LAMBDA=learned)
#   make test   create .venv, install, run the whole test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXPERIMENT ?= demo
RUNS ?= runs
ROUND1 := $(RUNS)/$(EXPERIMENT)/round1
PYTEST_ARGS ?=

# Offline by default: no hub look-ups, wandb writes locally. Override in the environment.
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export WANDB_MODE ?= offline
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install demo data sft reward cost ppo test test-fast lint format clean clean-runs help

help:
	@sed -n 's/^#  *make /make /p' $(MAKEFILE_LIST)

$(BIN)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

install: $(BIN)/.installed

# The embedded default end to end (for now: data generation and SFT). Each step is a file target,
# so running it again re-runs only what is missing.
demo: install sft
	@cat $(ROUND1)/sft/summary.md

data: data/benchmark/manifest.json
data/benchmark/manifest.json: | $(BIN)/.installed
	$(BIN)/safe-rlhf-benchmark output_dir=data/benchmark

sft: $(ROUND1)/sft/model/config.json
$(ROUND1)/sft/model/config.json: data/benchmark/manifest.json
	$(BIN)/safe-rlhf-train stage=sft experiment_name=$(EXPERIMENT) paths.runs_dir=$(RUNS)

# Reward and cost models of round 1, each started from the round's SFT policy.
reward: $(ROUND1)/reward/model/config.json
$(ROUND1)/reward/model/config.json: $(ROUND1)/sft/model/config.json
	$(BIN)/safe-rlhf-train stage=reward experiment_name=$(EXPERIMENT) paths.runs_dir=$(RUNS)

cost: $(ROUND1)/cost/model/config.json
$(ROUND1)/cost/model/config.json: $(ROUND1)/sft/model/config.json
	$(BIN)/safe-rlhf-train stage=cost experiment_name=$(EXPERIMENT) paths.runs_dir=$(RUNS)

# PPO-Lagrangian of round 1 with the λ schedule LAMBDA (learned | pid | fixed | none).
LAMBDA ?= learned
PPO_DIR := $(ROUND1)/ppo_lag$(if $(filter learned,$(LAMBDA)),,_$(LAMBDA))
ppo: $(PPO_DIR)/model/config.json
$(PPO_DIR)/model/config.json: $(ROUND1)/reward/model/config.json $(ROUND1)/cost/model/config.json
	$(BIN)/safe-rlhf-train stage=ppo_lag lambda_schedule=$(LAMBDA) experiment_name=$(EXPERIMENT) \
		paths.runs_dir=$(RUNS) hydra.run.dir=$(PPO_DIR)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

format: install
	$(BIN)/ruff check --fix src tests
	$(BIN)/ruff format src tests

clean-runs:
	rm -rf $(RUNS) data/benchmark outputs

clean: clean-runs
	rm -rf $(VENV) .pytest_cache .ruff_cache
