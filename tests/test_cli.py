"""The command line as users and scripts call it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, run_cli
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



def test_commands_that_train_nothing_do_not_load_the_science_stack(tmp_path: Path):
    """A refused config and a cancel answer at once: SciPy, pandas, scikit-learn and torch
    (over 1.5 s of imports, once pulled in by every command for the experiment procedures'
    options) load only for the commands that use them."""
    heavy = ("scipy", "pandas", "sklearn", "torch")
    script = ("import sys; from trainer.__main__ import main; code = main(sys.argv[1:]); "
              f"print(code, [m for m in {heavy!r} if m in sys.modules])")
    for args in (["run", "--set", "lerning_rate=1"],
                 ["cancel", "20260101-000000-none", "--runs-dir", str(tmp_path)]):
        proc = subprocess.run([sys.executable, "-c", script, *args], cwd=ROOT, text=True,
                              capture_output=True, timeout=60)
        assert proc.stdout.strip().endswith("[]"), (args, proc.stdout, proc.stderr)
        assert int(proc.stdout.split()[0]) > 0, "the bad input was not refused"
