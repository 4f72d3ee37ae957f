"""Fine-tuning: start from another run's weights, optionally freezing the feature extractor."""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from trainer import runlog, safe_read
from trainer.models import CNN, MLP


class FineTuneError(ValueError):
    """The source run cannot initialise this model (missing checkpoint, other architecture)."""


def feature_extractor(model: nn.Module) -> nn.Module:
    """Everything but the classifier head."""
    if isinstance(model, CNN):
        return model.features
    if isinstance(model, MLP):
        return model.net[:-1]
    raise FineTuneError(f"cannot find the feature extractor of a {type(model).__name__}")


def load_pretrained(model: nn.Module, runs_root: str | os.PathLike, run_id: str
                    ) -> dict[str, Any]:
    """Copy the source run's weights into ``model``: every feature tensor must match; head
    tensors whose shape differs (another number of classes) keep their fresh initialisation."""
    try:
        path = runlog.run_path(runs_root, run_id) / runlog.CHECKPOINT
    except ValueError as exc:
        raise FineTuneError(str(exc)) from None
    kind = runlog.run_kind(runlog.read_json(path.parent / runlog.CONFIG))
    if kind != runlog.TRAINED:
        raise FineTuneError(f"run {run_id} is an {kind} run, not one Danlu trained: it has no "
                            "weights to fine-tune from")
    try:  # a regular file only (trainer.safe_read): a symlink could load weights from anywhere
        with safe_read.open_regular(path) as f:
            source = torch.load(f, map_location="cpu", weights_only=True)["state_dict"]
    except FileNotFoundError:
        raise FineTuneError(f"run {run_id} has no checkpoint.pt to fine-tune from (is it "
                            "finished, with checkpoint on?)") from None
    except safe_read.Refused as exc:
        raise FineTuneError(f"run {run_id}: {exc}") from None
    except Exception as exc:  # a damaged or foreign file: say which, not how torch failed
        raise FineTuneError(f"run {run_id}'s checkpoint.pt could not be read ({exc})") from None
    target = model.state_dict()
    features = {f"{prefix}.{k}" for prefix in ("features", "net")
                for k in feature_extractor(model).state_dict()}
    features &= set(target)
    for key in sorted(features):
        if key not in source or source[key].shape != target[key].shape:
            got = tuple(source[key].shape) if key in source else "missing"
            raise FineTuneError(
                f"run {run_id} has another architecture: {key} is {got} there and "
                f"{tuple(target[key].shape)} here; use the same model, width, depth and norm")
    loaded = {k: v for k, v in source.items() if k in target and v.shape == target[k].shape}
    model.load_state_dict(loaded, strict=False)
    fresh = sorted(set(target) - set(loaded))
    return {"init_from": run_id, "loaded_tensors": len(loaded), "fresh_tensors": fresh}


def freeze_features(model: nn.Module) -> nn.Module:
    """Stop gradients into the feature extractor and return it (the loop keeps it in eval mode
    so its BatchNorm statistics stay the pretrained ones)."""
    frozen = feature_extractor(model)
    for p in frozen.parameters():
        p.requires_grad_(False)
    return frozen
