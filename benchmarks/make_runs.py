"""Write N synthetic runs of S steps each, in the run-directory contract's exact format, fast.

    .venv/bin/python benchmarks/make_runs.py /tmp/runs --runs 100 --steps 100000
    .venv/bin/python benchmarks/make_runs.py /tmp/runs --runs 10 --steps 10000 --running 2

Each run gets config.json (a valid RunConfig), status.json, metrics.jsonl and, when finished,
summary.json. metrics.jsonl holds what the trainer writes (trainer/loop.py): one train row per step
(loss, lr, grad_norm, samples_per_s; weight_norm every 10th step), one val row per epoch (accuracy,
top-k, precision, recall, F1, AUC, AP, log loss, ECE, ...), and a test row at the end of a finished
run. Values look like a training run: a decaying noisy loss with a few raw spikes (charts must keep
them), float32 losses (as torch hands them over), a cosine learning rate, wall time that grows.

Lines are built column-wise with Arrow's C++ number formatting (shortest round-trip repr, what
``json.dumps`` writes for these values), never one ``json.dumps`` per row: 100 runs x 100,000 steps
(about 1.8 GB of JSON lines) take a minute or two. Used by the loading and drawing benchmarks:
``write_runs``, ``write_run``, ``append_rows`` and ``train_columns`` are importable.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python benchmarks/make_runs.py` puts benchmarks/ first
    sys.path.insert(0, str(ROOT))

from trainer import runlog  # noqa: E402
from trainer.config import config_to_json, make_config  # noqa: E402

WEIGHT_NORM_EVERY = 10  # as trainer.loop.WEIGHT_NORM_EVERY
LOG_BATCH = 32  # samples_per_s is measured per batch of 32 rows, as the trainer flushes them
VAL_KEYS = ("accuracy", "top_k_accuracy", "top_k", "precision", "recall", "f1", "auc",
            "average_precision", "log_loss", "ece", "mean_max_prob", "n", "loss")
N_VAL = 270  # val/test set size written in the rows' "n"


def _text(values: np.ndarray) -> pa.Array:
    """Numbers as JSON text: ints as ints, floats in their shortest round-trip form.

    Arrow writes a whole float as "5000" where json.dumps writes "5000.0"; the trainer's floats are
    never whole except by chance, and both parse to the same number.
    """
    return pa.array(values).cast(pa.string())


def _lines(split: str, columns: dict[str, np.ndarray]) -> pa.Array:
    """One JSON object per row of ``columns``, each ending in a newline."""
    parts: list[Any] = []
    for i, (name, values) in enumerate(columns.items()):
        parts.append(f'{{"split":"{split}","{name}":' if i == 0 else f',"{name}":')
        parts.append(_text(values))
    return pc.binary_join_element_wise(*parts, "}\n", "")


def train_columns(first: int, last: int, total: int, steps_per_epoch: int,
                  seed: int = 0) -> dict[str, np.ndarray]:
    """Train-row values for steps ``first..last`` (inclusive) of a ``total``-step run."""
    rng = np.random.default_rng([seed, first])
    step = np.arange(first, last + 1, dtype=np.int64)
    n = step.size
    progress = step / max(total, 1)
    loss = 0.05 + 2.0 * np.exp(-5.0 * progress) + rng.normal(0.0, 0.05, n) * (1.2 - progress)
    spikes = rng.random(n) < 2e-4  # a few raw spikes per 10,000 steps
    loss[spikes] += rng.uniform(2.0, 6.0, spikes.sum())
    grad_norm = np.abs(rng.normal(1.0, 0.3, n)) * (1.0 + 4.0 * spikes)
    t = 0.8 + step * 0.012 + np.cumsum(rng.exponential(0.0005, n))
    sps = np.repeat(rng.normal(10000.0, 300.0, (n + LOG_BATCH - 1) // LOG_BATCH), LOG_BATCH)[:n]
    return {
        "step": step,
        "epoch": step / steps_per_epoch,
        "t": t,
        # torch hands losses and norms over as float32 values widened to float
        "loss": np.maximum(loss, 0.01).astype(np.float32).astype(np.float64),
        "lr": 0.01 * 0.5 * (1.0 + np.cos(np.pi * progress)),
        "grad_norm": grad_norm.astype(np.float32).astype(np.float64),
        "samples_per_s": sps + 0.123456789,
    }


def val_columns(steps: np.ndarray, total: int, steps_per_epoch: int, seed: int = 0,
                ) -> dict[str, np.ndarray]:
    """Val-row values at the ends of the epochs that end at ``steps``."""
    rng = np.random.default_rng([seed, int(steps[0]) if steps.size else 0, 7])
    n = steps.size
    progress = steps / max(total, 1)
    acc = np.clip(0.3 + 0.65 * (1 - np.exp(-4 * progress)) + rng.normal(0, 0.01, n), 0, 1)
    loss = 0.1 + 2.0 * np.exp(-4.0 * progress) + rng.normal(0, 0.02, n) ** 2
    return {
        "step": steps,
        "epoch": steps // steps_per_epoch,
        "t": 0.8 + steps * 0.012 + 0.01,
        "accuracy": acc,
        "top_k_accuracy": np.minimum(1.0, acc + 0.1),
        "top_k": np.full(n, 3, dtype=np.int64),
        "precision": acc * 0.98,
        "recall": acc * 0.97,
        "f1": acc * 0.975,
        "auc": np.minimum(1.0, 0.5 + acc / 2 + 1e-3),
        "average_precision": acc * 0.99,
        "log_loss": loss,
        "ece": np.abs(rng.normal(0.05, 0.01, n)),
        "mean_max_prob": acc * 0.9,
        "n": np.full(n, N_VAL, dtype=np.int64),
        "loss": loss,
        "weight_norm": 10.0 + progress * 5 + rng.normal(0, 0.01, n),
        "sparsity": np.abs(rng.normal(0.01, 0.001, n)),
    }


def metrics_bytes(first: int, last: int, total: int, steps_per_epoch: int, seed: int = 0,
                  test_row: bool = False) -> bytes:
    """The metrics.jsonl lines of steps ``first..last``: train rows, a val row after each epoch's
    last step, and (``test_row``) the final test row, in the order the trainer writes them."""
    if last < first:
        return b""
    train = train_columns(first, last, total, steps_per_epoch, seed)
    plain = train["step"] % WEIGHT_NORM_EVERY != 0
    pieces = [_lines("train", {k: v[plain] for k, v in train.items()})]
    with_norm = {k: v[~plain] for k, v in train.items()}
    with_norm["weight_norm"] = (10.0 + with_norm["step"] / max(total, 1) * 5).astype(
        np.float32).astype(np.float64)
    pieces.append(_lines("train", with_norm))
    ends = train["step"][train["step"] % steps_per_epoch == 0]
    val = val_columns(ends, total, steps_per_epoch, seed)
    pieces.append(_lines("val", val))
    # Sort keys: train rows by step; a val row right after the train row of the same step.
    keys = [np.flatnonzero(plain) * 2, np.flatnonzero(~plain) * 2, (ends - first) * 2 + 1]
    if test_row:
        test = {k: v[-1:] for k, v in val_columns(np.array([last]), total, steps_per_epoch,
                                                  seed + 1).items()
                if k not in ("weight_norm", "sparsity")}
        pieces.append(_lines("test", test))
        keys.append(np.array([2 * (last - first) + 2]))
    order = np.argsort(np.concatenate(keys), kind="stable")
    lines = pa.concat_arrays(pieces).take(pa.array(order))  # fresh buffers, in file order
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)
    offsets = offsets[lines.offset:lines.offset + len(lines) + 1]
    return bytes(memoryview(lines.buffers()[2])[offsets[0]:offsets[-1]])


def write_run(root: Path, run_id: str, steps: int, *, steps_per_epoch: int = 100, seed: int = 0,
              state: str = "finished", total_steps: int | None = None,
              chunk_steps: int = 200_000) -> Path:
    """One run directory with ``steps`` steps written (of ``total_steps``, default ``steps``)."""
    total = total_steps or steps
    run_dir = root / run_id
    run_dir.mkdir(parents=True, exist_ok=False)
    cfg = make_config({"dataset": "synthetic", "name": run_id, "seed": seed,
                       "epochs": min(1000, max(1, total // steps_per_epoch))})
    runlog.write_json_atomic(run_dir / runlog.CONFIG, {**config_to_json(cfg), "run_id": run_id})
    now = time.time()
    with open(run_dir / runlog.METRICS, "wb") as f:
        for first in range(1, steps + 1, chunk_steps):
            last = min(steps, first + chunk_steps - 1)
            f.write(metrics_bytes(first, last, total, steps_per_epoch, seed,
                                  test_row=state == "finished" and last == steps))
    status = runlog.new_status(
        run_id, state, created=now - 3600, started=now - 3599, heartbeat=now,
        step=steps, total_steps=total, epoch=steps // steps_per_epoch,
        epochs=max(1, total // steps_per_epoch), steps_per_epoch=steps_per_epoch)
    if state in runlog.FINAL_STATES:
        status["ended"] = now
    runlog.write_json_atomic(run_dir / runlog.STATUS, status)
    if state == "finished":
        test = {k: float(v[-1]) for k, v in val_columns(np.array([steps]), total,
                                                        steps_per_epoch, seed + 1).items()}
        runlog.write_json_atomic(run_dir / runlog.SUMMARY, {
            "test": test, "val": test, "best_epoch": steps // steps_per_epoch,
            "monitor": "loss", "steps": steps, "wall_time_s": steps * 0.012})
    return run_dir


def append_rows(run_dir: Path, n: int, *, seed: int = 0) -> int:
    """Append the next ``n`` steps' rows to a run (as its trainer would); returns the new step."""
    status = runlog.read_json(run_dir / runlog.STATUS) or {}
    done = int(status.get("step") or 0)
    spe = int(status.get("steps_per_epoch") or 100)
    total = max(int(status.get("total_steps") or 0), done + n)
    data = metrics_bytes(done + 1, done + n, total, spe, seed)
    with open(run_dir / runlog.METRICS, "ab") as f:
        f.write(data)
    runlog.update_status(run_dir, step=done + n, total_steps=total, heartbeat=time.time())
    return done + n


def run_ids(n_runs: int, steps: int) -> list[str]:
    return [f"bench-{steps}-{i:03d}" for i in range(n_runs)]


def write_runs(root: Path, n_runs: int, steps: int, *, steps_per_epoch: int = 100,
               running: int = 0) -> list[Path]:
    """``n_runs`` runs under ``root``; the last ``running`` of them are still running (half done
    of twice ``steps``). Returns their directories."""
    root.mkdir(parents=True, exist_ok=True)
    dirs = []
    for i, run_id in enumerate(run_ids(n_runs, steps)):
        live = i >= n_runs - running
        dirs.append(write_run(root, run_id, steps, steps_per_epoch=steps_per_epoch, seed=i,
                              state="running" if live else "finished",
                              total_steps=2 * steps if live else steps))
    return dirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("root", type=Path, help="runs root to create the runs in")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--steps-per-epoch", type=int, default=100)
    parser.add_argument("--running", type=int, default=0, help="how many are still running")
    args = parser.parse_args()
    t0 = time.perf_counter()
    dirs = write_runs(args.root, args.runs, args.steps, steps_per_epoch=args.steps_per_epoch,
                      running=args.running)
    size = sum(os.path.getsize(d / runlog.METRICS) for d in dirs)
    print(f"make_runs.seconds: {time.perf_counter() - t0:.1f}")
    print(f"make_runs.metrics_bytes: {size}")
    print(f"make_runs.root: {args.root}")


if __name__ == "__main__":
    main()
