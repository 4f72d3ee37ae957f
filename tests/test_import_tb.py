"""Importing TensorBoard event files and CSV chart downloads as Danlu runs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorboard", reason="the importer's optional dependency")
from torch.utils.tensorboard import SummaryWriter

from dashboard.store import RunStore
from tests.conftest import run_cli
from trainer import external
from trainer.imports import ImportProblem, run_import

T0 = 1.7e9
N = 2500  # more than the 1,000 scalars per tag TensorBoard's own accumulator keeps


def write_logs(logdir: Path) -> dict[str, dict[str, list[tuple[int, float, float]]]]:
    """Two runs as TensorBoard groups them (one nested), every tag naming style, hparams.
    Returns run folder -> tag -> [(step, wall time, value as float32)]."""
    rng = np.random.default_rng(0)
    written: dict[str, dict[str, list]] = {"exp/a": {}, "exp/nested/b": {}}
    w = SummaryWriter(str(logdir / "exp" / "a"))
    for step in range(N):
        for tag in ("train/loss", "loss/val", "accuracy"):
            value = float(rng.normal())
            wall = T0 + step * 0.5 + (0.1 if tag == "accuracy" else 0.0)
            w.add_scalar(tag, value, step, walltime=wall)
            written["exp/a"].setdefault(tag, []).append((step, wall, float(np.float32(value))))
    w.add_histogram("weights", np.arange(10.0), 0)
    w.close()
    w = SummaryWriter(str(logdir / "exp" / "nested" / "b"))
    for step in range(0, 50, 5):
        w.add_scalar("Loss/Train", step / 10, step, walltime=T0 + 1000 + step)
        written["exp/nested/b"].setdefault("Loss/Train", []).append(
            (step, T0 + 1000 + step, float(np.float32(step / 10))))
    w.add_hparams({"lr": 0.1, "optimizer": "sgd"}, {"hparam/accuracy": 0.75}, run_name=".")
    w.close()
    return written


def by_name(root: Path) -> dict:
    return {r.name: r for r in RunStore(root).list_runs()}


def test_every_point_of_every_run_imports_with_its_step_wall_time_and_value(tmp_path: Path
                                                                              ) -> None:
    logs, root = tmp_path / "logs", tmp_path / "runs"
    written = write_logs(logs)
    done = run_cli("import", "tensorboard", str(logs), "--runs-dir", str(root))
    assert done.returncode == 0, done.stderr
    assert f"{3 * N:,} points of 3 scalar tags" in done.stdout
    assert "skipped 1 tag(s) that are not scalars (histograms): weights" in done.stderr

    runs = by_name(root)
    assert set(runs) == {"logs/exp/a", "logs/exp/nested/b"}
    store = RunStore(root)
    a = runs["logs/exp/a"]
    assert a.state == "finished" and not a.problems and external.is_external(a.config)
    assert a.started == T0  # the first event's wall time
    frame = store.metrics(a.run_id)
    for tag, split, metric in (("train/loss", "train", "loss"), ("loss/val", "val", "loss"),
                               ("accuracy", "train", "accuracy")):
        got = frame[(frame["split"] == split) & frame[metric].notna()]
        steps, walls, values = zip(*written["exp/a"][tag], strict=True)
        assert list(got["step"]) == list(steps)  # every point, in order, none sampled away
        np.testing.assert_array_equal(got[metric].to_numpy(np.float32), np.float32(values))
        np.testing.assert_allclose(a.started + got["t"].to_numpy(), walls, rtol=0, atol=1e-6)

    b = runs["logs/exp/nested/b"]
    assert b.config["lr"] == 0.1 and b.config["optimizer"] == "sgd"  # the hparams plugin
    frame = store.metrics(b.run_id)
    got = frame[frame["Loss"].notna()]
    assert list(got["split"].unique()) == ["train"] and list(got["step"]) == list(range(0, 50, 5))
    assert frame["hparam/accuracy"].dropna().tolist() == [0.75]


def test_importing_again_updates_instead_of_duplicating(tmp_path: Path) -> None:
    logs, root = tmp_path / "logs", tmp_path / "runs"
    write_logs(logs)
    first = run_import("tensorboard", logs, root)
    assert not any(r.updated for r in first)
    w = SummaryWriter(str(logs / "exp" / "a"))  # the run went on: a second event file
    w.add_scalar("train/loss", 0.5, N, walltime=T0 + N)
    w.close()
    again = run_import("tensorboard", logs, root)
    assert [r.run_id for r in again] == [r.run_id for r in first] and all(r.updated for r in again)
    assert len(RunStore(root).list_runs()) == 2
    a = by_name(root)["logs/exp/a"]
    frame = RunStore(root).metrics(a.run_id)
    assert frame[frame["split"] == "train"]["loss"].notna().sum() == N + 1


def test_a_truncated_or_corrupt_event_file_imports_what_it_can_and_says_so(tmp_path: Path
                                                                          ) -> None:
    logs, root = tmp_path / "logs", tmp_path / "runs"
    write_logs(logs)
    (events,) = (logs / "exp" / "a").glob("events.out.tfevents.*")
    data = events.read_bytes()
    events.write_bytes(data[: len(data) // 2])  # cut in the middle of a record, probably
    b_events = sorted((logs / "exp" / "nested" / "b").glob("events.out.tfevents.*"))[0]
    corrupt = bytearray(b_events.read_bytes())
    corrupt[len(corrupt) // 2] ^= 0xFF  # a flipped byte: that record's CRC fails
    b_events.write_bytes(bytes(corrupt))
    (logs / "junk").mkdir()
    (logs / "junk" / "events.out.tfevents.0.host").write_bytes(os.urandom(300))

    runs = {r.name: r for r in run_import("tensorboard", logs, root)}
    assert set(runs) == {"logs/exp/a", "logs/exp/nested/b"}  # junk has no scalars: no run
    a = runs["logs/exp/a"]
    assert 0 < a.points < 3 * N
    assert any(events.name in s and "truncated or corrupt record" in s for s in a.skipped)
    b = runs["logs/exp/nested/b"]
    assert 0 < b.points < 10 and any("corrupt" in s for s in b.skipped)
    frame = RunStore(root).metrics(a.run_id)
    assert len(frame) > 0 and frame["step"].is_monotonic_increasing


def test_a_folder_without_event_files_is_refused_with_the_reason(tmp_path: Path) -> None:
    done = run_cli("import", "tensorboard", str(tmp_path), "--runs-dir", str(tmp_path / "r"))
    assert done.returncode == 2 and "holds no TensorBoard event files" in done.stderr
    with pytest.raises(ImportProblem, match="is not a folder"):
        run_import("tensorboard", tmp_path / "missing", tmp_path / "r")


# --- CSV chart downloads ---------------------------------------------------------------------


def test_csv_downloads_of_wandb_and_tensorboard_import(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    wandb = tmp_path / "wandb_export.csv"
    wandb.write_text("Step,net-1 - train/loss,net-1 - train/loss__MIN,net-1 - train/loss__MAX,"
                     "net-2 - train/loss\n0,1.5,1.4,1.6,2.0\n1,1.25,,,\n2,,,,1.0\n")
    tb = tmp_path / "run-.-tag-loss_val.csv"
    tb.write_text("Wall time,Step,Value\n1700000000.5,10,0.5\n1700000002.5,20,0.25\n")
    done = run_cli("import", "csv", str(wandb), "--runs-dir", str(root))
    assert done.returncode == 0, done.stderr
    run_cli("import", "csv", str(tb), "--runs-dir", str(root))
    again = run_import("csv", wandb, root)  # updates, no copies
    assert all(r.updated for r in again)
    runs = by_name(root)
    assert set(runs) == {"net-1", "net-2", "loss/val"}
    store = RunStore(root)
    net1 = store.metrics(runs["net-1"].run_id)
    assert list(net1["step"]) == [0, 1] and list(net1["loss"]) == [1.5, 1.25]
    assert "loss__MIN" not in net1.columns
    assert list(store.metrics(runs["net-2"].run_id)["step"]) == [0, 2]
    val = store.metrics(runs["loss/val"].run_id)
    assert list(val["split"]) == ["val", "val"] and list(val["t"]) == [0.0, 2.0]
    assert runs["loss/val"].started == 1700000000.5


@pytest.mark.parametrize(("text", "message"), [
    ("loss,acc\n1,2\n", "has no step column"),
    ("step,loss\n1,0.5\n2,abc\n", "line 3, column 'loss' has 'abc', which is not a number"),
    ("step,loss\n1,0.5,7\n", "line 2 has 3 fields but the header has 2"),
    ("", "is empty"),
])
def test_bad_csv_files_say_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "metrics.csv"
    path.write_text(text)
    done = run_cli("import", "csv", str(path), "--runs-dir", str(tmp_path / "runs"))
    assert done.returncode == 2 and message in done.stderr and "metrics.csv" in done.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_the_import_page_imports_and_says_what_it_did(runs_dir: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    from tests.conftest import ROOT

    monkeypatch.setenv("DANLU_DATA_DIR", str(tmp_path / "data"))
    logs = tmp_path / "data" / "logs"
    write_logs(logs)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("dashboard/pages/import_runs.py").run()
    at.text_input(key="import_path").set_value(str(tmp_path / "data" / "nowhere"))
    at.button[0].click().run()
    assert [e.value for e in at.error] == [f"Nothing imported: {tmp_path / 'data' / 'nowhere'} "
                                           "is not a folder"]
    at.text_input(key="import_path").set_value("/etc")  # outside the data folder: refused
    at.button[0].click().run()
    assert "this server imports only from" in at.error[0].value
    at.text_input(key="import_path").set_value(str(logs))
    at.button[0].click().run()
    assert not at.exception and not at.error
    assert any(f"{3 * N:,} points of 3 scalar tags" in s.value for s in at.success)
    assert any("not scalars (histograms): weights" in w.value for w in at.warning)
    assert {r.name for r in RunStore(runs_dir).list_runs()} == {"logs/exp/a", "logs/exp/nested/b"}
