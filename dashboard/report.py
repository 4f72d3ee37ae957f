"""A report: what Compare or an experiment's result view shows, as one HTML file to send.

``python -m dashboard.report RUN_ID... | --experiment EXP_ID [--runs-dir DIR] -o FILE.html``
writes it from the command line (``python -m trainer report`` runs this module: the trainer
never imports the dashboard); the Compare page and every experiment view offer the same file as
"Export report".

The charts are the app's own builders (``dashboard.curve_charts`` and its siblings, the
experiment views' charts) with the app's downsampling, so the file shows what the pages show and
stays small; `report_html` turns them into a page that needs no network.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd

from dashboard import (
    bar_charts,
    curve_charts,
    curve_frames,
    curve_view,
    metric_charts,
    prediction_charts,
    run_details,
)
from dashboard import compare_table as cmp
from dashboard.report_html import Cell, Page
from dashboard.run_info import RunInfo
from dashboard.store import RunStore
from trainer import external, runlog
from trainer.catalogue import BY_NAME
from trainer.experiments import PROCEDURES, core

TRAIN_SMOOTHING, TRAIN_STRENGTH = curve_view.DEFAULT_SMOOTHING, curve_view.DEFAULT_STRENGTH
VAL_METRICS = ("accuracy", "f1", "loss")
TABLE_ID = "danlu-metrics"


# --- what reproduces a run ------------------------------------------------------------------


def _set_value(value: Any) -> str:
    """A value as ``--set`` reads it back (`trainer.config.parse_set`): text as is, else JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def reproduce_command(config: Mapping[str, Any]) -> str | None:
    """``python -m trainer run --set ...`` with the config's non-default catalogue fields (name
    and tags left out: they do not change what is trained); None for a run Danlu did not train
    (logged from a script or imported)."""
    if not config or external.is_external(config):
        return None
    changes = run_details.config_changes(config)
    items = [f"{k}={_set_value(v)}" for k, v in changes.items() if k in BY_NAME]
    command = "python -m trainer run"
    return command + (" --set " + " ".join(shlex.quote(i) for i in items) if items else "")


def tricks_on(config: Mapping[str, Any]) -> list[str]:
    """The tricks (not settings such as dataset or lr) whose value is not the default."""
    changes = run_details.config_changes(config) if not external.is_external(config) else {}
    return [f"{k}={_set_value(v)}" for k, v in changes.items()
            if k in BY_NAME and BY_NAME[k].kind == "trick"]


# --- the runs part (what Compare shows) -------------------------------------------------------


def metrics_table(page: Page, finished: Sequence[RunInfo]) -> bool:
    """The Compare table (seed groups as mean ± std when there are any); returns grouped."""
    grouped = cmp.has_seed_groups(finished)
    table = cmp.group_table(finished) if grouped else cmp.comparison_table(finished)
    header, rows = cmp.display_rows(table)
    page.table(header, [[Cell(*c) if isinstance(c, tuple) else c for c in row] for row in rows],
               TABLE_ID)
    page.text(cmp.star_note(table) + (
        " Runs that differ only by seed are one row: mean ± sample standard deviation over the "
        "seeds (n)." if grouped else ""), note=True)
    return grouped


def runs_list(page: Page, runs: Sequence[RunInfo]) -> None:
    """Every run: id, state, seed, tricks on; then the commands that reproduce them."""
    page.table(["run", "run id", "state", "seed", "tricks on"], [
        [r.name, r.run_id, r.state, r.config.get("seed", "—"),
         ", ".join(tricks_on(r.config)) or "none"] for r in runs])
    lines = []
    for r in runs:
        command = reproduce_command(r.config)
        lines.append(f"# {r.name} ({r.run_id})")
        lines.append(command or "# not trained by Danlu (logged from a script or imported)")
    page.text("Each command trains the same config again (fields at their defaults left out):",
              note=True)
    page.code("\n".join(lines))


def _predictions(store: RunStore, runs: Sequence[RunInfo], labels: Mapping[str, str],
                 page: Page) -> dict[str, tuple]:
    preds = {}
    for r in runs:
        pred = store.predictions(r.run_id)
        if pred is None:
            page.text(f"{labels[r.run_id]}: predictions.npz is missing or unreadable; its ROC "
                      "and PR curves, confusion matrix and reliability diagram are left out.",
                      note=True)
        else:
            preds[labels[r.run_id]] = pred
    return preds


def curves(page: Page, store: RunStore, runs: Sequence[RunInfo], labels: Mapping[str, str],
           grouped: bool) -> None:
    """Training loss raw under smoothed, as on the Runs page; validation curves as on Compare
    (mean ± std bands for seed groups)."""
    frames = {r.run_id: store.metrics(r.run_id) for r in runs}
    budget = metric_charts.points_per_run(len(runs))
    page.heading("Curves", 3)
    frame = curve_frames.curve_frame(frames, "loss", "train", "step", TRAIN_SMOOTHING,
                                     TRAIN_STRENGTH, max_points=budget, labels=labels)
    page.chart(curve_charts.curve_chart(frame, "train/loss", "step"))
    page.text(f"Raw values faded under the smoothed line ({TRAIN_SMOOTHING} {TRAIN_STRENGTH}); "
              "long runs are reduced with the app's spike-keeping downsampling.", note=True)
    groups = cmp.seed_groups(runs) if grouped else []
    table = cmp.group_table(runs) if grouped else None
    for metric in VAL_METRICS:
        if grouped:
            bands = {label: {r.run_id: frames[r.run_id] for r in group}
                     for label, group in zip(table["run"], groups, strict=True)}
            band = curve_frames.band_frame(bands, metric, "val", "epoch", "none", 0.0,
                                           max_points=budget)
            page.chart(curve_charts.band_chart(band, f"val/{metric}", "epoch"))
        else:
            frame = curve_frames.curve_frame(frames, metric, "val", "epoch", "none", 0.0,
                                             max_points=budget, labels=labels)
            page.chart(curve_charts.curve_chart(frame, f"val/{metric}", "epoch"))
    if grouped:
        page.text("Validation curves: mean over seeds, shaded ± one standard deviation.",
                  note=True)


def runs_section(page: Page, store: RunStore, runs: Sequence[RunInfo]) -> None:
    """What Compare shows for ``runs``: table, curves, ROC/PR, matrices, calibration."""
    finished = [r for r in runs if r.state == "finished"]
    if other := [r for r in runs if r.state != "finished"]:
        page.text("Not compared (no test results): " + ", ".join(
            f"{r.name} ({r.state})" for r in other) + ".", note=True)
    page.heading("Runs")
    runs_list(page, runs)
    if not finished:
        page.text("None of these runs has finished: there are no test results to compare.")
        return
    page.heading("Test metrics")
    grouped = metrics_table(page, finished)
    labels = cmp.unique_labels(finished)
    table = cmp.group_table(finished) if grouped else cmp.comparison_table(finished)
    bars = table[["run", "f1"]].rename(columns={"f1": "F1"})
    if grouped:
        bars["F1_std"] = table["f1_std"]
    page.chart(bar_charts.bar_chart(bars, "F1", marked=cmp.best_mask(table)["f1"]))
    curves(page, store, finished, labels, grouped)
    page.heading("Predictions", 3)
    preds = _predictions(store, finished, labels, page)
    page.chart(prediction_charts.roc_chart(preds))
    page.chart(prediction_charts.pr_chart(preds))
    if any(y_prob.shape[1] > 2 for _, y_prob in preds.values()):
        page.text("Several classes: ROC and PR curves are micro-averaged one-vs-rest; the "
                  "table's AUC is the macro average.", note=True)
    per_class = {labels[r.run_id]: r.summary["test"]["per_class"]["f1"] for r in finished
                 if isinstance(((r.summary or {}).get("test") or {}).get("per_class"), dict)
                 and "f1" in r.summary["test"]["per_class"]}
    class_names = next((r.summary.get("class_names") for r in finished
                        if r.summary and r.summary.get("class_names")), None)
    page.chart(bar_charts.per_class_chart(per_class, class_names, "f1"))
    page.chart(prediction_charts.confidence_histogram(preds))
    page.heading("Per run: confusion matrix and reliability diagram", 3)
    for r in finished:
        if labels[r.run_id] not in preds:
            continue
        y_true, y_prob = preds[labels[r.run_id]]
        page.text(f"**{labels[r.run_id]}**")
        class_names = (r.summary or {}).get("class_names")
        page.chart(prediction_charts.confusion_chart(y_true, y_prob, class_names))
        page.chart(prediction_charts.reliability_chart(y_true, y_prob))


# --- whole reports ----------------------------------------------------------------------------


def _stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M %Z", time.localtime())


def runs_report(store: RunStore, run_ids: Sequence[str], title: str = "") -> Page:
    """The Compare report of ``run_ids``; raises ValueError naming ids that are not runs."""
    runs = [store.get(rid) for rid in run_ids]
    if missing := [rid for rid, r in zip(run_ids, runs, strict=True) if r is None]:
        raise ValueError(f"no such run under {store.root}: {', '.join(missing)}")
    page = Page(title or f"Danlu: comparison of {len(runs)} run(s)",
                f"Exported {_stamp()} from {store.root}")
    runs_section(page, store, runs)
    return page


def _item(page: Page, item: Any) -> None:
    if isinstance(item, str):
        page.text(item)
    elif isinstance(item, pd.DataFrame):
        page.frame(item)
    elif isinstance(item, tuple) and len(item) == 2 and item[0] == "heading":
        page.heading(item[1], 3)
    elif isinstance(item, alt.TopLevelMixin):
        page.chart(item)
    else:
        raise TypeError(f"a report item must be text, a DataFrame or a chart, not {item!r}")


def experiment_report(store: RunStore, exp: core.Experiment) -> Page:
    """The experiment's own result (its view's ``report_items``), then its runs as Compare."""
    from dashboard.experiment_views import view_for  # the views import Streamlit

    title = PROCEDURES[exp.kind].title if exp.kind in PROCEDURES else exp.kind
    page = Page(f"Danlu: {exp.name} ({title})",
                f"Experiment {exp.exp_id}, {exp.state}; exported {_stamp()} from {store.root}")
    if exp.error:
        page.text(f"Error: {exp.error}")
    page.heading("Result")
    view = view_for(exp.kind)
    items = getattr(view, "report_items", None)
    if items is None:
        page.code(PROCEDURES[exp.kind].report(store.root, exp) if exp.kind in PROCEDURES
                  else "(no result view for this kind)")
    else:
        for item in items(store.root, exp, store):
            _item(page, item)
    runs = [r for rid in dict.fromkeys(exp.run_ids()) if (r := store.get(rid)) is not None]
    saved = exp.result.get("saved_run") if isinstance(exp.result, dict) else None
    if isinstance(saved, str) and (run := store.get(saved)) is not None:
        runs.append(run)
    page.heading("Roles", 3)
    page.table(["run id", "role", "seed"], [[m.run_id, m.role, m.seed] for m in exp.members])
    runs_section(page, store, runs)
    return page


# --- command line -----------------------------------------------------------------------------


def write(page: Page, out: str | Path) -> Path:
    out = Path(out)
    out.write_text(page.html(), encoding="utf-8")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m trainer report",
        description="Write one self-contained HTML report (opens offline in any browser) of "
        "runs, as the Compare page shows them, or of an experiment's result.")
    parser.add_argument("run_ids", nargs="*", metavar="RUN_ID")
    parser.add_argument("--experiment", metavar="EXP_ID", help="report an experiment")
    parser.add_argument("--runs-dir", help="runs root (default: $DANLU_RUNS_DIR or ./runs)")
    parser.add_argument("--title", default="", help="the report's title")
    parser.add_argument("-o", "--output", required=True, metavar="FILE.html")
    args = parser.parse_args(argv)
    if bool(args.run_ids) == bool(args.experiment):
        print("error: give run ids or --experiment EXP_ID (not both)", file=sys.stderr)
        return 2
    root = Path(args.runs_dir) if args.runs_dir else runlog.default_runs_root()
    store = RunStore(root)
    try:
        if args.experiment:
            runlog.check_run_id(args.experiment)
            exp = core.load(root, args.experiment)
            if exp is None:
                raise ValueError(f"no experiment {args.experiment!r} under {root}")
            page = experiment_report(store, exp)
            if args.title:
                page.title = args.title
        else:
            for rid in args.run_ids:
                runlog.check_run_id(rid)
            page = runs_report(store, args.run_ids, args.title)
        out = write(page, args.output)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    size = out.stat().st_size
    print(f"wrote {out} ({page.n_charts} charts, {size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
