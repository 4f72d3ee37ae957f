"""Every metric a run records: its name, label, where it is logged, and which way is better.

One table for everything that ranks or orders metrics: early stopping (trainer/loop.py), the
Compare page's best-per-column marks, the experiments' winners and verdicts, and the Runs page's
metric order (the table's order: the curves people look for first come first).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    name: str  # as in metrics.jsonl rows and summary.json sections
    label: str  # for people
    splits: tuple[str, ...]  # the row splits / summary sections that hold it; () = top level
    lower_is_better: bool | None  # None: not a score (a learning rate is neither good nor bad)
    help: str = ""


_EVAL = ("val", "test")
_ALL = ("train", "val", "test")
METRICS_TABLE: tuple[Metric, ...] = (
    Metric("loss", "Loss", _ALL, True, "Cross-entropy, comparable across losses and tricks "
           "(train rows: the loss being optimised)."),
    Metric("accuracy", "Accuracy", _EVAL, False, "Top-1 accuracy."),
    Metric("f1", "F1", _EVAL, False, "Macro F1."),
    Metric("precision", "Precision", _EVAL, False, "Macro precision."),
    Metric("recall", "Recall", _EVAL, False, "Macro recall."),
    Metric("auc", "AUC", _EVAL, False,
           "ROC AUC (one-vs-rest macro for several classes)."),
    Metric("lr", "Learning rate", ("train",), None),
    Metric("grad_norm", "Gradient norm", ("train",), None),
    # The rest in alphabetical order (the Runs page lists them after the ones above).
    Metric("average_precision", "Avg. precision", _EVAL, False,
           "Macro average precision (area under the PR curve)."),
    Metric("ece", "ECE", _EVAL, True,
           "Expected calibration error: the gap between confidence and accuracy."),
    Metric("log_loss", "Log loss", _EVAL, True, "Cross-entropy of the predicted probabilities."),
    Metric("mean_max_prob", "Mean confidence", _EVAL, None, "Mean top-class probability."),
    Metric("minority_f1", "Minority F1", _EVAL, False, "F1 of the last (minority) class."),
    Metric("minority_precision", "Minority precision", _EVAL, False,
           "Precision of the last (minority) class."),
    Metric("minority_recall", "Minority recall", _EVAL, False,
           "Recall of the last (minority) class."),
    Metric("samples_per_s", "Samples/s", ("train",), False),
    Metric("sparsity", "Sparsity", ("val",), None),
    Metric("top_k_accuracy", "Top-k acc.", _EVAL, False,
           "Top-k accuracy (k is the run's top_k setting; none for two classes)."),
    Metric("weight_norm", "Weight norm", ("train", "val"), None),
    # Numbers of the whole run, at the top level of summary.json.
    Metric("best_epoch", "Best epoch", (), None,
           "The epoch whose weights were kept (by the monitored val metric)."),
    Metric("wall_time_s", "Wall time (s)", (), True, "Training time in seconds."),
    Metric("n_params", "Params", (), True, "Number of trainable parameters."),
)
_BY_NAME = {m.name: m for m in METRICS_TABLE}
_ORDER = {m.name: i for i, m in enumerate(METRICS_TABLE)}


def metric_info(name: str) -> Metric | None:
    """The table's entry for ``name``, or None for a metric it does not know."""
    return _BY_NAME.get(name)


def lower_is_better(name: str) -> bool:
    """Whether a smaller value of ``name`` is better (loss, ECE, time...). Unknown metrics and
    those that are not scores count as higher-is-better, as every score in the table but those."""
    metric = _BY_NAME.get(name)
    return bool(metric and metric.lower_is_better)


def better(a: float, b: float, name: str) -> bool:
    """Whether ``a`` beats ``b`` on the metric ``name``."""
    return a < b if lower_is_better(name) else a > b


def metric_order(name: str) -> int:
    """Where ``name`` comes in the table (unknown names after every known one)."""
    return _ORDER.get(name, len(_ORDER))
