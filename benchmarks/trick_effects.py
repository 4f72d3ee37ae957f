"""What each trick does on a tiny task, in numbers: the figures behind tests/test_tricks.py.

    .venv/bin/python benchmarks/trick_effects.py

Trains small in-process runs (synthetic 600 x 10, 3 classes, or digits) with a fixed seed and
prints one `name: value` line per figure, baseline next to trick.
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from trainer.config import make_config
from trainer.loop import train
from trainer.losses import focal_loss
from trainer.reporters import MemoryReporter

TINY = {"dataset": "synthetic", "n_samples": 600, "n_features": 10, "n_classes": 3, "epochs": 5,
        "batch_size": 32, "lr": 3e-3}


def run(**overrides):
    reporter = MemoryReporter()
    return train(make_config({**TINY, **overrides}), reporter), reporter


def show(name: str, base: float, trick: float) -> None:
    print(f"{name}: baseline {base:.4f} -> trick {trick:.4f}")


def main() -> None:
    t0 = time.perf_counter()
    b, _ = run(epochs=15)
    t, _ = run(epochs=15, label_smoothing=0.3)
    show("label_smoothing.mean_max_prob", b.summary["test"]["mean_max_prob"],
         t.summary["test"]["mean_max_prob"])
    show("label_smoothing.ece", b.summary["test"]["ece"], t.summary["test"]["ece"])

    b, _ = run(optimizer="adamw", epochs=10)
    t, _ = run(optimizer="adamw", epochs=10, weight_decay=0.5)
    show("weight_decay.weight_norm", b.summary["val"]["weight_norm"],
         t.summary["val"]["weight_norm"])

    b, _ = run(epochs=10)
    t, _ = run(epochs=10, l1=1e-3)
    show("l1.share_of_near_zero_weights", b.summary["val"]["sparsity"],
         t.summary["val"]["sparsity"])

    tail = lambda rep: statistics.mean(r["loss"] for r in rep.split("train")[-100:])  # noqa: E731
    _, rb = run(epochs=30, lr=1e-2)
    _, rt = run(epochs=30, lr=1e-2, flooding=0.4)
    show("flooding_b0.4.train_loss_last_100_steps", tail(rb), tail(rt))

    e, _ = run(epochs=60, lr=3e-2, label_noise=0.4, early_stopping=3, width=2)
    s = e.summary
    print(f"early_stopping.epochs_run: {s['epochs_run']} of 60 (best epoch {s['best_epoch']}, "
          f"stopped at {s['stopped_epoch']})")

    w, _ = run(epochs=6, swa=True, swa_start=0.5, norm="batch")
    show("swa.test_accuracy (before SWA -> SWA model)", w.summary["test_before_swa"]["accuracy"],
         w.summary["test"]["accuracy"])

    a, _ = run(dataset="digits", epochs=10, batch_size=64, tta="flips")
    show("tta_flips_on_digits.test_accuracy (no TTA -> TTA)",
         a.summary["test_without_tta"]["accuracy"], a.summary["test"]["accuracy"])
    a, _ = run(dataset="mnist1d", epochs=10, batch_size=64, lr=1e-2, tta="shifts")
    show("tta_shifts_on_mnist1d.test_accuracy (no TTA -> TTA)",
         a.summary["test_without_tta"]["accuracy"], a.summary["test"]["accuracy"])

    for norm in ("none", "batch", "group"):
        n, _ = run(dataset="digits", epochs=4, batch_size=64, norm=norm)
        print(f"norm_{norm}.digits_test_accuracy: {n.summary['test']['accuracy']:.4f}")

    gen = torch.Generator().manual_seed(0)
    logits, y = torch.randn(64, 5, generator=gen), torch.randint(0, 5, (64,), generator=gen)
    diff = abs(focal_loss(logits, y, 0.0).item() - F.cross_entropy(logits, y).item())
    print(f"focal_gamma0_minus_ce: {diff:.2e}")
    print(f"seconds: {time.perf_counter() - t0:.1f}")


if __name__ == "__main__":
    main()
