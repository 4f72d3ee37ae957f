"""Widgets generated from the trick catalogue, so a new catalogue entry needs no UI code.

The config being edited lives in one plain session_state dict (``values``), not only in widget
state: Streamlit drops a widget's state when the widget is not drawn (another page, or an entry
hidden by its ``when`` condition), so widgets are re-seeded from that dict whenever their state
is missing. Each rerun: ``sync`` widget state into the dict, validate the dict, then ``render``
the widgets with each field's errors right under it.
"""

from __future__ import annotations

import copy
import json
import math
import typing
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

import streamlit as st

from trainer.catalogue import CATALOGUE, Trick, by_group, is_active
from trainer.config import FieldError

KEY_PREFIX = "cfg_"
FORM_COLUMNS = 3
CUSTOM = "custom"  # the extra choice of a "choice or list" field (focal_alpha)
_CUSTOM_SUFFIX = "__custom"


# --- how each catalogue type is edited --------------------------------------------------------


def _list_item_type(trick: Trick) -> type | None:
    """The element type of a list field (``list[float]`` -> float), else None."""
    ann = trick.annotation
    for a in (ann, *typing.get_args(ann)):
        if typing.get_origin(a) is list:
            args = typing.get_args(a)
            return args[0] if args else str
    return None


def _optional_number(trick: Trick) -> type | None:
    """int/float for ``float | None`` style fields, else None."""
    args = typing.get_args(trick.annotation)
    if type(None) in args:
        numbers = [a for a in args if a in (int, float)]
        if len(numbers) == 1:
            return numbers[0]
    return None


def widget_kind(trick: Trick) -> str:
    """toggle, select, int, float, optional_number, text, list, choice_or_list or json."""
    t = trick.type_name
    if t == "bool":
        return "toggle"
    if t == "choice":
        return "select"
    if t in ("int", "float", "str"):
        return {"str": "text"}.get(t, t)
    if _list_item_type(trick) is not None:
        return "choice_or_list" if trick.choices is not None else "list"
    if _optional_number(trick) is not None:
        return "optional_number"
    return "json"


def widget_key(name: str, prefix: str = KEY_PREFIX) -> str:
    return f"{prefix}{name}"


def default_values(entries: Iterable[Trick] = CATALOGUE) -> dict[str, Any]:
    """Every field at its default (a plain baseline)."""
    return {t.name: copy.deepcopy(t.default) for t in entries}


def _join(items: Any) -> str:
    return ", ".join(str(v) for v in items) if isinstance(items, list) else ""


def _split(text: str, item_type: type | None, label: str) -> list[Any]:
    parts = [p.strip() for p in str(text or "").split(",") if p.strip()]
    if item_type in (int, float):
        try:
            return [item_type(p) for p in parts]
        except ValueError:
            raise ValueError(f"{label}: expected numbers separated by commas") from None
    return parts


def to_widget(trick: Trick, value: Any) -> dict[str, Any]:
    """Widget state (key suffix -> state) that shows config ``value``."""
    kind = widget_kind(trick)
    if kind == "int":
        value = int(value)
    elif kind == "float":
        value = float(value)
    elif kind == "toggle":
        value = bool(value)
    elif kind == "list":
        value = _join(value)
    elif kind == "choice_or_list":
        is_choice = value in trick.choices
        return {"": value if is_choice else CUSTOM, _CUSTOM_SUFFIX: _join(value)}
    elif kind == "json":
        value = json.dumps(value)
    return {"": value}


def from_widget(trick: Trick, state: Mapping[str, Any], prefix: str = KEY_PREFIX) -> Any:
    """The config value the widgets of ``trick`` show; ValueError with a reason if unreadable."""
    key = widget_key(trick.name, prefix)
    raw = state[key]
    kind = widget_kind(trick)
    if kind in ("int", "float") and raw is None:
        raise ValueError("give a value")
    if kind == "list":
        values = _split(raw, _list_item_type(trick), "values")
        optional = type(None) in typing.get_args(trick.annotation)
        return None if optional and not values else values  # empty box: "not set"
    if kind == "choice_or_list":
        if raw != CUSTOM:
            return raw
        values = _split(state.get(key + _CUSTOM_SUFFIX, ""), _list_item_type(trick), "custom")
        if not values:
            raise ValueError("custom: give the values, separated by commas")
        return values
    if kind == "json":
        try:
            return json.loads(raw)
        except ValueError:
            raise ValueError(f"{raw!r} is not valid JSON") from None
    return raw


# --- keeping values across reruns and pages --------------------------------------------------


def seed(values: Mapping[str, Any], *, prefix: str = KEY_PREFIX, overwrite: bool = False,
         entries: Iterable[Trick] = CATALOGUE) -> None:
    """Put ``values`` into widget state; only where it is missing unless ``overwrite``.

    Call before the widgets are drawn in this run (e.g. from a button's on_click callback).
    """
    for trick in entries:
        if trick.name not in values:
            continue
        for suffix, state in to_widget(trick, values[trick.name]).items():
            key = widget_key(trick.name, prefix) + suffix
            if overwrite or key not in st.session_state:
                st.session_state[key] = state


def sync(values: MutableMapping[str, Any], *, prefix: str = KEY_PREFIX,
         entries: Iterable[Trick] = CATALOGUE) -> dict[str, str]:
    """Copy what the widgets show into ``values``; returns field -> reason for unreadable input
    (that field keeps its last good value in ``values``)."""
    problems = {}
    for trick in entries:
        if widget_key(trick.name, prefix) not in st.session_state:
            continue  # not drawn last run: ``values`` holds the truth
        try:
            values[trick.name] = from_widget(trick, st.session_state, prefix)
        except ValueError as exc:
            problems[trick.name] = str(exc)
    return problems


def errors_by_field(errors: Iterable[FieldError]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for e in errors:
        out.setdefault(e.field, []).append(e.message)
    return out


# --- drawing ---------------------------------------------------------------------------------


def plain_label(trick: Trick) -> str:
    """The trick's label as plain text (for option lists, which show no Markdown)."""
    if not trick.pitfall or "pitfall" in trick.label.lower():
        return trick.label
    return f"{trick.label} (pitfall demo)"


def label_of(trick: Trick) -> str:
    """The label of the trick's control (Markdown): pitfall demos carry a warning icon."""
    return f":material/warning: {plain_label(trick)}" if trick.pitfall else trick.label


def help_text(trick: Trick) -> str:
    """What it does / when it helps / when it hurts, as a widget's tooltip (markdown)."""
    parts = [trick.what]
    if trick.pitfall:
        parts.insert(0, "**Pitfall demonstration:** shows a mistake; never use it for real.")
    if trick.helps:
        parts.append(f"**Helps:** {trick.helps}")
    if trick.hurts:
        parts.append(f"**Hurts:** {trick.hurts}")
    if trick.show:
        parts.append(f"**Compare:** {trick.show}")
    parts.append(f"Default: `{json.dumps(trick.default)}` · field `{trick.name}`")
    return "\n\n".join(parts)


def _decimals(x: float | None) -> int:
    if x is None or not math.isfinite(x):
        return 0
    text = f"{abs(x):.10f}".rstrip("0")
    return len(text.split(".")[1]) if "." in text else 0


def _bounds(trick: Trick, number: type) -> tuple[Any, Any]:
    """Inclusive widget bounds; a strict float bound is left to validation (which says why)."""
    lo = trick.ge if trick.ge is not None else trick.gt
    hi = trick.le if trick.le is not None else trick.lt
    if number is int:
        lo = None if lo is None else int(math.floor(lo) + 1 if trick.ge is None else math.ceil(lo))
        hi = None if hi is None else int(math.ceil(hi) - 1 if trick.le is None else math.floor(hi))
    else:
        lo = None if lo is None else float(lo)
        hi = None if hi is None else float(hi)
    return lo, hi


def _number_input(trick: Trick, label: str, key: str, number: type, value: Any,
                  optional: bool) -> None:
    lo, hi = _bounds(trick, number)
    kwargs: dict[str, Any] = {"min_value": lo, "max_value": hi, "key": key,
                              "help": help_text(trick)}
    if number is int:
        kwargs["step"] = int(trick.step or 1)
    else:
        step = float(trick.step) if trick.step else None
        if step:
            kwargs["step"] = step
        # Show as many decimals as the step or the current value needs (0.0003 not 0.00).
        kwargs["format"] = f"%.{min(10, max(1, _decimals(step or 0.01), _decimals(value)))}f"
    if optional:
        kwargs["value"] = None  # an empty box means None; state comes from session_state
        kwargs["placeholder"] = "empty: not set"
    st.number_input(label, **kwargs)


def render_field(trick: Trick, values: Mapping[str, Any], errors: Iterable[str] = (), *,
                 prefix: str = KEY_PREFIX) -> None:
    """One control for ``trick`` (state seeded from ``values``), its errors right under it."""
    seed(values, prefix=prefix, entries=[trick])
    key, label, kind = widget_key(trick.name, prefix), label_of(trick), widget_kind(trick)
    help_ = help_text(trick)
    if kind == "toggle":
        st.toggle(label, key=key, help=help_)
    elif kind == "select":
        st.selectbox(label, list(trick.choices), key=key, help=help_)
    elif kind in ("int", "float"):
        _number_input(trick, label, key, int if kind == "int" else float,
                      values.get(trick.name), optional=False)
    elif kind == "optional_number":
        _number_input(trick, label, key, _optional_number(trick), values.get(trick.name),
                      optional=True)
    elif kind == "text":
        st.text_input(label, key=key, help=help_)
    elif kind == "list":
        st.text_input(label, key=key, help=help_, placeholder="comma-separated")
    elif kind == "choice_or_list":
        options = [*trick.choices, CUSTOM]
        mode = st.selectbox(label, options, key=key, help=help_)
        if mode == CUSTOM:
            st.text_input(f"{label}: custom values", key=key + _CUSTOM_SUFFIX,
                          placeholder="numbers separated by commas, e.g. 1, 2, 0.5",
                          help="One number per class, separated by commas.")
    else:
        st.text_input(f"{label} (JSON)", key=key, help=help_)
    for message in errors:
        st.error(message, icon=":material/block:")


def render_form(values: Mapping[str, Any], errors: Mapping[str, list[str]], *,
                prefix: str = KEY_PREFIX, open_groups: Iterable[str] = ("Run",),
                entries: tuple[Trick, ...] = CATALOGUE) -> list[str]:
    """One expander per catalogue group (in GROUPS order) with the active entries' controls.

    Entries whose ``when`` condition is false under ``values`` are hidden. A group with an error
    opens so the error is seen. Returns the names of the controls drawn.
    """
    drawn = []
    open_groups = set(open_groups)
    for group, tricks in by_group(entries).items():
        active = [t for t in tricks if is_active(t, dict(values))]
        has_error = any(t.name in errors for t in active)
        with st.expander(group, expanded=group in open_groups or has_error):
            # A grid keeps a 60-field form to a few screens; errors stay under their field.
            columns = st.columns(FORM_COLUMNS)
            for i, trick in enumerate(active):
                with columns[i % FORM_COLUMNS]:
                    render_field(trick, values, errors.get(trick.name, ()), prefix=prefix)
                drawn.append(trick.name)
    return drawn


def keep_widgets(keys: Iterable[str], store_key: str) -> None:
    """Keep plain widgets' values across pages: stash them each run, restore when dropped.

    Call at the top of a page, before those widgets are drawn.
    """
    stash = st.session_state.setdefault(store_key, {})
    for key in keys:
        if key in st.session_state:
            stash[key] = st.session_state[key]
        elif key in stash:
            st.session_state[key] = stash[key]

