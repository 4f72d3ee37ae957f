"""Imports every procedure module so each registers itself with core.register."""

from trainer.experiments import (  # noqa: F401 - imported for their registration
    ablation,
    batch_search,
    ensemble,
    finetuning,
    ladder,
    stack,
)
