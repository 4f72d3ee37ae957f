"""What the training loop logs per step: the gradient norm and the training pace (samples/s)."""

from __future__ import annotations

import time

import pytest

from tests.conftest import train_tiny
from trainer import loop


def test_grad_norm_is_logged_before_clipping_and_clipping_still_bites():
    free, free_rep = train_tiny(optimizer="sgd", momentum=0.0, lr=0.5, epochs=2)
    clipped, clipped_rep = train_tiny(optimizer="sgd", momentum=0.0, lr=0.5, epochs=2,
                                      grad_clip=1e-4)
    # the logged norm is the gradient's own, far above the clip threshold
    norms = [r["grad_norm"] for r in clipped_rep.split("train")]
    assert min(norms) > 1e-2
    # clipped to 1e-4, plain SGD barely moves; unclipped, it learns
    losses = [r["loss"] for r in clipped_rep.split("train")]
    assert abs(losses[-1] - losses[0]) < 0.05 * losses[0]
    free_losses = [r["loss"] for r in free_rep.split("train")]
    assert free_losses[-1] < 0.8 * free_losses[0]
    assert clipped.summary["test"]["loss"] > free.summary["test"]["loss"]


def test_samples_per_s_of_train_rows_leaves_out_the_validation_pass(monkeypatch):
    evaluate = loop._evaluate
    pause_s = 4.0
    calls = []

    def slow_first_evaluate(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:  # the validation pass between epoch 1 and epoch 2
            time.sleep(pause_s)
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(loop, "_evaluate", slow_first_evaluate)
    _, reporter = train_tiny(epochs=2)
    rows = reporter.split("train")
    assert rows and all(r["samples_per_s"] > 0 for r in rows)
    # Each row is one batch of 32 at its window's pace, so epoch 2's rows add up to the time its
    # windows spanned: its steps (their own clock, t) plus at most about one step, never the
    # pause before them. Both sides stretch alike on a loaded machine.
    epoch2 = [r for r in rows if r["epoch"] > 1]
    paced_s = sum(32 / r["samples_per_s"] for r in epoch2)
    stepped_s = epoch2[-1]["t"] - epoch2[0]["t"]
    assert paced_s < stepped_s + pause_s / 2, (paced_s, stepped_s)


@pytest.mark.parametrize("grad_clip", [0.0, 1.0])
def test_every_train_row_has_a_finite_positive_grad_norm(grad_clip):
    _, reporter = train_tiny(epochs=1, grad_clip=grad_clip)
    norms = [r["grad_norm"] for r in reporter.split("train")]
    assert norms and all(0 < n < float("inf") for n in norms)
