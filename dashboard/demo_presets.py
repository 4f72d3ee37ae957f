"""The demo's claims: settings of the built-in tasks where a claim of the notes was measured.

Each ``Claim`` is an ablation (baseline vs one variant, paired by seed) or an ensemble check,
small enough for 2 CPU cores in a few minutes. ``CANDIDATES`` are every setting tried by
``benchmarks/demo_claims.py``; ``PRESETS`` are those the Experiments page offers in one click,
each with what the benchmark measured (``expected``), including claims that did not hold.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from trainer.experiments import ablation


@dataclass(frozen=True)
class Claim:
    key: str
    claim: str  # what the notes say
    kind: str  # "ablation" or "ensemble"
    base: dict[str, Any]
    # ablation: {label: overrides} of the one variant; ensemble: {label: overrides} per member
    tricks: dict[str, dict[str, Any]]
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    metrics: tuple[str, ...] = ("accuracy",)
    expected: str = ""  # what the benchmark measured, shown next to the preset
    holds: bool | None = None  # None: not measured
    preset: bool = False
    title: str = ""  # the preset's name in the app (default: the claim)
    # (variant, metric, Δ, CI low, CI high) of the runs as the app's worker trains them
    # (`demo_claims --first-visit`): ``expected`` must say what the result page says of them
    measured: tuple[tuple[str, str, float, float, float], ...] = ()

    @property
    def name(self) -> str:
        return self.title or self.claim

    @property
    def exp_name(self) -> str:
        """A short experiment name: it leads every run's name, and the experiment id it makes
        is in each run's tag, which is limited to 50 characters."""
        return f"demo {self.key.split('.')[0].replace('_', ' ')}"

    def spec(self) -> dict[str, Any]:
        """The ablation spec this preset launches (checked: raises ConfigError)."""
        metrics = [m for m in self.metrics if m in ablation.KNOWN_METRICS]
        return ablation.make_spec(self.base, self.tricks, list(self.seeds), metrics=metrics)


def describe(claim: Claim) -> str:
    """The setting in words: "ablation on digits, 15 epochs: baseline vs +hflip
    (augment_hflip=true), 5 seeds (10 runs)"."""
    fixed = ", ".join(f"{k}={_show(v)}" for k, v in claim.base.items()
                      if k not in ("dataset", "epochs", "tags"))
    setting = f"{claim.base.get('dataset', 'digits')}, {claim.base.get('epochs', 30)} epochs" + (
        f", {fixed}" if fixed else "")
    parts = [f"{label} ({', '.join(f'{k}={_show(v)}' for k, v in o.items())})"
             for label, o in claim.tricks.items()]
    n = len(claim.seeds)
    if claim.kind == "ensemble":
        return (f"ensemble on {setting}: members {', '.join(parts)}, seed {claim.seeds[0]} "
                f"({len(parts)} runs)")
    return (f"ablation on {setting}: baseline vs {', '.join('+' + p for p in parts)}, {n} seeds "
            f"({(len(parts) + 1) * n} runs)")


def _show(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


DIGITS = {"dataset": "digits", "epochs": 15}
IMBALANCED = {"dataset": "synthetic", "imbalance": 10.0, "n_classes": 4, "epochs": 30}

CANDIDATES: tuple[Claim, ...] = (
    Claim("flips.digits15", "Horizontal flips hurt digits", "ablation", DIGITS,
          {"hflip": {"augment_hflip": True}}),
    Claim("flips.digits15.lr3e-3", "Horizontal flips hurt digits", "ablation",
          {**DIGITS, "lr": 3e-3}, {"hflip": {"augment_hflip": True}}),
    Claim("bn_vs_convdrop.digits15", "BatchNorm beats dropout in conv layers", "ablation",
          {**DIGITS, "spatial_dropout": 0.2},
          {"batchnorm_instead": {"norm": "batch", "spatial_dropout": 0.0}}),
    Claim("bn_vs_convdrop.mnist1d15", "BatchNorm beats dropout in conv layers", "ablation",
          {"dataset": "mnist1d", "epochs": 15, "spatial_dropout": 0.2},
          {"batchnorm_instead": {"norm": "batch", "spatial_dropout": 0.0}}),
    Claim("focal.imb10", "Focal loss lifts minority-class recall under imbalance", "ablation",
          IMBALANCED, {"focal": {"loss": "focal"}},
          metrics=("minority_recall", "minority_f1", "accuracy")),
    Claim("focal_balanced.imb10", "Focal loss lifts minority-class recall under imbalance",
          "ablation", IMBALANCED, {"focal_balanced": {"loss": "focal", "focal_alpha": "balanced"}},
          metrics=("minority_recall", "minority_f1", "accuracy")),
    Claim("focal.imb20_n10000", "Focal loss lifts minority-class recall under imbalance",
          "ablation", {**IMBALANCED, "imbalance": 20.0, "n_samples": 10000, "epochs": 10},
          {"focal": {"loss": "focal"}}, metrics=("minority_recall", "minority_f1", "accuracy")),
    Claim("focal_balanced.imb20_n10000", "Focal loss lifts minority-class recall under "
          "imbalance", "ablation", {**IMBALANCED, "imbalance": 20.0, "n_samples": 10000,
                                    "epochs": 10},
          {"focal_balanced": {"loss": "focal", "focal_alpha": "balanced"}},
          metrics=("minority_recall", "minority_f1", "accuracy")),
    Claim("focal.hard_imb20", "Focal loss lifts minority-class recall under imbalance",
          "ablation", {**IMBALANCED, "imbalance": 20.0, "n_samples": 10000, "n_features": 6,
                       "epochs": 10},
          {"focal": {"loss": "focal"}}, metrics=("minority_recall", "minority_f1", "accuracy")),
    Claim("focal_balanced.hard_imb20", "Focal loss lifts minority-class recall under imbalance",
          "ablation", {**IMBALANCED, "imbalance": 20.0, "n_samples": 10000, "n_features": 6,
                       "epochs": 10},
          {"focal_balanced": {"loss": "focal", "focal_alpha": "balanced"}},
          metrics=("minority_recall", "minority_f1", "accuracy")),
    Claim("smoothing.digits15", "Label smoothing lowers over-confidence", "ablation", DIGITS,
          {"smoothing": {"label_smoothing": 0.2}},
          metrics=("mean_max_prob", "ece", "log_loss", "accuracy")),
    Claim("smoothing.noisy_synthetic", "Label smoothing lowers over-confidence", "ablation",
          {"dataset": "synthetic", "n_samples": 1000, "label_noise": 0.3, "epochs": 60},
          {"smoothing": {"label_smoothing": 0.2}},
          metrics=("mean_max_prob", "ece", "log_loss", "accuracy")),
    Claim("ensemble.digits_cnn_mlp", "An ensemble of low-correlation members beats its best "
          "member", "ensemble", DIGITS,
          {"cnn": {"model": "cnn"}, "mlp": {"model": "mlp"}, "cnn-gap": {"head": "gap"}},
          metrics=("accuracy",)),
    Claim("ensemble.digits5", "An ensemble of low-correlation members beats its best member",
          "ensemble", {**DIGITS, "epochs": 5},
          {"cnn": {"model": "cnn"}, "mlp": {"model": "mlp"}, "cnn-gap": {"head": "gap"}}),
    Claim("ensemble.digits_tricks", "An ensemble of low-correlation members beats its best "
          "member", "ensemble", DIGITS, {"plain": {}, "batchnorm": {"norm": "batch"},
                                         "smoothing": {"label_smoothing": 0.2}}),
    Claim("ensemble.noisy_synthetic", "An ensemble of low-correlation members beats its best "
          "member", "ensemble", {"dataset": "synthetic", "label_noise": 0.3, "epochs": 30},
          {"mlp": {}, "mlp-dropout": {"dropout": 0.3}, "mlp-wide-gelu": {"width": 2.0,
                                                                         "activation": "gelu"}}),
)

# The Runs page's first-visit demo: two claims on digits in one ablation, its runs tagged "demo"
# so the Tricks page shows what each trick did on them. Its figures are the app's own: queued by
# queueing.queue_demo and trained by the worker on 2 cores (2 torch threads), where the runs differ
# from the 1-thread runs of the other claims (benchmarks/README.md, "Demo claims").
FIRST_VISIT = Claim(
    "first_visit", "Does a horizontal flip hurt digits? Does label smoothing help?", "ablation",
    {**DIGITS, "tags": ["demo"]},
    {"hflip": {"augment_hflip": True}, "label_smoothing": {"label_smoothing": 0.2}},
    metrics=("accuracy", "ece", "f1"), holds=True,
    title="Demo: flips and label smoothing on digits",
    expected="On accuracy, **helps**: +label_smoothing. That is about +3.3 points (95% CI +2.1 "
    "to +4.5). +hflip lowers accuracy by about 2.4 points, but at 5 seeds its interval (−6.5 to "
    "+1.6) includes zero: no clear effect, and the page says how many seeds would tell (about "
    "16). On ece, **hurts**: +label_smoothing. It lowers the confidence of this already "
    "calibrated model, which becomes under-confident (ECE +0.19). On f1, **helps**: "
    "+label_smoothing. Measured as the app trains it on 2 cores; the runs depend on torch's "
    "thread count, so another machine's numbers differ a little (1 thread: +hflip −3.0 points, "
    "CI −6.8 to +0.9), with the same verdicts on 1, 2 and 4 threads.",
    measured=(("+label_smoothing", "accuracy", 0.0326, 0.0207, 0.0445),
              ("+hflip", "accuracy", -0.0244, -0.0646, 0.0157),
              ("+hflip", "ece", 0.0051, -0.0113, 0.0214),
              ("+label_smoothing", "ece", 0.1886, 0.1605, 0.2167),
              ("+label_smoothing", "f1", 0.0324, 0.0208, 0.0440),
              ("+hflip", "f1", -0.0244, -0.0648, 0.0160)),
)
# The flips preset trains the same configs and seeds as the first-visit demo's baseline and +hflip.
FLIPS_MEASURED = tuple(m for m in FIRST_VISIT.measured if m[:2] == ("+hflip", "accuracy"))


def _measured(key: str, holds: bool, expected: str, title: str,
              measured: tuple[tuple[str, str, float, float, float], ...] = ()) -> Claim:
    """The candidate ``key`` with what benchmarks/demo_claims.py measured of it."""
    found = next(c for c in CANDIDATES if c.key == key)
    return replace(found, holds=holds, expected=expected, title=title, preset=True,
                   measured=measured)


# The Experiments page's one-click demos, figures from benchmarks/README.md ("Demo claims").
PRESETS: tuple[Claim, ...] = (
    _measured("flips.digits15", False, "On accuracy, no variant has a clear effect (every "
              "interval includes zero). As the app trains it on 2 cores, +hflip lowers accuracy "
              "by about 2.4 points (95% CI −6.5 to +1.6, 5 seeds; about 16 seeds would tell); "
              "on 1 and 4 torch threads by 3.0 and 2.2 points, just as unclear.",
              "Horizontal flips hurt digits", FLIPS_MEASURED),
    _measured("bn_vs_convdrop.mnist1d15", True, "On accuracy, **helps**: +batchnorm_instead. "
              "As the app trains it on 2 cores, BatchNorm instead of conv dropout adds about "
              "+7.0 points (95% CI +1.6 to +12.4, 5 seeds). The runs depend on torch's thread "
              "count: on 1 thread (as Ray's 1-CPU tasks train) it was +4.8 (CI −0.7 to +10.3), "
              "no clear effect; on digits the same swap gave +1.6 (CI −0.4 to +3.6), no clear "
              "effect.", "BatchNorm beats dropout in conv layers",
              (("+batchnorm_instead", "accuracy", 0.0702, 0.0164, 0.1240),)),
    _measured("smoothing.noisy_synthetic", True, "on this over-confident model (30% noisy train "
              "labels, 60 epochs) label smoothing ε=0.2 helps calibration: ECE falls by about "
              "0.21 (95% CI −0.25 to −0.16) and the mean confidence by 0.29; accuracy: no clear "
              "effect. On digits, where the model is already calibrated, it does the opposite "
              "(see the first-visit demo).", "Label smoothing lowers over-confidence"),
    _measured("focal_balanced.hard_imb20", True, "focal loss with α=balanced helps the "
              "minority class's recall, 0.55 → 0.80 (+24.6 points, 95% CI +9.5 to +39.7, "
              "5 seeds), paid for in precision: its F1 and overall accuracy show no clear "
              "effect. Focal loss alone (γ=2, no α) did not show: +6 points, CI −5 to +18.",
              "Focal loss lifts minority-class recall under imbalance"),
    _measured("ensemble.digits_cnn_mlp", False, "no clear effect. Over 5 seeds the average "
              "of a CNN, an MLP and a CNN with a GAP head was +0.4 accuracy points above its "
              "best member (95% CI −0.8 to +1.7, trained as the app does on 2 cores). No "
              "setting tried showed it: members of unequal quality pull the average below the "
              "best one (benchmarks/README.md). This demo trains one seed's members; \"Ensemble "
              "them\" then combines them.",
              "An ensemble of low-correlation members beats its best member"),
)
