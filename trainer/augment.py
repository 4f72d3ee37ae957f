"""Batch augmentation on device tensors, and the views of test-time augmentation.

Inputs are (N, C, L) sequences or (N, C, H, W) images; tabular data is never augmented (the config
refuses it). Random choices come from the caller's generator so runs stay reproducible.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


def _coin(n: int, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=gen, device=device) < 0.5


def _where(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(mask.view(-1, *([1] * (a.dim() - 1))), a, b)


def shift(x: torch.Tensor, offsets: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Shift each sample along its spatial axes by ``offsets`` (N, dims) in [-max_shift, max_shift],
    filling with zeros."""
    s = max_shift
    dims = x.dim() - 2
    padded = F.pad(x, (s, s) * dims)
    n = x.shape[0]
    batch = torch.arange(n, device=x.device)
    if dims == 1:
        length = x.shape[-1]
        idx = (s - offsets[:, 0])[:, None] + torch.arange(length, device=x.device)
        return padded[batch[:, None], :, idx].permute(0, 2, 1)
    h, w = x.shape[-2:]
    rows = (s - offsets[:, 0])[:, None] + torch.arange(h, device=x.device)
    cols = (s - offsets[:, 1])[:, None] + torch.arange(w, device=x.device)
    out = padded[batch[:, None, None], :, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2)


def augment_batch(x: torch.Tensor, config: Any, gen: torch.Generator) -> torch.Tensor:
    """Apply the training augmentations ``config`` switches on to a batch."""
    n, device = x.shape[0], x.device
    if config.augment_hflip:
        x = _where(_coin(n, gen, device), x.flip(-1), x)
    if config.augment_vflip:
        x = _where(_coin(n, gen, device), x.flip(-2), x)
    if config.augment_dflip:
        x = _where(_coin(n, gen, device), x.transpose(-1, -2), x)
    if config.augment_shift:
        s = config.augment_shift
        offsets = torch.randint(-s, s + 1, (n, x.dim() - 2), generator=gen, device=device)
        x = shift(x, offsets, s)
    if config.augment_noise:
        x = x + config.augment_noise * torch.randn(x.shape, generator=gen, device=device)
    return x


def tta_views(x: torch.Tensor, mode: str) -> list[torch.Tensor]:
    """The views whose predictions test-time augmentation averages (the identity first)."""
    if mode == "off":
        return [x]
    if mode == "flips":
        views = [x, x.flip(-1)]
        if x.dim() == 4:
            views.append(x.flip(-2))
            if x.shape[-1] == x.shape[-2]:
                views.append(x.transpose(-1, -2))
        return views
    if mode == "shifts":
        views = [x]
        dims = x.dim() - 2
        for d in (-2, -1, 1, 2):
            for axis in range(dims):
                off = torch.zeros(x.shape[0], dims, dtype=torch.long, device=x.device)
                off[:, axis] = d
                views.append(shift(x, off, 2))
        return views
    raise ValueError(f"unknown tta mode {mode!r}")
