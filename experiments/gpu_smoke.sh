#!/usr/bin/env bash
# GPU smoke check of the stages on the embedded default: SFT (full length), reward and cost
# (short), all with trainer=gpu (bf16 mixed precision). Usage: experiments/gpu_smoke.sh OUT_DIR
set -euo pipefail
out=${1:?usage: experiments/gpu_smoke.sh OUT_DIR}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_MODE=offline PYTHONUNBUFFERED=1
train() { python3 -m safe_rlhf_lightning.cli.train trainer=gpu experiment_name=gpu \
  paths.runs_dir="$out/runs" paths.data_dir="$out/data" trainer.enable_progress_bar=false "$@"; }
python3 -c "import torch; print('device:', torch.cuda.get_device_name(), 'torch', torch.__version__)"
start=$(date +%s); train stage=sft; echo "sft wall s: $(( $(date +%s) - start ))"
start=$(date +%s); train stage=reward stage.max_steps=200; echo "reward wall s: $(( $(date +%s) - start ))"
start=$(date +%s); train stage=cost stage.max_steps=200; echo "cost wall s: $(( $(date +%s) - start ))"
for stage in sft reward cost; do cat "$out/runs/gpu/round1/$stage/summary.md"; done
