"""mnist1d, generated offline by its package once and cached on disk (trainer/data.py splits it).

The package's ``get_dataset()`` downloads: it is never called; ``make_dataset()`` builds the same
data offline, and its arrays are kept as an .npz under ``default_cache_dir()``.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
import warnings
from pathlib import Path

import numpy as np

_CACHE_VERSION = 1  # bump when the cached array layout changes


def default_cache_dir() -> Path:
    """$DANLU_CACHE_DIR, else ~/.cache/danlu."""
    return Path(os.environ.get("DANLU_CACHE_DIR") or Path.home() / ".cache" / "danlu").expanduser()


# The mnist1d package's get_dataset_args() defaults (the paper's benchmark), copied so a
# cache hit needs no import of the package (it pulls in matplotlib). Its `url` is dropped:
# it only serves the package's downloader, which we never call.
MNIST1D_ARGS = {
    "num_samples": 5000, "train_split": 0.8, "template_len": 12, "padding": [36, 60],
    "scale_coeff": 0.4, "max_translation": 48, "corr_noise_scale": 0.25,
    "iid_noise_scale": 2e-2, "shear_scale": 0.75, "shuffle_seq": False,
    "final_seq_length": 40, "seed": 42,
}  # fmt: skip


def load_mnist1d(cache_dir: str | os.PathLike | None) -> tuple[np.ndarray, ...]:
    """(x, y, x_test, y_test) with x of shape (N, 1, 40), cached on disk as .npz."""
    args = MNIST1D_ARGS
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
        warnings.warn(f"Could not cache mnist1d at {path}: {e}", stacklevel=4)
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
