"""trainer.track: a user's own script logs runs that every page reads like the trainer's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, precision_recall_fscore_support, roc_auc_score

from dashboard import compare_table as cmp
from dashboard.store import RunStore
from tests.conftest import ROOT
from tests.fakeruns import make_run
from trainer import external, runlog
from trainer import track as trk

# A user's script, as the README shows it: W&B's names, no torch, predictions at the end.
USER_SCRIPT = """
import sys
import numpy as np
import pandas as pd
import trainer.track as wandb

run = wandb.init(name="my script", config={"lr": 0.05, "layers": 3, "seed": 1}, tags=["mine"])
for step in range(200):
    wandb.log({"train/loss": 1.0 / (step + 1), "lr": 0.05})
    if step % 50 == 49:
        wandb.log({"loss": 0.5, "accuracy": 0.8, "split": "val", "epoch": step // 50 + 1},
                  step=step)
rng = np.random.default_rng(0)
y_true = rng.integers(0, 4, 300)
y_prob = rng.dirichlet(np.ones(4), 300)
y_prob[np.arange(300), y_true] += 1.0
y_prob /= y_prob.sum(1, keepdims=True)
np.savez("truth.npz", y_true=y_true, y_prob=y_prob)
wandb.log_predictions(y_true, y_prob)
wandb.finish()
print("heavy imports:", sorted(m for m in ("torch", "streamlit") if m in sys.modules))
"""


def run_script(tmp_path: Path, code: str, *, wait: bool = True, timeout: float = 60
               ) -> subprocess.CompletedProcess | subprocess.Popen:
    """Run ``code`` as the user would, from a folder of their own, with ``trainer`` importable
    (as `pip install -e .` makes it) and the runs root at tmp_path/runs."""
    script = tmp_path / "user_script.py"
    script.write_text(textwrap.dedent(code))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DANLU_RUNS_DIR": str(tmp_path / "runs")}
    args = [sys.executable, str(script)]
    if not wait:
        return subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    return subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=timeout)


def only_run(root: Path):
    runs = RunStore(root).list_runs()
    assert len(runs) == 1, [r.run_id for r in runs]
    return runs[0]


def wait_for(check, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_users_script_logs_a_run_the_store_and_compare_read(tmp_path: Path) -> None:
    done = run_script(tmp_path, USER_SCRIPT)
    assert done.returncode == 0, done.stderr
    assert "heavy imports: []" in done.stdout  # logging needs neither torch nor Streamlit
    root = tmp_path / "runs"
    run = only_run(root)
    assert run.state == "finished" and not run.problems
    assert run.name == "my script" and run.tags == ["mine"]
    assert external.is_external(run.config) and run.config["lr"] == 0.05

    store = RunStore(root)
    frame = store.metrics(run.run_id)
    train = frame[frame["split"] == "train"]
    assert list(train["step"]) == list(range(200))  # auto-incremented from 0, every row kept
    np.testing.assert_allclose(train["loss"], [1.0 / (s + 1) for s in range(200)], rtol=1e-6)
    val = frame[frame["split"] == "val"]
    assert list(val["epoch"]) == [1, 2, 3, 4] and list(val["accuracy"]) == pytest.approx([0.8] * 4)

    with np.load(tmp_path / "truth.npz") as npz:
        y_true, y_prob = npz["y_true"], npz["y_prob"]
    y_pred = y_prob.argmax(1)
    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, average="macro")
    test = run.summary["test"]
    assert test["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert (test["precision"], test["recall"], test["f1"]) == pytest.approx((p, r, f))
    assert test["auc"] == pytest.approx(roc_auc_score(y_true, y_prob, multi_class="ovr"),
                                        rel=1e-5)
    stored = store.predictions(run.run_id)
    assert stored is not None and np.array_equal(stored[0], y_true)

    # Compare: the script's run beside a trainer run, with its own config fields, no defaults.
    trained = make_run(root, "20260101-000000-trained", seed=3)
    runs = RunStore(root).list_runs()
    table = cmp.comparison_table(runs).set_index("run_id")
    assert table.loc[run.run_id, "f1"] == pytest.approx(f)
    assert {"lr", "layers", "dropout"} <= set(table.attrs["fields"])
    assert table.loc[run.run_id, "layers"] == 3 and pd.isna(table.loc[trained.name, "layers"])
    assert pd.isna(table.loc[run.run_id, "dropout"])  # not the catalogue's default 0.0
    assert table.loc[trained.name, "dropout"] == 0.0
    assert "kind" not in table.attrs["fields"]


def test_keys_name_the_split_and_steps_count_up(tmp_path: Path) -> None:
    run = trk.init(name="keys", config={"a": 1}, runs_dir=tmp_path)
    try:
        run.log({"train/loss": 1.0, "loss/val": 2.0, "accuracy": 0.5, "eval/f1": 0.25,
                 "note": "text is left out"})
        run.log({"loss": 3.0, "split": "validation"}, step=10)
        trk.log({"loss": 4.0}, commit=False)  # W&B: the next call logs at the same step
        trk.log({"lr": 0.1})
    finally:
        trk.finish()
    rows = runlog.JsonlTail(run.dir / runlog.METRICS).read_new()
    by = {(r["split"], r["step"]): r for r in rows}
    assert by[("train", 0)] == {"split": "train", "step": 0, "t": by[("train", 0)]["t"],
                                "loss": 1.0, "accuracy": 0.5}
    assert by[("val", 0)]["loss"] == 2.0 and by[("val", 0)]["f1"] == 0.25
    assert by[("val", 10)]["loss"] == 3.0
    at_11 = [r for r in rows if r["step"] == 11]
    assert [(r["split"], r.get("loss"), r.get("lr")) for r in at_11] == [
        ("train", 4.0, None), ("train", None, 0.1)]
    assert len(rows) == 5
    info = RunStore(tmp_path).get(run.id)
    assert info.state == "finished" and not info.problems  # no predictions is no problem here
    assert trk.run is None
    with pytest.raises(RuntimeError, match="init"):
        trk.log({"loss": 1.0})


def test_bad_predictions_are_refused_with_the_reason(tmp_path: Path) -> None:
    with trk.init(name="bad", runs_dir=tmp_path) as run:
        with pytest.raises(ValueError, match="sum to 1"):
            run.log_predictions([0, 1], [[2.0, -1.0], [0.3, 0.7]])
        with pytest.raises(ValueError, match=r"outside 0\.\.1"):
            run.log_predictions([0, 2], [[0.5, 0.5], [0.3, 0.7]])
        with pytest.raises(ValueError, match="one label per row"):
            run.log_predictions([0, 1, 1], [[0.5, 0.5], [0.3, 0.7]])
        binary = run.log_predictions([0, 1, 1, 0], [0.2, 0.9, 0.6, 0.4])  # P(class 1)
    assert binary["accuracy"] == 1.0 and binary["auc"] == 1.0
    with pytest.raises(ValueError, match="Danlu's own"):
        trk.init(name="x", config={"kind": "mine"}, runs_dir=tmp_path)


RAISES_IN_WITH = """
import trainer.track as wandb
with wandb.init(name="raises") as run:
    run.log({"loss": 1.0})
    raise ValueError("diverged at step 3")
"""

RAISES_UNHANDLED = """
import trainer.track as wandb
wandb.init(name="raises")
wandb.log({"loss": 1.0})
raise ValueError("diverged at step 3")
"""


@pytest.mark.parametrize("code", [RAISES_IN_WITH, RAISES_UNHANDLED], ids=["with", "unhandled"])
def test_a_script_that_raises_ends_failed_with_its_traceback(tmp_path: Path, code: str) -> None:
    done = run_script(tmp_path, code)
    assert done.returncode == 1 and "ValueError: diverged at step 3" in done.stderr
    run = only_run(tmp_path / "runs")
    assert run.state == "failed" and run.reason == "ValueError: diverged at step 3"
    assert "Traceback" in run.error and "user_script.py" in run.error
    assert run.ended is not None


LOOPS = """
import time
import trainer.track as wandb
wandb.init(name="loops")
step = 0
while True:
    wandb.log({"train/loss": 1.0 / (step + 1)})
    step += 1
    time.sleep(0.001)
"""


@pytest.mark.parametrize(("sig", "state"), [(signal.SIGKILL, "lost"),
                                            (signal.SIGTERM, "cancelled")])
def test_a_killed_script_is_lost_and_a_terminated_one_cancelled(tmp_path: Path, sig: int,
                                                                 state: str) -> None:
    root = tmp_path / "runs"
    proc = run_script(tmp_path, LOOPS, wait=False)
    try:
        # Rows reach the store while the script runs (flushed at least once a second).
        run_id = wait_for(lambda: [r.run_id for r in RunStore(root).list_runs()], "the run")[0]
        store = RunStore(root)
        wait_for(lambda: len(store.metrics(run_id)) > 20, "rows in the store")
        assert store.get(run_id).state == "running"
        proc.send_signal(sig)
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == -sig  # a SIGTERM still ends the script as it would have
    run = RunStore(root).get(run_id)
    assert run.state == state
    if state == "cancelled":
        assert run.reason == "stopped by SIGTERM" and run.ended is not None


def test_a_script_that_ends_without_finish_is_finished(tmp_path: Path) -> None:
    done = run_script(tmp_path, """
        import trainer.track as wandb
        wandb.init(name="no finish")
        for step in range(5):
            wandb.log({"loss": 1.0 / (step + 1)})
    """)
    assert done.returncode == 0, done.stderr
    run = only_run(tmp_path / "runs")
    assert run.state == "finished" and run.step == 4 and run.ended is not None
    assert len(RunStore(tmp_path / "runs").metrics(run.run_id)) == 5


def test_script_runs_group_by_seed_and_join_an_ensemble(tmp_path: Path) -> None:
    from trainer.experiments import ensemble_members as ens_members

    rng = np.random.default_rng(3)
    y_true = rng.integers(0, 3, 90)
    ids = []
    for seed in (0, 1):
        with trk.init(name=f"mine seed={seed}", config={"lr": 0.1, "seed": seed},
                      runs_dir=tmp_path) as run:
            run.log({"train/loss": 1.0})
            run.log_predictions(y_true, rng.dirichlet(np.ones(3), 90))
        ids.append(run.id)
    runs = RunStore(tmp_path).list_runs()
    assert cmp.has_seed_groups(runs)
    assert [sorted(r.run_id for r in g) for g in cmp.seed_groups(runs)] == [sorted(ids)]
    members = ens_members.read_members(tmp_path, ids)
    assert [m.run_id for m in members] == ids
    np.testing.assert_array_equal(members[0].y_true, y_true)


def test_the_config_reads_and_updates_as_in_wandb(tmp_path: Path) -> None:
    with trk.init(name="cfg", config={"lr": 0.1}, runs_dir=tmp_path) as run:
        assert trk.config.lr == 0.1 and run.config["lr"] == 0.1
        trk.config.update({"batch_size": 64}, allow_val_change=True)
        with pytest.raises(AttributeError):
            _ = trk.config.missing
        with pytest.raises(ValueError, match="Danlu's own"):
            trk.config.update({"kind": "x"})
    saved = runlog.read_json(run.dir / runlog.CONFIG)
    assert saved["batch_size"] == 64 and saved["lr"] == 0.1 and external.is_external(saved)


CLEANS_UP = """
import time
import trainer.track as wandb
wandb.init(name="cleans up")
try:
    while True:
        wandb.log({"train/loss": 1.0})
        time.sleep(0.001)
finally:
    print("cleaned up", flush=True)
"""


def test_cancel_from_the_app_stops_the_script_as_ctrl_c_would(tmp_path: Path) -> None:
    from trainer import queue

    root = tmp_path / "runs"
    proc = run_script(tmp_path, CLEANS_UP, wait=False)
    try:
        run_id = wait_for(lambda: [r.run_id for r in RunStore(root).list_runs()], "the run")[0]
        wait_for(lambda: len(RunStore(root).metrics(run_id)) > 5, "rows in the store")
        message = queue.cancel(root, run_id, grace_s=20)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert message == f"{run_id}: cancelled" and "cleaned up" in out
    run = RunStore(root).get(run_id)
    assert run.state == "cancelled" and run.reason == "cancelled from Danlu"
