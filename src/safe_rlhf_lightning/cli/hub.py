"""Model-folder keys that may name a Hugging Face hub id: resolved to a local snapshot (or a
ConfigError naming the key) before a stage loads anything."""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path

from ..config import ConfigError
from ..models import is_score_model_folder

log = logging.getLogger(__name__)

# Stage keys that name a model folder; a Hugging Face hub id there is resolved to its local
# snapshot before the stage runs (resolve_hub_models).
MODEL_FOLDER_KEYS = (
    "init_from", "actor_init", "reference_init", "reward_model", "cost_model",
    "reward_critic_init", "cost_critic_init", "policy", "probe_cost_model",
)  # fmt: skip
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# ``model.name_or_path`` names a model to build from, local or on the hub, where ids without an
# organisation (``gpt2``) are common too.
MODEL_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def resolve_hub_models(stage):
    """The stage config with hub ids (``PKU-Alignment/beaver-7b-v1.0-reward``) in its model keys
    and in the eval stage's ``policies`` replaced by the folder of their snapshot in the Hugging
    Face cache, downloaded first unless ``HF_HUB_OFFLINE=1``. Local folders are left as they
    are; a hub id that cannot be had is a ConfigError naming the key."""
    changes = {}
    for key in MODEL_FOLDER_KEYS:
        value = getattr(stage, key, None)
        if isinstance(value, str):
            changes[key] = _hub_snapshot(value, f"stage.{key}")
    policies = getattr(stage, "policies", None)
    if isinstance(policies, dict):
        changes["policies"] = {
            name: _hub_snapshot(value, f"stage.policies.{name}")
            if isinstance(value, str)
            else value
            for name, value in policies.items()
        }
    return dataclasses.replace(stage, **changes)


def resolve_hub_model(value: str, key: str) -> str:
    """``model.name_or_path``: a local folder as it is, a hub id (``gpt2``, ``org/name``)
    resolved as above; anything else is a ConfigError naming the key."""
    if Path(value).expanduser().exists():
        return value
    if not MODEL_NAME.match(value):
        raise ConfigError(
            f"config key '{key}': {value!r} is neither a local folder (nothing is there) nor a "
            "Hugging Face hub id (name or org/name)"
        )
    return _hub_snapshot(value, key, MODEL_NAME)


def _hub_snapshot(value: str, key: str, hub_id: re.Pattern = HUB_ID) -> str:
    if Path(value).expanduser().exists() or not hub_id.match(value):
        return value
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        folder = snapshot_download(value)
    except LocalEntryNotFoundError:
        raise ConfigError(
            f"config key '{key}': {value!r} is not a local folder, and the hub model of that "
            "name is not in the Hugging Face cache (offline: HF_HUB_OFFLINE=1). Download it "
            f"first (`hf download {value}`) or set HF_HUB_OFFLINE=0"
        ) from None
    except HfHubHTTPError as error:
        message = f"config key '{key}': cannot fetch {value!r} from the hub: {error}"
        raise ConfigError(message) from None
    log.info("%s: hub model %s → %s", key, value, folder)
    return folder


def require_model_folder(path: str | None, key: str, hint: str, kind: str | None = None) -> None:
    """A config key naming a model folder must point at one (a ``config.json`` inside), of the
    ``kind`` it expects when given: "policy" (a causal LM) or "score" (a reward or cost model,
    ours or upstream's layout). A policy where a score model is expected, or the reverse, would
    otherwise load: a causal LM gets a new, untrained score head; a score model a random LM head."""
    if path is None or not (Path(path) / "config.json").is_file():
        raise ConfigError(
            f"config key '{key}' must be a model folder, got {path!r} "
            f"(no config.json there): {hint}"
        )
    if kind is None:
        return
    score = is_score_model_folder(path)
    if score != (kind == "score"):
        found = "a score model (reward, cost or critic)" if score else "a causal LM (a policy)"
        raise ConfigError(
            f"config key '{key}' must be a {kind} model folder, got {path!r}, which holds "
            f"{found}: {hint}"
        )
