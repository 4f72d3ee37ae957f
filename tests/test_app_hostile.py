"""Pages with a hostile run in the root: Runs, Compare and the Launch queue still render every
other run and the bad run is one warning (issue 10, item 3); read-only viewing writes nothing
(item 13)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT
from tests.fakeruns import make_run
from tests.hostile_runs import CONTROL, QUEUED, make_hostile_root

APP = str(ROOT / "app.py")


def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error] + [str(e.value) for e in at.exception]


def _open(page: str | None, runs: list[str]) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["runs"] = ",".join(runs)
    if page:
        at.switch_page(page)
    return at.run(timeout=60)


@pytest.mark.parametrize("kind", ["pid-huge", "deep-status", "fifo-status", "step-negative",
                                  "summary-shapes"])
def test_pages_render_with_one_hostile_run(runs_dir: Path, spawned: list, kind: str) -> None:
    (bad,) = make_hostile_root(runs_dir, cases=[kind])
    runs = _open(None, [CONTROL, bad])
    assert not _errors(runs), _errors(runs)
    assert any(bad in w.value for w in runs.warning)  # the problems expander names it
    drawn = [c for c in runs.get("vega_lite_chart") if '"preload"' not in c.proto.spec]
    assert drawn  # the control run's curves

    compare = _open("dashboard/pages/compare.py", [CONTROL, bad])
    assert not _errors(compare), _errors(compare)
    shown = compare.dataframe[0].value
    assert "control" in shown.to_string()

    launch = _open("dashboard/pages/launch.py", [])
    assert not _errors(launch), _errors(launch)
    assert launch.button(key=f"cancel_{QUEUED}")  # the queue still lists the good run


def _snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every path under ``root`` with its mode, size and content hash."""
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        out[str(path.relative_to(root))] = (st.st_mode, st.st_size, digest)
    return out


def test_read_only_viewing_writes_nothing(runs_dir: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    monkeypatch.setenv("DANLU_READ_ONLY", "1")
    monkeypatch.setenv("DANLU_METRICS_CACHE", "1")
    long_runs = [make_run(runs_dir, f"20260101-00000{i}-long", steps=11_000, seed=i).name
                 for i in range(2)]  # long enough that viewing would write a metrics cache
    before = _snapshot(runs_dir)
    for page in (None, "dashboard/pages/compare.py"):
        at = _open(page, long_runs)
        assert not _errors(at), _errors(at)
    assert _snapshot(runs_dir) == before
    assert not any(name.endswith(".arrow") for name in os.listdir(runs_dir / long_runs[0]))
