"""What every page shares: the runs root, the store and watcher singletons, modes, error guard."""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import streamlit as st

from dashboard.store import RunStore
from dashboard.watch import RunWatcher
from trainer import runlog
from trainer.executors import default_kind

log = logging.getLogger("danlu")


def runs_root() -> Path:
    return runlog.default_runs_root().resolve()


@st.cache_resource(show_spinner=False)
def _store(root: str, read_only: bool) -> RunStore:
    return RunStore(root, read_only=read_only)


@st.cache_resource(show_spinner=False)
def _watcher(root: str) -> RunWatcher:
    # One observer per server process, shared by every session.
    return RunWatcher(root).start()


def store() -> RunStore:
    return _store(str(runs_root()), read_only())


def watcher() -> RunWatcher:
    return _watcher(str(runs_root()))


def read_only() -> bool:
    """Demo mode: no launching, cancelling, deleting or editing (DANLU_READ_ONLY=1)."""
    return os.environ.get("DANLU_READ_ONLY", "").strip().lower() in ("1", "true", "yes", "on")


# The token this session unlocked with. A plain session key, not a widget's: Streamlit drops a
# widget's state on the first rerun that does not draw it, and the box is hidden once unlocked,
# so a widget-held token was gone by the time Launch was clicked.
UNLOCKED = "danlu_unlocked"
TOKEN_ENTRY = "danlu_token_entry"  # the password box (emptied after each try)
TOKEN_NOTE = "danlu_token_note"  # why the last try was refused
WRONG_TOKEN_DELAY_S = 1.0  # each wrong try costs this much: guessing over a websocket stays slow


def _token() -> str:
    return os.environ.get("DANLU_TOKEN", "")


def _same(given: str, token: str) -> bool:
    # Constant time; bytes, because compare_digest refuses non-ASCII str.
    return hmac.compare_digest(given.encode("utf-8", "replace"), token.encode("utf-8", "replace"))


def can_write() -> bool:
    """Whether this session may change runs: not read-only, and unlocked if a token is set."""
    if read_only():
        return False
    token = _token()
    if not token:
        return True
    held = st.session_state.get(UNLOCKED)
    return isinstance(held, str) and _same(held, token)


def _unlock() -> None:
    given = st.session_state.get(TOKEN_ENTRY) or ""
    st.session_state[TOKEN_ENTRY] = ""  # never kept in the box
    if given and _same(given, _token()):
        st.session_state[UNLOCKED] = given
        st.session_state.pop(TOKEN_NOTE, None)
        return
    time.sleep(WRONG_TOKEN_DELAY_S)
    st.session_state[TOKEN_NOTE] = ("That token is wrong: nothing was unlocked." if given
                                    else "Enter the access token first.")


def _lock() -> None:
    st.session_state.pop(UNLOCKED, None)


def token_box() -> None:
    """The sidebar's lock when the server requires a token: a box to unlock this session, or
    its unlocked state and a way to lock it again. Drawn by app.py, so on every page."""
    if read_only() or not _token():
        return
    sidebar = st.sidebar.container(border=True)
    if can_write():
        sidebar.markdown(":material/lock_open: **Unlocked**: this session may launch, cancel, "
                         "edit and delete runs.")
        sidebar.button("Lock again", key="danlu_lock", on_click=_lock, icon=":material/lock:")
        return
    with sidebar.form("danlu_unlock", border=False):
        st.text_input("Access token", type="password", key=TOKEN_ENTRY,
                      help="This server was started with DANLU_TOKEN: enter it to launch, "
                      "cancel, edit or delete runs. It stays unlocked for this browser tab.")
        st.form_submit_button("Unlock", on_click=_unlock, icon=":material/lock_open:")
    if note := st.session_state.pop(TOKEN_NOTE, None):
        sidebar.error(note, icon=":material/key_off:")


def max_parallel() -> int | None:
    """$DANLU_MAX_PARALLEL for the worker the app starts; None (unset or not a number) leaves it
    to the worker's executor: one run at a time here, as many as the cluster holds on Ray."""
    try:
        return max(1, int(os.environ["DANLU_MAX_PARALLEL"]))
    except (KeyError, ValueError):
        return None


def parallel_text() -> str:
    """How many runs the app's worker trains at once, as a sentence's end."""
    if (n := max_parallel()) is not None:
        return f"{n} run(s) at a time"
    if default_kind() == "ray":
        return "as many at a time as the Ray cluster holds"
    return "1 run at a time"


@contextlib.contextmanager
def page_guard(what: str) -> Iterator[None]:
    """Show a plain message instead of a traceback if a page part fails."""
    try:
        yield
    except Exception as exc:  # st.rerun/st.stop raise BaseException and pass through
        log.exception("error while showing %s", what)
        st.error(f"Could not show {what}: {exc}. The rest of the page still works; details are "
                 "in the server log.")
