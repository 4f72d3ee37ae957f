"""RunConfig: every setting and trick of the catalogue as a typed, validated field.

The model is generated from ``tricks.CATALOGUE`` so the catalogue stays the single source of
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

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator
from pydantic_core import PydanticCustomError

from trainer.runlog import RUN_ID_RE
from trainer.tricks import BY_NAME, CATALOGUE

SCHEMA_VERSION = 1
SPATIAL_DATASETS = {"digits": "image", "mnist1d": "sequence"}  # everything else is tabular


class _RunConfigBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    @model_validator(mode="after")
    def _check_clashes(self) -> _RunConfigBase:
        for field, message in _clashes(self):
            raise PydanticCustomError("clash", "{message}", {"field": field, "message": message})
        return self

    @property
    def data_kind(self) -> str:
        """'image', 'sequence' or 'tabular'."""
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
    return t.annotation, Field(default=t.default, description=t.label, **bounds)


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
    if c.init_from and not RUN_ID_RE.match(c.init_from):
        yield "init_from", "init_from must be a run id (lowercase letters, digits, '-')"
    if c.class_subset is not None and (len(c.class_subset) < 2 or min(c.class_subset) < 0
                                       or len(set(c.class_subset)) != len(c.class_subset)):
        yield "class_subset", "class_subset needs at least 2 different class numbers (0, 1, ...)"
    if isinstance(c.focal_alpha, list) and min(c.focal_alpha, default=0) < 0:
        yield "focal_alpha", "focal_alpha weights must be non-negative"


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
        super().__init__(str(errors[0]) if errors else "invalid config")


def _field_errors(exc: ValidationError) -> list[FieldError]:
    out = []
    for err in exc.errors(include_url=False):
        ctx = err.get("ctx") or {}
        if err["type"] == "clash":
            out.append(FieldError(ctx["field"], ctx["message"]))
            continue
        field = str(err["loc"][0]) if err["loc"] else "config"
        if err["type"] == "extra_forbidden":
            out.append(FieldError(field, _unknown_field_message(field)))
            continue
        got = err.get("input")
        msg = err["msg"]
        if not isinstance(got, dict):
            msg += f" (got {got!r})"
        out.append(FieldError(field, msg))
    return out


def _unknown_field_message(field: str) -> str:
    close = difflib.get_close_matches(field, BY_NAME, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else "; see `python -m trainer tricks`"
    return f"unknown field{hint}"


def make_config(data: Mapping[str, Any] | None = None, **overrides: Any) -> Any:
    """Validate ``data`` (plus ``overrides``) into a RunConfig, or raise ConfigError."""
    merged = {**dict(data or {}), **overrides}
    # Files written by the trainer carry bookkeeping keys; accept them back.
    for key in ("schema_version", "run_id"):
        merged.pop(key, None)
    try:
        return RunConfig(**merged)
    except ValidationError as exc:
        raise ConfigError(_field_errors(exc)) from None


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
    """Turn ``FIELD=VALUE`` strings into a dict; values are JSON where the field is not text."""
    out: dict[str, Any] = {}
    for item in items:
        field, sep, raw = item.partition("=")
        field = field.strip()
        if not sep or not field:
            raise ConfigError([FieldError(item or "--set", "expected FIELD=VALUE")])
        if field not in BY_NAME:
            raise ConfigError([FieldError(field, _unknown_field_message(field))])
        annotation = BY_NAME[field].annotation
        if _is_text_field(annotation):
            out[field] = raw
            continue
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
                    raise ConfigError(
                        [FieldError(field, f"expected numbers separated by commas (got {raw!r})")]
                    ) from None
        if raw.lower() in ("none", "null", "") and "None" in repr(annotation):
            value = None
        out[field] = value
    return out
