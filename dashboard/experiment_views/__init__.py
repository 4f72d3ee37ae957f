"""One module per experiment kind, ``<kind>_view.py`` (its procedure is
``trainer/experiments/<kind>.py``), each with::

    TITLE: str
    INTRO: str                                   # one paragraph: what it answers
    def launcher(root: Path, allowed: bool) -> str | None   # a form; returns the new exp_id
    def result_view(root: Path, exp: Experiment) -> None    # the result of one experiment

The Experiments page finds them by kind (``view_for``), so a new procedure needs no page edit.
"""

from __future__ import annotations

import importlib
from types import ModuleType


def view_for(kind: str) -> ModuleType | None:
    try:
        return importlib.import_module(f"dashboard.experiment_views.{kind}_view")
    except ModuleNotFoundError:
        return None
