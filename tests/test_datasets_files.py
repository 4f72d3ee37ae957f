"""Your own data: npz arrays and image folders train end to end; bad files say what is wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dashboard import queueing
from tests.conftest import run_cli
from trainer import placement, runlog
from trainer.config import ConfigError
from trainer.data import DataError, load_dataset
from trainer.datasets_files import load_image_folder, load_npz


def make_npz(path: Path, n: int = 240, shape: tuple[int, ...] = (3, 16, 16), **extra) -> Path:
    """Three classes told apart by which channel (or feature block) is bright."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), n // 3)
    x = rng.normal(size=(n, *shape)).astype(np.float32)
    x[np.arange(n), y % shape[0]] += 2.0
    np.savez(path, x=x, y=y, **extra)
    return path


def make_folder(root: Path, classes=("cat", "dog", "fish"), per_class: int = 30,
                grey: bool = False) -> Path:
    """RGB (or grey) images of mixed sizes, one subfolder per class."""
    rng = np.random.default_rng(1)
    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            h, w = 20 + i % 7, 24 + i % 5
            if grey:
                a = rng.integers(0, 50, (h, w), dtype=np.uint8) + np.uint8(60 * k)
            else:
                a = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
                a[..., k] += 150
            Image.fromarray(a).save(root / name / f"{i}.png")
    return root


def finished(done) -> dict:
    assert done.returncode == 0, done.stdout + done.stderr
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    assert runlog.read_json(run_dir / runlog.STATUS)["state"] == "finished"
    return runlog.read_json(run_dir / runlog.SUMMARY)


@pytest.mark.slow
def test_an_npz_dataset_trains_end_to_end_through_a_data_loader(tmp_path: Path) -> None:
    data = make_npz(tmp_path / "arrays.npz")
    summary = finished(run_cli("run", "--runs-dir", str(tmp_path / "runs"), "--set",
                               "dataset=npz", f"data_path={data}", "epochs=2", "batch_size=32",
                               "data_placement=loader"))
    ds = summary["dataset"]
    assert ds["input_shape"] == [3, 16, 16] and ds["n_classes"] == 3 and ds["kind"] == "image"
    assert ds["placement"] == "loader" and ds["reason"] == "chosen"
    assert summary["test"]["n"] == ds["sizes"]["test"] > 0


@pytest.mark.slow
def test_an_image_folder_trains_end_to_end_with_rgb_32x32(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "pets")
    summary = finished(run_cli("run", "--runs-dir", str(tmp_path / "runs"), "--set",
                               "dataset=images", f"data_path={folder}", "image_size=32",
                               "epochs=2", "batch_size=16"))
    ds = summary["dataset"]
    assert ds["input_shape"] == [3, 32, 32] and ds["placement"] == "device"
    assert summary["class_names"] == ["cat", "dog", "fish"]


def test_arrays_are_read_in_every_layout(tmp_path: Path) -> None:
    x, y, names, xt, yt, kind = load_npz(make_npz(tmp_path / "a.npz", shape=(1, 8, 8)))
    assert x.shape == (240, 1, 8, 8) and kind == "image" and xt is None and names == ["0", "1", "2"]
    rng = np.random.default_rng(0)
    hwc = rng.integers(0, 256, (12, 10, 10, 3), dtype=np.uint8)  # channels last, uint8
    np.savez(tmp_path / "b.npz", x=hwc, y=np.array(["a", "b"] * 6), x_test=hwc[:4],
             y_test=np.array(["b", "a", "b", "b"]))
    x, y, names, xt, yt, kind = load_npz(tmp_path / "b.npz")
    assert list(y) == [0, 1] * 6
    assert x.shape == (12, 3, 10, 10) and x.max() <= 1.0 and names == ["a", "b"]
    np.testing.assert_allclose(x[0, 2], hwc[0, :, :, 2] / 255.0, rtol=1e-6)
    assert list(yt) == [1, 0, 1, 1] and xt.shape == (4, 3, 10, 10)
    np.savez(tmp_path / "c.npz", x=rng.normal(size=(60, 5)), y=np.arange(60) % 2)
    ds = load_dataset("npz", data_path=tmp_path / "c.npz")
    assert ds.kind == "tabular" and ds.input_shape == (5,)
    grey = load_image_folder(make_folder(tmp_path / "grey", grey=True, per_class=3), 12)
    assert grey[0].shape == (9, 1, 12, 12)


def npz(tmp_path: Path, **arrays) -> Path:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(("arrays", "message"), [
    ({"x": np.zeros((10, 4))}, "bad.npz has no array 'y'; it holds x"),
    ({"x": np.zeros((10, 5, 8, 8)), "y": np.arange(10) % 2},
     "bad.npz: x has shape (10, 5, 8, 8); expected N x F (tabular), N x H x W or N x C x H x W"),
    ({"x": np.zeros((10, 4)), "y": np.arange(9) % 2}, "x has 10 samples but y has 9 labels"),
    ({"x": np.zeros((10, 4)), "y": np.ones(10)}, "bad.npz: y has only one class (1)"),
    ({"x": np.zeros((10, 4)), "y": np.arange(10) % 2, "x_test": np.zeros((3, 4))},
     "bad.npz has x_test without y_test"),
    ({"x": np.zeros((10, 4)), "y": np.arange(10) % 2, "x_test": np.zeros((3, 5)),
      "y_test": np.zeros(3)}, "x_test samples have shape (5,) but x samples have (4,)"),
])
def test_bad_npz_files_say_what_is_wrong(tmp_path: Path, arrays: dict, message: str) -> None:
    with pytest.raises(DataError) as exc:
        load_npz(npz(tmp_path, **arrays))
    assert message in str(exc.value)


def test_bad_image_folders_name_the_file(tmp_path: Path) -> None:
    one = make_folder(tmp_path / "one", classes=("cat",), per_class=2)
    with pytest.raises(DataError, match=r"has only one class folder \(cat\)"):
        load_image_folder(one, 16)
    folder = make_folder(tmp_path / "pets", per_class=2)
    (folder / "dog" / "broken.png").write_text("not an image")
    with pytest.raises(DataError) as exc:
        load_image_folder(folder, 16)
    assert "broken.png" in str(exc.value) and "could not be read" in str(exc.value)
    (folder / "dog" / "broken.png").unlink()
    (folder / "empty").mkdir()
    with pytest.raises(DataError, match="empty' holds no images"):
        load_image_folder(folder, 16)


def test_the_cli_and_the_form_refuse_a_bad_file_before_a_run_exists(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DANLU_DATA_DIR", str(tmp_path))
    bad = npz(tmp_path, x=np.zeros((10, 4)), y=np.ones(10))
    done = run_cli("run", "--runs-dir", str(tmp_path / "runs"), "--set", "dataset=npz",
                   f"data_path={bad}")
    assert done.returncode == 2
    assert "error: data_path: bad.npz: y has only one class" in done.stderr
    assert not (tmp_path / "runs").exists()
    root = tmp_path / "runs"
    errors = queueing.form_errors({"dataset": "images", "data_path": str(tmp_path / "nowhere")},
                                root)
    assert [e.field for e in errors] == ["data_path"] and "does not exist" in errors[0].message
    errors = queueing.form_errors({"dataset": "npz", "data_path": str(bad)}, root)
    assert "bad.npz: y has only one class" in errors[0].message
    outside = queueing.form_errors({"dataset": "npz", "data_path": "/etc/passwd"}, root)
    assert "reads data files only from" in outside[0].message  # the app's data folders only
    assert queueing.form_errors({"dataset": "npz", "data_path": str(make_npz(
        tmp_path / "good.npz"))}, root) == []
    with pytest.raises(ConfigError, match="data_path: dataset='npz' needs data_path"):
        queueing.validate_all([{"dataset": "npz"}])


def test_data_that_does_not_fit_the_device_is_streamed_and_says_why() -> None:
    arrays = [np.zeros((1000, 3, 32, 32), np.float32)]  # 12 MB
    cpu = torch.device("cpu")
    assert placement.choose("auto", arrays, cpu).mode == "device"  # host memory already
    small = placement.choose("auto", arrays, cpu, free_bytes=10 << 20)
    assert small.mode == "loader" and small.budget_bytes == 5 << 20
    assert "12 MiB of data > 5 MiB (50% of the device's free memory)" in small.reason
    assert placement.choose("auto", arrays, cpu, free_bytes=100 << 20).mode == "device"
    assert placement.choose("device", arrays, cpu, free_bytes=1).mode == "device"
