"""Where the training data lives: whole on the device (sliced per batch) or streamed by a
DataLoader when it does not fit there.

Small datasets are copied to the device once and batches are index slices of it: no per-step
copy, no worker processes. A dataset larger than ``DEVICE_SHARE`` of the device's free memory
stays in host memory and a ``torch.utils.data.DataLoader`` feeds it, with worker processes and
pinned memory on CUDA. Both shuffle with the run's generator (in a different order: the loader
also draws its workers' seed from it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

DEVICE_SHARE = 0.5  # of the device's free memory the data may take; the model needs the rest
MAX_WORKERS = 4


@dataclass(frozen=True)
class Placement:
    mode: str  # "device" or "loader"
    data_bytes: int
    budget_bytes: int | None  # None: no limit known (the CPU: the arrays are host memory already)
    workers: int = 0
    pin_memory: bool = False
    reason: str = ""

    def info(self) -> dict[str, Any]:
        """What status.json and summary.json record about it."""
        return {"placement": self.mode, "data_bytes": self.data_bytes,
                "budget_bytes": self.budget_bytes, "workers": self.workers,
                "pin_memory": self.pin_memory, "reason": self.reason}


def free_device_bytes(device: torch.device) -> int | None:
    """Free memory of a CUDA or MPS device; None for the CPU (data is already in host memory)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type == "mps":
        return int(torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory())
    return None


def choose(setting: str, arrays: list[np.ndarray], device: torch.device,
           free_bytes: int | None = None) -> Placement:
    """``setting``: auto (by size), device or loader (forced, e.g. to test the loader path)."""
    size = int(sum(a.nbytes for a in arrays))
    free = free_device_bytes(device) if free_bytes is None else free_bytes
    budget = None if free is None else int(free * DEVICE_SHARE)
    if setting == "device" or (setting == "auto" and (budget is None or size <= budget)):
        why = ("chosen" if setting == "device" else
               "host memory already" if budget is None else "fits on the device")
        return Placement("device", size, budget, reason=why)
    cuda = device.type == "cuda"
    workers = min(MAX_WORKERS, max(0, (os.cpu_count() or 1) - 1))
    why = "chosen" if setting == "loader" else (
        f"{size / 2**20:,.0f} MiB of data > {budget / 2**20:,.0f} MiB "  # type: ignore[operator]
        f"({DEVICE_SHARE:.0%} of the device's free memory)")
    return Placement("loader", size, budget, workers=workers, pin_memory=cuda, reason=why)


class Batches:
    """The training batches of one epoch, on ``device``, in either placement."""

    def __init__(self, placement: Placement, x: np.ndarray, y: np.ndarray, batch_size: int,
                 device: torch.device, generator: torch.Generator):
        self.device, self.batch_size, self.generator = device, batch_size, generator
        self.n = len(y)
        self.steps = self.n // batch_size  # drop the ragged last batch: one sample breaks BN
        self.loader: DataLoader | None = None
        if placement.mode == "loader":
            self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)
            self.loader = DataLoader(
                TensorDataset(self.x, self.y), batch_size=batch_size, shuffle=True,
                generator=generator, drop_last=True, num_workers=placement.workers,
                pin_memory=placement.pin_memory, persistent_workers=placement.workers > 0)
        else:
            self.x, self.y = to_device(x, device), to_device(y, device)

    def epoch(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.loader is not None:
            for xb, yb in self.loader:
                yield (xb.to(self.device, non_blocking=True),
                       yb.to(self.device, non_blocking=True))
            return
        perm = torch.randperm(self.n, generator=self.generator).to(self.device, non_blocking=True)
        bs = self.batch_size
        for b in range(self.steps):
            idx = perm[b * bs:(b + 1) * bs]
            yield self.x[idx], self.y[idx]


def to_device(a: np.ndarray, device: torch.device) -> torch.Tensor:
    t = torch.from_numpy(a)
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def eval_tensor(a: np.ndarray, placement: Placement, device: torch.device) -> torch.Tensor:
    """Validation/test inputs: on the device, or left in host memory for the loader placement
    (predict_proba moves each evaluation batch)."""
    return torch.from_numpy(a) if placement.mode == "loader" else to_device(a, device)
