"""More seeds for a paired experiment (ablation, stacked tricks) whose verdict is unclear.

The experiment keeps its id, its finished runs and its variants; only runs for the new seeds are
queued, and when they finish the procedure computes its table again over every seed.
"""

from __future__ import annotations

from pathlib import Path

from trainer.config import ConfigError, FieldError
from trainer.experiments import ablation, core, stack

PLANS = {ablation.KIND: ablation.plan, stack.KIND: stack.plan}


def add_seeds(root: str | Path, exp: core.Experiment, n: int) -> list[int]:
    """Queue every variant of ``exp`` for ``n`` new seeds (after the largest seed it has) and
    set it running again; returns the new seeds. Runs already there are reused as they are.

    Raises ConfigError (field ``seeds``) for a kind that has no seeds to add, a running
    experiment, ``n`` < 1 or more seeds than the limit; nothing is queued then.
    """
    if exp.kind not in PLANS:
        raise ConfigError([FieldError("seeds", f"a {exp.kind} experiment has no paired seeds "
                                      "to add to")])
    if exp.state == "running":
        raise ConfigError([FieldError("seeds", "the experiment is still running: add seeds "
                                      "when it has finished")])
    seeds = [int(s) for s in exp.spec.get("seeds", [])]
    if n < 1:
        raise ConfigError([FieldError("seeds", "add at least 1 seed")])
    if len(seeds) + n > ablation.MAX_SEEDS:
        raise ConfigError([FieldError("seeds", f"{len(seeds)} + {n} seeds is more than the "
                                      f"limit of {ablation.MAX_SEEDS}")])
    new = [max(seeds, default=-1) + 1 + i for i in range(n)]
    spec = {**exp.spec, "seeds": seeds + new}
    todo = [(role, config) for role, seed, config in PLANS[exp.kind](spec) if seed in new]
    core.validate_all([config for _, config in todo])
    exp.spec = spec
    for role, config in todo:
        core.queue_member(root, exp, config, role)
    exp.state, exp.ended, exp.error = "running", None, None
    exp.result = {k: v for k, v in exp.result.items() if k not in ("table", "excluded")}
    core.save(root, exp)
    return new
