"""A Reporter that keeps everything in memory: for notebooks, benchmarks and tests.

    from trainer.config import make_config
    from trainer.loop import train
    from trainer.reporters import MemoryReporter

    reporter = MemoryReporter()
    result = train(make_config(dataset="digits", epochs=3), reporter)
    val_rows = reporter.split("val")
"""

from __future__ import annotations

from typing import Any


class MemoryReporter:
    """Collects what the training loop reports; can ask it to stop after a given step."""

    def __init__(self, stop_at_step: int | None = None, keep_rows: bool = True):
        self.log: list[dict[str, Any]] = []  # every metrics row, in order
        self.messages: list[str] = []
        self.info: dict[str, Any] = {}
        self.stop_at_step = stop_at_step
        self.keep_rows = keep_rows
        self.step = 0

    def start(self, total_steps: int, epochs: int, info: dict[str, Any]) -> None:
        self.info = {"total_steps": total_steps, "epochs": epochs, **info}

    def rows(self, rows: list[dict[str, Any]]) -> None:
        if self.keep_rows:
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
