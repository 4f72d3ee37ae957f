"""The Compare page's table logic, kept free of Streamlit so it can be tested directly.

- `differing_fields`: the config fields whose values are not the same in every chosen run;
- `comparison_table`: one row per finished run, test metrics from ``summary.json`` plus those
  fields;
- `seed_groups` / `group_table`: runs that differ only by seed collapsed into mean ± std rows;
- `best_mask` / `styled_table`: the best value per column, by each column's direction, marked
  only where something shows it is more than seed noise (`marked_best`); `star_note` says so.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from pandas.io.formats.style import Styler

from dashboard.format import duration
from dashboard.run_info import RunInfo
from trainer import runlog
from trainer.catalogue import CATALOGUE


@dataclass(frozen=True)
class Column:
    key: str  # the table's column name (also the CSV header and the ?metric= value)
    metric: str  # its name in runlog's metric table (and summary.json)
    top_level: bool = False  # a number of the whole run, not of the test split
    exact: bool = False  # fixed by the config (no seed noise): a single run's value is the value

    @property
    def label(self) -> str:
        info = runlog.metric_info(self.metric)
        return "Test loss" if self.key == "test_loss" else (info.label if info else self.key)

    @property
    def best(self) -> Literal["max", "min"] | None:
        """Which end is best (runlog's table); None: not ranked (the best epoch is no score)."""
        info = runlog.metric_info(self.metric)
        if info is None or info.lower_is_better is None:
            return None
        return "min" if info.lower_is_better else "max"

    @property
    def help(self) -> str:
        info = runlog.metric_info(self.metric)
        text = info.help if info else ""
        where = "" if self.top_level else " On the test set."
        rank = {"max": " Higher is better.", "min": " Lower is better.",
                None: " Not ranked."}[self.best]
        return f"{text}{where}{rank}".strip()


COLUMNS: tuple[Column, ...] = (
    *(Column(m, m) for m in ("precision", "recall", "f1", "auc", "accuracy", "top_k_accuracy",
                             "average_precision", "ece")),
    Column("test_loss", "loss"),
    *(Column(m, m, top_level=True) for m in ("best_epoch", "wall_time_s")),
    Column("n_params", "n_params", top_level=True, exact=True),
)
BY_KEY: dict[str, Column] = {c.key: c for c in COLUMNS}
TOP_K = "top_k"  # the config field that sets the k of top_k_accuracy
# A table attribute: each row is one run (one seed), so a difference between rows has no spread
# to be weighed against (`comparison_table` sets it; `best_mask` reads it).
SINGLE_RUNS = "single_runs"


def column_label(key: str, runs: Sequence[RunInfo]) -> str:
    """The heading of column ``key`` for ``runs``: "Top-k acc." names its k ("Top-3 acc."), or
    lists the ks when the runs differ in it (runs without the setting do not count)."""
    label = BY_KEY[key].label
    if key != "top_k_accuracy":
        return label
    ks = sorted({k for r in runs if isinstance(k := r.config.get(TOP_K), int)
                 and not isinstance(k, bool)})
    if len(ks) == 1:
        return f"Top-{ks[0]} acc."
    return f"{label} (k = {', '.join(map(str, ks))})" if ks else label
METRICS: tuple[str, ...] = tuple(c.key for c in COLUMNS)
BAR_METRICS: tuple[str, ...] = tuple(c.key for c in COLUMNS if c.best)  # ranked ones only
SEED = runlog.SEED
_ORDER = {t.name: i for i, t in enumerate(CATALOGUE)}


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _field_order(field: str) -> tuple[int, str]:
    return _ORDER.get(field, len(_ORDER)), field


def differing_fields(configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Fields (``runlog.run_fields``) whose value is not the same in all ``configs``, in
    catalogue order.

    Name, tags, run id and kind never count; seed does. A field missing from a trained run's
    config counts as its catalogue default (an older trainer did not write it); a run logged by
    a script, imported or ensembled has no defaults: a field it lacks is missing.
    """
    all_fields = [runlog.run_fields(c) for c in configs]
    names = {k for f in all_fields for k in f}
    return sorted((n for n in names if len({_canonical(f.get(n)) for f in all_fields}) > 1),
                  key=_field_order)


def unique_labels(runs: Sequence[RunInfo]) -> dict[str, str]:
    """Run id -> display name; names that two runs share get the run id appended."""
    return runlog.unique_labels({r.run_id: r.name for r in runs})


def metric_values(summary: Mapping[str, Any] | None) -> dict[str, float]:
    """The table's numbers from one run's summary.json (NaN where a value is missing)."""
    out = {}
    for c in COLUMNS:
        value = (runlog.summary_value(summary, c.metric) if c.top_level
                 else runlog.summary_metric(summary, c.metric, "test"))
        out[c.key] = math.nan if value is None else value
    return out


def _display_value(value: Any) -> Any:
    # Lists and dicts (focal_alpha) would not fit a table cell as objects.
    return json.dumps(value) if isinstance(value, list | dict) else value


def comparison_table(runs: Sequence[RunInfo]) -> pd.DataFrame:
    """One row per run: ``run`` (name), ``run_id``, every `METRICS` column, then the config
    fields that differ between the runs (`differing_fields`)."""
    labels = unique_labels(runs)
    fields = differing_fields([r.config for r in runs])
    rows = []
    for r in runs:
        row: dict[str, Any] = {"run": labels[r.run_id], "run_id": r.run_id}
        row.update(metric_values(r.summary))
        values = runlog.run_fields(r.config)
        for f in fields:
            row[f] = _display_value(values.get(f))
        rows.append(row)
    table = pd.DataFrame(rows, columns=["run", "run_id", *METRICS, *fields])
    table.attrs["fields"] = fields
    table.attrs[SINGLE_RUNS] = True
    return table


def seed_groups(runs: Sequence[RunInfo]) -> list[list[RunInfo]]:
    """Runs that differ only by seed (``runlog.seed_groups``), in first-seen order."""
    return runlog.seed_groups(runs, lambda r: r.config, lambda r: r.run_id)


def has_seed_groups(runs: Sequence[RunInfo]) -> bool:
    """Whether at least two runs differ only by seed."""
    return any(len(g) > 1 for g in seed_groups(runs))


def _group_label(group: Sequence[RunInfo], fields: Sequence[str], single: bool) -> str:
    if len(group) == 1:
        return group[0].name
    first = runlog.run_fields(group[0].config)
    # Fields this group does not have (a script's run lacks the catalogue's) say nothing of it.
    described = ", ".join(f"{f}={first[f]}" for f in fields if first.get(f) is not None)
    base = group[0].name if single or not described else described
    return runlog.group_label(base, [r.config for r in group])


def group_table(runs: Sequence[RunInfo]) -> pd.DataFrame:
    """One row per seed group: the mean of each metric, ``<metric>_std`` (sample std, ddof=1;
    0 for a single run), ``n`` (runs in the group), ``run_ids``, and the differing config
    fields other than seed. Groups keep the order of ``runs``."""
    groups = seed_groups(runs)
    fields = [f for f in differing_fields([r.config for r in runs]) if f != SEED]
    rows = []
    for group in groups:
        values = pd.DataFrame([metric_values(r.summary) for r in group], columns=list(METRICS))
        row: dict[str, Any] = {"run": _group_label(group, fields, len(groups) == 1),
                               "run_id": group[0].run_id, "n": len(group),
                               "run_ids": " ".join(r.run_id for r in group)}
        for key in METRICS:
            column = values[key].to_numpy(dtype=np.float64)
            finite = column[np.isfinite(column)]
            row[key] = float(finite.mean()) if finite.size else math.nan
            row[f"{key}_std"] = float(finite.std(ddof=1)) if finite.size > 1 else (
                0.0 if finite.size else math.nan)
        values = runlog.run_fields(group[0].config)
        for f in fields:
            row[f] = _display_value(values.get(f))
        rows.append(row)
    columns = ["run", "run_id", "n", "run_ids", *METRICS, *(f"{k}_std" for k in METRICS), *fields]
    table = pd.DataFrame(rows, columns=columns)
    # Unique labels: two groups could describe themselves alike when only hidden fields differ.
    dupes = table["run"].duplicated(keep=False)
    table.loc[dupes, "run"] = table.loc[dupes, "run"] + " (" + table.loc[dupes, "run_id"] + ")"
    table.attrs["fields"] = fields
    return table


def best_value(values: pd.Series, best: str | None) -> float | None:
    """The best finite value of a column by its direction, or None when there is nothing to
    compare: no direction, fewer than two finite values, or all of them equal."""
    column = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    finite = column[np.isfinite(column)]
    if best is None or finite.size < 2 or finite.min() == finite.max():
        return None
    return float(finite.max() if best == "max" else finite.min())


def clear_of_runner_up(values: Sequence[float] | pd.Series, stds: Sequence[float] | pd.Series,
                       best: str) -> bool:
    """Whether the best mean beats the runner-up by more than their spread (the larger of the
    two standard deviations; a row without one, NaN, says nothing, so the other's is used).
    Seed noise alone must not earn a star, and two rows without any spread show none."""
    column = np.asarray(pd.to_numeric(values, errors="coerce"), dtype=np.float64)
    spread = np.asarray(pd.to_numeric(stds, errors="coerce"), dtype=np.float64)
    order = np.argsort(-column if best == "max" else column, kind="stable")
    order = order[np.isfinite(column[order])]
    if order.size < 2:
        return False
    first, second = order[0], order[1]
    known = spread[[first, second]]
    known = known[np.isfinite(known)]
    if not known.size:
        return False
    return bool(abs(column[first] - column[second]) > max(known.max(), 0.0))


def marked_best(values: pd.Series, best: str | None, spread: pd.Series | None = None,
                needs_spread: bool = False) -> np.ndarray:
    """The rows of ``values`` to mark as best (ties all marked): the best value by direction
    ``best``; with a ``spread`` (per-row std, NaN where a row has none) only when it is clear of
    the runner-up (`clear_of_runner_up`); with ``needs_spread`` and no spread, none at all (one
    run per row: nothing shows a difference is more than seed noise)."""
    column = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    none = np.zeros(column.shape, dtype=bool)
    target = best_value(values, best)
    if target is None:
        return none
    if spread is not None:
        if not clear_of_runner_up(column, spread, best):
            return none
    elif needs_spread:
        return none
    return column == target


def _spread(table: pd.DataFrame, key: str) -> pd.Series | None:
    """Column ``key``'s per-row std of a seed-group table (NaN for a group of one run: its 0 is
    no spread), or None when the table has none."""
    std = f"{key}_std"
    if std not in table:
        return None
    spread = pd.to_numeric(table[std], errors="coerce")
    return spread.where(table["n"] > 1) if "n" in table else spread


def best_mask(table: pd.DataFrame) -> pd.DataFrame:
    """True where a cell holds its column's best value worth marking; metric columns only.

    The one rule of every ★ and highlight (table, Markdown, report, bars), by `marked_best`:
    - seed groups (``<metric>_std`` columns): only where the best mean is clear of the
      runner-up by more than the spread (`clear_of_runner_up`);
    - one run per row (`comparison_table`, attribute `SINGLE_RUNS`): no spread, so none, except
      in columns fixed by the config (`Column.exact`: the parameter count);
    - other tables (an ensemble against its members): the best value.
    """
    mask = pd.DataFrame(False, index=table.index, columns=table.columns)
    single = bool(table.attrs.get(SINGLE_RUNS))
    for key in METRICS:
        if key not in table:
            continue
        column = BY_KEY[key]
        spread = None if column.exact else _spread(table, key)
        mask[key] = marked_best(table[key], column.best, spread,
                                needs_spread=single and not column.exact)
    return mask


def star_note(table: pd.DataFrame) -> str:
    """What the ★ of ``table`` means (or why there is none), for the caption under it."""
    if bool(table.attrs.get(SINGLE_RUNS)):
        return ("No ★ for a best value: each row is a single run, one seed, and a single seed "
                "has no spread, so nothing shows that a difference between rows is more than "
                "seed noise. To find out, launch each config with several seeds (Launch → "
                "Sweep → Seeds, e.g. 0, 1, 2) and group runs that differ only by seed: a ★ "
                "then marks a best mean that beats the runner-up by more than the seeds' "
                "standard deviation. Parameter counts have no noise: the fewest keeps its ★.")
    if "n" in table:
        return ("★ marks a best mean (highest for the scores, lowest for ECE, test loss and "
                "wall time) only where it beats the runner-up by more than their spread (the "
                "larger standard deviation over the seeds); a group of one run has no spread of "
                "its own. ★ on the parameter count marks the fewest.")
    return ("★ marks the best value of a column: highest for the scores, lowest for ECE, test "
            "loss, wall time and parameter count.")


def format_value(key: str, value: float) -> str:
    if not math.isfinite(value):
        return "—"
    if key in ("best_epoch", "n_params"):
        return f"{value:,.0f}"
    if key == "wall_time_s":
        return duration(value)
    return f"{value:.4f}"


def _plain(value: Any) -> str:
    """A config value as a user would type it: 0.1 not 0.100000, '—' for none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:g}" if isinstance(value, float) else str(value)


def cell_text(key: str, value: float, std: float | None = None, best: bool = False) -> str:
    """'★ 0.8123', or '0.8123 ± 0.0100' for a group of several seeds."""
    text = format_value(key, value)
    if std is not None and math.isfinite(value) and math.isfinite(std):
        spread = {"best_epoch": f"{std:.1f}", "n_params": f"{std:,.0f}"}.get(key)
        text += f" ± {spread or format_value(key, std)}"
    return ("★ " if best else "") + text


def styled_table(table: pd.DataFrame, highlight: str = "background-color: #fde2c8; "
                 "font-weight: 600") -> Styler:
    """A Styler of the visible columns: the cells of `best_mask` marked with ★ and
    ``highlight``, groups of several seeds shown as 'mean ± std'. The numbers underneath stay
    numeric for sorting."""
    grouped = "n" in table.columns
    # The spread is shown inside the mean's cell; a group has several ids (they are in the CSV).
    hidden = [c for c in table.columns
              if c.endswith("_std") or c == "run_ids" or (grouped and c == "run_id")]
    visible = table.drop(columns=hidden)
    mask = best_mask(table)[visible.columns]  # the spreads decide where a star goes
    fields = [c for c in table.attrs.get("fields", []) if c in visible.columns]
    styler = visible.style.format(_plain, subset=fields)
    for key in METRICS:
        styler = styler.format(lambda v, k=key: cell_text(k, float(v)), subset=[key])
        # A '± std' and the star depend on the row, not just the value: set one by one.
        for i in table.index:
            std = float(table.at[i, f"{key}_std"]) if grouped and table.at[i, "n"] > 1 else None
            if std is None and not mask.at[i, key]:
                continue
            text = cell_text(key, float(table.at[i, key]), std, bool(mask.at[i, key]))
            styler = styler.format(lambda _v, t=text: t, subset=(i, key))
    return styler.apply(lambda _: np.where(mask, highlight, ""), axis=None)


def display_rows(table: pd.DataFrame) -> tuple[list[str], list[list[Any]]]:
    """A `comparison_table` or `group_table` as the header and rows people read: metric cells
    as (text, value, best) with '★' and 'mean ± std', other cells as plain text or numbers."""
    grouped = "n" in table.columns
    fields = list(table.attrs.get("fields", []))
    mask = best_mask(table)
    header = ["group" if grouped else "run", *(["n"] if grouped else []), "run ids",
              *(BY_KEY[k].label for k in METRICS), *fields]
    rows = []
    for i in table.index:
        row: list[Any] = [table.at[i, "run"]]
        if grouped:
            row.append(int(table.at[i, "n"]))
        row.append(table.at[i, "run_ids"] if grouped else table.at[i, "run_id"])
        for key in METRICS:
            value = float(table.at[i, key])
            std = float(table.at[i, f"{key}_std"]) if grouped and table.at[i, "n"] > 1 else None
            best = bool(mask.at[i, key])
            row.append((cell_text(key, value, std, best), value, best))
        row += [_plain(table.at[i, f]) for f in fields]
        rows.append(row)
    return header, rows


def to_markdown(table: pd.DataFrame) -> str:
    """The table as GitHub-flavoured Markdown, for a pull request or a chat message: the same
    cells as on screen (★ best, mean ± std for seed groups), without the run ids."""
    header, rows = display_rows(table)
    keep = [i for i, h in enumerate(header) if h != "run ids"]

    def cell(value: Any) -> str:
        text = value[0] if isinstance(value, tuple) else str(value)
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header[i] for i in keep) + " |",
             "|" + "|".join("---" if i < (2 if "n" in header else 1) else "---:"
                            for i in keep) + "|"]
    lines += ["| " + " | ".join(cell(row[i]) for i in keep) + " |" for row in rows]
    return "\n".join(lines)


def to_csv(table: pd.DataFrame) -> bytes:
    """The comparison table as CSV (every column, full precision)."""
    return table.to_csv(index=False).encode("utf-8")
