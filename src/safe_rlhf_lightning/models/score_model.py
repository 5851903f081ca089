"""Score models: the reward model R, the cost model C and the critics V_R, V_C.

A score model is a causal-LM backbone without its LM head (``model``), a linear ``score_head``
from the last hidden state to D scores per token, and a ``normalizer`` of the end scores. Folders
use upstream PKU-Alignment/safe-rlhf's layout (``safe_rlhf/models/score_model``), so that
``beaver-7b-v1.0-{reward,cost}`` load here and our folders load there:

- ``config.json``: the backbone's own config plus ``architectures: ["<Arch>ForScore"]``,
  ``score_dim``, ``score_type`` ("reward" | "cost" | "critic"), ``score_bias`` (older upstream
  versions call it ``bias``; both are read and written), ``do_normalize``, ``normalizer_type``
  ("RunningMeanStd" | "ExponentialMovingAverage" | null), ``momentum``, and ``mean``/``var``
  (upstream mirrors the normalizer statistics there);
- weights: ``model.*`` (backbone), ``score_head.weight`` (+ ``score_head.bias``),
  ``normalizer.mean`` / ``normalizer.var`` / ``normalizer.count``.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from transformers import (
    AutoConfig,
    AutoModel,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from .causal_lm import DTYPES
from .io import save_pretrained_atomic
from .lora import has_lora
from .normalizer import NormalizerType, build_normalizer

log = logging.getLogger(__name__)

# score_type -> normalize function (upstream's choice): a reward's offset carries no meaning, a
# cost's sign does (C > 0 unsafe), and a critic's value must stay in the return's units.
SCORE_TYPES = {"reward": "affine", "cost": "scale", "critic": "identity"}
SCORE_CONFIG_KEYS = (
    "score_dim",
    "score_type",
    "score_bias",
    "do_normalize",
    "normalizer_type",
    "momentum",
    "mean",
    "var",
)
OVERRIDABLE = frozenset({"score_dim", "score_bias", "do_normalize", "normalizer_type", "momentum"})
WEIGHTS_NAME = "model.safetensors"
# Non-persistent buffers that older transformers versions still wrote into Llama checkpoints.
IGNORED_UNEXPECTED_SUFFIXES = ("rotary_emb.inv_freq",)


class ScoreOutput(NamedTuple):
    """What a score model returns. Scores are float32 whatever the backbone's dtype."""

    scores: Tensor  # (B, L, D) per-token scores, normalized when do_normalize
    end_scores: Tensor  # (B, D) the score at each row's last attended token
    end_index: Tensor  # (B,) long, position of that token


class ScoreModel(nn.Module):
    """Backbone + linear score head + normalizer (upstream safe-rlhf's ``<Arch>ForScore``).

    Args:
        backbone: the transformer without LM head (e.g. ``LlamaModel``); a model with a head
            (``LlamaForCausalLM``) is accepted and its ``base_model`` is kept.
        score_dim: scores per token (D).
        score_type: "reward" (normalized affinely), "cost" (scaled only, the sign survives) or
            "critic" (never normalized).
        score_bias: whether the score head has a bias.
        do_normalize: whether ``forward`` returns normalized scores. The statistics are updated
            from the end scores in training mode whether or not this is set (as upstream), so a
            reward model trained raw can be used normalized later.
        normalizer_type: "RunningMeanStd", "ExponentialMovingAverage" or None (statistics stay
            as loaded).
        momentum: the EMA's momentum (None: 0.9).

    A new score head is initialised as upstream's effectively is: inside a Hugging Face model,
    ``post_init`` / missing-key initialisation gives every ``nn.Linear`` weights drawn from
    N(0, ``config.initializer_range``) (0.02 by default) and a zero bias. The draw uses the
    global RNG, so seed it for reproducible heads.
    """

    def __init__(
        self,
        backbone: PreTrainedModel,
        *,
        score_dim: int = 1,
        score_type: str = "reward",
        score_bias: bool = True,
        do_normalize: bool = False,
        normalizer_type: NormalizerType | None = None,
        momentum: float | None = None,
    ) -> None:
        super().__init__()
        if score_type not in SCORE_TYPES:
            raise ValueError(f"score_type must be one of {sorted(SCORE_TYPES)}, got {score_type!r}")
        if backbone.base_model is not backbone:
            log.info("score model: using %s without its head", type(backbone).__name__)
            backbone = backbone.base_model
        self.model = backbone  # the name gives upstream's `model.*` weight names
        # ALiBi models (Bloom) take no position ids; they derive positions from the mask.
        self._takes_position_ids = "position_ids" in inspect.signature(backbone.forward).parameters
        self.score_dim = score_dim
        self.score_type = score_type
        self.score_bias = score_bias
        self.do_normalize = do_normalize
        self.normalizer_type = normalizer_type
        self.momentum = momentum
        weight = next(backbone.parameters())
        self.score_head = nn.Linear(
            backbone.config.hidden_size,
            score_dim,
            bias=score_bias,
            dtype=weight.dtype,
            device=weight.device,
        )
        with torch.no_grad():
            self.score_head.weight.normal_(std=getattr(backbone.config, "initializer_range", 0.02))
            if score_bias:
                self.score_head.bias.zero_()
        # Kept in float32 even for a bf16 backbone: statistics accumulate over a whole run.
        self.normalizer = build_normalizer(
            normalizer_type, SCORE_TYPES[score_type], score_dim, momentum
        ).to(weight.device)

    @property
    def config(self) -> PretrainedConfig:
        """The backbone's config (the score fields live on this module, see ``score_config``)."""
        return self.model.config

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> ScoreOutput:
        """Score every token of ``input_ids`` (B, L) given ``attention_mask`` (B, L), True = valid.

        Padding may be on either side (or both): position ids are counted over valid tokens only,
        so a row's scores do not depend on where its padding is. (Deliberate deviation: upstream
        leaves position ids to the backbone, which numbers pad slots too; for the right-padded
        batches upstream uses the two agree.) A row without any valid token gets end_index 0.
        """
        mask = attention_mask.bool()  # (B, L)
        inputs: dict[str, Tensor] = {"input_ids": input_ids, "attention_mask": mask}
        if self._takes_position_ids:
            inputs["position_ids"] = (mask.long().cumsum(dim=-1) - 1).clamp(min=0)  # (B, L)
        hidden = self.model(**inputs, use_cache=False).last_hidden_state  # (B, L, E)
        scores = self.score_head(hidden).float()  # (B, L, D)
        positions = torch.arange(mask.shape[1], device=mask.device)  # (L,)
        end_index = torch.where(mask, positions, 0).amax(dim=1)  # (B,) last valid position
        end_scores = scores[torch.arange(scores.shape[0], device=scores.device), end_index]
        if self.training:
            self._update_normalizer(end_scores)
        if self.do_normalize:
            scores = self.normalizer.normalize(scores)
            end_scores = self.normalizer.normalize(end_scores)
        return ScoreOutput(scores=scores, end_scores=end_scores, end_index=end_index)

    def with_extra_head(self, count: int = 1) -> ScoreModel:
        """A critic with 1 + ``count`` heads on this one-head model's backbone (shared, not
        copied): head 0 is this model's score head, the others start at zero (fresh value
        estimates). One backbone pass then gives every value: PPO-Lagrangian's shared critic
        (``stage.shared_critic``; one extra head per cost stream)."""
        if self.score_dim != 1:
            raise ValueError(f"with_extra_head needs a one-head score model, got {self.score_dim}")
        return self.with_heads([0] + [None] * count)

    @torch.no_grad()
    def with_heads(self, rows: list[int | None]) -> ScoreModel:
        """A critic on this model's backbone (shared, not copied) whose head j is this model's
        head ``rows[j]``, or zero where it is None (e.g. ``[2]``: the cost critic of a constraint
        on head 2 of a multi-head cost model starts from that head's estimate)."""
        bias = self.score_bias
        critic = ScoreModel(self.model, score_dim=len(rows), score_type="critic", score_bias=bias)
        for parameter in (critic.score_head.weight, critic.score_head.bias)[: 1 + bias]:
            parameter.zero_()
        for j, row in enumerate(rows):
            if row is not None:
                critic.score_head.weight[j] = self.score_head.weight[row]
                if bias:
                    critic.score_head.bias[j] = self.score_head.bias[row]
        return critic

    def _update_normalizer(self, end_scores: Tensor) -> None:
        """Update the statistics from the end scores of every rank, as upstream does, so that all
        ranks keep identical normalizers (all_gather assumes equal batch sizes on every rank)."""
        end_scores = end_scores.detach()  # (B, D)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            gathered = [torch.zeros_like(end_scores) for _ in range(dist.get_world_size())]
            dist.all_gather(gathered, end_scores)
            end_scores = torch.cat(gathered, dim=0)  # (world * B, D)
        self.normalizer.update(end_scores)

    def score_config(self) -> dict[str, Any]:
        """The ``config.json`` of this model's folder: the backbone config + upstream's fields
        (``save_pretrained`` adds what older transformers versions read, see ``io.py``)."""
        config = json.loads(self.model.config.to_json_string(use_diff=False))
        architecture = type(self.model).__name__.removesuffix("Model") + "ForScore"
        config.update(
            architectures=[architecture],
            score_dim=self.score_dim,
            score_type=self.score_type,
            score_bias=self.score_bias,
            do_normalize=self.do_normalize,
            normalizer_type=self.normalizer_type,
            momentum=self.momentum,
            mean=self.normalizer.mean.tolist(),
            var=self.normalizer.var.tolist(),
        )
        if _bias_key_is_free(self.model.config):
            config["bias"] = self.score_bias  # what upstream versions before `score_bias` read
        return config

    def save_pretrained(
        self, folder: str | Path, tokenizer: PreTrainedTokenizerBase | None = None
    ) -> Path:
        """Write ``config.json``, ``model.safetensors`` (and the tokenizer) atomically; LoRA
        adapters must be merged first (``merge_lora``)."""
        if has_lora(self):
            raise ValueError(f"merge_lora the score model before saving it to {folder}")
        return save_pretrained_atomic(_FolderWriter(self), tokenizer, folder)  # type: ignore[arg-type]

    @classmethod
    def from_pretrained(
        cls,
        folder: str | Path,
        *,
        score_type: str | None = None,
        retype: bool = False,
        dtype: str = "float32",
        trust_remote_code: bool = False,
        **overrides: Any,
    ) -> ScoreModel:
        """Load a score model folder (ours or upstream's), or start one from a causal-LM folder.

        - A score-model folder (config.json has score fields or a ``*ForScore`` architecture):
          the backbone is rebuilt from its config and every weight is loaded from
          ``model.safetensors`` (or ``pytorch_model.bin``, read with ``weights_only=True``;
          sharded indexes too). Missing or unexpected keys are an error naming them; the only
          exception is a missing ``normalizer.*``, which falls back to config ``mean``/``var``
          as upstream's loader does. The score type comes from ``score_type``, else the
          config's ``score_type``, else the folder name (``beaver-7b-v1.0-cost``: upstream's
          older folders do not record it), else it is an error; the source is logged.
          ``score_type`` must agree with the config's unless it is "critic" (V_R starts from R)
          or ``retype`` is set (start a model of another type from these weights, e.g. a cost
          model trained on from a reward model). ``overrides`` replace the saved settings.
        - A causal-LM folder (e.g. the SFT policy): the backbone weights are loaded with
          ``AutoModel`` (the LM head is dropped) and a new score head is initialised (see the
          class docstring); ``score_type`` must be given.

        ``overrides`` may set score_dim, score_bias, do_normalize, normalizer_type, momentum. The
        model is returned in eval mode, like Hugging Face's ``from_pretrained``.
        """
        folder = Path(folder)
        unknown = set(overrides) - OVERRIDABLE
        if unknown:
            raise TypeError(
                f"unknown score model settings {sorted(unknown)}; use {sorted(OVERRIDABLE)}"
            )
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        config_file = folder / "config.json"
        if not config_file.is_file():
            raise FileNotFoundError(f"{folder} is not a model folder (no config.json)")
        raw = json.loads(config_file.read_text())
        if _is_score_config(raw):
            model = cls._from_score_folder(
                folder, raw, score_type, retype, dtype, trust_remote_code, overrides
            )
        else:
            if score_type is None:
                raise ValueError(
                    f"{folder} holds a causal LM without a score head: pass score_type="
                    f"{'|'.join(SCORE_TYPES)} to start a score model from it"
                )
            backbone = AutoModel.from_pretrained(
                folder, dtype=DTYPES[dtype], trust_remote_code=trust_remote_code
            )
            model = cls(backbone, score_type=score_type, **overrides)
            log.info(
                "started a %s model from the causal LM in %s (new score head)", score_type, folder
            )
        return model.eval()

    @classmethod
    def _from_score_folder(
        cls,
        folder: Path,
        raw: dict[str, Any],
        score_type: str | None,
        retype: bool,
        dtype: str,
        trust_remote_code: bool,
        overrides: dict[str, Any],
    ) -> ScoreModel:
        config = AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code)
        state_dict = _read_state_dict(folder)
        settings = _score_settings(raw, state_dict, bias_key_free=_bias_key_is_free(config))
        settings.update(overrides)
        settings["score_type"], source = resolve_score_type(
            folder, raw.get("score_type"), score_type, retype=retype
        )
        log.info("%s: score type %r from %s", folder, settings["score_type"], source)
        # The score fields belong to the score model, not to the backbone's config.
        for key in (*SCORE_CONFIG_KEYS, *(("bias",) if _bias_key_is_free(config) else ())):
            if hasattr(config, key):
                delattr(config, key)
        with _skip_weight_init():  # every weight is overwritten below
            backbone = AutoModel.from_config(
                config, dtype=DTYPES[dtype], trust_remote_code=trust_remote_code
            )
        model = cls(backbone, **settings)
        model._load_weights(state_dict, folder, raw)
        log.info("loaded a %s model from %s", model.score_type, folder)
        return model

    def _load_weights(self, state_dict: dict[str, Tensor], folder: Path, raw: dict) -> None:
        expected = self.state_dict().keys()
        unexpected = sorted(
            key
            for key in state_dict
            if key not in expected and not key.endswith(IGNORED_UNEXPECTED_SUFFIXES)
        )
        missing = sorted(key for key in expected if key not in state_dict)
        missing_statistics = [key for key in missing if key.startswith("normalizer.")]
        missing = [key for key in missing if not key.startswith("normalizer.")]
        if missing or unexpected:
            raise ValueError(
                f"the weights in {folder} do not match the score model its config.json describes "
                f"(score_dim={self.score_dim}, score_bias={self.score_bias}): "
                f"missing keys {_some(missing)}; unexpected keys {_some(unexpected)}"
            )
        self.load_state_dict({k: v for k, v in state_dict.items() if k in expected}, strict=False)
        if missing_statistics and raw.get("mean") is not None and raw.get("var") is not None:
            log.warning("%s has no %s; using config mean/var", folder, missing_statistics)
            self.normalizer.set_mean_var(raw["mean"], raw["var"])
        elif missing_statistics:  # upstream's older folders: scores were never normalized
            log.info(
                "%s has no normalizer statistics (weights or config mean/var): starting from "
                "mean 0, var 1",
                folder,
            )


class _FolderWriter:
    """Adapts a ScoreModel to the ``save_pretrained(folder, safe_serialization)`` call that
    ``save_pretrained_atomic`` makes, so the temp-folder-then-rename logic lives in one place."""

    def __init__(self, model: ScoreModel) -> None:
        self.model = model

    def save_pretrained(self, folder: str | Path, safe_serialization: bool = True) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        save_file(state, folder / WEIGHTS_NAME, metadata={"format": "pt"})
        config = json.dumps(self.model.score_config(), indent=2, sort_keys=True)
        (folder / "config.json").write_text(config + "\n")


def is_score_model_folder(folder: str | Path) -> bool:
    """Whether ``folder`` holds a score model (ours or upstream's) rather than a plain LM."""
    config_file = Path(folder) / "config.json"
    return config_file.is_file() and _is_score_config(json.loads(config_file.read_text()))


def _is_score_config(raw: dict[str, Any]) -> bool:
    architectures = raw.get("architectures") or []
    return (
        "score_dim" in raw
        or "score_type" in raw
        or any(name.endswith("ForScore") for name in architectures)
    )


def resolve_score_type(
    folder: Path, saved: str | None, requested: str | None, *, retype: bool = False
) -> tuple[str, str]:
    """The score type of the score folder ``folder`` and where it came from (for the log).

    ``saved`` is its config's ``score_type`` (None in upstream's older layout), ``requested``
    the caller's. A requested type that contradicts the saved one is an error, since a cost model
    read as a reward model would score with the wrong sign convention and normalizer, unless it is
    "critic" or ``retype`` is set (deliberately starting another kind of model from the weights).
    """
    for name, value in (("score_type", requested), (f"{folder}/config.json score_type", saved)):
        if value is not None and value not in SCORE_TYPES:
            raise ValueError(f"{name} must be one of {sorted(SCORE_TYPES)}, got {value!r}")
    named, name = _type_from_folder_name(folder)
    if requested is not None:
        if saved is not None and requested != saved and requested != "critic" and not retype:
            raise ValueError(
                f"{folder} holds a {saved} model (config.json score_type) but was asked for a "
                f"{requested} model; pass the folder of a {requested} model, or retype=True to "
                f"start a {requested} model from its weights"
            )
        if saved is None and named not in (None, requested):
            log.warning(
                "%s: the folder name says %s but %s was asked for", folder, named, requested
            )
        retyped = (
            f", re-typed from the folder's {saved!r}" if saved not in (None, requested) else ""
        )
        return requested, f"the caller's score_type{retyped}"
    if saved is not None:
        return saved, "config.json"
    if named is not None:
        return named, f"the folder name {name!r} (config.json has no score_type)"
    raise ValueError(
        f"{folder}: config.json has no score_type and the folder name {name!r} names "
        "neither cost nor reward; pass score_type='reward' or 'cost' (or add score_type to its "
        "config.json)"
    )


def _type_from_folder_name(folder: Path) -> tuple[str | None, str]:
    """The type a folder's name gives, and the name looked at: "cost" or "reward" when it
    contains exactly one of them (upstream's ``beaver-7b-v1.0-cost``), else None. A Hugging Face
    cache snapshot (``models--org--name/snapshots/<revision>``) is named by its repository."""
    path = folder.absolute()
    name = path.name
    if path.parent.name == "snapshots":
        name = path.parent.parent.name.removeprefix("models--").replace("--", "/")
    found = [kind for kind in ("cost", "reward") if kind in name.lower()]
    return (found[0] if len(found) == 1 else None), name


def _score_settings(
    raw: dict[str, Any], state_dict: dict[str, Tensor], *, bias_key_free: bool
) -> dict[str, Any]:
    """Constructor settings from a score folder's config.json (upstream's defaults if absent)."""
    bias = raw.get("score_bias")
    if bias is None and bias_key_free:
        bias = raw.get("bias")  # upstream before the rename
    if bias is None:
        bias = "score_head.bias" in state_dict
    head = state_dict.get("score_head.weight")
    return {
        "score_dim": raw.get("score_dim", head.shape[0] if head is not None else 1),
        "score_bias": bool(bias),
        "do_normalize": bool(raw.get("do_normalize", False)),
        "normalizer_type": raw.get("normalizer_type"),
        "momentum": raw.get("momentum"),
    }


def _bias_key_is_free(config: PretrainedConfig) -> bool:
    """Whether ``bias`` is free for the score head (a Falcon config, say, uses it for itself)."""
    try:
        return not hasattr(type(config)(), "bias")
    except Exception:  # a remote-code config that cannot be built with defaults: leave it alone
        return False


def _read_state_dict(folder: Path) -> dict[str, Tensor]:
    """All weights in ``folder``: safetensors preferred, pickled .bin only as weights_only."""
    for single, index in (
        (WEIGHTS_NAME, "model.safetensors.index.json"),
        ("pytorch_model.bin", "pytorch_model.bin.index.json"),
    ):
        if (folder / single).is_file():
            files = [single]
        elif (folder / index).is_file():
            files = sorted(set(json.loads((folder / index).read_text())["weight_map"].values()))
        else:
            continue
        state: dict[str, Tensor] = {}
        for name in files:
            if name.endswith(".safetensors"):
                state.update(load_file(folder / name))
            else:
                state.update(torch.load(folder / name, map_location="cpu", weights_only=True))
        return state
    raise FileNotFoundError(
        f"no {WEIGHTS_NAME} or pytorch_model.bin (or sharded index) in {folder}"
    )


def _skip_weight_init() -> contextlib.AbstractContextManager:
    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # moved in another transformers version: initialising is only slower
        return contextlib.nullcontext()
    return no_init_weights()


def _some(keys: list[str], limit: int = 8) -> str:
    if not keys:
        return "[]"
    shown = ", ".join(keys[:limit])
    return f"[{shown}{f', ... ({len(keys)} in all)' if len(keys) > limit else ''}]"
