"""Imported once by the local executor's fork server (trainer.executors): everything a run would
otherwise import or set up lazily before its first step, done before any run is forked from it.

Measured on the 2-core machine, a forked run spent seconds before its first metrics row without
this: the first optimizer imports ``torch._dynamo``, and the first convolution sets up its
kernels. Two short trainings (stopped after two steps) of the default models go through every
one of those paths. They run on one torch thread so that no OpenMP thread pool exists when runs
are forked (a pool does not survive a fork); the thread count is restored for the children.
"""

from __future__ import annotations

import contextlib

import torch
import torch._dynamo  # imported lazily by the first optimizer otherwise

from trainer.config import make_config
from trainer.loop import Cancelled, train
from trainer.reporters import MemoryReporter

WARM_CONFIGS = ({"dataset": "digits", "epochs": 1}, {"dataset": "synthetic", "epochs": 1})


def warm() -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for cfg in WARM_CONFIGS:
            with contextlib.suppress(Cancelled):
                train(make_config(cfg), MemoryReporter(stop_at_step=2, keep_rows=False))
    except Exception as exc:  # a warm-up that fails only costs the runs their start-up time
        print(f"note: the fork server could not warm up ({type(exc).__name__}: {exc})")
    finally:
        torch.set_num_threads(threads)


warm()
