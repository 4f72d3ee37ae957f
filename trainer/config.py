"""RunConfig: every setting and trick of the catalogue as a typed, validated field.

The model is generated from ``catalogue.CATALOGUE`` so the catalogue stays the single source of
names, types, defaults and ranges. Cross-field rules (tricks that clash, options a dataset cannot
take) live in ``_clashes`` below and are reported against the field a user should change.
"""

from __future__ import annotations

import difflib
import json
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from trainer import runlog
from trainer.catalogue import BY_NAME, CATALOGUE
from trainer.runlog import is_run_id

SCHEMA_VERSION = runlog.SCHEMA_VERSION  # one version for every file of a run
MAX_TAG_LENGTH = 50
# everything else is tabular (npz: its array says)
SPATIAL_DATASETS = {"digits": "image", "mnist1d": "sequence", "images": "image"}


class _RunConfigBase(BaseModel):
    # NaN and inf pass every bound check unnoticed (focal_alpha=NaN,1 was accepted, then the run
    # rejected its own config.json, where NaN is written as null): no field takes them.
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True,
                              allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_as_number(cls, value: Any, info: ValidationInfo) -> Any:
        # Pydantic's lax mode reads True as 1: ``epochs=true`` trained one epoch.
        trick = BY_NAME.get(info.field_name or "")
        if trick is None or trick.annotation is bool:
            return value
        items = value if isinstance(value, list) else [value]
        if any(isinstance(v, bool) for v in items):
            raise PydanticCustomError("bool_type", "expected {what}, not true/false",
                                      {"what": _expected(trick)})
        return value

    @model_validator(mode="after")
    def _check_clashes(self) -> _RunConfigBase:
        # One error carrying every clash, so a form or the CLI can show them all at once.
        found = list(_clashes(self))
        if found:
            raise PydanticCustomError("clash", "{summary}", {
                "clashes": found, "summary": "; ".join(f"{f}: {m}" for f, m in found)})
        return self

    @property
    def data_kind(self) -> str:
        """'image', 'sequence' or 'tabular'."""
        if self.dataset == "npz":  # the array's shape says; its header is read, not the data
            from trainer.datasets_files import npz_kind

            return npz_kind(self.data_path)
        return SPATIAL_DATASETS.get(self.dataset, "tabular")

    @property
    def resolved_model(self) -> str:
        if self.model != "auto":
            return self.model
        return "mlp" if self.data_kind == "tabular" else "cnn"

    def tricks_on(self) -> dict[str, Any]:
        """The tricks whose value differs from their default ("off")."""
        return {
            t.name: getattr(self, t.name)
            for t in CATALOGUE
            if t.kind == "trick" and getattr(self, t.name) != t.default
        }


def _field(t: Any) -> tuple[Any, Any]:
    bounds = {k: getattr(t, k) for k in ("ge", "gt", "le", "lt") if getattr(t, k) is not None}
    if t.max_length is not None:
        bounds["max_length"] = t.max_length
    return t.annotation, Field(default=t.default, description=t.label, **bounds)


def _expected(t: Any) -> str:
    kind = t.type_name
    if kind == "list":
        return "a list of whole numbers" if "int" in repr(t.annotation) else "a list of numbers"
    return {"int": "a whole number", "float": "a number"}.get(kind, "a value of its type")


RunConfig = create_model(  # type: ignore[call-overload]
    "RunConfig", __base__=_RunConfigBase, **{t.name: _field(t) for t in CATALOGUE}
)
RunConfig.__doc__ = "One run: dataset, model, optimiser and every trick (defaults mean off)."


def _clashes(c: Any) -> Iterable[tuple[str, str]]:
    """Yield (field, reason) for settings that cannot work together."""
    kind = c.data_kind
    if c.model == "cnn" and kind == "tabular":
        yield "model", f"model='cnn' {_needs_spatial()}; use 'mlp' or 'auto' for {c.dataset}"
    for name in ("augment_hflip", "augment_vflip", "augment_dflip"):
        if getattr(c, name) and kind == "tabular":
            yield name, f"{name} {_needs_spatial()}; {c.dataset} is tabular"
    if c.augment_shift and kind == "tabular":
        yield "augment_shift", f"augment_shift {_needs_spatial()}; {c.dataset} is tabular"
    for name in ("augment_vflip", "augment_dflip"):
        if getattr(c, name) and kind == "sequence":
            yield name, f"{name} needs 2-D images; {c.dataset} is a 1-D sequence"
    if c.tta != "off" and kind == "tabular":
        yield "tta", f"tta={c.tta!r} {_needs_spatial()}; {c.dataset} is tabular"
    if c.head == "gap" and c.resolved_model == "mlp":
        yield "head", "head='gap' (global average pooling) needs model='cnn'"
    if c.dataset in ("npz", "images") and not c.data_path:
        what = "an .npz file" if c.dataset == "npz" else "a folder with one subfolder per class"
        yield "data_path", f"dataset={c.dataset!r} needs data_path, the path of {what}"
    if c.dataset == "csv" and not c.csv_path:
        yield "csv_path", "dataset='csv' needs csv_path, the path of your CSV file"
    if c.val_fraction + c.test_fraction >= 0.9:
        yield "val_fraction", "val_fraction + test_fraction must be below 0.9 to leave train data"
    if c.label_smoothing and c.loss == "bce":
        yield "label_smoothing", "label_smoothing works with loss='ce' or 'focal', not 'bce'"
    if c.swa and c.early_stopping:
        yield "swa", (
            "swa clashes with early_stopping: early stopping restores the best epoch's weights "
            "and would discard the SWA average; choose one"
        )
    if c.swa and c.epochs < 2:
        yield "swa", "swa needs at least 2 epochs (it averages over the last epochs)"
    if c.amp == "fp16" and c.device in ("cpu", "mps"):
        yield "amp", f"amp='fp16' needs CUDA (GradScaler); on {c.device} use amp='bf16' or 'off'"
    if c.warmup_epochs and c.warmup_epochs >= c.epochs:
        yield "warmup_epochs", f"warmup_epochs must be below epochs ({c.epochs})"
    if c.freeze_features and not c.init_from:
        yield "freeze_features", "freeze_features needs init_from, the run to fine-tune from"
    if c.init_from and not is_run_id(c.init_from):
        yield "init_from", "init_from must be a run id (lowercase letters, digits, '-')"
    if c.class_subset is not None and (len(c.class_subset) < 2 or min(c.class_subset) < 0
                                       or len(set(c.class_subset)) != len(c.class_subset)):
        yield "class_subset", "class_subset needs at least 2 different class numbers (0, 1, ...)"
    if isinstance(c.focal_alpha, list) and min(c.focal_alpha, default=0) < 0:
        yield "focal_alpha", "focal_alpha weights must be non-negative"
    if any(len(tag) > MAX_TAG_LENGTH for tag in c.tags):
        yield "tags", f"each tag must be at most {MAX_TAG_LENGTH} characters"
    for field in ("name", "tags", "csv_path", "csv_label"):
        value = getattr(c, field)
        if any(not ch.isprintable() for text in ([value] if isinstance(value, str) else value)
               for ch in text):
            yield field, f"{field} must be printable text (no newlines or control characters)"


def _needs_spatial() -> str:
    return "needs an image or sequence dataset (digits, mnist1d)"


# --- errors users read ------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class ConfigError(ValueError):
    """A config that cannot run; ``errors`` lists every problem against its field."""

    def __init__(self, errors: list[FieldError]):
        self.errors = errors
        super().__init__("; ".join(map(str, errors)) if errors else "invalid config")


def _field_errors(exc: ValidationError) -> list[FieldError]:
    out: list[FieldError] = []
    errors = _one_union_branch(exc.errors(include_url=False))
    for err in errors:
        ctx = err.get("ctx") or {}
        if err["type"] == "clash":
            out += [FieldError(field, message) for field, message in ctx["clashes"]]
            continue
        field = str(err["loc"][0]) if err["loc"] else "config"
        if err["type"] == "extra_forbidden":
            out.append(FieldError(field, _unknown_field_message(field)))
            continue
        msg = err["msg"]
        if len(err["loc"]) > 1 and isinstance(err["loc"][-1], int):
            msg = f"item {err['loc'][-1] + 1}: {msg}"
        got = err.get("input")
        if not isinstance(got, dict):
            msg += f" (got {_short_repr(got)})"
        out.append(FieldError(field, msg))
    return out


def _one_union_branch(errors: list[Any]) -> list[Any]:
    """For a field of a union type (focal_alpha: a choice or a list), keep only the errors of
    the branch the input was meant for, so one bad value is one problem, not one per branch."""
    def branch(err: Any) -> str | None:
        loc = err["loc"]
        return loc[1] if len(loc) > 1 and isinstance(loc[1], str) else None

    by_field: dict[Any, set[str]] = {}
    for err in errors:
        if err["loc"] and branch(err):
            by_field.setdefault(err["loc"][0], set()).add(branch(err))
    keep = []
    for err in errors:
        b = branch(err)
        if b and len(by_field.get(err["loc"][0], ())) > 1:
            wants_list = isinstance(err.get("input"), list) or (
                len(err["loc"]) > 2 and isinstance(err["loc"][2], int))
            if wants_list != b.startswith("list"):
                continue
        keep.append(err)
    return keep


def _short_repr(value: Any, limit: int = 60) -> str:
    """The input, quoted and cut short: an error line never carries a 100,000-character name."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"


def _unknown_field_message(field: str) -> str:
    close = difflib.get_close_matches(field, BY_NAME, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else "; see `python -m trainer tricks`"
    return f"unknown field{hint}"


def make_config(data: Mapping[str, Any] | None = None, **overrides: Any) -> Any:
    """Validate ``data`` (plus ``overrides``) into a RunConfig, or raise ConfigError."""
    merged = {**dict(data or {}), **overrides}
    if not runlog.is_trained(merged) and runlog.KIND_KEY in merged:
        kind = runlog.run_kind(merged)
        raise ConfigError([FieldError(runlog.KIND_KEY, f"this is an {kind} run's config.json, not "
                                      "a RunConfig: it cannot be launched or fine-tuned from")])
    # Files written by the trainer carry bookkeeping keys; accept them back.
    for key in ("schema_version", "run_id", runlog.KIND_KEY):
        merged.pop(key, None)
    try:
        return RunConfig(**merged)
    except ValidationError as exc:
        errors = _field_errors(exc)
    # Clashes are checked only once every field is valid: check them again without the bad
    # fields, so that one bad field does not hide another field's problem.
    bad = {e.field for e in errors}
    rest = {k: v for k, v in merged.items() if k not in bad}
    if len(rest) < len(merged):
        try:
            RunConfig(**rest)
        except ValidationError as exc:
            errors += [e for e in _field_errors(exc) if e.field not in bad]
    raise ConfigError(errors)


def config_errors(data: Mapping[str, Any]) -> list[FieldError]:
    """Every problem with ``data``, empty when it is a valid config (for forms)."""
    try:
        make_config(data)
    except ConfigError as exc:
        return exc.errors
    return []


def config_to_json(config: Any) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, **config.model_dump(mode="json")}


def load_config_file(path: str) -> dict[str, Any]:
    """Read a JSON config file into a dict (validated later, with the --set overrides)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as exc:
        raise ConfigError([FieldError("--config", f"cannot read {path}: {exc.strerror}")]) from None
    except ValueError as exc:
        raise ConfigError([FieldError("--config", f"{path} is not valid JSON: {exc}")]) from None
    if not isinstance(data, dict):
        raise ConfigError([FieldError("--config", f"{path} must hold a JSON object")])
    return data


def _is_text_field(annotation: Any) -> bool:
    if annotation is str:
        return True
    if typing.get_origin(annotation) is typing.Literal:
        return all(isinstance(a, str) for a in typing.get_args(annotation))
    return False


def parse_set(items: Iterable[str]) -> dict[str, Any]:
    """Turn ``FIELD=VALUE`` strings into a dict; values are JSON where the field is not text.

    Raises ConfigError listing every item that cannot be read, not only the first.
    """
    out, errors = parse_set_items(items)
    if errors:
        raise ConfigError(errors)
    return out


def parse_set_items(items: Iterable[str]) -> tuple[dict[str, Any], list[FieldError]]:
    """The readable ``FIELD=VALUE`` items as a dict, and a problem for each unreadable one."""
    out: dict[str, Any] = {}
    errors: list[FieldError] = []
    for item in items:
        field, sep, raw = item.partition("=")
        field = field.strip()
        if not sep or not field:
            errors.append(_format_error(item, field))
        elif field not in BY_NAME:
            errors.append(FieldError(field, _unknown_field_message(field)))
        else:
            try:
                out[field] = _parse_value(field, raw)
            except ConfigError as exc:
                errors += exc.errors
    return out, errors


def _format_error(item: str, field: str) -> FieldError:
    """``flooding`` alone: the FIELD=VALUE format is what is wrong, whatever the word."""
    if field in BY_NAME:
        example = next(iter(BY_NAME[field].try_overrides.values()), BY_NAME[field].default)
        return FieldError(field, f"expected FIELD=VALUE, e.g. {field}={json.dumps(example)}")
    return FieldError("--set", f"expected FIELD=VALUE, got {_short_repr(item)}")


def _parse_value(field: str, raw: str) -> Any:
    annotation = BY_NAME[field].annotation
    if _is_text_field(annotation):
        return raw
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    is_list = "list" in repr(annotation)
    if is_list and isinstance(value, str) and value not in ("none", "balanced"):
        value = [v.strip() for v in value.split(",") if v.strip()]
        if "float" in repr(annotation):
            try:
                value = [float(v) for v in value]
            except ValueError:
                raise ConfigError([FieldError(
                    field, f"expected numbers separated by commas (got {_short_repr(raw)})")]
                ) from None
    if raw.lower() in ("none", "null", "") and "None" in repr(annotation):
        value = None
    return value
