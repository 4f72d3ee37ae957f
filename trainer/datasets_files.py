"""Your own data from files: a NumPy ``.npz`` archive or a folder of images, one folder per class.

- ``npz``: arrays ``x`` and ``y`` (one label per sample), optionally ``x_test`` and ``y_test``
  (then kept as the test set). ``x`` is N x F (tabular), N x H x W (grey images) or N x C x H x W
  (C = 1 or 3; N x H x W x C is transposed). uint8 pixels are scaled to [0, 1].
- ``images``: ``root/<class>/<file>``, read with Pillow, resized to ``size`` x ``size``; grey
  when every image is, RGB otherwise; pixels scaled to [0, 1]. Classes are the folder names.

Every error is a DataError that names the file and what is wrong with it.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from trainer.data_error import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
CHANNELS = (1, 3)
MAX_IMAGE_SIZE = 512


def _labels(y: np.ndarray, where: str) -> tuple[np.ndarray, list[str]]:
    """Labels as 0..K-1 (sorted values) and their names; DataError for fewer than 2 classes."""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{where} must be one label per sample (shape N), not {y.shape}.")
    if y.dtype.kind == "f":
        if not np.isfinite(y).all() or (y != np.round(y)).any():
            raise DataError(f"{where} holds non-integer numbers; labels must be classes.")
        y = y.astype(np.int64)
    if y.dtype.kind not in "iuUSb":
        raise DataError(f"{where} has dtype {y.dtype}; labels must be integers or text.")
    values, index = np.unique(y, return_inverse=True)
    if len(values) < 2:
        shown = values[0].item() if len(values) else "none"
        raise DataError(f"{where} has only one class ({shown!r}); at least 2 are needed.")
    return index.astype(np.int64), [str(v.item() if hasattr(v, "item") else v) for v in values]


def _images(x: np.ndarray, where: str) -> tuple[np.ndarray, str]:
    """(x as float32 N x F, N x 1 x H x W or N x C x H x W, kind) or DataError."""
    if x.dtype.kind not in "fiub":
        raise DataError(f"{where} has dtype {x.dtype}; it must hold numbers.")
    scale = 255.0 if x.dtype == np.uint8 else 1.0
    if x.ndim == 2:
        kind = "tabular"
    elif x.ndim == 3:
        x, kind = x[:, None], "image"
    elif x.ndim == 4 and x.shape[1] in CHANNELS:
        kind = "image"
    elif x.ndim == 4 and x.shape[3] in CHANNELS:
        x, kind = x.transpose(0, 3, 1, 2), "image"
    else:
        raise DataError(f"{where} has shape {x.shape}; expected N x F (tabular), N x H x W or "
                        f"N x C x H x W with C = 1 or 3 (images).")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if scale != 1.0:
        x /= scale
    if not np.isfinite(x).all():
        raise DataError(f"{where} holds NaN or infinite values.")
    return x, kind


def npz_kind(path: str | os.PathLike) -> str:
    """'image' or 'tabular' from the shape of ``x`` in the archive, read from the array's
    header only; 'tabular' when the file cannot tell (loading then says what is wrong)."""
    try:
        with zipfile.ZipFile(path) as z, z.open("x.npy") as f:
            fmt = np.lib.format
            read = (fmt.read_array_header_1_0 if fmt.read_magic(f) == (1, 0)
                    else fmt.read_array_header_2_0)
            shape = read(f)[0]  # the header only, not the data
    except Exception:  # missing, not a zip, no x: load_npz reports it
        return "tabular"
    return "image" if len(shape) in (3, 4) else "tabular"


def load_npz(path: str | os.PathLike) -> tuple[np.ndarray, ...]:
    """(x, y, class_names, x_test, y_test, kind); x_test/y_test are None when absent."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"npz file {str(p)!r} does not exist." if not p.exists()
                        else f"npz path {str(p)!r} is not a file.")
    try:
        with np.load(p, allow_pickle=False) as npz:  # never unpickle a user's file
            arrays = {k: npz[k] for k in npz.files}
    except ValueError as exc:
        raise DataError(f"{p.name} holds an array that needs pickle ({exc}); save plain "
                        "numeric arrays.") from None
    except Exception as exc:
        raise DataError(f"{p.name} is not a readable .npz archive ({type(exc).__name__}).") \
            from None
    missing = [k for k in ("x", "y") if k not in arrays]
    if missing:
        raise DataError(f"{p.name} has no array {' or '.join(map(repr, missing))}; it holds "
                        f"{', '.join(sorted(arrays)) or 'nothing'} (expected x, y and "
                        "optionally x_test, y_test).")
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise DataError(f"{p.name} has {'x_test' if 'x_test' in arrays else 'y_test'} without "
                        f"{'y_test' if 'x_test' in arrays else 'x_test'}.")
    x, kind = _images(arrays["x"], f"{p.name}: x")
    if len(arrays["y"]) != len(x):
        raise DataError(f"{p.name}: x has {len(x)} samples but y has {len(arrays['y'])} labels.")
    if "x_test" not in arrays:
        y, names = _labels(arrays["y"], f"{p.name}: y")
        return x, y, names, None, None, kind
    x_test, _ = _images(arrays["x_test"], f"{p.name}: x_test")
    if x_test.shape[1:] != x.shape[1:]:
        raise DataError(f"{p.name}: x_test samples have shape {x_test.shape[1:]} but x samples "
                        f"have {x.shape[1:]}.")
    if len(arrays["y_test"]) != len(x_test):
        raise DataError(f"{p.name}: x_test has {len(x_test)} samples but y_test has "
                        f"{len(arrays['y_test'])} labels.")
    both, names = _labels(np.concatenate([arrays["y"], arrays["y_test"]]), f"{p.name}: y")
    return x, both[:len(x)], names, x_test, both[len(x):], kind


def _read_image(path: Path, size: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError  # Pillow: only for image folders

    try:
        with Image.open(path) as im:
            im.load()
            mode = "L" if im.mode in ("1", "L", "I;16", "I", "F") else "RGB"
            im = im.convert(mode).resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"image {str(path)!r} could not be read: "
                        f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}.") \
            from None


def load_image_folder(root: str | os.PathLike, size: int) -> tuple[np.ndarray, np.ndarray,
                                                                   list[str]]:
    """(x N x C x size x size float32 in [0, 1], y, class names) from root/<class>/<image>."""
    p = Path(root).expanduser()
    if not p.is_dir():
        raise DataError(f"image folder {str(p)!r} does not exist." if not p.exists()
                        else f"{str(p)!r} is not a folder (expected one subfolder per class).")
    if not 4 <= size <= MAX_IMAGE_SIZE:
        raise DataError(f"image_size must be between 4 and {MAX_IMAGE_SIZE}, got {size}.")
    classes = sorted(d.name for d in p.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(classes) < 2:
        found = f"only one class folder ({classes[0]})" if classes else "no class folders"
        raise DataError(f"{str(p)!r} has {found}; put each class's images in a subfolder of "
                        "its own, at least 2 classes.")
    images, labels = [], []
    for k, name in enumerate(classes):
        files = sorted(f for f in (p / name).iterdir()
                       if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith("."))
        if not files:
            raise DataError(f"class folder {str(p / name)!r} holds no images "
                            f"({', '.join(IMAGE_SUFFIXES)}).")
        for f in files:
            images.append(_read_image(f, size))
            labels.append(k)
    grey = all(im.ndim == 2 for im in images)
    stack = [im[None] if grey else (np.repeat(im[None], 3, 0) if im.ndim == 2 else
                                    im.transpose(2, 0, 1)) for im in images]
    x = np.stack(stack).astype(np.float32) / 255.0
    return x, np.asarray(labels, dtype=np.int64), classes


def describe(x: np.ndarray) -> str:
    """"1,200 samples of 3 x 32 x 32" for messages."""
    return f"{len(x):,} samples of {' x '.join(map(str, x.shape[1:]))}"


def check_files(config: Any) -> None:
    """Read the files an npz or images config names, so that a bad file is refused (DataError)
    before a run is created; other datasets pass."""
    if config.dataset == "npz":
        load_npz(config.data_path)
    elif config.dataset == "images":
        load_image_folder(config.data_path, config.image_size)
