"""Shared fixtures: an in-memory reporter, a tiny-run helper, an isolated dataset cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True, scope="session")
def _dataset_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    # One cache per test session: MNIST-1D is generated once, and the user's cache is untouched.
    os.environ["DANLU_CACHE_DIR"] = str(tmp_path_factory.mktemp("danlu-cache"))


class MemoryReporter:
    """Collects what the training loop reports; can ask it to stop after a given step."""

    def __init__(self, stop_at_step: int | None = None):
        self.log: list[dict[str, Any]] = []  # every metrics row, in order
        self.messages: list[str] = []
        self.info: dict[str, Any] = {}
        self.stop_at_step = stop_at_step
        self.step = 0

    def start(self, total_steps: int, epochs: int, info: dict[str, Any]) -> None:
        self.info = {"total_steps": total_steps, "epochs": epochs, **info}

    def rows(self, rows: list[dict[str, Any]]) -> None:
        self.log.extend(rows)

    def progress(self, step: int, epoch: float) -> None:
        self.step = step

    def epoch_end(self, epoch: int, train_loss: float, val: dict[str, Any]) -> None:
        pass

    def message(self, text: str) -> None:
        self.messages.append(text)

    def should_stop(self) -> bool:
        return self.stop_at_step is not None and self.step >= self.stop_at_step

    def split(self, split: str) -> list[dict[str, Any]]:
        return [r for r in self.log if r["split"] == split]


TINY = {"dataset": "synthetic", "n_samples": 600, "n_features": 10, "n_classes": 3, "epochs": 5,
        "batch_size": 32, "lr": 3e-3}


def train_tiny(**overrides: Any):
    """Train a small run in-process; returns (TrainResult, MemoryReporter)."""
    from trainer.config import make_config
    from trainer.loop import train

    config = make_config({**TINY, **overrides})
    reporter = MemoryReporter()
    return train(config, reporter), reporter


def run_cli(*args: str, timeout: float = 300, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trainer", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})
