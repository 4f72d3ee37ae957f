"""Datasets for Danlu: small, offline, deterministic.

    ds = load_dataset("digits", split_seed=0, label_noise=0.2)
    ds.x_train.shape, ds.sizes, ds.noisy_labels

Every dataset is split train/val/test (stratified) from `split_seed` alone, so runs
that differ only in their training seed see the same test set. Nothing here touches
the global numpy / random / torch RNG state, and nothing is downloaded.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import numbers
import os
import random
import stat
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits, make_classification
from sklearn.model_selection import train_test_split

from trainer.data_error import DataError  # re-exported: trainer.data.DataError

DATASETS = ("digits", "mnist1d", "synthetic", "csv", "npz", "images")
_KINDS = {"digits": "image", "mnist1d": "sequence", "synthetic": "tabular", "csv": "tabular",
          "npz": "tabular", "images": "image"}  # npz: "image" when its x is (see load_dataset)
_CACHE_VERSION = 1  # bump when the cached array layout changes


@dataclass
class Dataset:
    name: str
    kind: str  # "image" (N,1,H,W), "sequence" (N,1,L) or "tabular" (N,F)
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    noisy_labels: int = 0  # train labels replaced by a wrong class (label_noise)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample, e.g. (1, 8, 8) or (20,)."""
        return tuple(self.x_train.shape[1:])

    @property
    def sizes(self) -> dict[str, int]:
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}

    @property
    def class_counts_train(self) -> np.ndarray:
        return np.bincount(self.y_train, minlength=self.n_classes)


def dataset_kind(name: str) -> str:
    """Kind of a dataset ("image", "sequence" or "tabular"), without loading it."""
    if name not in _KINDS:
        raise DataError(f"Unknown dataset {name!r}; choose one of {', '.join(DATASETS)}.")
    return _KINDS[name]


def default_cache_dir() -> Path:
    """$DANLU_CACHE_DIR, else ~/.cache/danlu."""
    return Path(os.environ.get("DANLU_CACHE_DIR") or Path.home() / ".cache" / "danlu").expanduser()


def load_dataset(
    name: str,
    *,
    split_seed: int = 0,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    label_noise: float = 0.0,
    csv_path: str | os.PathLike | None = None,
    csv_label: str = "label",
    n_samples: int = 3000,
    n_features: int = 20,
    n_classes: int = 4,
    imbalance: float = 1.0,
    class_subset: list[int] | None = None,
    cache_dir: str | os.PathLike | None = None,
    data_path: str | os.PathLike | None = None,
    image_size: int = 32,
) -> Dataset:
    """Load, split, corrupt (label_noise) and standardise one dataset.

    mnist1d keeps its package's own 1000-sample benchmark test set, so `test_fraction`
    is ignored there and val is carved out of its 4000 training samples.
    """
    kind = dataset_kind(name)
    _check_options(split_seed, val_fraction, test_fraction, label_noise)

    x_test = y_test = None  # set only by datasets that come with their own test set
    if name == "digits":
        x, y, class_names = _load_digits()
    elif name == "mnist1d":
        x, y, x_test, y_test = _load_mnist1d(cache_dir)
        class_names = [str(k) for k in range(10)]
    elif name == "synthetic":
        x, y, class_names = _make_synthetic(n_samples, n_features, n_classes, imbalance, split_seed)
    elif name in ("npz", "images"):
        from trainer import datasets_files as files  # your own files: trainer/datasets_files.py

        if not data_path:
            raise DataError(f"The {name} dataset needs a data_path.")
        if name == "npz":
            x, y, class_names, x_test, y_test, kind = files.load_npz(data_path)
        else:
            x, y, class_names = files.load_image_folder(data_path, image_size)
    else:
        if csv_path is None:
            raise DataError("The csv dataset needs a csv_path.")
        x, y, class_names = _read_csv(csv_path, csv_label)

    if class_subset is not None:
        keep = check_class_subset(class_subset, len(class_names))
        x, y = _keep_classes(x, y, keep, len(class_names))
        if x_test is not None:
            x_test, y_test = _keep_classes(x_test, y_test, keep, len(class_names))
        class_names = [class_names[k] for k in keep]

    if x_test is None:
        fractions = {"val_fraction": val_fraction, "test_fraction": test_fraction}
        _check_class_sizes(y, class_names, fractions)
        rest, test = _split(np.arange(len(y)), y, test_fraction, split_seed)
        train, val = _split(rest, y[rest], val_fraction / (1 - test_fraction), split_seed)
        x_test, y_test = x[test], y[test]
    else:
        _check_class_sizes(y, class_names, {"val_fraction": val_fraction})
        train, val = _split(np.arange(len(y)), y, val_fraction, split_seed)
    x_train, y_train, x_val, y_val = x[train], y[train], x[val], y[val]

    y_train, n_noisy = _add_label_noise(y_train, len(class_names), label_noise, split_seed)

    if kind == "tabular":
        # Statistics from train only, so val/test stay unseen.
        mean = x_train.mean(axis=0, dtype=np.float64)
        std = x_train.std(axis=0, dtype=np.float64)
        std[std == 0] = 1.0
        x_train, x_val, x_test = ((a - mean) / std for a in (x_train, x_val, x_test))

    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
    i64 = lambda a: np.ascontiguousarray(a, dtype=np.int64)  # noqa: E731
    return Dataset(
        name=name, kind=kind,
        x_train=f32(x_train), y_train=i64(y_train),
        x_val=f32(x_val), y_val=i64(y_val),
        x_test=f32(x_test), y_test=i64(y_test),
        class_names=list(class_names), noisy_labels=n_noisy,
    )  # fmt: skip


# ----------------------------------------------------------------------------- checks


def _check_options(split_seed: int, val: float, test: float, noise: float) -> None:
    if isinstance(split_seed, bool) or not isinstance(split_seed, int | np.integer):
        raise DataError(f"split_seed must be an integer, got {split_seed!r}.")
    if not 0 <= split_seed < 2**32:
        raise DataError(f"split_seed must be between 0 and 2**32 - 1, got {split_seed}.")
    for label, frac in (("val_fraction", val), ("test_fraction", test)):
        if not (isinstance(frac, numbers.Real) and 0 < frac < 0.9):
            raise DataError(f"{label} must be a number between 0 and 0.9, got {frac!r}.")
    if val + test >= 0.9:
        raise DataError(
            f"val_fraction + test_fraction must be below 0.9 to leave data to train on, "
            f"got {val} + {test}."
        )
    if not (isinstance(noise, numbers.Real) and 0 <= noise < 1):
        raise DataError(f"label_noise must be in [0, 1), got {noise!r}.")


def check_class_subset(subset: list[int], n_classes: int) -> list[int]:
    """The classes to keep, or DataError (field ``class_subset``) naming the bad one."""
    keep = list(subset)
    bad = [k for k in keep if isinstance(k, bool) or not isinstance(k, int | np.integer)]
    bad += [k for k in keep if k not in bad and not 0 <= k < n_classes]
    if bad:
        raise DataError(
            f"class_subset has class {bad[0]!r}, but the classes are 0..{n_classes - 1}.",
            field="class_subset",
        )
    if len(set(keep)) != len(keep):
        raise DataError(f"class_subset {keep} lists a class more than once.",
                        field="class_subset")
    if len(keep) < 2:
        raise DataError(f"class_subset must keep at least 2 classes, got {keep}.",
                        field="class_subset")
    return [int(k) for k in keep]


def _keep_classes(
    x: np.ndarray, y: np.ndarray, keep: list[int], n_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    relabel = np.full(n_classes, -1, dtype=np.int64)
    relabel[keep] = np.arange(len(keep))  # new label = position in class_subset
    new_y = relabel[y]
    mask = new_y >= 0
    return x[mask], new_y[mask]


def _check_class_sizes(y: np.ndarray, class_names: list[str], fractions: dict) -> None:
    # Each class should land, on average, at least once in every split; sklearn would
    # otherwise fail with a cryptic message or silently leave a class out of val/test.
    smallest = min(fractions.values())
    need = max(len(fractions) + 1, math.ceil(1 / smallest - 1e-9))
    counts = np.bincount(y, minlength=len(class_names))
    k = int(np.argmin(counts))
    if counts[k] < need:
        opts = ", ".join(f"{key}={val}" for key, val in fractions.items())
        raise DataError(
            f"Class {class_names[k]!r} has only {counts[k]} samples, too few to stratify "
            f"the splits (needs at least {need} with {opts})."
        )


def _split(idx: np.ndarray, y: np.ndarray, frac: float, seed: int) -> tuple[np.ndarray, ...]:
    try:
        return tuple(train_test_split(idx, test_size=frac, stratify=y, random_state=seed))
    except ValueError as e:  # e.g. more classes than samples in a split
        raise DataError(f"Could not make a stratified split: {e}") from None


def _add_label_noise(
    y: np.ndarray, n_classes: int, noise: float, seed: int
) -> tuple[np.ndarray, int]:
    n_flip = round(noise * len(y))
    if n_flip == 0:
        return y, 0
    # Own generator derived from split_seed: reproducible, independent of the split.
    rng = np.random.default_rng([seed, 0x6E6F697365])
    idx = rng.choice(len(y), size=n_flip, replace=False)
    y = y.copy()
    # Adding 1..K-1 mod K gives a uniformly random *different* class.
    y[idx] = (y[idx] + rng.integers(1, n_classes, size=n_flip)) % n_classes
    return y, n_flip


# ----------------------------------------------------------------------------- sources


def _load_digits() -> tuple[np.ndarray, np.ndarray, list[str]]:
    d = load_digits()
    x = (d.data / 16.0).reshape(-1, 1, 8, 8)
    return x, d.target.astype(np.int64), [str(k) for k in range(10)]


def _make_synthetic(
    n_samples: int, n_features: int, n_classes: int, imbalance: float, seed: int
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    for label, v, low in (("n_samples", n_samples, 1), ("n_features", n_features, 2),
                          ("n_classes", n_classes, 2)):  # fmt: skip
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < low:
            raise DataError(f"{label} must be an integer of at least {low}, got {v!r}.")
    if not (isinstance(imbalance, numbers.Real) and math.isfinite(imbalance) and imbalance >= 1):
        raise DataError(f"imbalance must be a number >= 1 (1 = balanced), got {imbalance!r}.")
    n_informative = max(2, n_features // 2)
    if n_classes > 2**n_informative:
        raise DataError(
            f"n_classes={n_classes} needs more features: {n_features} features give "
            f"{n_informative} informative ones, which separate at most {2**n_informative} classes."
        )
    # Class k gets weight imbalance**(-k/(K-1)): largest/smallest == imbalance.
    w = float(imbalance) ** (-np.arange(n_classes) / (n_classes - 1))
    x, y = make_classification(
        n_samples=n_samples, n_features=n_features, n_informative=n_informative,
        n_redundant=0, n_classes=n_classes, n_clusters_per_class=1,
        weights=list(w / w.sum()), flip_y=0, class_sep=1.0, random_state=seed,
    )  # fmt: skip
    return x, y.astype(np.int64), [str(k) for k in range(n_classes)]


# ----------------------------------------------------------------------------- mnist1d


# The mnist1d package's get_dataset_args() defaults (the paper's benchmark), copied so a
# cache hit needs no import of the package (it pulls in matplotlib). Its `url` is dropped:
# it only serves the package's downloader, which we never call.
_MNIST1D_ARGS = {
    "num_samples": 5000, "train_split": 0.8, "template_len": 12, "padding": [36, 60],
    "scale_coeff": 0.4, "max_translation": 48, "corr_noise_scale": 0.25,
    "iid_noise_scale": 2e-2, "shear_scale": 0.75, "shuffle_seq": False,
    "final_seq_length": 40, "seed": 42,
}  # fmt: skip


def _load_mnist1d(cache_dir: str | os.PathLike | None) -> tuple[np.ndarray, ...]:
    """(x, y, x_test, y_test) with x of shape (N, 1, 40), cached on disk as .npz."""
    args = _MNIST1D_ARGS
    blob = json.dumps([_CACHE_VERSION, args], sort_keys=True).encode()
    digest = hashlib.sha256(blob).hexdigest()[:12]
    path = Path(cache_dir or default_cache_dir()).expanduser() / f"mnist1d-{digest}.npz"

    n_train = int(args["num_samples"] * args["train_split"])
    shapes = {
        "x": (n_train, args["final_seq_length"]), "y": (n_train,),
        "x_test": (args["num_samples"] - n_train, args["final_seq_length"]),
        "y_test": (args["num_samples"] - n_train,),
    }  # fmt: skip
    arrays = _read_cache(path, shapes)
    if arrays is None:
        arrays = _generate_mnist1d(args)
        _write_cache(path, arrays)
    x, y, x_test, y_test = (arrays[k] for k in ("x", "y", "x_test", "y_test"))
    return x[:, None, :], y.astype(np.int64), x_test[:, None, :], y_test.astype(np.int64)


def _generate_mnist1d(args: dict) -> dict[str, np.ndarray]:
    # Imported lazily: it pulls in matplotlib, slow to import. Never call its get_dataset(),
    # which downloads; make_dataset() builds the same data offline.
    from mnist1d import data as m1d
    from mnist1d.utils import ObjectView

    # make_dataset reseeds the global random / numpy RNGs; give the caller theirs back.
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        d = m1d.make_dataset(ObjectView(dict(args)))
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    return {k: np.asarray(d[k]) for k in ("x", "y", "x_test", "y_test")}


def _read_cache(path: Path, shapes: dict[str, tuple]) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None if missing or unusable (then we regenerate)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in shapes}
    except Exception:  # truncated / corrupt / not a zip: regenerate instead
        return None
    ok = all(arrays[k].shape == s for k, s in shapes.items())
    ok = ok and all(np.isfinite(arrays[k]).all() for k in ("x", "x_test"))
    ok = ok and all(((arrays[k] >= 0) & (arrays[k] < 10)).all() for k in ("y", "y_test"))
    return arrays if ok else None


def _write_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    # Temp file in the same directory + os.replace, so a reader (or a concurrent run)
    # never sees a half-written file.
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; it is a shareable cache
        os.replace(tmp, path)
    except OSError as e:  # a read-only cache only costs regeneration next time
        warnings.warn(f"Could not cache mnist1d at {path}: {e}", stacklevel=3)
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


# ----------------------------------------------------------------------------- csv


# Limits on a user's CSV (README, "Limits"): a 100,000-column file once trained for 90 s at
# 980 MB. Columns match the synthetic task's 1,000 features (plus the label), rows its samples.
MAX_CSV_BYTES = 256 * 2**20
MAX_CSV_ROWS = 1_000_000
MAX_CSV_COLUMNS = 1_001
MAX_CSV_CELLS = 10_000_000
_NOT_A_TABLE = ("is not a CSV table with a header line, at least one feature column, a label "
                "column and data rows")


def _read_csv(path: str | os.PathLike, label: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Numeric feature columns + a label column; errors name the file line and column.

    Only a file that parses as such a table gets messages naming its columns or values: a path
    to any other file (``/etc/hostname``) must not have its first line quoted back.
    """
    p = Path(path).expanduser()
    header, rows, lines = _read_table(p)
    if header is None:
        raise DataError(f"CSV file {str(p)!r} is empty.", field="csv_path")
    if len(header) < 2 or not rows:
        raise DataError(f"CSV file {str(p)!r} {_NOT_A_TABLE}.", field="csv_path")
    # From here on the file is a well-formed table: its column names may be shown.
    dupes = sorted({c for c in header if header.count(c) > 1})
    if dupes:
        raise DataError(f"{p.name} has duplicate column names: {_names(dupes)}.",
                        field="csv_path")
    if label not in header:
        raise DataError(f"{p.name} has no label column {label!r}; its columns are: "
                        f"{_names(header, quote=False)}.", field="csv_label")

    li = header.index(label)
    feat_cols = [j for j in range(len(header)) if j != li]
    labels = [r[li].strip() for r in rows]
    for line, value in zip(lines, labels, strict=True):
        if not value:
            raise DataError(f"{p.name} line {line}: label column {label!r} is empty.",
                            field="csv_path")
    x = _parse_features(rows, feat_cols, header, lines, p.name)

    # Integer labels sort numerically ("2" before "10"); anything else as strings.
    try:
        keys: list = [int(v) for v in labels]
    except ValueError:
        keys = labels
    uniq = sorted(set(keys))
    if len(uniq) < 2:
        raise DataError(
            f"{p.name}: label column {label!r} has only one class ({str(uniq[0])[:40]!r}); "
            f"at least 2 are needed.", field="csv_label"
        )
    index = {v: i for i, v in enumerate(uniq)}
    y = np.array([index[v] for v in keys], dtype=np.int64)
    return x, y, [str(v) for v in uniq]


def _names(names: list[str], quote: bool = True, limit: int = 20) -> str:
    shown = [(repr(n[:40]) if quote else n[:40]) for n in names[:limit]]
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(shown) + more


def _open_regular(p: Path) -> int:
    """A read-only descriptor of the regular file ``p`` (never a FIFO or device: opening one
    would block or read forever), within the size limit."""
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise DataError(f"CSV file {str(p)!r} does not exist.", field="csv_path") from None
    except OSError as e:
        raise DataError(f"CSV file {str(p)!r} could not be read: {e.strerror}.",
                        field="csv_path") from None
    info = os.fstat(fd)
    problem = None
    if not stat.S_ISREG(info.st_mode):
        problem = f"CSV path {str(p)!r} is not a file."
    elif info.st_size > MAX_CSV_BYTES:
        problem = (f"CSV file {str(p)!r} is {info.st_size / 2**20:,.0f} MiB; the limit is "
                   f"{MAX_CSV_BYTES // 2**20} MiB.")
    if problem:
        os.close(fd)
        raise DataError(problem, field="csv_path")
    return fd


def _read_table(p: Path) -> tuple[list[str] | None, list[list[str]], list[int]]:
    """(header, rows, file line of each row), refusing files over the size limits."""
    rows: list[list[str]] = []
    lines: list[int] = []  # 1-based file line where each row starts (header is line 1)
    header: list[str] | None = None
    fd = _open_regular(p)
    prev = 0
    try:
        with open(fd, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            for row in reader:
                start, prev = prev + 1, reader.line_num
                if not any(cell.strip() for cell in row):
                    continue  # blank line
                if header is None:
                    header = [c.strip() for c in row]
                    _check_columns(p, len(header))
                    continue
                if len(row) != len(header):
                    raise DataError(
                        f"{p.name} line {start} has {len(row)} fields but the header has "
                        f"{len(header)} columns.", field="csv_path"
                    )
                rows.append(row)
                lines.append(start)
                _check_rows(p, len(rows), len(header))
    except UnicodeDecodeError:
        raise DataError(f"CSV file {str(p)!r} is not UTF-8 text.", field="csv_path") from None
    except csv.Error as e:
        raise DataError(f"CSV file {str(p)!r} could not be parsed near line {prev}: {e}.",
                        field="csv_path") from None
    except OSError as e:
        raise DataError(f"CSV file {str(p)!r} could not be read: {e.strerror}.",
                        field="csv_path") from None
    return header, rows, lines


def _check_columns(p: Path, n: int) -> None:
    if n > MAX_CSV_COLUMNS:
        raise DataError(f"CSV file {str(p)!r} has {n:,} columns; the limit is "
                        f"{MAX_CSV_COLUMNS:,} ({MAX_CSV_COLUMNS - 1:,} features and the label).",
                        field="csv_path")


def _check_rows(p: Path, n_rows: int, n_columns: int) -> None:
    if n_rows > MAX_CSV_ROWS:
        raise DataError(f"CSV file {str(p)!r} has more than {MAX_CSV_ROWS:,} data rows, the "
                        "limit.", field="csv_path")
    if n_rows * n_columns > MAX_CSV_CELLS:
        raise DataError(f"CSV file {str(p)!r} has more than {MAX_CSV_CELLS:,} values (rows × "
                        f"columns), the limit; with {n_columns:,} columns that is "
                        f"{MAX_CSV_CELLS // n_columns:,} rows.", field="csv_path")


def _parse_features(
    rows: list[list[str]], cols: list[int], header: list[str], lines: list[int], fname: str
) -> np.ndarray:
    # Row by row into a float array: one array of strings would take 4 bytes per character of
    # the longest cell for every cell.
    x = np.empty((len(rows), len(cols)), dtype=np.float64)
    try:
        for i, r in enumerate(rows):
            x[i] = [r[j] for j in cols]
        if np.isfinite(x).all():
            return x
    except ValueError:
        pass
    for r, line in zip(rows, lines, strict=True):  # slow path: find the first bad cell
        for j in cols:
            value = r[j]
            where = f"{fname} line {line}, column {header[j][:40]!r}"
            if not value.strip():
                raise DataError(f"{where} is empty; every feature value must be a number.",
                                field="csv_path")
            try:
                ok = math.isfinite(float(value))
            except ValueError:
                ok = False
            if not ok:
                raise DataError(f"{where} has value {value[:40]!r}, which is not a finite "
                                "number.", field="csv_path")
    raise DataError(f"{fname} has a feature value that is not a finite number.")  # unreachable
