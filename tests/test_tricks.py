"""Each trick does what the catalogue says it does, on a tiny task with a fixed seed."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.conftest import MemoryReporter, train_tiny
from trainer import loop, training_setup
from trainer.augment import augment_batch, shift, tta_views
from trainer.catalogue import BY_NAME, CATALOGUE
from trainer.config import make_config
from trainer.losses import bce_linear_loss, class_alpha, focal_loss
from trainer.models import build_model
from trainer.schedules import make_scheduler


def test_every_trick_defaults_to_off_and_the_baseline_has_no_tricks_on():
    assert make_config().tricks_on() == {}
    for trick in CATALOGUE:
        assert trick.what, f"{trick.name} has no help text"
        if trick.kind == "trick":
            assert trick.helps or trick.hurts, f"{trick.name} does not say when it helps or hurts"


def test_label_smoothing_lowers_mean_max_probability():
    base, _ = train_tiny(epochs=15)
    smooth, _ = train_tiny(epochs=15, label_smoothing=0.3)
    b, s = base.summary["test"]["mean_max_prob"], smooth.summary["test"]["mean_max_prob"]
    assert s < b - 0.05, (b, s)


def test_weight_decay_lowers_the_weight_norm():
    base, _ = train_tiny(optimizer="adamw", epochs=10)
    decayed, _ = train_tiny(optimizer="adamw", epochs=10, weight_decay=0.5)
    assert decayed.summary["val"]["weight_norm"] < 0.9 * base.summary["val"]["weight_norm"]


def test_sgd_weight_decay_equals_an_l2_term_with_a_half_factor():
    # The notes: weight decay == L2 regularisation with a 1/2 multiplier (for plain SGD).
    torch.manual_seed(0)
    x, y, lam = torch.randn(32, 5), torch.randint(0, 3, (32,)), 0.1
    a, b = torch.nn.Linear(5, 3), torch.nn.Linear(5, 3)
    b.load_state_dict(a.state_dict())
    opt_a = torch.optim.SGD(a.parameters(), lr=0.5, weight_decay=lam)
    opt_b = torch.optim.SGD(b.parameters(), lr=0.5)
    for _ in range(5):
        opt_a.zero_grad()
        F.cross_entropy(a(x), y).backward()
        opt_a.step()
        opt_b.zero_grad()
        l2 = sum((p**2).sum() for p in b.parameters())
        (F.cross_entropy(b(x), y) + lam / 2 * l2).backward()
        opt_b.step()
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb)


def test_weight_decay_can_exclude_norm_and_bias_parameters():
    model = build_model(make_config(**{"norm": "batch"}), (1, 8, 8), 10)
    groups = training_setup.param_groups(model, 0.1, exclude_norm_bias=True)
    assert groups[0]["weight_decay"] == 0.1 and all(p.dim() > 1 for p in groups[0]["params"])
    assert groups[1]["weight_decay"] == 0.0 and all(p.dim() == 1 for p in groups[1]["params"])
    n_all = sum(1 for _ in model.parameters())
    assert len(groups[0]["params"]) + len(groups[1]["params"]) == n_all


def test_l1_raises_the_share_of_near_zero_weights():
    base, _ = train_tiny(epochs=10)
    sparse, _ = train_tiny(epochs=10, l1=1e-3)
    assert sparse.summary["val"]["sparsity"] > base.summary["val"]["sparsity"] + 0.1


def test_flooding_keeps_the_train_loss_near_b():
    b = 0.4
    _, base_rep = train_tiny(epochs=30, lr=1e-2)
    _, rep = train_tiny(epochs=30, lr=1e-2, flooding=b)
    tail = lambda r: np.mean([row["loss"] for row in r.split("train")[-100:]])  # noqa: E731
    assert tail(base_rep) < b - 0.15  # without flooding the loss goes well below b
    assert abs(tail(rep) - b) < 0.1  # with it, the loss hovers around b


def test_flooding_acts_on_the_batch_mean_loss():
    # loss' = |loss - b| + b: below b the gradient of the batch mean reverses sign.
    w = torch.tensor([2.0], requires_grad=True)
    loss = (w * torch.tensor([0.1, 0.2])).mean()  # 0.3, below b
    flooded = (loss - 0.5).abs() + 0.5
    flooded.backward()
    assert w.grad.item() == pytest.approx(-0.15)


def test_focal_loss_with_gamma_zero_equals_cross_entropy():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 5, generator=gen)
    y = torch.randint(0, 5, (64,), generator=gen)
    assert focal_loss(logits, y, 0.0).item() == pytest.approx(F.cross_entropy(logits, y).item())
    assert focal_loss(logits, y, 0.0, label_smoothing=0.1).item() == pytest.approx(
        F.cross_entropy(logits, y, label_smoothing=0.1).item())


def test_focal_loss_down_weights_easy_examples_and_applies_alpha():
    logits = torch.tensor([[4.0, 0.0], [0.2, 0.0]])  # first easy, second hard (both class 0)
    y = torch.tensor([0, 0])

    def easy_over_hard(gamma: float) -> float:
        easy, hard = focal_loss(logits[:1], y[:1], gamma), focal_loss(logits[1:], y[1:], gamma)
        return (easy / hard).item()

    assert easy_over_hard(2.0) < easy_over_hard(0.0) / 10  # the easy example's share shrinks
    alpha = torch.tensor([0.25, 0.75])
    assert focal_loss(logits, y, 2.0, alpha).item() == pytest.approx(
        0.25 * focal_loss(logits, y, 2.0).item())
    balanced = class_alpha("balanced", np.array([90, 10]))
    assert balanced[1] == pytest.approx(9 * balanced[0]) and balanced.mean() == pytest.approx(1)


def test_bce_linear_term_keeps_gradient_when_saturated():
    z = torch.tensor([[-12.0, 12.0]], requires_grad=True)  # confidently wrong about class 0
    y = torch.tensor([0])
    bce_linear_loss(z, y, 0.0).backward()
    g_plain = z.grad.abs().sum().item()
    z.grad = None
    bce_linear_loss(z, y, 1.0).backward()
    # the linear term's gradient σ'(z) is tiny here, but the total must not shrink
    assert z.grad.abs().sum().item() >= g_plain
    assert bce_linear_loss(z, y, 1.0).item() > bce_linear_loss(z, y, 0.0).item()


def test_swa_changes_the_weights_and_recomputes_batchnorm(monkeypatch):
    calls = []
    real_update_bn = loop.update_bn
    def counting_update_bn(*args, **kwargs):
        calls.append(1)
        return real_update_bn(*args, **kwargs)

    monkeypatch.setattr(loop, "update_bn", counting_update_bn)
    result, _ = train_tiny(epochs=6, swa=True, swa_start=0.5, norm="batch")
    assert calls == [1]
    final = result.model.state_dict()
    changed = [k for k, v in result.pre_swa_state.items()
               if v.dtype.is_floating_point and not torch.equal(v, final[k])]
    assert any("running_mean" in k for k in changed)  # BN statistics recomputed
    assert any(k.endswith("weight") for k in changed)  # averaged weights differ from the last
    assert "test_before_swa" in result.summary


def test_early_stopping_stops_and_restores_the_best_epoch():
    # Noisy labels and a high LR: the val loss bottoms out early, then climbs.
    result, rep = train_tiny(epochs=60, lr=3e-2, label_noise=0.4, early_stopping=3, width=2)
    s = result.summary
    assert s["early_stopped"] and s["epochs_run"] < 60
    assert s["stopped_epoch"] == s["best_epoch"] + 3
    val_rows = rep.split("val")
    assert len(val_rows) == s["epochs_run"]
    best_row = val_rows[s["best_epoch"] - 1]
    # the restored model is the best epoch's: its val loss is that epoch's, not the last one's
    assert s["val"]["loss"] == pytest.approx(best_row["loss"], rel=1e-5)
    assert min(r["loss"] for r in val_rows) == pytest.approx(best_row["loss"])


def test_tta_averages_the_views():
    config = make_config(dataset="digits", epochs=1)
    model = build_model(config, (1, 8, 8), 10).eval()
    x = torch.rand(7, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    views = tta_views(x, "flips")
    assert len(views) == 4  # identity, h-flip, v-flip, transpose
    with torch.no_grad():
        expected = torch.stack([model(v).softmax(-1) for v in views]).mean(0).numpy()
    got = loop.predict_proba(model, x, "flips")
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert len(tta_views(torch.rand(3, 1, 40), "shifts")) == 5


def test_tta_run_reports_metrics_with_and_without_tta():
    result, _ = train_tiny(dataset="digits", epochs=2, tta="flips", batch_size=64)
    s = result.summary
    assert s["tta"] == "flips"
    assert s["test"]["accuracy"] != s["test_without_tta"]["accuracy"] or (
        s["test"]["log_loss"] != s["test_without_tta"]["log_loss"])


@pytest.mark.parametrize("norm", ["batch", "group"])
def test_normalised_models_train(norm):
    result, rep = train_tiny(dataset="digits", epochs=4, batch_size=64, norm=norm, norm_groups=4)
    losses = [r["loss"] for r in rep.split("train")]
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])
    assert result.summary["test"]["accuracy"] > 0.8


def test_mlp_and_cnn_switches_build_and_count_parameters():
    base = make_config(dataset="mnist1d")
    gap = make_config(dataset="mnist1d", head="gap")
    half = make_config(dataset="mnist1d", width=0.5)
    n = lambda c: sum(p.numel() for p in build_model(c, (1, 40), 10).parameters())  # noqa: E731
    assert n(gap) < n(base) and n(half) < n(base)
    residual = build_model(make_config(dataset="digits", residual=True, depth=4), (1, 8, 8), 10)
    assert residual(torch.rand(2, 1, 8, 8)).shape == (2, 10)
    mlp = build_model(make_config(dataset="synthetic", depth=2, dropout=0.5), (12,), 3)
    assert mlp(torch.rand(5, 12)).shape == (5, 3)


def _lrs(config, steps_per_epoch, n):
    p = [torch.nn.Parameter(torch.zeros(1))]
    opt = torch.optim.SGD(p, lr=config.lr)
    sched = make_scheduler(config, opt, steps_per_epoch)
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_schedules_produce_the_expected_lr_sequence():
    step = _lrs(make_config(lr=0.1, lr_schedule="step", lr_step_epochs=2, lr_gamma=0.5), 3, 12)
    assert step == pytest.approx([0.1] * 6 + [0.05] * 6)
    cos = _lrs(make_config(lr=0.1, epochs=2, lr_schedule="cosine", lr_min=0.01), 5, 10)
    expected = [0.01 + 0.09 * (1 + math.cos(math.pi * t / 10)) / 2 for t in range(10)]
    assert cos == pytest.approx(expected)
    cyc = _lrs(make_config(lr=0.1, epochs=4, lr_schedule="cosine_restarts", cycle_epochs=1), 4, 12)
    one = [0.1 * (1 + math.cos(math.pi * t / 4)) / 2 for t in range(4)]
    assert cyc == pytest.approx(one * 3)  # restarts every cycle back to lr
    warm = _lrs(make_config(lr=0.1, epochs=3, warmup_epochs=1), 4, 8)
    assert warm[0] == pytest.approx(0.001) and warm[4:] == pytest.approx([0.1] * 4)
    assert all(a < b for a, b in itertools.pairwise(warm[:5]))


def test_logged_lr_follows_the_schedule():
    result, rep = train_tiny(epochs=3, lr_schedule="cosine", lr=0.01)
    logged = [r["lr"] for r in rep.split("train")]
    assert logged == pytest.approx(result.lr_history)
    assert logged[0] == pytest.approx(0.01) and logged[-1] < 0.001


def test_random_loss_scaling_uses_its_own_rng():
    random.seed(123)
    state = random.getstate()
    a, _ = train_tiny(epochs=2, random_loss_scale=True)
    assert random.getstate() == state  # the global RNG was not touched
    b, _ = train_tiny(epochs=2, random_loss_scale=True)
    c, _ = train_tiny(epochs=2)
    np.testing.assert_array_equal(a.y_prob, b.y_prob)  # reproducible
    assert not np.array_equal(a.y_prob, c.y_prob)  # and it does change training


def test_forget_eval_pitfall_changes_val_metrics_with_batchnorm_and_dropout():
    good, _ = train_tiny(dataset="digits", epochs=3, batch_size=64, norm="batch", dropout=0.5)
    bad, _ = train_tiny(dataset="digits", epochs=3, batch_size=64, norm="batch", dropout=0.5,
                        forget_eval=True)
    assert bad.summary["test"]["log_loss"] != pytest.approx(good.summary["test"]["log_loss"])
    assert BY_NAME["forget_eval"].pitfall and "PITFALL" in BY_NAME["forget_eval"].what


def test_shift_moves_samples_and_pads_with_zeros():
    x = torch.arange(1, 6, dtype=torch.float32).view(1, 1, 5).repeat(2, 1, 1)
    out = shift(x, torch.tensor([[1], [-2]]), 2)
    assert out[0, 0].tolist() == [0, 1, 2, 3, 4]
    assert out[1, 0].tolist() == [3, 4, 5, 0, 0]
    img = torch.arange(9, dtype=torch.float32).view(1, 1, 3, 3)
    moved = shift(img, torch.tensor([[1, 0]]), 1)  # down by one row
    assert moved[0, 0].tolist() == [[0, 0, 0], [0, 1, 2], [3, 4, 5]]


def test_augmentation_is_reproducible_and_respects_the_switches():
    config = make_config(dataset="digits", augment_hflip=True, augment_shift=1, augment_noise=0.1)
    x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    a = augment_batch(x, config, torch.Generator().manual_seed(5))
    b = augment_batch(x, config, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and not torch.equal(a, x)
    plain = augment_batch(x, make_config(dataset="digits"), torch.Generator().manual_seed(5))
    assert torch.equal(plain, x)


def test_bf16_autocast_runs_on_cpu_with_a_warning():
    result, rep = train_tiny(epochs=1, amp="bf16")
    assert result.summary["amp"] == "bfloat16"
    assert any("bf16" in m for m in rep.messages)


def test_fp16_falls_back_to_bf16_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    config = make_config(amp="fp16")  # device auto: allowed, resolved at run time
    dtype = training_setup.autocast_dtype(config.amp, torch.device("cpu"), MemoryReporter().message)
    assert dtype is torch.bfloat16
