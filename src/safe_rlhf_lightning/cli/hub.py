"""Model-folder keys that may name a Hugging Face hub id: resolved to a local snapshot (or a
ConfigError naming the key) before a stage loads anything."""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path

from ..config import ConfigError

log = logging.getLogger(__name__)

# Stage keys that name a model folder; a Hugging Face hub id there is resolved to its local
# snapshot before the stage runs (resolve_hub_models).
MODEL_FOLDER_KEYS = (
    "init_from", "actor_init", "reference_init", "reward_model", "cost_model",
    "reward_critic_init", "cost_critic_init", "policy", "probe_cost_model",
)  # fmt: skip
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


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
    """One model folder or hub id (e.g. ``model.name_or_path``), resolved as above."""
    return _hub_snapshot(value, key)


def _hub_snapshot(value: str, key: str) -> str:
    if Path(value).expanduser().exists() or not HUB_ID.match(value):
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


def require_model_folder(path: str | None, key: str, hint: str) -> None:
    """A config key naming a model folder must point at one (a ``config.json`` inside)."""
    if path is None or not (Path(path) / "config.json").is_file():
        raise ConfigError(
            f"config key '{key}' must be a model folder, got {path!r} "
            f"(no config.json there): {hint}"
        )
