"""Multi-process training: the helpers of ``distributed.py`` and real 2-process DDP runs (gloo,
CPU) of the PPO-Lagrangian and reward stages through ``trainer=ddp_cpu``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from safe_rlhf_lightning.distributed import (
    clip_grad_norm_sharded,
    model_digest,
    ranks_in_sync,
    tensor_digest,
)
from safe_rlhf_lightning.stages import FiniteGuard, NonFiniteError

# -- helpers -------------------------------------------------------------------------------------


def _grads(seed: int) -> list[torch.nn.Parameter]:
    generator = torch.Generator().manual_seed(seed)
    params = [torch.nn.Parameter(torch.zeros(shape)) for shape in ((3, 4), (5,), (2, 2, 2))]
    for param in params:
        param.grad = torch.randn(param.shape, generator=generator, dtype=torch.float64).float() * 3
    return params


def test_sharded_clip_on_one_process_is_torchs_clip():
    ours, theirs = _grads(0), _grads(0)
    norm = clip_grad_norm_sharded(ours, 1.0, reduce_sum=lambda t: t)
    expected = torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    torch.testing.assert_close(norm, expected)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a.grad, b.grad)


def test_sharded_clip_over_two_shards_equals_the_whole_gradients_clip():
    """Each rank holds one half of every gradient; the all-reduce sums their squared norms."""
    whole = _grads(1)
    halves = [[], []]
    for param in whole:
        flat = param.grad.flatten()
        for rank, piece in enumerate(flat.tensor_split(2)):
            shard = torch.nn.Parameter(torch.zeros_like(piece))
            shard.grad = piece.clone()
            halves[rank].append(shard)
    local = [torch.stack([p.grad.pow(2).sum() for p in half]).sum() for half in halves]
    # Hand-computed total norm: the square root of every element's square, over both shards.
    expected_norm = torch.cat([p.grad.flatten() for p in whole]).double().norm()
    norms = [
        clip_grad_norm_sharded(half, 2.0, reduce_sum=lambda t, other=local[1 - rank]: t + other)
        for rank, half in enumerate(halves)
    ]
    for norm in norms:
        assert norm.item() == pytest.approx(expected_norm.item(), rel=1e-6)
    torch.nn.utils.clip_grad_norm_(whole, 2.0)
    for index, param in enumerate(whole):
        pieces = [halves[0][index].grad, halves[1][index].grad]
        torch.testing.assert_close(torch.cat(pieces), param.grad.flatten())


def test_digests_see_one_changed_bit_and_ranks_in_sync_ignores_per_rank_keys():
    model = torch.nn.Linear(3, 2)
    before = model_digest(model)
    assert model_digest(model) == before
    with torch.no_grad():
        bits = model.weight.view(torch.int32)
        bits[0, 0] ^= 1  # the last bit of one float
    assert model_digest(model) != before
    assert tensor_digest([("a", torch.zeros(2))]) != tensor_digest([("b", torch.zeros(2))])
    reports = [
        {"rank": 0, "lambda": 1.5, "actor_digest": "x", "prompts_digest": "p"},
        {"rank": 1, "lambda": 1.5, "actor_digest": "x", "prompts_digest": "q"},
    ]
    assert ranks_in_sync(reports)
    assert not ranks_in_sync([reports[0], {**reports[1], "lambda": 1.25}])
    assert not ranks_in_sync([reports[0], {**reports[1], "actor_digest": "y"}])


class _Strategy:
    """Stands for a DDP strategy whose other rank has a non-finite value."""

    def reduce_boolean_decision(self, decision: bool, all: bool = True) -> bool:
        return decision and False


def test_guard_skips_on_every_rank_when_another_rank_is_not_finite():
    owner = SimpleNamespace(_trainer=SimpleNamespace(world_size=2, strategy=_Strategy()))
    guard = FiniteGuard(skip=True, owner=owner)
    assert guard(3, "loss", loss=torch.tensor(1.0)) is False  # finite here, not on rank 1
    assert guard.skipped == 1
    with pytest.raises(NonFiniteError, match="another rank"):
        FiniteGuard(skip=False, owner=owner)(3, "loss", loss=torch.tensor(1.0))
    alone = SimpleNamespace(_trainer=SimpleNamespace(world_size=1, strategy=_Strategy()))
    assert FiniteGuard(skip=True, owner=alone)(3, "loss", loss=torch.tensor(1.0)) is True


# -- two real processes --------------------------------------------------------------------------


def _train(overrides: list[str], tmp_path) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "-m",
        "safe_rlhf_lightning.cli.train",
        *overrides,
        "trainer=ddp_cpu",
        "logger=csv",
        f"paths.runs_dir={tmp_path / 'runs'}",
        f"paths.data_dir={tmp_path / 'data'}",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


@pytest.mark.slow
@pytest.mark.parametrize("advantage", ["gae", "grpo"])
def test_ppo_lagrangian_under_two_process_ddp_keeps_lambda_and_weights_identical(
    advantage, model_folders, benchmark_dir, tmp_path
):
    """With ``grpo`` too: each rank samples all responses of its prompts (its groups)."""
    steps = 4
    _train(
        [
            "stage=ppo_lag",
            "debug=fast",
            "lambda_schedule=learned",
            f"stage.max_steps={steps}",
            "stage.batch_size=4",
            "stage.num_return_sequences=2",
            "stage.max_new_tokens=8",
            "stage.minibatch_size=4",
            "stage.eval_limit=8",
            "stage.eval_max_new_tokens=8",
            f"stage.actor_init={model_folders / 'sft'}",
            f"stage.reward_model={model_folders / 'reward'}",
            f"stage.cost_model={model_folders / 'cost'}",
            "stage.save_critics=true",
            f"data.root={benchmark_dir}",
            "cost_threshold=zero",
            f"advantage={advantage}",
        ],
        tmp_path,
    )
    run_dir = tmp_path / "runs" / "default" / "round1" / "ppo_lag"
    results = json.loads((run_dir / "results.json").read_text())
    ranks = results["ranks"]
    assert [r["rank"] for r in ranks] == [0, 1]
    assert all(r["ppo_steps"] == steps for r in ranks)
    # Replicated state: λ, the gathered cost window, actor and both critics, bit for bit.
    critics = ("reward_critic_digest", "cost_critic_digest") if advantage == "gae" else ()
    for key in ("lambda", "episode_cost_window", "actor_digest", *critics):
        assert ranks[0][key] == ranks[1][key], key
    assert ("reward_critic_digest" in ranks[0]) == (advantage == "gae")
    assert results["ranks_in_sync"] is True
    # ... while each rank trained on its own prompts (DistributedSampler), so the equality
    # above is the gradient all-reduce and the gathered costs at work, not two copies of a run.
    assert ranks[0]["prompts_digest"] != ranks[1]["prompts_digest"]
    history = [json.loads(line) for line in (run_dir / "history.jsonl").open()]
    lambdas = [row["lambda"] for row in history]
    assert len(set(lambdas)) > 1 and lambdas[-1] == ranks[0]["lambda"]  # λ moved, ranks agree
    # The saved actor is the trained one, written once by rank 0.
    from safe_rlhf_lightning.models import load_causal_lm

    saved = load_causal_lm(str(run_dir / "model"))
    assert model_digest(saved) != model_digest(load_causal_lm(str(model_folders / "sft")))
    assert not (run_dir / "model.old").exists()
    # The checkpoint keeps each rank's generators for an exact resume, and loads safely.
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert len(checkpoint["rng_states_per_rank"]) == 2
    samples = [json.loads(line) for line in (run_dir / "samples_train.jsonl").open()]
    assert len(samples) == 4 * 2  # step 0's rollout of rank 0 only (log_samples_every=20)


@pytest.mark.slow
def test_two_constraints_under_two_process_ddp_keep_every_multiplier_identical(
    model_folders, benchmark_dir, tmp_path
):
    """Each λ_k is updated from its own window of the costs gathered from both ranks."""
    _train(
        [
            "stage=ppo_lag",
            "debug=fast",
            "stage.max_steps=3",
            "stage.batch_size=4",
            "stage.num_return_sequences=2",
            "stage.max_new_tokens=8",
            "stage.minibatch_size=4",
            "stage.eval_limit=8",
            "stage.eval_max_new_tokens=8",
            f"stage.actor_init={model_folders / 'sft'}",
            f"stage.reward_model={model_folders / 'reward'}",
            f"stage.cost_model={model_folders / 'cost'}",
            f"data.root={benchmark_dir}",
            "constraints=harm_and_length",
            "constraints.harm.limit=-10",  # violated: λ_harm rises
            "constraints.length.limit=2",  # violated: λ_length rises
        ],
        tmp_path,
    )
    run_dir = tmp_path / "runs" / "default" / "round1" / "ppo_lag"
    results = json.loads((run_dir / "results.json").read_text())
    ranks = results["ranks"]
    assert results["ranks_in_sync"] is True
    digests = ("actor_digest", "reward_critic_digest", "harm_critic_digest", "length_critic_digest")
    for key in ("lambda", "episode_cost_window", *digests):
        assert ranks[0][key] == ranks[1][key], key
    assert ranks[0]["prompts_digest"] != ranks[1]["prompts_digest"]
    history = [json.loads(line) for line in (run_dir / "history.jsonl").open()]
    assert ranks[0]["lambda"] == [history[-1]["lambda/harm"], history[-1]["lambda/length"]]
    assert history[-1]["lambda/harm"] > 1.0 and history[-1]["lambda/length"] > 0.0


@pytest.mark.slow
def test_reward_stage_under_two_process_ddp(model_folders, benchmark_dir, tmp_path):
    _train(
        [
            "stage=reward",
            "debug=fast",
            f"stage.init_from={model_folders / 'sft'}",
            "stage.max_steps=3",
            "stage.batch_size=8",
            "stage.eval_limit=16",
            f"data.root={benchmark_dir}",
            "data.preference_train=[benchmark-preference/train:0.02]",
            "data.preference_eval=[benchmark-preference/test:0.05]",
        ],
        tmp_path,
    )
    run_dir = tmp_path / "runs" / "default" / "round1" / "reward"
    results = json.loads((run_dir / "results.json").read_text())
    scores = [json.loads(line) for line in (run_dir / "scores.jsonl").open()]
    assert len(scores) == 16
    agree = [(r["score_0"] > r["score_1"]) == (r["better_response_id"] == 0) for r in scores]
    assert results["test"]["accuracy"] == pytest.approx(sum(agree) / 16)  # rank 0's scoring
    assert (run_dir / "model" / "config.json").is_file()


@pytest.mark.parametrize("entry", ["ddp", "ddp_cpu", "fsdp", "deepspeed_zero2", "deepspeed_zero3"])
def test_trainer_entries_compose_with_every_stage(entry, tmp_path):
    from omegaconf import OmegaConf

    from safe_rlhf_lightning.cli.runner import validate_config
    from tests.conftest import compose_run_config

    for stage in ("sft", "reward", "cost", "ppo_lag"):
        cfg = compose_run_config([f"stage={stage}", f"trainer={entry}"], tmp_path)
        trainer = validate_config(cfg).trainer
        assert trainer.max_steps == cfg.stage.max_steps
    strategy = cfg.trainer.strategy
    strategy = OmegaConf.to_container(strategy) if OmegaConf.is_config(strategy) else strategy
    if entry.startswith("deepspeed"):
        assert strategy["stage"] == int(entry[-1])
        assert strategy["_target_"] == "pytorch_lightning.strategies.DeepSpeedStrategy"
    elif entry == "fsdp":
        from hydra.utils import instantiate
        from pytorch_lightning.strategies import FSDPStrategy
        from transformers.models.llama.modeling_llama import LlamaDecoderLayer

        built = instantiate(cfg.trainer.strategy, activation_checkpointing=True)
        assert isinstance(built, FSDPStrategy)
        assert LlamaDecoderLayer in built.kwargs["auto_wrap_policy"]._module_classes
    else:
        assert strategy == "ddp"
