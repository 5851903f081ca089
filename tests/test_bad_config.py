"""The bad-configuration corpus: for every config group, one wrong value of each kind a user can
give (wrong type, out of range, unknown option or key, missing file or folder, a model folder of
the wrong kind, a tokenizer that does not match) fails before any model is loaded, in one line
that names the key. (The bad-data corpus is ``test_bad_input.py``.)"""

from __future__ import annotations

import pytest
import yaml
from hydra.errors import ConfigCompositionException

from safe_rlhf_lightning.cli.runner import run_stage, validate_config
from safe_rlhf_lightning.config import ConfigError
from safe_rlhf_lightning.data import RecordError
from safe_rlhf_lightning.models import build_tiny_causal_lm, train_bpe_tokenizer
from tests.conftest import TEST_MODEL_SIZE, compose_run_config

# Wrong types, unknown options and unknown keys: refused while Hydra composes the config.
COMPOSITION = [
    (["stage.lr=fast"], "stage.lr"),
    (["stage=train"], "stage"),
    (["stage.lrr=1"], "stage.lrr"),
    (["model.tiny.hidden_size=big"], "model.tiny.hidden_size"),
    (["model=gpt5"], "model"),
    (["data.max_length=long"], "data.max_length"),
    (["data=imagenet"], "data"),
    (["trainer.max_epochs=one"], "trainer.max_epochs"),
    (["trainer=tpu"], "trainer"),
    (["logger=wandb", "logger.wandb.offline=maybe"], "logger.wandb.offline"),
    (["logger=mlflow"], "logger"),
    (["stage=ppo_lag", "lambda_schedule.lr=fast"], "lambda_schedule.lr"),
    (["stage=ppo_lag", "lambda_schedule=adaptive"], "lambda_schedule"),
    (["stage=ppo_lag", "lambda_schedule.windw=3"], "lambda_schedule.windw"),
    (["cost_threshold.cost_limit=high"], "cost_threshold.cost_limit"),
    (["cost_threshold=minus5"], "cost_threshold"),
    (["rounds=paper7"], "rounds"),
    (["debug=slow"], "debug"),
    (["stage=ppo_lag", "constraints=everything"], "constraints"),
]  # fmt: skip

# Values of the right type but out of range: refused by the schemas' checks.
VALUES = [
    (["stage.lr=-1"], "stage.lr"),
    (["stage=cost", "stage.loss_type=pairwise"], "stage.loss_type"),
    (["stage=eval", "stage.missing_policy=ignore"], "stage.missing_policy"),
    (["stage=collect", "stage.labeler=crowd"], "stage.labeler"),
    (["model.tiny.num_heads=0"], "model.tiny.num_heads"),
    (["model.dtype=float8"], "model.dtype"),
    (["data.max_length=1"], "data.max_length"),
    (["data.prompt_template=no placeholder"], "data.prompt_template"),
    (["stage.max_steps=-1", "trainer.max_epochs=null"], "trainer.max_steps"),
    (["stage=ppo_lag", "lambda_schedule.window=0"], "lambda_schedule"),
    (["stage=ppo_lag", "lambda_schedule=fixed", "lambda_schedule.nu=-1"], "lambda_schedule"),
    (["stage=ppo_lag", "cost_threshold.cost_limit=nan"], "lambda_schedule"),
    (["stage=ppo_lag", "advantage=grpo", "stage.gamma=0.9"], "stage.gamma"),
    (["stage=ppo_lag", "advantage=rloo", "stage.shared_critic=true"], "stage.shared_critic"),
    (["stage=ppo_lag", "advantage=dr_grpo", "stage.cost_critic_init=/v"], "stage.cost_critic_init"),
    (["rounds.1.lambda_lr=-1"], "rounds.<k>.lambda_lr"),
    (["round=0"], "round"),
    # Constraints are typed when the config is checked (so that one can be added on the command
    # line): a wrong type or an unknown field is refused there, naming it.
    (["stage=ppo_lag", "constraints=harm_and_length", "constraints.length.limit=long"],
     "constraints.length.limit"),
    (["stage=ppo_lag", "constraints=harm_and_length", "+constraints.length.limt=3"],
     "constraints.length.limt"),
    (["stage=ppo_lag", "+constraints.length={scorer: length}"], "constraints.length.limit"),
    (["stage=ppo_lag", "constraints=harm_and_length", "constraints.length.scorer=lenght"],
     "constraints.length.scorer"),
    (["stage=ppo_lag", "+constraints.reward={scorer: length, limit: 3}"], "constraints.reward"),
    (["stage=ppo_lag", "constraints=harm_and_length", "constraints.length.limit=nan"],
     "constraints.length.limit"),
    (["stage=ppo_lag", "constraints=harm_and_length", "constraints.harm.cost_model=null"],
     "constraints.harm.cost_model"),
    (["stage=ppo_lag", "constraints=harm_and_length", "+constraints.length.lambda_schedule.kq=1"],
     "constraints.length.lambda_schedule"),
    (["stage=ppo_lag", "constraints=harm_and_length", "constraints.length.lambda_schedule.ki=-1"],
     "constraints.length.lambda_schedule"),
    (["stage=ppo_lag", "constraints=harm_and_length",
      "+constraints.length.lambda_schedule.cost_limit=3"],
     "constraints.length.lambda_schedule.cost_limit"),
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "key"), COMPOSITION)
def test_a_wrong_type_or_unknown_name_fails_composing_naming_it(overrides, key, tmp_path):
    with pytest.raises(ConfigCompositionException) as error:
        compose_run_config(overrides, tmp_path)
    message = f"{error.value} {error.value.__cause__ or ''}"
    assert key in message, message


@pytest.mark.parametrize(("overrides", "key"), VALUES)
def test_a_value_out_of_range_fails_validation_naming_the_key(overrides, key, tmp_path):
    cfg = compose_run_config(overrides, tmp_path)
    with pytest.raises(ConfigError) as error:
        validate_config(cfg)
    message = str(error.value)
    assert f"config key '{key}'" in message and "\n" not in message, message


def test_a_constraint_named_twice_fails_reading_the_file_naming_it(tmp_path):
    """Constraints are the keys of a mapping: a file naming one twice is refused as it is read."""
    options = tmp_path / "extra" / "constraints"
    options.mkdir(parents=True)
    (options / "twice.yaml").write_text(
        "harm: {scorer: length, limit: 1}\nharm: {scorer: length, limit: 2}\n"
    )
    overrides = [
        "stage=ppo_lag",
        f"hydra.searchpath=[file://{options.parent}]",
        "constraints=twice",
    ]
    with pytest.raises(yaml.constructor.ConstructorError, match="found duplicate key harm"):
        compose_run_config(overrides, tmp_path)


@pytest.fixture(scope="module")
def other_tokenizer_policy(tmp_path_factory):
    """A policy folder whose tokenizer is not the test models' one."""
    tokenizer = train_bpe_tokenizer(["a quite different corpus of words"] * 20, vocab_size=300)
    folder = tmp_path_factory.mktemp("other") / "policy"
    build_tiny_causal_lm(tokenizer, seed=0, **TEST_MODEL_SIZE).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


PPO = ["stage=ppo_lag", "debug=fast"]
# Refused by the runner's checks before any model is loaded (or, for the folder kinds and the
# tokenizer, before the model that key names is loaded).
RUNS = [
    (["data.sft_train=[/nonexistent/sft.jsonl]"], "data.sft_train", RecordError),
    (["stage=reward", "stage.init_from=/nonexistent/sft"], "stage.init_from", ConfigError),
    (["model=pretrained", "model.name_or_path=/nonexistent/lm"], "model.name_or_path", ConfigError),
    (["model=pretrained", "model.name_or_path=no-such-model"], "model.name_or_path", ConfigError),
    ([*PPO, "stage.actor_init={models}/sft", "stage.reward_model={models}/sft"],
     "stage.reward_model", ConfigError),
    ([*PPO, "stage.actor_init={models}/reward"], "stage.actor_init", ConfigError),
    ([*PPO, "stage.actor_init={models}/sft", "stage.reward_model={models}/reward",
      "stage.cost_model={models}/reward"], "stage.cost_model", ConfigError),
    ([*PPO, "stage.actor_init={models}/sft", "stage.reference_init={other}"],
     "stage.reference_init", ConfigError),
    (["stage=eval", "stage.policies={{a: '{models}/reward'}}"], "stage.policies.a", ConfigError),
    (["stage=eval", "stage.policies={{a: '{models}/sft'}}", "stage.reward_model={models}/reward",
      "stage.cost_model={models}/sft"], "stage.cost_model", ConfigError),
    (["trainer=gpu"], "trainer.accelerator", ConfigError),
    # A head index out of range (a one-head cost model), refused before the actor is loaded.
    ([*PPO, "stage.actor_init={models}/sft", "stage.reward_model={models}/reward",
      "+constraints.harm={{cost_model: '{models}/cost', head: 3, limit: 0}}"],
     "constraints.harm.head", ConfigError),
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "key", "kind"), RUNS)
def test_a_missing_or_wrong_kind_of_file_is_refused_naming_the_key(
    overrides,
    key,
    kind,
    tmp_path,
    benchmark_dir,
    model_folders,
    other_tokenizer_policy,
    monkeypatch,
):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # trainer=gpu on any machine
    filled = [o.format(models=model_folders, other=other_tokenizer_policy) for o in overrides]
    cfg = compose_run_config(filled, tmp_path, benchmark_dir)
    with pytest.raises(kind) as error:
        run_stage(cfg)
    message = str(error.value)
    assert f"config key '{key}'" in message and "\n" not in message, message
    assert not (tmp_path / "run" / "model").exists()
