"""Which score type a loaded folder gets: the caller's, its config's, or its folder name's."""

import json
import logging

import pytest
import torch
from safetensors.torch import save_file
from torch import nn
from transformers import LlamaModel

from safe_rlhf_lightning.models import ScoreModel
from tests.models.test_score_model import tiny_config

LOGGER = "safe_rlhf_lightning.models.score_model"


def write_older_layout(folder, **config_fields) -> None:
    """A score folder as upstream's first releases (beaver-7b-v1.0-*) wrote it: no score_type,
    no normalizer settings or statistics, a head without bias."""
    config = tiny_config(num_hidden_layers=1)
    raw = json.loads(config.to_json_string(use_diff=False))
    raw.update(architectures=["LlamaModelForScore"], score_dim=1, bias=False, **config_fields)
    torch.manual_seed(0)
    state = {f"model.{k}": v for k, v in LlamaModel(config).state_dict().items()}
    state["score_head.weight"] = nn.Linear(32, 1, bias=False).weight.detach()
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(raw))
    save_file({k: v.contiguous() for k, v in state.items()}, folder / "model.safetensors")


def messages(caplog, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == level]


@pytest.mark.parametrize(
    ("name", "expected", "function"),
    [("beaver-7b-v1.0-cost", "cost", "scale"), ("beaver-7b-v1.0-reward", "reward", "affine")],
)
def test_an_older_folder_takes_its_type_from_its_name(tmp_path, caplog, name, expected, function):
    write_older_layout(tmp_path / name)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        model = ScoreModel.from_pretrained(tmp_path / name)
    assert model.score_type == expected and model.normalizer.normalize_function == function
    assert f"score type {expected!r} from the folder name {name!r}" in "\n".join(
        messages(caplog, logging.INFO)
    )
    # No statistics anywhere: nothing is taken from the config, so nothing to warn about.
    assert not any("mean/var" in m for m in messages(caplog, logging.WARNING))
    assert any("no normalizer statistics" in m for m in messages(caplog, logging.INFO))
    assert model.normalizer.mean.tolist() == [0.0] and model.normalizer.var.tolist() == [1.0]


def test_a_hub_cache_snapshot_is_named_by_its_repository(tmp_path):
    snapshot = tmp_path / "models--PKU-Alignment--beaver-7b-v1.0-cost" / "snapshots" / "0a1b2c"
    write_older_layout(snapshot)
    assert ScoreModel.from_pretrained(snapshot).score_type == "cost"


def test_an_older_folder_without_a_telling_name_needs_the_type(tmp_path, caplog):
    write_older_layout(tmp_path / "older")
    with pytest.raises(ValueError, match=r"older.*no score_type.*pass score_type='reward' or"):
        ScoreModel.from_pretrained(tmp_path / "older")
    write_older_layout(tmp_path / "reward-or-cost")  # both words: the name decides nothing
    with pytest.raises(ValueError, match="names neither"):
        ScoreModel.from_pretrained(tmp_path / "reward-or-cost")

    with caplog.at_level(logging.INFO, logger=LOGGER):
        model = ScoreModel.from_pretrained(tmp_path / "older", score_type="cost")
    assert model.score_type == "cost" and model.normalizer.normalize_function == "scale"
    assert "score type 'cost' from the caller's score_type" in "\n".join(
        messages(caplog, logging.INFO)
    )
    assert not messages(caplog, logging.WARNING)


def test_the_caller_wins_over_the_name_with_a_warning(tmp_path, caplog):
    write_older_layout(tmp_path / "beaver-cost")
    with caplog.at_level(logging.INFO, logger=LOGGER):
        model = ScoreModel.from_pretrained(tmp_path / "beaver-cost", score_type="reward")
    assert model.score_type == "reward"
    assert messages(caplog, logging.WARNING) == [
        f"{tmp_path / 'beaver-cost'}: the folder name says cost but reward was asked for"
    ]


def test_the_config_wins_over_the_name(tmp_path):
    write_older_layout(tmp_path / "beaver-cost", score_type="reward")
    assert ScoreModel.from_pretrained(tmp_path / "beaver-cost").score_type == "reward"


def test_asking_for_another_type_than_the_config_is_an_error_unless_retyped(tmp_path, caplog):
    write_older_layout(tmp_path / "model", score_type="cost")
    with pytest.raises(ValueError, match=r"holds a cost model .* asked for a reward model"):
        ScoreModel.from_pretrained(tmp_path / "model", score_type="reward")
    with caplog.at_level(logging.INFO, logger=LOGGER):
        critic = ScoreModel.from_pretrained(tmp_path / "model", score_type="critic")
        reward = ScoreModel.from_pretrained(tmp_path / "model", score_type="reward", retype=True)
    assert critic.score_type == "critic" and critic.normalizer.normalize_function == "identity"
    assert reward.score_type == "reward" and reward.normalizer.normalize_function == "affine"
    assert torch.equal(critic.score_head.weight, reward.score_head.weight)
    info = "\n".join(messages(caplog, logging.INFO))
    for kind in ("critic", "reward"):
        assert (
            f"score type {kind!r} from the caller's score_type, re-typed from the folder's 'cost'"
            in info
        )
    assert ScoreModel.from_pretrained(tmp_path / "model", score_type="cost").score_type == "cost"


def test_a_bad_type_in_the_config_names_the_file(tmp_path):
    write_older_layout(tmp_path / "model", score_type="value")
    with pytest.raises(ValueError, match=r"model/config\.json score_type must be one of"):
        ScoreModel.from_pretrained(tmp_path / "model")


def test_config_statistics_are_used_with_a_warning_only_when_present(tmp_path, caplog):
    write_older_layout(tmp_path / "beaver-reward", mean=[2.0], var=[9.0])
    with caplog.at_level(logging.INFO, logger=LOGGER):
        model = ScoreModel.from_pretrained(tmp_path / "beaver-reward")
    assert model.normalizer.mean.tolist() == [2.0] and model.normalizer.var.tolist() == [9.0]
    warnings = messages(caplog, logging.WARNING)
    assert len(warnings) == 1 and warnings[0].endswith("using config mean/var")
