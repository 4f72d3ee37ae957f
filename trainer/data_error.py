"""DataError, on its own so that trainer.data and the file readers it loads lazily
(trainer.datasets_files) both use it without importing each other (an import cycle)."""

from __future__ import annotations


class DataError(ValueError):
    """Bad dataset name, option or user file; the message is meant for the user, ``field`` is
    the config field to change (None when it is not one field)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field
