"""The command line as users and scripts call it."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli
from trainer import runlog
from trainer.catalogue import CATALOGUE, GROUPS


def test_tricks_json_lists_the_whole_catalogue():
    proc = run_cli("tricks", "--json")
    assert proc.returncode == 0
    entries = json.loads(proc.stdout)
    assert [e["name"] for e in entries] == [t.name for t in CATALOGUE]
    smoothing = next(e for e in entries if e["name"] == "label_smoothing")
    assert smoothing["group"] == "Regularisation" and smoothing["default"] == 0.0
    assert smoothing["le"] == 0.5 and smoothing["what"] and smoothing["helps"]
    loss = next(e for e in entries if e["name"] == "loss")
    assert loss["choices"] == ["ce", "focal", "bce"]


def test_tricks_text_is_grouped():
    out = run_cli("tricks").stdout
    positions = [out.index(f"\n{g}\n") for g in GROUPS]
    assert positions == sorted(positions)
    assert "label_smoothing" in out and "flooding" in out


def test_queue_then_cancel(tmp_path: Path):
    proc = run_cli("run", "--queue", "--runs-dir", str(tmp_path), "--set", "name=My Run!",
                   "tags=a,b")
    assert proc.returncode == 0, proc.stderr
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    assert run_dir.name.endswith(run_dir.name.split("-")[-1]) and "-my-run-" in run_dir.name
    config = runlog.read_json(run_dir / runlog.CONFIG)
    assert config["name"] == "My Run!" and config["tags"] == ["a", "b"]
    assert run_cli("cancel", run_dir.name, "--runs-dir", str(tmp_path)).returncode == 0
    assert runlog.read_json(run_dir / runlog.STATUS)["state"] == "cancelled"
    again = run_cli("cancel", run_dir.name, "--runs-dir", str(tmp_path))
    assert "already cancelled" in again.stdout


def test_cancel_refuses_bad_and_unknown_ids(tmp_path: Path):
    for bad in ("../outside", "no-such-run"):
        proc = run_cli("cancel", bad, "--runs-dir", str(tmp_path))
        assert proc.returncode == 2 and proc.stderr.startswith("error: ")


def test_runs_dir_comes_from_the_environment(tmp_path: Path):
    proc = run_cli("run", "--queue", "--set", "epochs=1", env={"DANLU_RUNS_DIR": str(tmp_path)})
    assert Path(proc.stdout.strip().splitlines()[-1]).parent == tmp_path


def test_readme_trick_table_is_generated_from_the_catalogue():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    embedded = readme.split("<!-- tricks:start -->\n")[1].split("<!-- tricks:end -->")[0]
    assert embedded == run_cli("tricks", "--markdown").stdout, (
        "README.md's trick table is stale: regenerate it with python -m trainer tricks --markdown")
