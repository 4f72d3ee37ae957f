"""The training loop: one run, start to finish, with every trick of the catalogue.

Reads top to bottom: pick the device, load the data onto it, build model/optimiser/schedule/loss,
then epochs of (shuffle, slice batches, augment, forward under autocast, the loss tricks, backward,
step) with a validation pass after each epoch, then SWA's BN update or early stopping's restore,
and a final test pass with optional test-time augmentation. What it measures goes to a
``Reporter`` (see runner.py); this module writes no files.
"""

from __future__ import annotations

import contextlib
import copy
import math
import random
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import SWALR, AveragedModel, update_bn

from trainer import runlog
from trainer.augment import augment_batch, tta_views
from trainer.data import Dataset, load_dataset
from trainer.evaluate import classification_metrics
from trainer.losses import make_loss
from trainer.models import build_model, count_parameters
from trainer.pretrained import freeze_features, load_pretrained
from trainer.schedules import make_scheduler

LOG_BUFFER_STEPS = 32  # train rows are gathered from the device in batches: one sync per batch
LOG_BUFFER_S = 0.25
WEIGHT_NORM_EVERY = 10  # steps between weight-norm measurements in train rows
EVAL_BATCH = 2048
NEAR_ZERO = 1e-3  # |w| below this counts towards sparsity


class Reporter(Protocol):
    def start(self, total_steps: int, epochs: int, info: dict[str, Any]) -> None: ...
    def rows(self, rows: list[dict[str, Any]]) -> None: ...
    def progress(self, step: int, epoch: float) -> None: ...
    def epoch_end(self, epoch: int, train_loss: float, val: dict[str, Any]) -> None: ...
    def message(self, text: str) -> None: ...
    def should_stop(self) -> bool: ...


class Cancelled(Exception):
    """The run was asked to stop (SIGTERM); raised after the current step."""


class NonFiniteLoss(RuntimeError):
    pass


@dataclass
class TrainResult:
    summary: dict[str, Any]
    y_true: np.ndarray
    y_prob: np.ndarray
    model: nn.Module
    pre_swa_state: dict[str, torch.Tensor] | None = None
    lr_history: list[float] = field(default_factory=list)


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
    return [p for p in model.parameters() if p.dim() > 1]


@torch.no_grad()
def total_norm(tensors: list[torch.Tensor]) -> torch.Tensor:
    """The 2-norm of ``tensors`` taken together, as clip_grad_norm_ reports it, in three ops:
    it runs every step, and nn.utils.get_total_norm's checks cost twice as much on small models."""
    if not tensors:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(tensors)))


@torch.no_grad()
def weight_stats(model: nn.Module) -> dict[str, float]:
    ws = weight_matrices(model)
    flat = torch.cat([w.detach().flatten().float() for w in ws])
    sparsity = (flat.abs() < NEAR_ZERO).float().mean().item()
    return {"weight_norm": flat.norm().item(), "sparsity": sparsity}


@torch.no_grad()
def predict_proba(model: nn.Module, x: torch.Tensor, tta: str = "off", amp_dtype: torch.dtype | None
                  = None, train_mode: bool = False) -> np.ndarray:
    """Class probabilities (float32, rows sum to 1), averaged over the TTA views."""
    model.train(train_mode)  # train_mode=True is the "forgot eval()" pitfall
    out = []
    for i in range(0, len(x), EVAL_BATCH):
        xb = x[i:i + EVAL_BATCH]
        probs = 0
        views = tta_views(xb, tta)
        for v in views:
            with _autocast(x.device, amp_dtype):
                logits = model(v)
            probs = probs + logits.float().softmax(-1)  # softmax in float32 before metrics
        out.append((probs / len(views)).cpu())
    p = torch.cat(out).numpy().astype(np.float32)
    return p / p.sum(1, keepdims=True)


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def _to_device(a: np.ndarray, device: torch.device) -> torch.Tensor:
    t = torch.from_numpy(a)
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def _evaluate(model: nn.Module, x: torch.Tensor, y: np.ndarray, config: Any,
              amp_dtype: torch.dtype | None, tta: str = "off", detail: bool = False
              ) -> tuple[dict[str, Any], np.ndarray]:
    prob = predict_proba(model, x, tta, amp_dtype, train_mode=config.forget_eval)
    metrics = classification_metrics(y, prob, config.top_k, detail=detail)
    metrics["loss"] = metrics["log_loss"]  # plain cross-entropy, comparable across losses/tricks
    return metrics, prob


def _is_better(value: float | None, best: float | None, monitor: str) -> bool:
    if value is None or not math.isfinite(value):
        return False
    if best is None:
        return True
    return value < best if monitor == "loss" else value > best


def train(config: Any, reporter: Reporter, cache_dir: str | None = None,
          runs_root: str | None = None) -> TrainResult:
    """Train one run described by ``config``; raises Cancelled or NonFiniteLoss.

    ``runs_root`` is where ``config.init_from`` is looked up (default: $DANLU_RUNS_DIR or ./runs).
    """
    t0 = time.time()
    say = reporter.message
    device = pick_device(config.device)
    amp_dtype = autocast_dtype(config.amp, device, say)
    torch.manual_seed(config.seed)
    shuffle_gen = torch.Generator().manual_seed(config.seed + 1)
    aug_gen = torch.Generator(device=device).manual_seed(config.seed + 2)
    scale_rng = random.Random(config.seed + 3)  # random loss scaling has its own RNG

    # --- data, held on the device as whole tensors and sliced per batch ---
    data: Dataset = load_dataset(
        config.dataset, split_seed=config.split_seed, val_fraction=config.val_fraction,
        test_fraction=config.test_fraction, label_noise=config.label_noise,
        csv_path=config.csv_path or None, csv_label=config.csv_label, n_samples=config.n_samples,
        n_features=config.n_features, n_classes=config.n_classes, imbalance=config.imbalance,
        class_subset=config.class_subset, cache_dir=cache_dir,
    )
    x_train, y_train = _to_device(data.x_train, device), _to_device(data.y_train, device)
    x_val, x_test = _to_device(data.x_val, device), _to_device(data.x_test, device)
    n = len(x_train)
    bs = min(config.batch_size, n)
    steps_per_epoch = n // bs  # drop the ragged last batch: a batch of 1 breaks BatchNorm
    total_steps = steps_per_epoch * config.epochs

    # --- model, optimiser, schedule, loss ---
    model = build_model(config, data.input_shape, data.n_classes)
    finetune_info, frozen = {}, None
    if config.init_from:
        finetune_info = load_pretrained(model, runs_root or runlog.default_runs_root(),
                                        config.init_from)
        say(f"fine-tuning from {config.init_from}: {finetune_info['loaded_tensors']} tensors "
            f"loaded, {len(finetune_info['fresh_tensors'])} fresh")
        if config.freeze_features:
            frozen = freeze_features(model)
    model = model.to(device)
    n_params = count_parameters(model)
    opt = make_optimizer(config, model)
    swa_epoch = max(1, min(config.epochs - 1, math.floor(config.swa_start * config.epochs)))
    sched = make_scheduler(config, opt, steps_per_epoch,
                           total_steps=swa_epoch * steps_per_epoch if config.swa else None)
    swa_model = AveragedModel(model) if config.swa else None
    swa_sched = (SWALR(opt, swa_lr=config.swa_lr or config.lr, anneal_epochs=steps_per_epoch,
                       anneal_strategy="cos") if config.swa else None)
    loss_fn = make_loss(config, data.class_counts_train, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    trainable = [p for p in model.parameters() if p.requires_grad]  # listed once, not per step
    weights = weight_matrices(model)
    augmenting = any((config.augment_hflip, config.augment_vflip, config.augment_dflip,
                      config.augment_shift, config.augment_noise))

    reporter.start(total_steps, config.epochs, {
        "device": str(device), "n_params": n_params, "sizes": data.sizes,
        "steps_per_epoch": steps_per_epoch, "batch_size": bs,
    })
    say(f"{config.dataset}: {data.sizes} · {config.resolved_model} with {n_params:,} parameters "
        f"· {device.type}" + (f" · autocast {amp_dtype}" if amp_dtype else ""))

    step, best, best_epoch, best_state = 0, None, 0, None
    stopped_epoch, val = None, {}
    lr_history: list[float] = []
    pending: list[tuple] = []  # train rows whose tensors are still on the device
    window_start, window_samples = time.perf_counter(), 0

    def flush_rows() -> None:
        nonlocal window_start, window_samples
        if not pending:
            return
        losses = torch.stack([r[3] for r in pending]).tolist()
        norms = torch.stack([r[4] for r in pending]).tolist()
        now = time.perf_counter()
        sps = window_samples / max(now - window_start, 1e-9)
        window_start, window_samples = now, 0
        rows = []
        for (s, ep, t, _, _, lr, wn), loss, gn in zip(pending, losses, norms, strict=True):
            row = {"split": "train", "step": s, "epoch": ep, "t": t, "loss": loss, "lr": lr,
                   "grad_norm": gn, "samples_per_s": sps}
            if wn is not None:
                row["weight_norm"] = wn.item()
            rows.append(row)
            if not math.isfinite(loss) and config.nonfinite == "fail":
                reporter.rows(rows)
                raise NonFiniteLoss(
                    f"the training loss became {loss} at step {s} (epoch {math.ceil(ep)}); "
                    "try a lower learning rate, gradient clipping, or amp='off'"
                )
        pending.clear()
        reporter.rows(rows)

    for epoch in range(1, config.epochs + 1):
        model.train()
        if frozen is not None:
            frozen.eval()  # frozen features keep their pretrained BatchNorm statistics
        in_swa = config.swa and epoch > swa_epoch
        perm = torch.randperm(n, generator=shuffle_gen).to(device, non_blocking=True)
        window_start = time.perf_counter()  # samples_per_s counts training, not the val pass
        epoch_loss = torch.zeros((), device=device)
        for b in range(steps_per_epoch):
            idx = perm[b * bs:(b + 1) * bs]
            xb, yb = x_train[idx], y_train[idx]
            if augmenting:
                xb = augment_batch(xb, config, aug_gen)
            with _autocast(device, amp_dtype):
                logits = model(xb)
            # In float32, as AMP recipes do: a loss reduced in fp16/bf16 loses digits (and,
            # with bf16 on the CPU, ran slower than the whole forward pass in float32).
            loss = loss_fn(logits.float(), yb)  # the raw data loss, logged as is
            objective = loss
            if config.flooding:
                objective = (objective - config.flooding).abs() + config.flooding
            if config.l1:
                objective = objective + config.l1 * sum(w.abs().sum() for w in weights)
            if config.random_loss_scale:
                objective = objective * scale_rng.random()
            opt.zero_grad(set_to_none=True)
            scaler.scale(objective).backward()
            scaler.unscale_(opt)
            # The norm is logged every step; clipping (which rescales every gradient) only when
            # asked: clip_grad_norm_ with an infinite max_norm would still multiply them by 1.
            grad_norm = total_norm([p.grad for p in trainable if p.grad is not None])
            if config.grad_clip:
                nn.utils.clip_grads_with_norm_(trainable, config.grad_clip, grad_norm)
            lr = opt.param_groups[0]["lr"]
            scaler.step(opt)
            scaler.update()
            (swa_sched if in_swa else sched).step()
            step += 1
            epoch_loss += loss.detach()
            window_samples += len(idx)
            wn = None
            if step % WEIGHT_NORM_EVERY == 0:
                wn = total_norm(weights)
            lr_history.append(lr)
            pending.append((step, epoch - 1 + (b + 1) / steps_per_epoch, time.time() - t0,
                            loss.detach(), grad_norm.detach(), lr, wn))
            due = time.perf_counter() - window_start > LOG_BUFFER_S
            if len(pending) >= LOG_BUFFER_STEPS or due:
                flush_rows()
                reporter.progress(step, epoch - 1 + (b + 1) / steps_per_epoch)
            if reporter.should_stop():
                flush_rows()
                raise Cancelled(f"cancelled at step {step} (epoch {epoch})")
        flush_rows()
        if swa_model is not None and in_swa:
            swa_model.update_parameters(model)

        val, _ = _evaluate(model, x_val, data.y_val, config, amp_dtype)
        val.update(weight_stats(model))
        reporter.rows([{"split": "val", "step": step, "epoch": epoch, "t": time.time() - t0,
                        **{k: v for k, v in val.items() if not isinstance(v, dict | list)}}])
        reporter.epoch_end(epoch, (epoch_loss / steps_per_epoch).item(), val)
        reporter.progress(step, epoch)

        if _is_better(val.get(config.monitor), best, config.monitor):
            best, best_epoch = val[config.monitor], epoch
            if config.early_stopping:
                best_state = copy.deepcopy(model.state_dict())
        elif config.early_stopping and epoch - best_epoch >= config.early_stopping:
            stopped_epoch = epoch
            say(f"early stopping at epoch {epoch}: val {config.monitor} has not improved for "
                f"{config.early_stopping} epochs; restoring epoch {best_epoch}")
            break

    summary: dict[str, Any] = {}
    pre_swa_state = None
    if swa_model is not None:
        pre_swa_state = copy.deepcopy(model.state_dict())
        summary["test_before_swa"], _ = _evaluate(model, x_test, data.y_test, config, amp_dtype,
                                                  config.tta)
        # BN statistics of the averaged weights must be recomputed on the training data.
        update_bn([x_train[i:i + bs] for i in range(0, n, bs)], swa_model, device=device)
        model = swa_model.module
    elif best_state is not None:
        model.load_state_dict(best_state)

    test, prob = _evaluate(model, x_test, data.y_test, config, amp_dtype, config.tta, detail=True)
    if config.tta != "off":
        summary["test_without_tta"], _ = _evaluate(model, x_test, data.y_test, config, amp_dtype)
    final_val, _ = _evaluate(model, x_val, data.y_val, config, amp_dtype)
    final_val.update(weight_stats(model))
    reporter.rows([{"split": "test", "step": step, "epoch": epoch, "t": time.time() - t0,
                    **{k: v for k, v in test.items() if not isinstance(v, dict | list)}}])
    wall = time.time() - t0
    summary.update({
        "test": test,
        "val": final_val,
        "best_epoch": best_epoch,
        "monitor": config.monitor,
        "best_val": best,
        "early_stopped": stopped_epoch is not None,
        "stopped_epoch": stopped_epoch,
        "epochs_run": epoch,
        "steps": step,
        "swa": config.swa,
        "tta": config.tta,
        "wall_time_s": wall,
        "samples_per_s": step * bs / max(wall, 1e-9),
        "n_params": n_params,
        "device": str(device),
        "amp": str(amp_dtype).removeprefix("torch.") if amp_dtype else "off",
        "dataset": {"name": data.name, "kind": data.kind, "sizes": data.sizes,
                    "input_shape": list(data.input_shape), "n_classes": data.n_classes,
                    "noisy_labels": getattr(data, "noisy_labels", 0)},
        "class_names": list(data.class_names),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        **({"finetune": {**finetune_info, "frozen": frozen is not None}} if finetune_info else {}),
    })
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return TrainResult(summary, data.y_test.astype(np.int64), prob, model, pre_swa_state,
                           lr_history)
