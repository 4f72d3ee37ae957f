"""Loss functions of the catalogue: cross-entropy, focal loss, and BCE with a linear term.

Each returns a callable ``(logits, targets) -> batch-mean loss``. Losses are computed in float32
even under autocast so small probabilities do not underflow.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def focal_loss(logits: torch.Tensor, targets: torch.Tensor, gamma: float,
               alpha: torch.Tensor | None = None, label_smoothing: float = 0.0) -> torch.Tensor:
    """Multiclass focal loss: mean of α_t·(1 − p_t)^γ·CE with p_t the softmax probability of the
    true class. γ = 0 without α is exactly (label-smoothed) cross-entropy."""
    logits = logits.float()
    ce = F.cross_entropy(logits, targets, reduction="none", label_smoothing=label_smoothing)
    if gamma:
        p_t = logits.log_softmax(-1).gather(1, targets[:, None]).squeeze(1).exp()
        ce = (1 - p_t).clamp_min(0).pow(gamma) * ce
    if alpha is not None:
        ce = alpha[targets] * ce
    return ce.mean()


def bce_linear_loss(logits: torch.Tensor, targets: torch.Tensor, linear: float) -> torch.Tensor:
    """One-vs-rest BCE summed over classes, plus ``linear``·|y − σ(z)|, whose gradient does not
    vanish when a prediction saturates."""
    logits = logits.float()
    onehot = F.one_hot(targets, logits.shape[1]).float()
    loss = F.binary_cross_entropy_with_logits(logits, onehot, reduction="none").sum(1)
    if linear:
        loss = loss + linear * (onehot - logits.sigmoid()).abs().sum(1)
    return loss.mean()


def class_alpha(spec: Any, class_counts: np.ndarray) -> np.ndarray | None:
    """Per-class α of the focal loss: None, inverse frequency (mean 1), or the given list."""
    if spec in (None, "none"):
        return None
    k = len(class_counts)
    if spec == "balanced":
        inv = 1.0 / np.maximum(class_counts, 1)
        return inv * k / inv.sum()
    alpha = np.asarray(spec, dtype=np.float64)
    if alpha.shape != (k,):
        raise ValueError(f"focal_alpha has {alpha.size} weights but the dataset has {k} classes")
    return alpha


def make_loss(config: Any, class_counts: np.ndarray, device: torch.device) -> LossFn:
    """The loss ``config`` asks for (flooding, L1 and random scaling are applied in the loop)."""
    if config.loss == "bce":
        return lambda z, y: bce_linear_loss(z, y, config.bce_linear)
    if config.loss == "focal":
        a = class_alpha(config.focal_alpha, class_counts)
        alpha = None if a is None else torch.as_tensor(a, dtype=torch.float32, device=device)
        return lambda z, y: focal_loss(z, y, config.focal_gamma, alpha, config.label_smoothing)
    return lambda z, y: F.cross_entropy(z.float(), y, label_smoothing=config.label_smoothing)
