"""Run directories in every state, written per the contract without training (for app tests)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from dashboard.run_info import RunInfo
from trainer import runlog
from trainer.config import config_to_json, make_config
from trainer.evaluate import classification_metrics


def make_run(root: Path, run_id: str, state: str = "finished", *, steps: int = 200,
             steps_per_epoch: int = 20, config: dict[str, Any] | None = None, seed: int = 0,
             quality: float = 0.8, n_classes: int = 4, n_test: int = 120, heartbeat_age: float = 1,
             error: str | None = None) -> Path:
    """A run directory as the trainer would leave it in ``state``.

    ``quality`` in (0, 1] controls how good the predictions are; ``steps`` how many train rows.
    A running run gets a fresh heartbeat (``heartbeat_age`` seconds old; use > 30 for lost).
    """
    rng = np.random.default_rng(seed)
    run_dir = root / run_id
    run_dir.mkdir(parents=True)
    cfg = make_config({"dataset": "synthetic", "n_classes": n_classes, "name": run_id,
                       "seed": seed, **(config or {})})
    runlog.write_json_atomic(run_dir / runlog.CONFIG, {**config_to_json(cfg), "run_id": run_id})
    now = time.time()
    epochs = max(1, steps // steps_per_epoch)
    status = runlog.new_status(run_id, state, created=now - 100, epochs=cfg.epochs,
                               total_steps=cfg.epochs * steps_per_epoch)
    if state != "queued":
        status.update(started=now - 90, pid=999_999_999 if state == "running" else None,
                      heartbeat=now - heartbeat_age, step=steps, epoch=epochs)
    if state == "running":
        import os

        status["pid"] = os.getpid()  # alive, so the run is not lost before its heartbeat ages
    if state in runlog.FINAL_STATES:
        status["ended"] = now - 5
    if state == "failed":
        status.update(error=error or "Traceback (most recent call last):\n  ...\nValueError: boom",
                      reason=error or "ValueError: boom")
    runlog.write_json_atomic(run_dir / runlog.STATUS, status)
    if state == "queued":
        return run_dir

    rows = []
    loss = 2.0
    for s in range(1, steps + 1):
        loss = max(0.05, loss * 0.985 + rng.normal(0, 0.05))
        spike = 5.0 if s == steps // 2 else 0.0  # a raw spike the charts must keep
        rows.append({"split": "train", "step": s, "epoch": s / steps_per_epoch, "t": s * 0.05,
                     "loss": loss + spike, "lr": 0.01, "grad_norm": 1 + rng.random(),
                     "samples_per_s": 5000.0})
        if s % steps_per_epoch == 0:
            rows.append({"split": "val", "step": s, "epoch": s // steps_per_epoch, "t": s * 0.05,
                         "loss": loss * 1.1, "accuracy": min(1, quality * s / steps + 0.1),
                         "precision": 0.7, "recall": 0.7, "f1": 0.7, "auc": 0.9, "ece": 0.05,
                         "weight_norm": 10.0, "sparsity": 0.01})
    with open(run_dir / runlog.METRICS, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    (run_dir / runlog.STDOUT).write_text(f"run {run_id}\nepoch 1/{cfg.epochs} train loss 1.0\n")

    if state == "finished":
        y_true = np.arange(n_test) % n_classes
        logits = rng.normal(0, 1, (n_test, n_classes))
        logits[np.arange(n_test), y_true] += 4 * quality
        prob = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        prob = prob.astype(np.float32)
        np.savez(run_dir / runlog.PREDICTIONS, y_true=y_true.astype(np.int64), y_prob=prob)
        test = classification_metrics(y_true, prob, detail=True)
        test["loss"] = test["log_loss"]
        runlog.write_json_atomic(run_dir / runlog.SUMMARY, {
            "test": test, "val": test, "best_epoch": epochs, "monitor": "loss",
            "epochs_run": epochs, "steps": steps, "wall_time_s": steps * 0.05,
            "n_params": 1234, "device": "cpu", "amp": "off",
            "class_names": [str(i) for i in range(n_classes)],
            "dataset": {"name": "synthetic", "kind": "tabular",
                        "sizes": {"train": 420, "val": 90, "test": n_test}},
        })
    return run_dir


def make_damaged_runs(root: Path) -> list[str]:
    """Runs whose files are broken in different ways; returns their ids."""
    bad_json = root / "20260101-000000-bad-json"
    bad_json.mkdir(parents=True)
    (bad_json / runlog.STATUS).write_text("{not json")
    (bad_json / runlog.CONFIG).write_text("[]")
    no_config = root / "20260101-000001-no-config"
    no_config.mkdir()
    runlog.write_json_atomic(no_config / runlog.STATUS, runlog.new_status(no_config.name,
                                                                          "finished"))
    partial = make_run(root, "20260101-000002-partial-line", "finished", steps=40)
    with open(partial / runlog.METRICS, "a") as f:
        f.write('garbage line\n{"split": "train", "step": 41, "lo')
    (partial / runlog.PREDICTIONS).write_bytes(b"not a zip")
    empty = root / "20260101-000003-empty"
    empty.mkdir()
    (root / "notes.txt").write_text("a stray file in the runs root")
    (root / "Not A Run!").mkdir()
    return [bad_json.name, no_config.name, partial.name, empty.name]


def make_all_states(root: Path) -> dict[str, str]:
    """One run per state (plus lost); returns state -> run id."""
    ids = {}
    for i, state in enumerate(("finished", "running", "failed", "cancelled", "queued")):
        run_id = f"20260102-00000{i}-{state}"
        make_run(root, run_id, state, seed=i)
        ids[state] = run_id
    make_run(root, "20260102-000009-lost", "running", heartbeat_age=3600, seed=9)
    ids["lost"] = "20260102-000009-lost"
    return ids


def metric_rows(run_dir: Path) -> list[dict[str, Any]]:
    """Every complete row of a run's metrics.jsonl (a partial last line is left out)."""
    return runlog.JsonlTail(Path(run_dir) / runlog.METRICS).read_new()


def run_info(run_id: str, config: dict[str, Any] | None = None, **kw: Any) -> RunInfo:
    """A RunInfo held in memory (no directory): finished, with ``config`` and any field in
    ``kw`` (``state``, ``status``, ``summary``...)."""
    defaults = {"path": Path("/nowhere") / run_id, "status": {}, "state": "finished",
                "summary": None, "meta": {}}
    return RunInfo(run_id=run_id, config=config if config is not None else {}, **{**defaults,
                                                                                  **kw})
