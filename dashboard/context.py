"""What every page shares: the runs root, the store and watcher singletons, modes, error guard."""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import streamlit as st

from dashboard.store import RunStore
from dashboard.watch import RunWatcher
from trainer import runlog

log = logging.getLogger("danlu")


def runs_root() -> Path:
    return runlog.default_runs_root().resolve()


@st.cache_resource(show_spinner=False)
def _store(root: str) -> RunStore:
    return RunStore(root)


@st.cache_resource(show_spinner=False)
def _watcher(root: str) -> RunWatcher:
    # One observer per server process, shared by every session.
    return RunWatcher(root).start()


def store() -> RunStore:
    return _store(str(runs_root()))


def watcher() -> RunWatcher:
    return _watcher(str(runs_root()))


def read_only() -> bool:
    """Demo mode: no launching, cancelling, deleting or editing (DANLU_READ_ONLY=1)."""
    return os.environ.get("DANLU_READ_ONLY", "").strip().lower() in ("1", "true", "yes", "on")


def can_write() -> bool:
    """Whether this session may change runs: not read-only, and holding the token if one is set."""
    if read_only():
        return False
    token = os.environ.get("DANLU_TOKEN", "")
    if not token:
        return True
    return hmac.compare_digest(st.session_state.get("danlu_token", ""), token)


def token_box() -> None:
    """A sidebar field for the launch token, shown only when the server requires one."""
    if os.environ.get("DANLU_TOKEN") and not read_only() and not can_write():
        st.sidebar.text_input("Access token", type="password", key="danlu_token",
                              help="This server was started with DANLU_TOKEN: enter it to launch, "
                              "cancel, edit or delete runs.")


def max_parallel() -> int:
    try:
        return max(1, int(os.environ.get("DANLU_MAX_PARALLEL", "1")))
    except ValueError:
        return 1


@contextlib.contextmanager
def page_guard(what: str) -> Iterator[None]:
    """Show a plain message instead of a traceback if a page part fails."""
    try:
        yield
    except Exception as exc:  # st.rerun/st.stop raise BaseException and pass through
        log.exception("error while showing %s", what)
        st.error(f"Could not show {what}: {exc}. The rest of the page still works; details are "
                 "in the server log.")
