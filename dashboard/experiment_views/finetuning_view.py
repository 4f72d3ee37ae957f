"""Fine-tuning: launcher and result view (frozen vs full vs from scratch)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import chart_files, context, curve_charts, curve_frames
from trainer import preflight, queue, runlog
from trainer.config import ConfigError
from trainer.experiments import core, finetuning

TITLE = "Fine-tuning"
INTRO = (
    "Does starting from another run's weights help? Danlu trains the same target task three "
    "ways: **frozen** (the source run's feature extractor kept, only the classifier head "
    "trains), **full** (the source run's weights, everything trains, with the fine-tuning "
    "learning rate) and **from scratch** (fresh weights), and overlays their validation "
    "curves. The source is a finished run with saved weights, or a pretraining run queued "
    "first — e.g. learn digits 0–4, then fine-tune on 5–9."
)

PRETRAIN_FIRST = "Pretrain first"
FROM_RUN = "A finished run"
MODE_KEY = "ft_mode"
DATASETS = ("digits", "mnist1d", "synthetic")
MODE_LABELS = {"frozen": "frozen", "full": "full fine-tune", "scratch": "from scratch"}


# --- launcher -----------------------------------------------------------------------------------


def source_runs(root: Path) -> list:
    """Finished runs that saved weights (checkpoint.pt), newest first."""
    return [r for r in context.store().list_runs()
            if r.state == "finished" and (Path(root) / r.run_id / runlog.CHECKPOINT).is_file()]


def _errors_by_field(exc: ConfigError) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for e in exc.errors:
        out.setdefault(e.field, []).append(e.message)
    return out


def _show(errors: dict[str, list[str]], *fields: str) -> None:
    for field in fields:
        for message in errors.pop(field, ()):
            st.error(message, icon=":material/block:")


def launcher(root: Path, allowed: bool) -> str | None:
    """Source (a run or pretrain first), class subsets, epochs, the fine-tuning LR, seeds."""
    mode = st.radio("Start from", [PRETRAIN_FIRST, FROM_RUN], key=MODE_KEY, horizontal=True)
    chosen = _source_controls(root) if mode == FROM_RUN else _pretrain_controls()
    if chosen is None:
        return None
    source, target_default, target_key = chosen
    _target_controls(target_default, target_key)
    spec, errors = _spec(root, source, target_key)
    _show(errors, "class_subset", "pretrain_classes", "source", "epochs", "lr")
    for field, messages in errors.items():
        for message in messages:
            st.error(f"{field}: {message}", icon=":material/block:")
    return _launch(root, allowed, spec, source)


def _source_controls(root: Path) -> tuple[str, str, str] | None:
    """The source run to start from: (its id, the default target classes, the target box's
    key), or None when there is none to choose."""
    runs = source_runs(root)
    if not runs:
        st.info("No finished run with saved weights yet: choose *Pretrain first*, or "
                "launch a run with *Save weights* on.")
        return None
    by_id = {r.run_id: r for r in runs}
    source = st.selectbox("Source run", list(by_id), key="ft_source",
                          format_func=lambda i: f"{by_id[i].name} · "
                          f"{by_id[i].config.get('dataset', '?')} · {i}")
    cfg = by_id[source].config
    subset = cfg.get("class_subset")
    st.caption(f"{cfg.get('dataset')} · model {cfg.get('model')} · classes "
               f"{', '.join(map(str, subset)) if subset else 'all'} · "
               f"{cfg.get('epochs')} epochs. The fine-tuning runs keep its settings except "
               "those set here.")
    return source, "", "ft_target_classes_run"


def _pretrain_controls() -> tuple[None, str, str]:
    """The pretraining run's dataset, classes and epochs: (no source, the default target
    classes, the target box's key)."""
    st.selectbox("Dataset", DATASETS, key="ft_dataset",
                 help="The pretraining and fine-tuning runs use the same dataset and model; "
                 "the class subsets make two tasks of it.")
    st.text_input("Pretrain on classes", value="0,1,2,3,4", key="ft_pre_classes",
                  help="Class numbers separated by commas; empty for every class.")
    st.number_input("Pretraining epochs", 1, 1000, 10, key="ft_pre_epochs")
    return None, "5,6,7,8,9", "ft_target_classes"


def _target_controls(target_default: str, target_key: str) -> None:
    left, right = st.columns(2)
    with left:
        # One box per mode: a source run has its own classes, so the digits default must not stay.
        st.text_input("Fine-tune on classes", value=target_default, key=target_key,
                      help="Class numbers separated by commas; empty for every class. A head "
                      "for another number of classes starts fresh.")
        st.number_input("Fine-tuning epochs", 1, 1000, 10, key="ft_epochs")
    with right:
        st.number_input("Fine-tuning learning rate", min_value=1e-6, max_value=10.0,
                        value=3e-3, step=1e-4, format="%.4f", key="ft_lr",
                        help="Its own learning rate: lower than pretraining's keeps more of "
                        "what was learnt. From-scratch runs use the same one.")
        st.number_input("Seeds per mode", 1, 10, 1, key="ft_seeds",
                        help="More seeds draw each mode as a mean with a band.")


def _spec(root: Path, source: str | None, target_key: str
          ) -> tuple[dict[str, Any] | None, dict[str, list[str]]]:
    """The spec from the widgets' values, or None and the errors by field."""
    try:
        target = {"epochs": int(st.session_state.ft_epochs), "lr": float(st.session_state.ft_lr)}
        classes = finetuning.parse_classes(st.session_state[target_key], "class_subset")
        if classes is not None or source is None:
            target["class_subset"] = classes
        seeds = list(range(int(st.session_state.ft_seeds)))
        if source:
            spec = finetuning.make_spec({}, source=source, target=target, seeds=seeds)
            # The source run is checked now so its problems show before launching.
            src = finetuning.source_config(root, source)
            finetuning.check_configs(spec, src, finetuning.target_config(spec, src), source,
                                     what="source")
        else:
            pretrain = {"epochs": int(st.session_state.ft_pre_epochs),
                        "class_subset": finetuning.parse_classes(
                            st.session_state.ft_pre_classes, "pretrain_classes")}
            spec = finetuning.make_spec({"dataset": st.session_state.ft_dataset},
                                        pretrain=pretrain, target=target, seeds=seeds)
    except ConfigError as exc:
        return None, _errors_by_field(exc)
    return spec, {}


def _launch(root: Path, allowed: bool, spec: dict[str, Any] | None, source: str | None
            ) -> str | None:
    if spec is None:
        st.button("Launch fine-tuning", disabled=True, key="ft_launch_disabled")
        return None
    n = 3 * len(spec["seeds"])
    st.info(f"**{n + (0 if source else 1)} runs**: "
            + ("" if source else "1 pretraining run, then (when it finishes) ")
            + f"{n} fine-tuning runs — frozen, full and from scratch × {len(spec['seeds'])} "
            "seed(s).")
    if not st.button("Launch fine-tuning", type="primary", disabled=not allowed,
                     key="ft_launch"):
        return None
    try:
        exp = core.create(root, finetuning.KIND, spec, csv_dirs=preflight.data_dirs(root))
    except ConfigError as exc:
        st.error(f"Nothing was queued: {exc}")
        return None
    queue.spawn_worker(root, max_parallel=context.max_parallel())
    return exp.exp_id


# --- result -------------------------------------------------------------------------------------


def curves_chart(runs: dict[str, list[str]], metric: str, store: Any = None):
    """Val ``metric`` per epoch: one line per mode, or mean ± std bands with several seeds."""
    store = store or context.store()
    frames = {mode: {rid: store.metrics(rid) for rid in ids} for mode, ids in runs.items()}
    labels = {mode: MODE_LABELS.get(mode, mode) for mode in runs}
    if max(len(ids) for ids in runs.values()) > 1:
        frame = curve_frames.band_frame({labels[m]: f for m, f in frames.items()}, metric, "val",
                                  "epoch", "none", 0.0)
        return curve_charts.band_chart(frame, metric, "epoch", log_y=False)
    flat = {rid: df for f in frames.values() for rid, df in f.items()}
    names = {rid: labels[mode] for mode, ids in runs.items() for rid in ids}
    frame = curve_frames.curve_frame(flat, metric, "val", "epoch", "none", 0.0, labels=names)
    return curve_charts.curve_chart(frame, metric, "epoch")


def _mean_std(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "—"
    return f"{mean:.4f}" if math.isnan(std) else f"{mean:.4f} ± {std:.4f}"


def result_view(root: Path, exp: core.Experiment) -> None:
    """Frozen vs full vs scratch: val accuracy and loss per epoch, and the test metrics."""
    source = exp.result.get("source") or exp.spec.get("source")
    pre = exp.run_ids(stage=finetuning.PRETRAIN)
    if pre and not exp.run_ids(stage=finetuning.FINETUNE):
        state = core.member_states(root, exp)[pre[0]].state
        if exp.state == "running":
            st.info(f"Pretraining run {pre[0]} is {state}; the three fine-tuning runs are "
                    "queued when it finishes.")
        return
    st.caption(f"Source weights: run {source}"
               + (" (pretrained by this experiment)." if pre else "."))
    runs = finetuning.mode_runs(exp)
    if not runs:
        st.info("No fine-tuning runs yet.")
        return
    left, right = st.columns(2)
    with left:
        chart_files.show(curves_chart(runs, "accuracy"), "fine-tuning accuracy",
                         f"ft_acc_{exp.exp_id}", width="stretch")
    with right:
        chart_files.show(curves_chart(runs, "loss"), "fine-tuning loss", f"ft_loss_{exp.exp_id}",
                         width="stretch")
    table = finetuning.finetune_table(root, exp)
    summary = finetuning.mode_summary(table)
    if not summary.empty:
        st.markdown("**Test metrics** (mean over seeds; ± is the std when there are several)")
        shown = pd.DataFrame({"mode": summary["mode"].map(MODE_LABELS),
                              "seeds": summary["seeds"]})
        for m in finetuning.METRICS:
            shown[m] = [_mean_std(v, s) for v, s in zip(summary[m], summary[f"{m}_std"],
                                                        strict=True)]
        st.dataframe(shown, hide_index=True, width="stretch")
    with st.expander("Per run"):
        st.dataframe(table, hide_index=True, width="stretch")
    unfinished = table[table["state"].isin(["failed", "cancelled", "lost", "unknown"])]
    if not unfinished.empty:
        st.warning("Did not finish: " + ", ".join(
            f"{MODE_LABELS.get(r.mode, r.mode)} seed {r.seed} ({r.state})"
            for r in unfinished.itertuples()) + ". Open them on the Runs page to see why.")


def report_items(root: Path, exp: core.Experiment, store: Any = None) -> list[Any]:
    """What `result_view` shows, for an exported report: curves per mode and test metrics."""
    source = exp.result.get("source") or exp.spec.get("source")
    runs = finetuning.mode_runs(exp)
    if not runs:
        return ["No fine-tuning runs yet."]
    items: list[Any] = [f"Source weights: run {source}.",
                        curves_chart(runs, "accuracy", store), curves_chart(runs, "loss", store)]
    summary = finetuning.mode_summary(finetuning.finetune_table(root, exp))
    if not summary.empty:
        shown = pd.DataFrame({"mode": summary["mode"].map(MODE_LABELS),
                              "seeds": summary["seeds"]})
        for m in finetuning.METRICS:
            shown[m] = [_mean_std(v, s) for v, s in zip(summary[m], summary[f"{m}_std"],
                                                        strict=True)]
        items += ["**Test metrics** (mean over seeds; ± is the std when there are several)",
                  shown]
    return items
