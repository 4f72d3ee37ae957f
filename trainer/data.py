"""Datasets for Danlu: small, offline, deterministic.

    ds = load_dataset("digits", split_seed=0, label_noise=0.2)
    ds.x_train.shape, ds.sizes, ds.noisy_labels

Every dataset is split train/val/test (stratified) from `split_seed` alone, so runs
that differ only in their training seed see the same test set. Nothing here touches
the global numpy / random / torch RNG state, and nothing is downloaded. The sources that need
more than a call live beside it: trainer/datasets_mnist1d.py (generated once, cached),
trainer/datasets_csv.py (a user's CSV) and trainer/datasets_files.py (npz and image folders).
"""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass

import numpy as np
from sklearn.datasets import load_digits, make_classification
from sklearn.model_selection import train_test_split

from trainer.data_error import DataError  # re-exported: trainer.data.DataError
from trainer.datasets_csv import read_csv
from trainer.datasets_mnist1d import load_mnist1d

DATASETS = ("digits", "mnist1d", "synthetic", "csv", "npz", "images")
_KINDS = {"digits": "image", "mnist1d": "sequence", "synthetic": "tabular", "csv": "tabular",
          "npz": "tabular", "images": "image"}  # npz: "image" when its x is (see load_dataset)


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
    x, y, class_names, x_test, y_test, kind = _load_source(
        name, kind, split_seed=split_seed, csv_path=csv_path, csv_label=csv_label,
        n_samples=n_samples, n_features=n_features, n_classes=n_classes, imbalance=imbalance,
        cache_dir=cache_dir, data_path=data_path, image_size=image_size)

    if class_subset is not None:
        keep = check_class_subset(class_subset, len(class_names))
        x, y = _keep_classes(x, y, keep, len(class_names))
        if x_test is not None:
            x_test, y_test = _keep_classes(x_test, y_test, keep, len(class_names))
        class_names = [class_names[k] for k in keep]

    x_train, y_train, x_val, y_val, x_test, y_test = _split_rows(
        x, y, x_test, y_test, class_names, val_fraction, test_fraction, split_seed)
    y_train, n_noisy = _add_label_noise(y_train, len(class_names), label_noise, split_seed)
    if kind == "tabular":
        x_train, x_val, x_test = _standardise(x_train, x_val, x_test)

    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
    i64 = lambda a: np.ascontiguousarray(a, dtype=np.int64)  # noqa: E731
    return Dataset(
        name=name, kind=kind,
        x_train=f32(x_train), y_train=i64(y_train),
        x_val=f32(x_val), y_val=i64(y_val),
        x_test=f32(x_test), y_test=i64(y_test),
        class_names=list(class_names), noisy_labels=n_noisy,
    )  # fmt: skip


def _load_source(name: str, kind: str, *, split_seed: int, csv_path: str | os.PathLike | None,
                 csv_label: str, n_samples: int, n_features: int, n_classes: int,
                 imbalance: float, cache_dir: str | os.PathLike | None,
                 data_path: str | os.PathLike | None, image_size: int) -> tuple:
    """(x, y, class_names, x_test, y_test, kind) of one dataset, before any split. x_test and
    y_test are None unless the dataset comes with its own test set; an npz file says its kind."""
    x_test = y_test = None
    if name == "digits":
        x, y, class_names = _load_digits()
    elif name == "mnist1d":
        x, y, x_test, y_test = load_mnist1d(cache_dir)
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
        x, y, class_names = read_csv(csv_path, csv_label)
    return x, y, class_names, x_test, y_test, kind


def _split_rows(x: np.ndarray, y: np.ndarray, x_test: np.ndarray | None,
                y_test: np.ndarray | None, class_names: list[str], val_fraction: float,
                test_fraction: float, split_seed: int) -> tuple[np.ndarray, ...]:
    """(x_train, y_train, x_val, y_val, x_test, y_test), stratified from ``split_seed``; a test
    set the dataset came with is kept and only val is carved out of the rest."""
    if x_test is None:
        fractions = {"val_fraction": val_fraction, "test_fraction": test_fraction}
        _check_class_sizes(y, class_names, fractions)
        rest, test = _split(np.arange(len(y)), y, test_fraction, split_seed)
        train, val = _split(rest, y[rest], val_fraction / (1 - test_fraction), split_seed)
        x_test, y_test = x[test], y[test]
    else:
        _check_class_sizes(y, class_names, {"val_fraction": val_fraction})
        train, val = _split(np.arange(len(y)), y, val_fraction, split_seed)
    return x[train], y[train], x[val], y[val], x_test, y_test


def _standardise(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Each array scaled by the first's per-feature mean and std: statistics from train only,
    so val/test stay unseen."""
    mean = arrays[0].mean(axis=0, dtype=np.float64)
    std = arrays[0].std(axis=0, dtype=np.float64)
    std[std == 0] = 1.0
    return tuple((a - mean) / std for a in arrays)


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

