"""Experiment procedures: ablation, stacked tricks, batch-size search, tuning ladder, ensembles,
fine-tuning.

Importing this package registers every procedure (see ``procedures.py``).
"""

from trainer.experiments import procedures  # noqa: F401 - registers the procedures
from trainer.experiments.core import (
    PROCEDURES,
    Experiment,
    Member,
    MemberState,
    advance_all,
    create,
    list_experiments,
    load,
)

__all__ = ["PROCEDURES", "Experiment", "Member", "MemberState", "advance_all", "create",
           "list_experiments", "load"]
