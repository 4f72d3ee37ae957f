"""The form that picks a baseline and tricks, shared by the ablation and the stacked tricks.

The baseline's fields come from the catalogue (``dashboard/form.py``), the tricks offered are
those with a typical value that apply to that baseline, and each trick's value can be edited as
FIELD=VALUE; the procedure's own ``make_spec`` checks it all before anything is queued.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from dashboard import context, form
from trainer import preflight, queue
from trainer.catalogue import BY_NAME, TRICKS, Trick, is_active
from trainer.config import ConfigError, FieldError, make_config
from trainer.experiments import ablation, core, paired_seeds, stack

# The base config fields offered; the rest keep their defaults (shown when their `when` holds).
BASE_FIELDS = ("dataset", "csv_path", "csv_label", "n_samples", "n_features", "n_classes",
               "imbalance", "label_noise", "model", "epochs", "batch_size", "lr", "optimizer")
DEFAULT_BASE: dict[str, Any] = {"dataset": "synthetic", "imbalance": 10.0, "n_classes": 4,
                                "epochs": 30}
DEFAULT_TRICKS = ["label_smoothing", "flooding", "loss"]

# --- launcher -----------------------------------------------------------------------------------


def _base_entries(values: dict[str, Any]) -> list[Trick]:
    return [BY_NAME[f] for f in BASE_FIELDS if is_active(BY_NAME[f], values)]


def format_overrides(overrides: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}"
                     for k, v in overrides.items())


def _candidates(base: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Tricks with a typical value that apply to ``base`` (not dataset knobs), and those that
    do not apply (e.g. flips on a tabular task)."""
    ok, hidden = [], []
    try:
        make_config(base)
    except ConfigError:  # the baseline's own error is shown first; filter once it is fixed
        base = None
    for t in TRICKS:
        if not t.try_overrides or set(t.try_overrides) & set(BASE_FIELDS):
            continue
        if base is None:
            ok.append(t.name)
            continue
        try:
            make_config({**base, **t.try_overrides})
        except ConfigError:
            hidden.append(t.name)
            continue
        ok.append(t.name)
    return ok, hidden


def _errors_by_place(exc: ConfigError, drawn: set[str]) -> dict[str, list[str]]:
    """Errors keyed by where they are shown: a drawn base field, or the tricks/seeds/toggles."""
    out: dict[str, list[str]] = {}
    for e in exc.errors:
        place = e.field if e.field in drawn or e.field in ("seeds", "all", "all_but_one") else (
            "tricks")
        out.setdefault(place, []).append(str(e) if place == "tricks" and e.field != "tricks"
                                          else e.message)
    return out


@dataclass(frozen=True)
class TrickForm:
    """What differs between the forms that pick a baseline and tricks: the ablation's, and the
    stacked tricks' (same fields, tricks in order, no all / all-but-one toggles)."""

    kind: str
    prefix: str  # widget keys
    noun: str  # "ablation": the launch button says "Launch ablation"
    pick_label: str
    pick_help: str
    toggles: bool  # all tricks together / all but one

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def launcher(self, root: Path, allowed: bool) -> str | None:
        """The ``launcher`` of the view this form is for (see `trick_launcher`)."""
        return trick_launcher(root, allowed, self)

    def make_spec(self, base: dict[str, Any], tricks: dict[str, dict], seeds: list[int],
                  all_tricks: bool, all_but_one: bool) -> dict[str, Any]:
        if self.kind == ablation.KIND:
            return ablation.make_spec(base, tricks, seeds, all_tricks=all_tricks,
                                      all_but_one=all_but_one)
        return stack.make_spec(base, tricks, seeds)


def _trick(form_kind: TrickForm, name: str) -> tuple[str, dict[str, Any]]:
    """The overrides of chosen trick ``name`` from its FIELD=VALUE box (its typical value when
    the box is empty); ConfigError saying the format is wrong when a word has no ``=VALUE``."""
    text = st.session_state.get(form_kind.key(f"trick_{name}"), "").strip()
    if not text:
        return ablation.parse_trick(name)
    if "=" not in text:
        example = format_overrides(BY_NAME[name].try_overrides) or f"{name}=VALUE"
        raise ConfigError([FieldError("tricks", f"+{name}: {text[:40]!r} is not FIELD=VALUE; "
                                      f"write e.g. {example}")])
    return ablation.parse_trick(f"{name}={text}")


def _spec(root: Path, form_kind: TrickForm, base: dict[str, Any], chosen: list[str],
          seeds: int, all_tricks: bool, all_but_one: bool, drawn: set[str]
          ) -> tuple[dict | None, dict[str, list[str]]]:
    """The spec from the form's values, or None and every error, by place."""
    _, errors = preflight.problems(base, root, preflight.data_dirs(root))
    base_ok = not errors
    tricks = []
    for name in chosen:
        try:
            label, overrides = _trick(form_kind, name)
            if base_ok:  # each variant's own problems now, beside the other boxes' ones
                make_config({**base, **overrides})
            tricks.append((label, overrides))
        except ConfigError as exc:
            errors += [FieldError("tricks", e.message if e.field == "tricks"
                                  else f"+{name}: {e}") for e in exc.errors]
    try:
        seed_list = ablation.parse_seeds(seeds)
    except ConfigError as exc:
        errors += exc.errors
    try:
        if errors:
            raise ConfigError(errors)
        spec = form_kind.make_spec(base, ablation.collect_tricks(tricks), seed_list,
                                   all_tricks, all_but_one)
    except ConfigError as exc:
        return None, _errors_by_place(exc, drawn)
    return spec, {}


def _show(errors: dict[str, list[str]], place: str) -> None:
    for message in errors.get(place, ()):
        st.error(message, icon=":material/block:")


def trick_launcher(root: Path, allowed: bool, form_kind: TrickForm) -> str | None:
    """The baseline's fields, the tricks and their values, seeds (and for the ablation its
    toggles); returns the new experiment's id on launch."""
    key = form_kind.key
    values = st.session_state.setdefault(key("values"), {**form.default_values(), **DEFAULT_BASE})
    problems = form.sync(values, prefix=form_kind.prefix)  # what the widgets showed last run
    st.session_state.setdefault(key("tricks"), list(DEFAULT_TRICKS))
    st.session_state.setdefault(key("seeds"), ablation.DEFAULT_SEEDS)
    entries = _base_entries(values)
    drawn = {t.name for t in entries}
    base = {t.name: values[t.name] for t in entries}
    options, hidden = _candidates(base)
    chosen = [n for n in st.session_state[key("tricks")] if n in options]
    spec, errors = _spec(root, form_kind, base, chosen, int(st.session_state[key("seeds")] or 0),
                         bool(st.session_state.get(key("all"))),
                         bool(st.session_state.get(key("all_but_one"))), drawn)
    for field, message in problems.items():  # unreadable input: never launch stale values
        errors.setdefault(field, []).insert(0, message)
        spec = None

    st.subheader("Baseline")
    columns = st.columns(3)
    for i, trick in enumerate(entries):
        with columns[i % 3]:
            form.render_field(trick, values, errors.get(trick.name, ()), prefix=form_kind.prefix)

    st.subheader("Tricks")
    st.session_state[key("tricks")] = chosen  # drop choices the new baseline cannot take
    st.multiselect(form_kind.pick_label, options, key=key("tricks"),
                   format_func=lambda n: f"{BY_NAME[n].label} ({n})", help=form_kind.pick_help)
    if hidden:
        st.caption(f"{len(hidden)} trick(s) do not apply to this baseline and are not offered: "
                   + ", ".join(hidden) + ".")
    if chosen:
        with st.expander("Trick values (FIELD=VALUE, separated by commas)"):
            for name in chosen:
                st.session_state.setdefault(key(f"trick_{name}"),
                                            format_overrides(BY_NAME[name].try_overrides))
                st.text_input(f"+{name}", key=key(f"trick_{name}"))
    _show(errors, "tricks")
    left, right = st.columns(2)
    with left:
        st.number_input("Seeds per variant", min_value=1, max_value=ablation.MAX_SEEDS,
                        step=1, key=key("seeds"),
                        help="Seeds 0..N-1. Every variant runs with the same seeds as the "
                        "baseline, so differences are paired by seed.")
        _show(errors, "seeds")
    if form_kind.toggles:
        with right:
            st.toggle("Also all tricks together", key=key("all"))
            _show(errors, "all")
            st.toggle("Also all but one (each trick left out once)", key=key("all_but_one"),
                      help="Shows what each trick adds on top of the others: all vs all-but-it.")
            _show(errors, "all_but_one")
    n_seeds = int(st.session_state[key("seeds")] or 0)
    if warning := paired_seeds.seed_warning(n_seeds):
        st.warning(warning[0].upper() + warning[1:] + ".")
    st.text_input("Experiment name (optional)", key=key("name"))
    return _launch(root, allowed, form_kind, spec)


def _launch(root: Path, allowed: bool, form_kind: TrickForm, spec: dict | None) -> str | None:
    button = f"Launch {form_kind.noun}"
    if spec is None:
        st.button(button, disabled=True, key=form_kind.key("launch_disabled"))
        st.caption("Fix the problems above to launch.")
        return None
    n_runs = (ablation.run_count(spec) if form_kind.kind == ablation.KIND
              else len(stack.steps(spec)) * len(spec["seeds"]))
    n_variants = n_runs // len(spec["seeds"])
    st.info(f"**{n_runs} runs** will be queued: {n_variants} variants (baseline included) × "
            f"{len(spec['seeds'])} seed(s). With {context.parallel_text()}.")
    if not st.button(button, type="primary", disabled=not allowed,
                     key=form_kind.key("launch")):
        return None
    try:
        exp = core.create(root, form_kind.kind, spec,
                          name=st.session_state.get(form_kind.key("name"), "").strip(),
                          csv_dirs=preflight.data_dirs(root))
    except ConfigError as exc:  # e.g. a field another session made invalid meanwhile
        st.error(f"Nothing was queued: {exc}")
        return None
    queue.spawn_worker(root, max_parallel=context.max_parallel())
    return exp.exp_id
