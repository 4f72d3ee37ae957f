"""Training throughput: `python -m trainer run` against a minimal hand-written PyTorch loop.

    .venv/bin/python -m benchmarks.throughput --quick      # digits only, 3 rounds (~2 min)
    .venv/bin/python -m benchmarks.throughput              # digits and mnist1d, 5 rounds
    .venv/bin/python -m benchmarks.throughput --threads 0  # torch's default threads instead of 1
    .venv/bin/python -m benchmarks.throughput --amp off fp16 bf16  # on a GPU: AMP on and off

For each dataset this process starts, alternating and repeated in rounds (median reported):

- the real CLI, `python -m trainer run --set dataset=D` (default config: 30 epochs, batch 128,
  Adam lr 0.01, device auto) with its own runs dir. Two figures come from the run it writes:
  - `cli_rows_samples_per_s`, the figure the target is judged on: training throughput from the
    train rows' `samples_per_s`. Each row carries the pace of the logging window it was gathered
    in, so total samples / sum(batch / samples_per_s) is the run's samples per second over its
    training steps and everything the loop does around them (logging included), without the
    validation pass after each epoch.
  - `cli_summary_samples_per_s`: summary.json's `samples_per_s`, steps x batch / wall time of
    the whole `train()` call, so it also pays data loading, 30 validation passes and the test
    pass. Shown for reference; its ratio is lower by design.
- a minimal loop (`--hand D`, in a fresh process too, so that both sides pay torch's first-step
  set-up alike): the same model (`trainer.models.build_model`), data tensors
  (`trainer.data.load_dataset`), batch size, Adam lr 0.01, device, epochs and shuffling; plain
  cross-entropy; no logging, no augmentation, no validation; timed from its first step to its
  last.
- a steadier cross-check, `ratio_cpu_loop_vs_hand`: the trainer's loop (`trainer.loop.train`
  with the CLI's FileReporter) and the hand loop again, alternating in this one process, their
  training steps timed in CPU seconds of the training thread, first epoch and validation left
  out. With one torch thread, CPU time leaves out the time other processes hold the core, so it
  moves by a few % where wall-clock figures move by 10-20%. CPU runs only: on a GPU the host's
  CPU time says little.

`ratio_rows_vs_hand` = trainer / hand (medians over rounds) is the share of the hand loop's pace
the trainer keeps (target >= 0.95x). On a machine shared with other work a single run's pace
swings by 10-20%, far more than the difference measured, so take the figure from a quiet machine
or many rounds; `ratio_best_vs_hand` (fastest round of each side) is the steadier cross-check.

``--amp`` repeats everything with mixed precision (default: off only): the CLI gets
``--set amp=A`` and the hand loop does what PyTorch's AMP recipe does (``torch.autocast`` around
the forward pass, a ``GradScaler`` for fp16), with the dtype the trainer would pick (fp16 falls
back to bf16 off CUDA). Figures of a mode other than off are named ``throughput.D.A.*``.

Both sides run on one torch thread by default (`--threads N` to change, 0 = torch's default of
one per core): on a machine shared with other work, a process with a thread per core stalls
whenever another process holds a core, and the same loop then swings 10x from run to run. The
models are small enough that a second thread gains little on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

try:
    from benchmarks._common import (
        ROOT,
        alternate,
        emit,
        median,
        parser,
        print_machine,
        ratio,
        use_threads,
    )
except ImportError:  # run as a script: benchmarks/ is on sys.path, the repo root is not
    from _common import ROOT, alternate, emit, median, parser, print_machine, ratio, use_threads


def pace(epoch_seconds: list[float], samples_per_epoch: int) -> float:
    """Samples per second of a run, from its epochs' training seconds."""
    return samples_per_epoch * len(epoch_seconds) / sum(epoch_seconds)


def cli_run(runs_dir: Path, dataset: str, amp: str = "off") -> dict[str, float]:
    """One `python -m trainer run` of the default config; the throughput figures of its run."""
    from trainer import runlog

    proc = subprocess.run([sys.executable, "-m", "trainer", "run", "--runs-dir", str(runs_dir),
                           "--set", f"dataset={dataset}", "--set", f"amp={amp}"], cwd=ROOT,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"`python -m trainer run` failed:\n{proc.stdout}\n{proc.stderr}")
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    summary = runlog.read_json(run_dir / runlog.SUMMARY) or {}
    status = runlog.read_json(run_dir / runlog.STATUS) or {}
    batch = status["batch_size"]
    # Each train row is one batch at the pace of the logging window it was gathered in, so
    # batch / samples_per_s adds up to the training time (windows never span two epochs).
    seconds = [0.0] * status["epochs"]
    for r in runlog.JsonlTail(run_dir / runlog.METRICS).read_new():
        if r.get("split") == "train":
            seconds[math.ceil(r["epoch"]) - 1] += batch / r["samples_per_s"]
    return {"summary": summary["samples_per_s"],
            "rows": pace(seconds, batch * status["steps_per_epoch"])}


def hand_run(dataset: str, amp: str = "off") -> dict[str, float]:
    """``hand_loop`` in a fresh process, like the CLI."""
    proc = subprocess.run([sys.executable, "-m", "benchmarks.throughput", "--hand", dataset,
                           "--amp", amp], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"the hand-written loop failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def hand_loop(dataset: str, amp: str = "off") -> dict[str, float]:
    """Train like a short PyTorch tutorial does (with its AMP recipe when ``amp`` is on); the
    pace of its steps."""
    import torch
    import torch.nn.functional as F

    from trainer.config import make_config
    from trainer.data import load_dataset
    from trainer.models import build_model
    from trainer.training_setup import autocast_dtype, pick_device

    config = make_config({"dataset": dataset})
    device = pick_device(config.device)
    dtype = autocast_dtype(amp, device, say=lambda text: None)  # the dtype the trainer picks
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    data = load_dataset(config.dataset, split_seed=config.split_seed,
                        val_fraction=config.val_fraction, test_fraction=config.test_fraction)
    x, y = torch.from_numpy(data.x_train).to(device), torch.from_numpy(data.y_train).to(device)
    torch.manual_seed(config.seed)
    model = build_model(config, data.input_shape, data.n_classes).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    gen = torch.Generator().manual_seed(config.seed + 1)
    n = len(x)
    bs = min(config.batch_size, n)
    steps = n // bs

    def epoch() -> None:
        model.train()
        perm = torch.randperm(n, generator=gen).to(device)
        for b in range(steps):
            idx = perm[b * bs:(b + 1) * bs]
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                logits = model(x[idx])
            loss = F.cross_entropy(logits.float(), y[idx])
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        loss.item()  # wait for the device

    seconds, cpu = [], []
    for _ in range(config.epochs):
        t0, c0 = time.perf_counter(), time.thread_time()
        epoch()
        seconds.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
    return {"rows": pace(seconds, steps * bs), "cpu": pace(cpu[1:], steps * bs),
            "device": str(device)}


class EpochClock:
    """A Reporter in front of another that measures the CPU seconds of each epoch's training:
    from the end of the previous epoch's reporting to the rows call carrying its last step
    (validation, which comes after, is left out)."""

    def __init__(self, inner: Any):
        self.inner, self.cpu = inner, []
        self.mark = 0.0

    def start(self, *args: Any) -> None:
        self.inner.start(*args)
        self.mark = time.thread_time()  # data and model are ready; the first step is next

    def rows(self, rows: list[dict[str, Any]]) -> None:
        now = time.thread_time()
        if any(r["split"] == "train" and float(r["epoch"]).is_integer() for r in rows):
            self.cpu.append(now - self.mark)  # this batch ends an epoch's training
        self.inner.rows(rows)

    def progress(self, step: int, epoch: float) -> None:
        self.inner.progress(step, epoch)
        self.mark = time.thread_time()  # the last call before the next epoch's first step

    def __getattr__(self, name: str) -> Any:  # epoch_end, message, should_stop
        return getattr(self.inner, name)


def loop_cpu(dataset: str, amp: str = "off") -> dict[str, float]:
    """The trainer's loop in this process, writing a run directory as the CLI does; the pace of
    its training steps in CPU seconds, first epoch left out."""
    import io

    from trainer.config import make_config
    from trainer.loop import train
    from trainer.runner import FileReporter

    config = make_config({"dataset": dataset, "amp": amp})
    with tempfile.TemporaryDirectory() as tmp:
        reporter = EpochClock(FileReporter(Path(tmp), io.StringIO(), progress_bar=False))
        result = train(config, reporter)
        reporter.inner.close()
    s = result.summary
    batch = min(config.batch_size, s["dataset"]["sizes"]["train"])
    return {"cpu": pace(reporter.cpu[1:], s["steps"] // s["epochs_run"] * batch)}


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--datasets", nargs="+", help="default: digits (quick), digits mnist1d (full)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads on both sides (default 1; 0 = torch's default)")
    p.add_argument("--amp", nargs="+", default=["off"], choices=["off", "fp16", "bf16"],
                   help="mixed-precision modes to measure (default: off)")
    p.add_argument("--hand", help=argparse.SUPPRESS)  # the hand loop's child process
    args = p.parse_args()
    if args.hand:
        print(json.dumps(hand_loop(args.hand, args.amp[0])))
        return
    datasets = args.datasets or (["digits"] if args.quick else ["digits", "mnist1d"])
    rounds = args.rounds or (3 if args.quick else 5)
    use_threads(args.threads)
    print_machine("throughput")
    emit("throughput.torch_threads", args.threads or "torch default (one per core)")
    emit("throughput.rounds", rounds)
    with tempfile.TemporaryDirectory() as tmp:
        for dataset, amp in [(d, a) for d in datasets for a in args.amp]:
            hand_loop(dataset, amp)  # builds the dataset cache every side reads; warms up
            res: dict[str, list] = {}
            alternate({"cli": lambda d=dataset, a=amp: cli_run(Path(tmp), d, a),
                       "hand": lambda d=dataset, a=amp: hand_run(d, a)}, rounds, res)
            cpu: dict[str, list] = {}
            alternate({"hand": lambda d=dataset, a=amp: hand_loop(d, a),
                       "loop": lambda d=dataset, a=amp: loop_cpu(d, a)}, rounds, cpu)
            med = lambda case, key, res=res: median([r[key] for r in res[case]])  # noqa: E731
            hand, rows = med("hand", "rows"), med("cli", "rows")
            best = lambda case, res=res: max(r["rows"] for r in res[case])  # noqa: E731
            pre = f"throughput.{dataset}" + ("" if amp == "off" else f".{amp}")
            emit(f"{pre}.device", res["hand"][0]["device"])
            emit(f"{pre}.hand_samples_per_s", hand)
            emit(f"{pre}.cli_rows_samples_per_s", rows, "train rows: training steps only")
            emit(f"{pre}.cli_summary_samples_per_s", med("cli", "summary"),
                 "summary.json: whole train(), incl. validation after every epoch")
            emit(f"{pre}.ratio_rows_vs_hand", ratio(rows, hand), "target >= 0.95x")
            emit(f"{pre}.ratio_best_vs_hand", ratio(best("cli"), best("hand")),
                 "fastest round of each side: what other work on the machine slowed least")
            emit(f"{pre}.ratio_summary_vs_hand", ratio(med("cli", "summary"), hand),
                 "end to end, for reference")
            hand_cpu = median([r["cpu"] for r in cpu["hand"]])
            loop_cpu_ = median([r["cpu"] for r in cpu["loop"]])
            emit(f"{pre}.hand_cpu_samples_per_s", hand_cpu, "per CPU second, in this process")
            emit(f"{pre}.loop_cpu_samples_per_s", loop_cpu_,
                 "trainer.loop.train + FileReporter, per CPU second, in this process")
            emit(f"{pre}.ratio_cpu_loop_vs_hand", ratio(loop_cpu_, hand_cpu),
                 "CPU time: moves less with other work on the machine")


if __name__ == "__main__":
    main()
