"""The training loop: one run, start to finish, with every trick of the catalogue.

`train` reads top to bottom: setup (`trainer.training_setup`: device, data on it, model,
optimiser, schedules, loss), then epochs of steps (shuffle, slice batches, augment, forward under
autocast, the loss tricks, backward, step), an evaluation on the validation set after each epoch
and early stopping's check, then the end: SWA's BN update or early stopping's restore, and a final
test pass with optional test-time augmentation. What it measures goes to a ``Reporter`` (see
runner.py); this module writes no files.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import update_bn

from trainer import runlog
from trainer.augment import augment_batch, tta_views
from trainer.evaluate import classification_metrics
from trainer.training_setup import RunSetup, setup_run, weight_matrices

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
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(x), EVAL_BATCH):
        xb = x[i:i + EVAL_BATCH].to(device, non_blocking=True)  # a no-op when x is there
        probs = 0
        views = tta_views(xb, tta)
        for v in views:
            with _autocast(device, amp_dtype):
                logits = model(v)
            probs = probs + logits.float().softmax(-1)  # softmax in float32 before metrics
        out.append((probs / len(views)).cpu())
    p = torch.cat(out).numpy().astype(np.float32)
    return p / p.sum(1, keepdims=True)


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def _evaluate(model: nn.Module, x: torch.Tensor, y: np.ndarray, config: Any,
              amp_dtype: torch.dtype | None, tta: str = "off", detail: bool = False
              ) -> tuple[dict[str, Any], np.ndarray]:
    prob = predict_proba(model, x, tta, amp_dtype, train_mode=config.forget_eval)
    metrics = classification_metrics(y, prob, config.top_k, detail=detail)
    metrics["loss"] = metrics["log_loss"]  # plain cross-entropy, comparable across losses/tricks
    return metrics, prob


@dataclass
class _Progress:
    """What changes as training goes: the step, the best epoch so far, the early stop."""

    step: int = 0
    epoch: int = 0
    best: float | None = None
    best_epoch: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    stopped_epoch: int | None = None
    lr_history: list[float] = field(default_factory=list)


def _announce(run: RunSetup, reporter: Reporter) -> None:
    config, data, n_params = run.config, run.data, run.n_params
    reporter.start(run.steps_per_epoch * config.epochs, config.epochs, {
        "device": str(run.device), "n_params": n_params, "sizes": data.sizes,
        "steps_per_epoch": run.steps_per_epoch, "batch_size": run.batch_size,
        "data": run.where.info(),
    })
    reporter.message(
        f"{config.dataset}: {data.sizes} · {config.resolved_model} with {n_params:,} parameters "
        f"· {run.device.type}" + (f" · autocast {run.amp_dtype}" if run.amp_dtype else ""))


# --- one step, and the train rows it leaves ---------------------------------------------------


def _objective(loss: torch.Tensor, run: RunSetup) -> torch.Tensor:
    """What is minimised: the data loss with flooding, L1 and random loss scaling applied."""
    config = run.config
    objective = loss
    if config.flooding:
        objective = (objective - config.flooding).abs() + config.flooding
    if config.l1:
        objective = objective + config.l1 * sum(w.abs().sum() for w in run.weights)
    if config.random_loss_scale:
        objective = objective * run.scale_rng.random()
    return objective


def _train_step(run: RunSetup, xb: torch.Tensor, yb: torch.Tensor, in_swa: bool
                ) -> tuple[torch.Tensor, torch.Tensor, float]:
    """One optimiser step on a batch; returns the data loss, the gradient norm (both still on
    the device) and the learning rate the step used."""
    if run.augmenting:
        xb = augment_batch(xb, run.config, run.aug_gen)
    with _autocast(run.device, run.amp_dtype):
        logits = run.model(xb)
    # In float32, as AMP recipes do: a loss reduced in fp16/bf16 loses digits (and,
    # with bf16 on the CPU, ran slower than the whole forward pass in float32).
    loss = run.loss_fn(logits.float(), yb)  # the raw data loss, logged as is
    run.opt.zero_grad(set_to_none=True)
    run.scaler.scale(_objective(loss, run)).backward()
    run.scaler.unscale_(run.opt)
    # The norm is logged every step; clipping (which rescales every gradient) only when
    # asked: clip_grad_norm_ with an infinite max_norm would still multiply them by 1.
    grad_norm = total_norm([p.grad for p in run.trainable if p.grad is not None])
    if run.config.grad_clip:
        nn.utils.clip_grads_with_norm_(run.trainable, run.config.grad_clip, grad_norm)
    lr = run.opt.param_groups[0]["lr"]
    run.scaler.step(run.opt)
    run.scaler.update()
    (run.swa_sched if in_swa else run.sched).step()
    return loss.detach(), grad_norm.detach(), lr


class _TrainRows:
    """Train rows whose values are still on the device, sent to the reporter in batches (one
    device sync per batch), with samples/s measured over each batch's window."""

    def __init__(self, reporter: Reporter, nonfinite: str) -> None:
        self.reporter, self.nonfinite = reporter, nonfinite
        self.pending: list[tuple] = []
        self.window_start, self.window_samples = time.perf_counter(), 0

    def restart_window(self) -> None:
        """samples_per_s counts training, not the validation pass before it."""
        self.window_start = time.perf_counter()

    def add(self, row: tuple, samples: int) -> bool:
        """Queue ``(step, epoch, t, loss, grad_norm, lr, weight_norm)``; True when the rows are
        due to be sent."""
        self.pending.append(row)
        self.window_samples += samples
        due = time.perf_counter() - self.window_start > LOG_BUFFER_S
        return len(self.pending) >= LOG_BUFFER_STEPS or due

    def flush(self) -> None:
        """Send the pending rows; raises NonFiniteLoss at a non-finite loss when asked to."""
        if not self.pending:
            return
        losses = torch.stack([r[3] for r in self.pending]).tolist()
        norms = torch.stack([r[4] for r in self.pending]).tolist()
        now = time.perf_counter()
        sps = self.window_samples / max(now - self.window_start, 1e-9)
        self.window_start, self.window_samples = now, 0
        rows = []
        for (s, ep, t, _, _, lr, wn), loss, gn in zip(self.pending, losses, norms, strict=True):
            row = {"split": "train", "step": s, "epoch": ep, "t": t, "loss": loss, "lr": lr,
                   "grad_norm": gn, "samples_per_s": sps}
            if wn is not None:
                row["weight_norm"] = wn.item()
            rows.append(row)
            if not math.isfinite(loss) and self.nonfinite == "fail":
                self.reporter.rows(rows)
                raise NonFiniteLoss(
                    f"the training loss became {loss} at step {s} (epoch {math.ceil(ep)}); "
                    "try a lower learning rate, gradient clipping, or amp='off'"
                )
        self.pending.clear()
        self.reporter.rows(rows)


# --- one epoch, its evaluation, early stopping --------------------------------------------------


def _train_epoch(run: RunSetup, progress: _Progress, rows: _TrainRows, reporter: Reporter
                 ) -> float:
    """Every batch of one shuffled epoch; returns its mean training loss."""
    epoch, n_steps = progress.epoch, run.steps_per_epoch
    run.model.train()
    if run.frozen is not None:
        run.frozen.eval()  # frozen features keep their pretrained BatchNorm statistics
    in_swa = run.config.swa and epoch > run.swa_epoch
    rows.restart_window()
    epoch_loss = torch.zeros((), device=run.device)
    for b, (xb, yb) in enumerate(run.batches.epoch()):
        loss, grad_norm, lr = _train_step(run, xb, yb, in_swa)
        progress.step += 1
        epoch_loss += loss
        wn = total_norm(run.weights) if progress.step % WEIGHT_NORM_EVERY == 0 else None
        progress.lr_history.append(lr)
        at = epoch - 1 + (b + 1) / n_steps
        if rows.add((progress.step, at, time.time() - run.t0, loss, grad_norm, lr, wn), len(yb)):
            rows.flush()
            reporter.progress(progress.step, at)
        if reporter.should_stop():
            rows.flush()
            raise Cancelled(f"cancelled at step {progress.step} (epoch {epoch})")
    rows.flush()
    if run.swa_model is not None and in_swa:
        run.swa_model.update_parameters(run.model)
    return (epoch_loss / n_steps).item()


def _scalars(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics that go into a metrics row (per-class lists and matrices stay out)."""
    return {k: v for k, v in metrics.items() if not isinstance(v, dict | list)}


def _validate(run: RunSetup, progress: _Progress, reporter: Reporter, train_loss: float
              ) -> dict[str, Any]:
    """The validation pass after an epoch: its row, the epoch's end and the progress."""
    val, _ = _evaluate(run.model, run.x_val, run.data.y_val, run.config, run.amp_dtype)
    val.update(weight_stats(run.model))
    reporter.rows([{"split": "val", "step": progress.step, "epoch": progress.epoch,
                    "t": time.time() - run.t0, **_scalars(val)}])
    reporter.epoch_end(progress.epoch, train_loss, val)
    reporter.progress(progress.step, progress.epoch)
    return val


def _is_better(value: float | None, best: float | None, monitor: str) -> bool:
    """Whether ``value`` of the monitored val metric beats the best so far."""
    if value is None or not math.isfinite(value):
        return False
    if best is None:
        return True
    return runlog.better(value, best, monitor)


def _early_stop(run: RunSetup, progress: _Progress, val: dict[str, Any], say: Any) -> bool:
    """Keep track of the best epoch (and its weights when early stopping); True when early
    stopping ends training at this epoch."""
    config, epoch = run.config, progress.epoch
    if _is_better(val.get(config.monitor), progress.best, config.monitor):
        progress.best, progress.best_epoch = val[config.monitor], epoch
        if config.early_stopping:
            progress.best_state = copy.deepcopy(run.model.state_dict())
        return False
    if config.early_stopping and epoch - progress.best_epoch >= config.early_stopping:
        progress.stopped_epoch = epoch
        say(f"early stopping at epoch {epoch}: val {config.monitor} has not improved for "
            f"{config.early_stopping} epochs; restoring epoch {progress.best_epoch}")
        return True
    return False


# --- the end: the final model, its test pass, the summary -----------------------------------------


def _final_model(run: RunSetup, progress: _Progress, summary: dict[str, Any]
                 ) -> tuple[nn.Module, dict[str, torch.Tensor] | None]:
    """SWA's averaged model (after its BN update) or the best epoch's weights when early
    stopping, else the model as trained; and the pre-SWA weights when SWA was on."""
    config, model = run.config, run.model
    if run.swa_model is not None:
        pre_swa_state = copy.deepcopy(model.state_dict())
        summary["test_before_swa"], _ = _evaluate(model, run.x_test, run.data.y_test, config,
                                                  run.amp_dtype, config.tta)
        # BN statistics of the averaged weights must be recomputed on the training data.
        bs, x = run.batch_size, run.batches.x
        update_bn([x[i:i + bs] for i in range(0, len(x), bs)], run.swa_model,
                  device=run.device)
        return run.swa_model.module, pre_swa_state
    if progress.best_state is not None:
        model.load_state_dict(progress.best_state)
    return model, None


def _run_facts(run: RunSetup, progress: _Progress, model: nn.Module) -> dict[str, Any]:
    """The summary's account of how the run went and what it ran on."""
    config, data = run.config, run.data
    wall = time.time() - run.t0
    return {
        "best_epoch": progress.best_epoch,
        "monitor": config.monitor,
        "best_val": progress.best,
        "early_stopped": progress.stopped_epoch is not None,
        "stopped_epoch": progress.stopped_epoch,
        "epochs_run": progress.epoch,
        "steps": progress.step,
        "swa": config.swa,
        "tta": config.tta,
        "wall_time_s": wall,
        "samples_per_s": progress.step * run.batch_size / max(wall, 1e-9),
        "n_params": run.n_params,
        "device": str(run.device),
        "amp": str(run.amp_dtype).removeprefix("torch.") if run.amp_dtype else "off",
        "dataset": {"name": data.name, "kind": data.kind, "sizes": data.sizes,
                    "input_shape": list(data.input_shape), "n_classes": data.n_classes,
                    "noisy_labels": getattr(data, "noisy_labels", 0), **run.where.info()},
        "class_names": list(data.class_names),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        **({"finetune": {**run.finetune_info, "frozen": run.frozen is not None}}
           if run.finetune_info else {}),
    }


def _finish(run: RunSetup, progress: _Progress, reporter: Reporter) -> TrainResult:
    """The final model's test pass (its row) and val metrics, and the run's summary."""
    config, data = run.config, run.data
    summary: dict[str, Any] = {}
    model, pre_swa_state = _final_model(run, progress, summary)
    test, prob = _evaluate(model, run.x_test, data.y_test, config, run.amp_dtype, config.tta,
                           detail=True)
    if config.tta != "off":
        summary["test_without_tta"], _ = _evaluate(model, run.x_test, data.y_test, config,
                                                   run.amp_dtype)
    final_val, _ = _evaluate(model, run.x_val, data.y_val, config, run.amp_dtype)
    final_val.update(weight_stats(model))
    reporter.rows([{"split": "test", "step": progress.step, "epoch": progress.epoch,
                    "t": time.time() - run.t0, **_scalars(test)}])
    summary.update({"test": test, "val": final_val, **_run_facts(run, progress, model)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return TrainResult(summary, data.y_test.astype(np.int64), prob, model, pre_swa_state,
                           progress.lr_history)


# --- the loop -------------------------------------------------------------------------------------


def train(config: Any, reporter: Reporter, cache_dir: str | None = None,
          runs_root: str | None = None) -> TrainResult:
    """Train one run described by ``config``; raises Cancelled or NonFiniteLoss.

    ``runs_root`` is where ``config.init_from`` is looked up (default: $DANLU_RUNS_DIR or ./runs).
    """
    run = setup_run(config, reporter.message, cache_dir, runs_root)
    _announce(run, reporter)
    progress = _Progress()
    rows = _TrainRows(reporter, config.nonfinite)
    for epoch in range(1, config.epochs + 1):
        progress.epoch = epoch
        train_loss = _train_epoch(run, progress, rows, reporter)
        val = _validate(run, progress, reporter, train_loss)
        if _early_stop(run, progress, val, reporter.message):
            break
    return _finish(run, progress, reporter)
