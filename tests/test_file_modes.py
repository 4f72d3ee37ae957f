"""One file mode for a shared runs root: what a plain open() gives, 0666 less the umask (issue 10,
item 14; JSON files from mkstemp were 0600 while metrics were 0644)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.fakeruns import make_run
from trainer import columnar, runlog


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_every_file_a_run_writes_has_the_umask_mode(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        run = make_run(tmp_path, "20260101-000000-modes", steps=11_000)
        runlog.update_status(run, reason="rewritten")
        runlog.write_json_atomic(run / "meta.json", {"tags": []})
        columnar.write_final_cache(run / runlog.METRICS)
        assert runlog.file_mode() == 0o666 & ~umask
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in run.iterdir()}
    assert columnar.CACHE in modes
    assert modes == dict.fromkeys(modes, 0o666 & ~umask), modes
    assert stat.S_IMODE(run.stat().st_mode) == 0o777 & ~umask
