# safe-rlhf-lightning: set-up, the embedded demo, tests and lint.
#   make demo   install, then round 1 end to end (runs/demo/round1/eval/report.md); FORCE=1 reruns all
#               (data, SFT, reward | cost, PPO-Lagrangian | reward-only PPO, evaluation)
#   make sft | reward | cost | eval   one stage of round 1 (and what it needs)
#   make ppo    PPO from the round's SFT policy, R and C (LAMBDA=learned | pid | fixed | none)
#   make rounds   rounds 1-3 (round k: pairs from round k-1's policy, R | C, PPO-Lag) and a report
#   make round1 | round2 | round3   one round (and what it needs)
#   make sweep-nu | sweep-lambda | sweep-cost-limit | sweep-seeds   round 1's PPO multirun + summary
#   make wandb-sync   upload the experiment's offline W&B runs (needs a W&B API key)
#   make sweep-advantage   round 1's PPO with each advantage estimator (gae, grpo, dr_grpo, rloo)
#               x the learned and PID λ, + summary
#   make constraints   round 1's PPO under several constraints: per harm category (a cost head each,
#               conf/constraints/per_category.yaml) and harm + a length budget (harm_and_length.yaml)
#   make sacpo   SACPO's two DPO steps and the P-SACPO merge (SACPO_WEIGHT), evaluated beside Safe RLHF
#   make cdpo    constrained DPO from the round's SFT policy, R and C (lambda_schedule=learned)
#   make compare-families   SFT, Safe RLHF, SACPO, P-SACPO and C-DPO in one evaluation and one
#               report with paired differences against SFT and wall times (round1/families/)
#   make test   create .venv, install, run the whole test suite on every core (make test-fast:
#               without the tests marked slow; TEST_WORKERS=0: in one process)
#   make lint   ruff check and format check (make format fixes)
#   make bench-ppo   our PPO- and GRPO-Lagrangian steps against TRL's PPO and GRPO, side by side,
#               with FLOPs counted and the GEMM peak measured (benchmarks/)
#   make gpu-check   every stage a few steps on one GPU (bf16, ~100M Llama): throughput, peak memory
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXPERIMENT ?= demo
RUNS ?= runs
ROUND1 := $(RUNS)/$(EXPERIMENT)/round1
PYTEST_ARGS ?=
DATA ?= data/benchmark
# Extra Hydra overrides for every stage, e.g. ARGS="seed=1 trainer=gpu"; COLLECT_ARGS for the
# collect stages of rounds 2 and 3 only, e.g. COLLECT_ARGS="stage.num_prompts=2048".
ARGS ?=
COLLECT_ARGS ?=
INSTALL_STAMP ?= $(BIN)/.installed

# Offline by default: no hub look-ups, wandb writes locally. Override in the environment.
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install demo data sft reward cost ppo eval test test-fast lint format clean clean-runs help \
	bench-ppo rounds round1 round2 round3 sweep-nu sweep-lambda sweep-cost-limit sweep-seeds \
	sweep-advantage

help:
	@sed -n 's/^#  *make /make /p' $(MAKEFILE_LIST)

$(INSTALL_STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@# --no-compile: byte-compiling all of torch, transformers & co. at install time doubles it;
	@# Python compiles the modules it imports on first use instead.
	$(BIN)/pip install --quiet --no-compile -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-compile --no-deps -e .
	touch $@

install: $(INSTALL_STAMP)

# The peer for benchmarks: TRL 1.12.0 (the last release with PPOTrainer) in an environment of its
# own; torch first, so that pip keeps the CPU build.
TRL_VENV ?= .venv-trl
$(TRL_VENV)/.installed: benchmarks/requirements-trl.txt
	$(PYTHON) -m venv $(TRL_VENV)
	$(TRL_VENV)/bin/pip install --quiet --no-compile torch==2.13.0
	$(TRL_VENV)/bin/pip install --quiet --no-compile -r benchmarks/requirements-trl.txt
	touch $@

bench-ppo: $(INSTALL_STAMP) $(TRL_VENV)/.installed
	$(BIN)/python benchmarks/compare_ppo.py --python $(BIN)/python \
		--trl-python $(TRL_VENV)/bin/python $(BENCH_ARGS)

# SFT, reward, cost, PPO-Lagrangian and evaluation for a few steps each on one GPU in bf16, on a
# ~100M-parameter Llama built from a config and the embedded benchmark: throughput and peak GPU
# memory per stage, printed and written to $(RUNS)/gpu_check/gpu_check.json. Fails at once
# without a CUDA device. GPU_CHECK_ARGS adds options, e.g. GPU_CHECK_ARGS="--steps 50".
.PHONY: gpu-check
gpu-check: $(INSTALL_STAMP)
	$(BIN)/python benchmarks/gpu_check.py --work-dir $(RUNS)/gpu_check $(GPU_CHECK_ARGS)

# The embedded default end to end. Each stage is a file target (the folder it writes), so running
# it again re-runs only what is missing; an interrupted stage resumes from its last checkpoint.
# Stages that need the same inputs run two at a time (reward ‖ cost, PPO-Lagrangian ‖ reward-only
# PPO), one torch thread each: on 2 cores two one-thread jobs do ~1.4x the work of one two-thread
# job with these tiny models. The second job of a pair keeps its log lines but not its bar.
demo: install
	$(MAKE) --no-print-directory -j2 eval PAIRED=1
	@cat $(ROUND1)/eval/report.md
	@echo "report: $(ROUND1)/eval/report.md"

, := ,
ifeq ($(FORCE),1)
STAGE_FORCE := force
TRAIN_ARGS := resume=false
endif
TRAIN_OVERRIDES = experiment_name=$(EXPERIMENT) paths.runs_dir=$(RUNS) data.root=$(DATA) \
	$(TRAIN_ARGS) $(ARGS)
TRAIN = $(BIN)/safe-rlhf-train $(TRAIN_OVERRIDES)
MULTIRUN = $(BIN)/safe-rlhf-train -m $(TRAIN_OVERRIDES)
ifeq ($(PAIRED),1)
FIRST_OF_PAIR := OMP_NUM_THREADS=1
SECOND_OF_PAIR := OMP_NUM_THREADS=1
SECOND_OF_PAIR_ARGS := trainer.enable_progress_bar=false
endif

data: $(DATA)/manifest.json
$(DATA)/manifest.json: | $(INSTALL_STAMP)
	$(BIN)/safe-rlhf-benchmark output_dir=$(DATA)

sft: $(ROUND1)/sft/model/config.json
$(ROUND1)/sft/model/config.json: $(DATA)/manifest.json $(STAGE_FORCE)
	$(TRAIN) stage=sft

# Reward and cost models of round 1, each started from the round's SFT policy.
reward: $(ROUND1)/reward/model/config.json
$(ROUND1)/reward/model/config.json: $(ROUND1)/sft/model/config.json $(STAGE_FORCE)
	$(FIRST_OF_PAIR) $(TRAIN) stage=reward

cost: $(ROUND1)/cost/model/config.json
$(ROUND1)/cost/model/config.json: $(ROUND1)/sft/model/config.json $(STAGE_FORCE)
	$(SECOND_OF_PAIR) $(TRAIN) stage=cost $(SECOND_OF_PAIR_ARGS)

# PPO of round 1 per λ schedule: learned (Safe RLHF, folder ppo_lag), pid, fixed (reward
# shaping), none (reward-only PPO); the folder is ppo_lag_<schedule> for all but learned.
ppo_dir = $(ROUND1)/ppo_lag$(if $(filter learned,$(1)),,_$(1))
define PPO_RULE
$(call ppo_dir,$(1))/model/config.json: $(ROUND1)/reward/model/config.json $(ROUND1)/cost/model/config.json $(STAGE_FORCE)
	$$(if $$(filter learned,$(1)),$$(FIRST_OF_PAIR),$$(SECOND_OF_PAIR)) $(TRAIN) stage=ppo_lag \
		lambda_schedule=$(1) hydra.run.dir=$(call ppo_dir,$(1)) \
		$$(if $$(filter learned,$(1)),,$$(SECOND_OF_PAIR_ARGS))
endef
$(foreach schedule,learned pid fixed none,$(eval $(call PPO_RULE,$(schedule))))
LAMBDA ?= learned
ppo: $(call ppo_dir,$(LAMBDA))/model/config.json

# Evaluation of SFT, Safe RLHF (PPO-Lagrangian) and reward-only PPO side by side.
eval: $(ROUND1)/eval/results.json
$(ROUND1)/eval/results.json: $(call ppo_dir,learned)/model/config.json $(call ppo_dir,none)/model/config.json $(STAGE_FORCE)
	$(TRAIN) stage=eval

# SACPO (Wachi et al. 2024) on round 1's data: DPO for helpfulness on the better pairs from the
# SFT policy, then DPO for safety on the safer pairs from that policy (stage=sacpo_safety, its
# own β), and P-SACPO, the weight merge of the two ((1 - w)·helpful + w·safe, w = SACPO_WEIGHT);
# then all three beside SFT and Safe RLHF in one evaluation (round1/sacpo_eval/report.md).
SACPO_WEIGHT ?= 0.5
.PHONY: sacpo
sacpo: $(ROUND1)/sacpo_eval/results.json
$(ROUND1)/sacpo_helpful/model/config.json: $(ROUND1)/sft/model/config.json $(STAGE_FORCE)
	$(TRAIN) stage=dpo hydra.run.dir=$(ROUND1)/sacpo_helpful
$(ROUND1)/sacpo_safety/model/config.json: $(ROUND1)/sacpo_helpful/model/config.json $(STAGE_FORCE)
	$(TRAIN) stage=sacpo_safety hydra.run.dir=$(ROUND1)/sacpo_safety
$(ROUND1)/p_sacpo/model/config.json: $(ROUND1)/sacpo_safety/model/config.json $(STAGE_FORCE)
	$(BIN)/python -m safe_rlhf_lightning.cli.merge $(ROUND1)/sacpo_helpful/model \
		$(ROUND1)/sacpo_safety/model --weight $(SACPO_WEIGHT) --output $(ROUND1)/p_sacpo/model
$(ROUND1)/sacpo_eval/results.json: $(call ppo_dir,learned)/model/config.json $(ROUND1)/p_sacpo/model/config.json $(STAGE_FORCE)
	$(TRAIN) stage=eval hydra.run.dir=$(ROUND1)/sacpo_eval \
		'stage.policies={sft: $(ROUND1)/sft/model, safe_rlhf: $(call ppo_dir,learned)/model, sacpo_helpful: $(ROUND1)/sacpo_helpful/model, sacpo: $(ROUND1)/sacpo_safety/model, p_sacpo: $(ROUND1)/p_sacpo/model}'

# Several constraints at once (conf/constraints/): (a) one constraint per harm category, each a
# head of a multi-head cost model (cost stage with stage.categories, run into cost_categories/),
# tight limits on some categories and loose on others; (b) the harm constraint plus a length
# budget. Each then evaluated beside SFT and Safe RLHF (round1/constraints_eval/report.md).
CATEGORIES := [Cybercrime,Drugs,Violence,Economic Crime,Privacy Violation,Physical Harm]
.PHONY: constraints
constraints: $(ROUND1)/constraints_eval/results.json
$(ROUND1)/cost_categories/model/config.json: $(ROUND1)/sft/model/config.json $(STAGE_FORCE)
	$(TRAIN) stage=cost hydra.run.dir=$(ROUND1)/cost_categories 'stage.categories=$(CATEGORIES)'
$(ROUND1)/ppo_lag_per_category/model/config.json: $(ROUND1)/reward/model/config.json $(ROUND1)/cost_categories/model/config.json $(STAGE_FORCE)
	$(TRAIN) stage=ppo_lag constraints=per_category hydra.run.dir=$(ROUND1)/ppo_lag_per_category
$(ROUND1)/ppo_lag_harm_length/model/config.json: $(ROUND1)/reward/model/config.json $(ROUND1)/cost/model/config.json $(STAGE_FORCE)
	$(TRAIN) stage=ppo_lag constraints=harm_and_length hydra.run.dir=$(ROUND1)/ppo_lag_harm_length
$(ROUND1)/constraints_eval/results.json: $(call ppo_dir,learned)/model/config.json $(ROUND1)/ppo_lag_per_category/model/config.json $(ROUND1)/ppo_lag_harm_length/model/config.json $(STAGE_FORCE)
	$(TRAIN) stage=eval hydra.run.dir=$(ROUND1)/constraints_eval \
		'stage.policies={sft: $(ROUND1)/sft/model, safe_rlhf: $(call ppo_dir,learned)/model, per_category: $(ROUND1)/ppo_lag_per_category/model, harm_and_length: $(ROUND1)/ppo_lag_harm_length/model}'

# Constrained DPO (Liu et al. 2024) on round 1: samples of the policy labelled by R - λ·C, λ by
# the same learned schedule and cost limit as Safe RLHF (stage=cdpo).
.PHONY: cdpo compare-families
cdpo: $(ROUND1)/cdpo/model/config.json
$(ROUND1)/cdpo/model/config.json: $(ROUND1)/reward/model/config.json $(ROUND1)/cost/model/config.json $(STAGE_FORCE)
	$(TRAIN) stage=cdpo hydra.run.dir=$(ROUND1)/cdpo

# Both families side by side: SFT, Safe RLHF (PPO-Lagrangian), SACPO, P-SACPO and C-DPO in one
# evaluation (round1/families/report.md, policy_plane.png), then families.md: each policy's
# oracle metrics per prompt kind, its paired differences against SFT (± standard errors) and
# the wall time of the stages behind it (from their train.log).
FAMILIES := sft=sft safe_rlhf=reward,cost,ppo_lag sacpo=sacpo_helpful,sacpo_safety \
	p_sacpo=sacpo_helpful,sacpo_safety,p_sacpo cdpo=reward,cost,cdpo
compare-families: $(ROUND1)/families/families.md
$(ROUND1)/families/results.json: $(call ppo_dir,learned)/model/config.json $(ROUND1)/p_sacpo/model/config.json $(ROUND1)/cdpo/model/config.json $(STAGE_FORCE)
	$(TRAIN) stage=eval hydra.run.dir=$(ROUND1)/families \
		'stage.policies={sft: $(ROUND1)/sft/model, safe_rlhf: $(call ppo_dir,learned)/model, sacpo: $(ROUND1)/sacpo_safety/model, p_sacpo: $(ROUND1)/p_sacpo/model, cdpo: $(ROUND1)/cdpo/model}'
$(ROUND1)/families/families.md: $(ROUND1)/families/results.json
	$(BIN)/python -m safe_rlhf_lightning.cli.families $(ROUND1)/families $(FAMILIES)
	@cat $@

# Rounds 2 and 3: round k collects pairs from round k-1's policy, retrains R | C from the SFT
# policy on the base data plus every round's collected pairs, and runs PPO-Lagrangian from round
# k-1's policy with round k's row of conf/rounds/ (cost limit, lambda init and lr).
round_dir = $(RUNS)/$(EXPERIMENT)/round$(1)
round1: $(call ppo_dir,learned)/model/config.json
define ROUND_RULES
$(call round_dir,$(1))/collect/preference_train.jsonl: $(call round_dir,$(2))/ppo_lag/model/config.json $(STAGE_FORCE)
	$(TRAIN) stage=collect round=$(1) $$(COLLECT_ARGS)
$(call round_dir,$(1))/reward/model/config.json: $(call round_dir,$(1))/collect/preference_train.jsonl $(STAGE_FORCE)
	$$(FIRST_OF_PAIR) $(TRAIN) stage=reward round=$(1)
$(call round_dir,$(1))/cost/model/config.json: $(call round_dir,$(1))/collect/preference_train.jsonl $(STAGE_FORCE)
	$$(SECOND_OF_PAIR) $(TRAIN) stage=cost round=$(1) $$(SECOND_OF_PAIR_ARGS)
$(call round_dir,$(1))/ppo_lag/model/config.json: $(call round_dir,$(1))/reward/model/config.json $(call round_dir,$(1))/cost/model/config.json $(STAGE_FORCE)
	$(TRAIN) stage=ppo_lag round=$(1)
round$(1): $(call round_dir,$(1))/ppo_lag/model/config.json
endef
$(eval $(call ROUND_RULES,2,1))
$(eval $(call ROUND_RULES,3,2))

# The report over the rounds: every policy on the same held-out prompts (eval stage, judged by
# round 3's R and C), and the oracle win rates against SFT per round (safe-rlhf-summary).
ROUNDS_REPORT := $(RUNS)/$(EXPERIMENT)/rounds
rounds: install
	$(MAKE) --no-print-directory -j2 $(ROUNDS_REPORT)/results.json PAIRED=1
	@cat $(ROUNDS_REPORT)/report.md $(ROUNDS_REPORT)/summary.md
	@echo "report: $(ROUNDS_REPORT)/report.md, $(ROUNDS_REPORT)/summary.md"
$(ROUNDS_REPORT)/results.json: $(ROUND1)/eval/results.json $(call round_dir,2)/ppo_lag/model/config.json $(call round_dir,3)/ppo_lag/model/config.json $(STAGE_FORCE)
	$(TRAIN) stage=eval round=3 hydra.run.dir=$(ROUNDS_REPORT) \
		'stage.policies={sft: $(ROUND1)/sft/model, round1: $(call round_dir,1)/ppo_lag/model, round2: $(call round_dir,2)/ppo_lag/model, round3: $(call round_dir,3)/ppo_lag/model}'
	$(BIN)/safe-rlhf-summary $(foreach k,1 2 3,$(call round_dir,$(k))/ppo_lag) \
		--reference $(ROUND1)/sft --output $(ROUNDS_REPORT) > /dev/null

# Sweeps of round 1's PPO stage, one Hydra multirun each: the presets in conf/experiment/
# (`safe-rlhf-train -m +experiment=sweep_<name>` is the whole sweep; each preset holds its grid
# and names its run folders by the swept value under runs/<experiment>/sweeps/<name>/, so a rerun
# resumes), then a summary against round 1's Safe RLHF policy and SFT. NU_GRID, COST_LIMITS and
# SEEDS replace a preset's grid (e.g. NU_GRID=0.5,2); SWEEP_ARGS adds overrides to its runs. With
# logger=*wandb* in ARGS or SWEEP_ARGS the summary also goes to W&B as a table, in the sweep's group.
SWEEP = $(RUNS)/$(EXPERIMENT)/sweeps/$(1)
define SWEEP_RULE
sweep-$(1): $(ROUND1)/reward/model/config.json $(ROUND1)/cost/model/config.json $(call ppo_dir,learned)/model/config.json
	$(MULTIRUN) +experiment=sweep_$(subst -,_,$(1)) $(2) $$(SWEEP_ARGS)
	$(BIN)/safe-rlhf-summary $(call SWEEP,$(1)) $(3) --reference $(ROUND1)/sft --output $(call SWEEP,$(1)) \
		$(if $(findstring wandb,$(ARGS) $(SWEEP_ARGS)),--wandb-group $(EXPERIMENT)-$(1))
endef
# Arguments: name, the grid from make (when set), runs added to the summary.
$(eval $(call SWEEP_RULE,nu,$$(if $$(NU_GRID),lambda_schedule.nu=$$(NU_GRID)),$(call ppo_dir,learned)))
$(eval $(call SWEEP_RULE,lambda,,))
$(eval $(call SWEEP_RULE,cost-limit,$$(if $$(COST_LIMITS),cost_threshold.cost_limit=$$(COST_LIMITS)),))
$(eval $(call SWEEP_RULE,seeds,$$(if $$(SEEDS),seed=$$(SEEDS)),$(call ppo_dir,learned)))
# Critic-free GRPO/RLOO-Lagrangian beside GAE's (conf/experiment/sweep_advantage.yaml); ADVANTAGES
# replaces its estimator grid when set.
$(eval $(call SWEEP_RULE,advantage,$$(if $$(ADVANTAGES),advantage=$$(ADVANTAGES)),))

# Upload the offline W&B runs of $(EXPERIMENT) (every stage, round, sweep and sweep summary run
# with logger=wandb) once a key is set up (`wandb login` or WANDB_API_KEY); runs already uploaded
# are skipped. WANDB_SYNC_ARGS adds options of `wandb sync`, e.g. --dry-run or --project.
.PHONY: wandb-sync
wandb-sync: $(INSTALL_STAMP)
	find $(RUNS)/$(EXPERIMENT) -type d -name 'offline-run-*' -print0 | sort -z \
		| xargs -0 -r $(BIN)/wandb sync --yes $(WANDB_SYNC_ARGS)

.PHONY: force
force:

# The suite runs on every logical CPU (pytest-xdist; each worker gets its share of the cores as
# torch threads, tests/conftest.py); TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= logical
PYTEST_XDIST = -n $(TEST_WORKERS) --dist load --maxschedchunk 1
test: install
	$(BIN)/python -m pytest $(PYTEST_XDIST) $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest $(PYTEST_XDIST) -m "not slow" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src tests benchmarks experiments
	$(BIN)/ruff format --check src tests benchmarks experiments

format: install
	$(BIN)/ruff check --fix src tests benchmarks experiments
	$(BIN)/ruff format src tests benchmarks experiments

clean-runs:
	rm -rf $(RUNS) $(DATA) outputs

clean: clean-runs
	rm -rf $(VENV) .pytest_cache .ruff_cache
