"""Running score statistics and score normalization, buffer-compatible with upstream safe-rlhf.

A normalizer holds three buffers, saved with the model as ``normalizer.mean`` (D,),
``normalizer.var`` (D,) and ``normalizer.count`` (1,) long, the names and shapes upstream's
``safe_rlhf/models/normalizer.py`` uses, so checkpoints load both ways. ``update`` folds a batch of
end scores into the statistics; ``normalize`` applies the model's normalize function:

- ``affine`` (reward): (x - mean) / (std + eps)
- ``scale`` (cost): x / (std + eps), no shift, so that the sign (C > 0 unsafe) survives
- ``translate``: x - mean
- ``identity`` (critic): x
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Literal

import torch
from torch import Tensor, nn

NormalizeFunction = Literal["affine", "scale", "translate", "identity"]
NormalizerType = Literal["RunningMeanStd", "ExponentialMovingAverage"]

NORMALIZE_FUNCTIONS: tuple[str, ...] = ("affine", "scale", "translate", "identity")
NORMALIZER_TYPES: tuple[str | None, ...] = ("RunningMeanStd", "ExponentialMovingAverage", None)


class Normalizer(nn.Module, ABC):
    """Base class: the buffers and ``normalize``; subclasses define how ``update`` folds a batch in.

    Statistics start at mean 0, var 1, count 0 (upstream's initial values). Updates are computed
    in float64 from detached data and copied into the buffers, so no autograd graph is kept and a
    bf16 model still accumulates its statistics accurately.
    """

    mean: Tensor
    var: Tensor
    count: Tensor

    def __init__(
        self, normalize_function: NormalizeFunction, score_dim: int = 1, epsilon: float = 1e-8
    ) -> None:
        super().__init__()
        if normalize_function not in NORMALIZE_FUNCTIONS:
            raise ValueError(
                f"normalize_function must be one of {NORMALIZE_FUNCTIONS}, "
                f"got {normalize_function!r}"
            )
        self.normalize_function = normalize_function
        self.epsilon = epsilon  # added to the std, as upstream does
        self.register_buffer("mean", torch.zeros(score_dim))
        self.register_buffer("var", torch.ones(score_dim))
        self.register_buffer("count", torch.zeros(1, dtype=torch.long))

    @property
    def std(self) -> Tensor:
        return self.var.sqrt()

    def normalize(self, x: Tensor) -> Tensor:
        """Normalize ``x`` of shape (..., D) with the current statistics (no gradient into them)."""
        mean, std = self.mean.detach(), self.std.detach() + self.epsilon
        if self.normalize_function == "affine":
            return (x - mean) / std
        if self.normalize_function == "scale":
            return x / std
        if self.normalize_function == "translate":
            return x - mean
        return x

    @abstractmethod
    def update(self, batch: Tensor) -> None:
        """Fold ``batch`` of shape (N, D) into the statistics (under ``torch.no_grad``)."""

    def forward(self, x: Tensor) -> Tensor:
        """Update from ``x`` (N, D) in training mode, then normalize it (upstream's semantics)."""
        if self.training:
            self.update(x)
        return self.normalize(x)

    @torch.no_grad()
    def set_mean_var(self, mean: Tensor | list[float], var: Tensor | list[float]) -> None:
        """Overwrite the statistics, e.g. with the ``mean``/``var`` upstream keeps in config."""
        self.mean.copy_(torch.as_tensor(mean, dtype=self.mean.dtype).reshape(self.mean.shape))
        self.var.copy_(torch.as_tensor(var, dtype=self.var.dtype).reshape(self.var.shape))

    @torch.no_grad()
    def _store(self, mean: Tensor, var: Tensor, count: Tensor) -> None:
        self.mean.copy_(mean)
        self.var.copy_(var)
        self.count.copy_(count)

    def _float64(self, batch: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return batch.detach().double(), self.mean.double(), self.var.double()

    def extra_repr(self) -> str:
        return f"normalize_function={self.normalize_function!r}, score_dim={self.mean.numel()}"


class IdentityNormalizer(Normalizer):
    """``normalizer_type=None``: statistics stay as set (initially 0 and 1); samples are counted.

    With mean 0 and var 1, ``normalize`` is the identity up to the epsilon; with statistics loaded
    from an upstream config it applies them, exactly as upstream does.
    """

    @torch.no_grad()
    def update(self, batch: Tensor) -> None:
        self.count += batch.shape[0]


class RunningMeanStd(Normalizer):
    """Exact mean and variance of every score seen so far (parallel merge, Chan et al. 1979).

    ``var`` is the population variance (divisor N). Deliberate deviation from upstream: upstream
    merges the *unbiased* batch variance as if it were the batch's M2 / n, so its running var is
    off by a factor (n - 1) / n within each batch; here the merge is exact, so after any sequence
    of updates mean/var equal ``torch.mean`` / ``torch.var(correction=0)`` over all data seen.
    """

    @torch.no_grad()
    def update(self, batch: Tensor) -> None:
        data, mean, var = self._float64(batch)  # data (N, D)
        count = self.count.double()  # (1,)
        batch_count = data.shape[0]
        batch_mean = data.mean(dim=0)
        batch_m2 = data.var(dim=0, correction=0) * batch_count
        total = count + batch_count
        delta = batch_mean - mean
        new_mean = mean + delta * batch_count / total
        m2 = var * count + batch_m2 + delta.square() * count * batch_count / total
        self._store(new_mean, m2 / total, self.count + batch_count)


class ExponentialMovingAverage(Normalizer):
    """Exponential moving averages of the batch mean and (unbiased) batch variance, as upstream.

    mean <- momentum * mean + (1 - momentum) * batch_mean, and the same for var. A batch of one
    row contributes variance 0 (upstream would produce NaN).
    """

    def __init__(
        self,
        normalize_function: NormalizeFunction,
        score_dim: int = 1,
        epsilon: float = 1e-8,
        momentum: float = 0.9,
    ) -> None:
        super().__init__(normalize_function, score_dim, epsilon)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        self.momentum = momentum

    @torch.no_grad()
    def update(self, batch: Tensor) -> None:
        data, mean, var = self._float64(batch)  # data (N, D)
        batch_var = data.var(dim=0, correction=1 if data.shape[0] > 1 else 0)
        new_mean = self.momentum * mean + (1.0 - self.momentum) * data.mean(dim=0)
        new_var = self.momentum * var + (1.0 - self.momentum) * batch_var
        self._store(new_mean, new_var, self.count + data.shape[0])

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, momentum={self.momentum}"


def build_normalizer(
    normalizer_type: NormalizerType | None,
    normalize_function: NormalizeFunction,
    score_dim: int = 1,
    momentum: float | None = None,
) -> Normalizer:
    """The normalizer upstream's ``normalizer_type`` config value names (None: identity).

    ``momentum`` is used by the EMA only; None means upstream's default 0.9.
    """
    if normalizer_type == "RunningMeanStd":
        return RunningMeanStd(normalize_function, score_dim)
    if normalizer_type == "ExponentialMovingAverage":
        return ExponentialMovingAverage(
            normalize_function, score_dim, momentum=0.9 if momentum is None else momentum
        )
    if normalizer_type is None:
        return IdentityNormalizer(normalize_function, score_dim)
    raise ValueError(f"normalizer_type must be one of {NORMALIZER_TYPES}, got {normalizer_type!r}")
