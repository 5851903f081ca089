"""What the stages need from multi-process training beyond what Lightning's strategies do.

Lightning's strategies (``trainer=ddp | fsdp | deepspeed_zero2 | deepspeed_zero3``) launch the
processes, wrap the trained models, all-reduce or shard the gradients and replace the train
loaders' samplers. Around them, a stage runner still has to:

- do side effects (oracle evaluations, saved folders, result files) on global rank 0 only, before
  and after ``trainer.fit``: :func:`is_global_zero` knows the rank from the launcher's
  environment even before the process group exists;
- gather whole parameters of sharded models before rank 0 saves them (:func:`full_parameters`);
- make decisions that every rank must take alike (skip a non-finite batch) together
  (:func:`all_ranks_agree`);
- check that replicated state stayed replicated: :func:`gather_objects` and :func:`tensor_digest`
  give the PPO stage a per-rank report of λ and of the trained weights;
- keep "checkpoints are only loaded with ``weights_only=True``" true under FSDP, whose strategy
  reads them without the checkpoint IO plugin (:class:`WeightsOnlyFSDPStrategy`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning.strategies import FSDPStrategy
from pytorch_lightning.utilities import rank_zero_only
from torch import nn

log = logging.getLogger(__name__)


def is_global_zero() -> bool:
    """True on global rank 0, or when there is one process. Read from the launcher's
    environment (``RANK``, ``LOCAL_RANK``, SLURM's ``SLURM_PROCID``), so it is right before the
    process group is initialised, as in the runners' steps before ``trainer.fit``."""
    return getattr(rank_zero_only, "rank", 0) == 0


def distributed() -> bool:
    """Whether a process group with more than one rank is initialised."""
    return (
        torch.distributed.is_available()
        and torch.distributed.is_initialized()
        and torch.distributed.get_world_size() > 1
    )


def gather_objects(value: Any) -> list[Any]:
    """``value`` of every rank, in rank order (``[value]`` with one process). Collective: every
    rank must call it."""
    if not distributed():
        return [value]
    gathered: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(gathered, value)
    return gathered


def all_ranks_agree(module: Any, decision: bool) -> bool:
    """``decision`` when it holds on every rank, else False (one process: ``decision``).

    ``module`` is a LightningModule; outside a Trainer the local decision stands."""
    trainer = getattr(module, "_trainer", None)
    if trainer is None or trainer.world_size == 1:
        return decision
    return bool(trainer.strategy.reduce_boolean_decision(decision, all=True))


def tensor_digest(tensors: Iterable[tuple[str, torch.Tensor]]) -> str:
    """SHA-256 of named tensors' names, shapes, dtypes and exact bytes (in the given order):
    equal digests mean bitwise-equal weights."""
    digest = hashlib.sha256()
    for name, tensor in tensors:
        data = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}:{tuple(data.shape)}:{data.dtype};".encode())
        digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()


def model_digest(model: nn.Module) -> str:
    """:func:`tensor_digest` of a model's parameters and buffers, sorted by name."""
    named = dict(model.named_parameters())
    named.update(dict(model.named_buffers()))
    return tensor_digest(sorted(named.items()))


@contextmanager
def full_parameters(trainer: Any, model: nn.Module) -> Iterator[None]:
    """Inside, ``model`` holds its whole parameters on every rank, so rank 0 can save it.

    DDP and single-device strategies keep whole parameters anyway. DeepSpeed ZeRO-3 partitions
    them: they are gathered for the block (``deepspeed.zero.GatheredParameters``). FSDP keeps
    flat shards: the root wrapper's ``summon_full_params`` restores them. Collective for the
    sharded strategies: every rank must enter the block."""
    strategy = getattr(trainer, "strategy", None)
    kind = type(strategy).__name__
    if kind == "DeepSpeedStrategy" and getattr(strategy, "zero_stage_3", False):
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(model.parameters()), modifier_rank=None):
            yield
    elif kind == "FSDPStrategy":
        from torch.distributed.fsdp import FullyShardedDataParallel

        with FullyShardedDataParallel.summon_full_params(strategy.model, writeback=False):
            yield
    else:
        yield


def rank_report(
    rank: int,
    lambda_value: float,
    episode_costs: list[float],
    models: dict[str, nn.Module],
    **more: Any,
) -> dict[str, Any]:
    """One rank's report for :func:`ranks_in_sync`: λ, a digest of the cost window and of each
    trained model's exact weights (identical on every rank of a data-parallel run), and
    ``more`` (e.g. steps, and a digest of the data this rank saw, which must differ)."""
    window = torch.tensor(episode_costs, dtype=torch.float64)
    return {
        "rank": rank,
        "lambda": lambda_value,
        "episode_cost_window": tensor_digest([("window", window)]),
        **{f"{name}_digest": model_digest(model) for name, model in models.items()},
        **more,
    }


# Keys of a rank report that differ between ranks by design.
PER_RANK_KEYS = frozenset({"rank", "prompts_digest"})


def ranks_in_sync(reports: list[dict[str, Any]]) -> bool:
    """Whether the rank reports agree on everything but their per-rank keys (rank, data)."""
    shared = [{k: v for k, v in r.items() if k not in PER_RANK_KEYS} for r in reports]
    return all(report == shared[0] for report in shared[1:])


def replicates_parameters(trainer: Any) -> bool:
    """Whether every rank holds the whole trained weights (DDP and one-device strategies), so
    that their digests can be compared across ranks; sharded ones (FSDP, DeepSpeed) do not."""
    return type(trainer.strategy).__name__ not in {"FSDPStrategy", "DeepSpeedStrategy"}


def clip_grad_norm_sharded(
    parameters: Iterable[torch.Tensor],
    max_norm: float,
    reduce_sum: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """Clip gradients that are split across ranks (FSDP: each rank holds a disjoint shard of
    every gradient) to a total L2 norm of ``max_norm``; returns the total norm before clipping.

    The squared norms of the local shards are summed over the ranks by ``reduce_sum`` (an
    all-reduce), so every rank scales by the same factor, as ``torch.nn.utils.clip_grad_norm_``
    would on the whole gradient. ``reduce_sum`` = identity gives exactly that function's result
    on one process."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if grads:
        local = torch.stack([g.detach().float().pow(2).sum() for g in grads]).sum()
    else:
        local = torch.zeros(())
    total = reduce_sum(local).sqrt()
    scale = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for grad in grads:
        grad.detach().mul_(scale.to(grad.dtype))
    return total


def fsdp_strategy(
    wrap_layers: list[str],
    activation_checkpointing: bool = False,
    **options: Any,
) -> WeightsOnlyFSDPStrategy:
    """Lightning's ``FSDPStrategy`` with its wrap policy given as dotted class names (a YAML
    list): each decoder layer becomes one FSDP unit and, with ``activation_checkpointing``,
    recomputes its activations in the backward pass. ``options`` go to the strategy
    (``sharding_strategy``, ``cpu_offload``, ``state_dict_type``, ...)."""
    from hydra.utils import get_class

    layers = {get_class(name) for name in wrap_layers}
    if activation_checkpointing:
        options["activation_checkpointing_policy"] = layers
    return WeightsOnlyFSDPStrategy(auto_wrap_policy=layers, **options)


class WeightsOnlyFSDPStrategy(FSDPStrategy):
    """``FSDPStrategy`` that loads a full checkpoint (``state_dict_type: full``, one file) only
    after torch's ``weights_only`` unpickler accepted it.

    Lightning's FSDP strategy bypasses the checkpoint IO plugin (``AtomicCheckpointIO``) when it
    loads: a full checkpoint goes through its lazy loader, a plain unpickler that rebuilds any
    class the file names. Here the file is first read with ``torch.load(weights_only=True,
    mmap=True)`` (memory-mapped: the tensors' data is not read), and a file that this refuses
    never reaches that loader. A sharded checkpoint (a folder) is read by
    ``torch.distributed.checkpoint``, which unpickles its ``.metadata`` without restriction:
    there the guarantee does not hold (only its ``meta.pt`` is read with ``weights_only``)."""

    def load_checkpoint(
        self, checkpoint_path: str | Path, weights_only: bool | None = None
    ) -> dict[str, Any]:
        if weights_only is False:
            raise ValueError(
                f"{checkpoint_path}: checkpoints are only loaded with weights_only=True "
                "(no pickled code)"
            )
        path = Path(self.broadcast(checkpoint_path))
        if path.is_file():
            torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        else:
            log.warning(
                "%s: a sharded FSDP checkpoint; torch.distributed.checkpoint unpickles its "
                ".metadata without weights_only (resume only from checkpoints you wrote)",
                path,
            )
        return super().load_checkpoint(path, weights_only=True)


def clip_per_model(
    strategy: Any, models: dict[str, nn.Module], max_norm: float
) -> dict[str, torch.Tensor]:
    """Clip each model's gradient to ``max_norm`` on its own; returns ``grad_norm/<name>``, the
    norms before clipping. Under FSDP each norm sums the ranks' shards
    (:func:`clip_grad_norm_sharded`); under DeepSpeed the engine owns the gradients and clips
    them itself (one norm over all models, set by the runner), so nothing is done here."""
    kind = type(strategy).__name__ if strategy is not None else ""
    if kind == "DeepSpeedStrategy":
        return {}
    norms = {}
    for name, model in models.items():
        if kind == "FSDPStrategy":
            reduce = partial(strategy.reduce, reduce_op="sum")
            norm = clip_grad_norm_sharded(model.parameters(), max_norm, reduce)
        else:
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        norms[f"grad_norm/{name}"] = norm.detach()
    return norms
