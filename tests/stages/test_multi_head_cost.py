"""A multi-head cost model, one head per harm category: its labels, its training through the cost
stage, and PPO-Lagrangian with one constraint per head of it."""

from __future__ import annotations

import json
import math

import pytest
from safetensors.torch import load_file

from safe_rlhf_lightning.cli.runner import run_stage
from safe_rlhf_lightning.data import PreferenceRecord, RecordError
from safe_rlhf_lightning.data.dataset import category_signs
from safe_rlhf_lightning.models import ScoreModel
from tests.conftest import compose_run_config

CATEGORIES = ["Cybercrime", "Drugs", "Violence"]


def _record(**extra) -> PreferenceRecord:
    return PreferenceRecord(
        prompt="p",
        response_0="a",
        response_1="b",
        better_response_id=0,
        safer_response_id=0,
        is_response_0_safe=True,
        is_response_1_safe=False,
        extra=extra,
    )


def test_category_signs_read_the_benchmark_lists_and_pku_mappings():
    listed = _record(response_0_harm_category=[], response_1_harm_category=["Drugs", "Violence"])
    assert category_signs(listed, 0, CATEGORIES) == (-1, -1, -1)
    assert category_signs(listed, 1, CATEGORIES) == (-1, 1, 1)
    mapped = _record(response_1_harm_category={"Cybercrime": True, "Drugs": False})
    assert category_signs(mapped, 1, CATEGORIES) == (1, -1, -1)
    with pytest.raises(RecordError, match="no response_0_harm_category"):
        category_signs(mapped, 0, CATEGORIES)


@pytest.mark.slow
def test_cost_stage_trains_a_head_per_category_and_ppo_constrains_two_of_them(
    model_folders, tmp_path, benchmark_dir
):
    categories = "[Cybercrime,Drugs,Violence,Economic Crime,Privacy Violation,Physical Harm]"
    cfg = compose_run_config(
        [
            "stage=cost",
            "debug=fast",
            f"stage.init_from={model_folders / 'sft'}",
            f"stage.categories={categories}",
            "run_dir=" + str(tmp_path / "cost"),
        ],
        tmp_path,
        benchmark_dir,
    )
    cfg.run_dir = str(tmp_path / "cost")
    results = run_stage(cfg)
    folder = tmp_path / "cost" / "model"
    model = ScoreModel.from_pretrained(folder)
    assert model.score_dim == 6 and model.score_type == "cost"
    # The evaluation: each head's sign accuracy on the held-out pairs (a last validation pass),
    # and its ranking accuracy where the held-out pairs' labels in its category differ.
    validation = results["val"]
    for category in ("Cybercrime", "Drugs", "Violence", "Physical Harm"):
        assert math.isfinite(validation[f"val/accuracy_sign/{category}"]), category
    assert any(key.startswith("val/accuracy/") for key in validation)
    assert {"val/accuracy", "val/accuracy_sign"} <= set(validation)

    heads = [
        f"+constraints.drugs={{cost_model: '{folder}', head: 1, limit: -1}}",
        f"+constraints.violence={{cost_model: '{folder}', head: 2, limit: 0}}",
    ]
    cfg = compose_run_config(
        [
            "stage=ppo_lag",
            "debug=fast",
            "stage.max_steps=1",
            "stage.batch_size=4",
            "stage.num_return_sequences=2",
            "stage.max_new_tokens=8",
            "stage.minibatch_size=4",
            "stage.save_critics=true",
            f"stage.actor_init={model_folders / 'sft'}",
            f"stage.reward_model={model_folders / 'reward'}",
            *heads,
        ],
        tmp_path,
        benchmark_dir,
    )
    run_stage(cfg)
    run_dir = tmp_path / "run"
    history = [json.loads(line) for line in (run_dir / "history.jsonl").open()]
    assert {"cost/drugs", "cost/violence", "lambda/drugs", "lambda/violence"} <= set(history[0])
    assert history[0]["cost/drugs"] != history[0]["cost/violence"]  # two heads, two costs
    # Each critic starts from the cost model's backbone (a one-head critic on it).
    critic = load_file(run_dir / "drugs_critic" / "model.safetensors")
    assert critic["score_head.weight"].shape[0] == 1
