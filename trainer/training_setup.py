"""Everything a run trains with, built once before its first step: the device and autocast
dtype, the seeded generators, the data held on the device, the model (fine-tuned and partly
frozen if asked), the optimiser with its parameter groups, the schedules (SWA's included), the
loss and the gradient scaler. `trainer.loop` runs the epochs with what `setup_run` returns.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import SWALR, AveragedModel

from trainer import placement, runlog
from trainer.data import Dataset, load_dataset
from trainer.losses import make_loss
from trainer.models import build_model, count_parameters
from trainer.pretrained import freeze_features, load_pretrained
from trainer.schedules import make_scheduler


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' but no CUDA GPU is visible; use device='auto' or 'cpu'")
    if name == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError("device='mps' but Apple MPS is not available; use 'auto' or 'cpu'")
    return torch.device(name)


def autocast_dtype(amp: str, device: torch.device, say: Any) -> torch.dtype | None:
    """The autocast dtype for ``amp`` on ``device`` (None = full precision)."""
    if amp == "off":
        return None
    if amp == "fp16" and device.type != "cuda":
        say(f"amp='fp16' needs CUDA; this run is on {device.type}, so it uses bf16 instead")
        amp = "bf16"
    if amp == "bf16" and device.type == "cpu":
        say("note: bf16 autocast on the CPU is only faster than fp32 on CPUs with bf16 "
            "instructions (recent Xeon and EPYC)")
    return torch.float16 if amp == "fp16" else torch.bfloat16


def param_groups(model: nn.Module, weight_decay: float, exclude_norm_bias: bool) -> list[dict]:
    """Optimiser parameter groups; with ``exclude_norm_bias``, 1-D parameters (biases and
    normalisation scales/shifts) get no weight decay."""
    params = [p for p in model.parameters() if p.requires_grad]  # frozen layers stay out
    if not exclude_norm_bias or not weight_decay:
        return [{"params": params, "weight_decay": weight_decay}]
    decay = [p for p in params if p.dim() > 1]
    no_decay = [p for p in params if p.dim() <= 1]
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(config: Any, model: nn.Module) -> torch.optim.Optimizer:
    groups = param_groups(model, config.weight_decay, config.wd_exclude_norm_bias)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum,
                               nesterov=config.nesterov and config.momentum > 0)
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(groups, lr=config.lr, momentum=config.momentum)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr)
    return torch.optim.Adam(groups, lr=config.lr)


def weight_matrices(model: nn.Module) -> list[torch.Tensor]:
    """The model's weight matrices and kernels (what L1 and the weight norm measure)."""
    return [p for p in model.parameters() if p.dim() > 1]


@dataclass
class RunSetup:
    """What one run trains with; fixed once training starts."""

    config: Any
    t0: float  # time.time() at the start; rows' ``t`` counts from here
    device: torch.device
    amp_dtype: torch.dtype | None
    data: Dataset
    where: placement.Placement  # the data whole on the device, or streamed by a DataLoader
    batches: placement.Batches  # each epoch's shuffled training batches, on the device
    x_val: torch.Tensor  # on the device, or in host memory when streamed (moved per batch)
    x_test: torch.Tensor
    batch_size: int
    steps_per_epoch: int
    model: nn.Module
    n_params: int
    frozen: nn.Module | None  # the frozen feature layers when fine-tuning with freeze_features
    finetune_info: dict[str, Any]
    opt: torch.optim.Optimizer
    sched: Any
    swa_epoch: int  # SWA averages the epochs after this one
    swa_model: AveragedModel | None
    swa_sched: SWALR | None
    loss_fn: Any
    scaler: torch.amp.GradScaler
    trainable: list[torch.Tensor]  # listed once, not per step
    weights: list[torch.Tensor]
    augmenting: bool
    shuffle_gen: torch.Generator
    aug_gen: torch.Generator
    scale_rng: random.Random  # random loss scaling has its own RNG


def load_run_data(config: Any, device: torch.device, cache_dir: str | None,
                  shuffle_gen: torch.Generator
                  ) -> tuple[Dataset, placement.Placement, placement.Batches, list[torch.Tensor]]:
    """The dataset, where it lives (placement.py: whole on the device and sliced per batch, or
    streamed by a DataLoader when it does not fit), its training batches and val/test inputs."""
    data: Dataset = load_dataset(
        config.dataset, split_seed=config.split_seed, val_fraction=config.val_fraction,
        test_fraction=config.test_fraction, label_noise=config.label_noise,
        csv_path=config.csv_path or None, csv_label=config.csv_label, n_samples=config.n_samples,
        n_features=config.n_features, n_classes=config.n_classes, imbalance=config.imbalance,
        class_subset=config.class_subset, cache_dir=cache_dir,
        data_path=config.data_path or None, image_size=config.image_size,
    )
    where = placement.choose(config.data_placement, [data.x_train, data.x_val, data.x_test],
                             device)
    bs = min(config.batch_size, len(data.y_train))
    batches = placement.Batches(where, data.x_train, data.y_train, bs, device, shuffle_gen)
    evals = [placement.eval_tensor(a, where, device) for a in (data.x_val, data.x_test)]
    return data, where, batches, evals


def build_run_model(config: Any, data: Dataset, runs_root: str | None, say: Any
                 ) -> tuple[nn.Module, nn.Module | None, dict[str, Any]]:
    """The model, its frozen part (or None) and what fine-tuning loaded (empty if none)."""
    model = build_model(config, data.input_shape, data.n_classes)
    finetune_info, frozen = {}, None
    if config.init_from:
        finetune_info = load_pretrained(model, runs_root or runlog.default_runs_root(),
                                        config.init_from)
        say(f"fine-tuning from {config.init_from}: {finetune_info['loaded_tensors']} tensors "
            f"loaded, {len(finetune_info['fresh_tensors'])} fresh")
        if config.freeze_features:
            frozen = freeze_features(model)
    return model, frozen, finetune_info


def setup_run(config: Any, say: Any, cache_dir: str | None, runs_root: str | None) -> RunSetup:
    """Device, seeds, data, model, optimiser, schedules (SWA's included), loss and scaler."""
    t0 = time.time()
    device = pick_device(config.device)
    amp_dtype = autocast_dtype(config.amp, device, say)
    torch.manual_seed(config.seed)
    shuffle_gen = torch.Generator().manual_seed(config.seed + 1)
    aug_gen = torch.Generator(device=device).manual_seed(config.seed + 2)
    scale_rng = random.Random(config.seed + 3)
    data, where, batches, (x_val, x_test) = load_run_data(config, device, cache_dir, shuffle_gen)
    bs, steps_per_epoch = batches.batch_size, batches.steps

    model, frozen, finetune_info = build_run_model(config, data, runs_root, say)
    model = model.to(device)
    opt = make_optimizer(config, model)
    swa_epoch = max(1, min(config.epochs - 1, math.floor(config.swa_start * config.epochs)))
    sched = make_scheduler(config, opt, steps_per_epoch,
                           total_steps=swa_epoch * steps_per_epoch if config.swa else None)
    swa_model = AveragedModel(model) if config.swa else None
    swa_sched = (SWALR(opt, swa_lr=config.swa_lr or config.lr, anneal_epochs=steps_per_epoch,
                       anneal_strategy="cos") if config.swa else None)
    return RunSetup(
        config=config, t0=t0, device=device, amp_dtype=amp_dtype, data=data,
        where=where, batches=batches, x_val=x_val, x_test=x_test,
        batch_size=bs, steps_per_epoch=steps_per_epoch,
        model=model, n_params=count_parameters(model), frozen=frozen, finetune_info=finetune_info,
        opt=opt, sched=sched, swa_epoch=swa_epoch, swa_model=swa_model, swa_sched=swa_sched,
        loss_fn=make_loss(config, data.class_counts_train, device),
        scaler=torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16),
        trainable=[p for p in model.parameters() if p.requires_grad],
        weights=weight_matrices(model),
        augmenting=any((config.augment_hflip, config.augment_vflip, config.augment_dflip,
                        config.augment_shift, config.augment_noise)),
        shuffle_gen=shuffle_gen, aug_gen=aug_gen, scale_rng=scale_rng,
    )

