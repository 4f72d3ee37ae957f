"""Shared fixtures: a tiny in-process run, the CLI runner, an isolated dataset cache."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser_helpers import page, server  # noqa: F401  (fixtures of the browser tests)
from trainer.reporters import MemoryReporter

if TYPE_CHECKING:
    from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True, scope="session")
def _dataset_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    # One cache per test session: MNIST-1D is generated once, and the user's cache is untouched.
    os.environ["DANLU_CACHE_DIR"] = str(tmp_path_factory.mktemp("danlu-cache"))


@pytest.fixture
def runs_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty runs root the app (AppTest) uses, in write mode."""
    root = (tmp_path / "runs").resolve()
    root.mkdir()
    monkeypatch.setenv("DANLU_RUNS_DIR", str(root))
    monkeypatch.delenv("DANLU_READ_ONLY", raising=False)
    monkeypatch.delenv("DANLU_TOKEN", raising=False)
    return root


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Runs roots the app asked a worker for; the spawner is replaced so no training starts."""
    calls: list[Path] = []

    def fake_spawn(root: Any, max_parallel: int | None = None) -> bool:
        calls.append(Path(root).resolve())
        return True

    monkeypatch.setattr("trainer.queue.spawn_worker", fake_spawn)
    monkeypatch.setattr("dashboard.queueing.spawn_worker", fake_spawn)  # imported by name there
    return calls


TINY = {"dataset": "synthetic", "n_samples": 600, "n_features": 10, "n_classes": 3, "epochs": 5,
        "batch_size": 32, "lr": 3e-3}


def train_tiny(**overrides: Any):
    """Train a small run in-process; returns (TrainResult, MemoryReporter)."""
    from trainer.config import make_config
    from trainer.loop import train

    config = make_config({**TINY, **overrides})
    reporter = MemoryReporter()
    return train(config, reporter), reporter


def wait_for(predicate, what: str, timeout: float = 120):
    """The first truthy value of ``predicate()``, polled every 50 ms, or AssertionError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def run_cli(*args: str, timeout: float = 300, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trainer", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def open_experiments(kind: str | None = None) -> AppTest:
    """The app's Experiments page through AppTest, with procedure ``kind`` chosen (if given)."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.run()
    at.switch_page("dashboard/pages/experiments.py").run()
    if kind:
        at.selectbox(key="exp_kind").set_value(kind).run()
    assert not at.exception, [e.value for e in at.exception]
    return at
