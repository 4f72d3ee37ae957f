"""Tests for trainer.data: shapes, splits, label noise, caching and CSV errors."""

import hashlib
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from trainer import datasets_mnist1d
from trainer.data import DATASETS, DataError, Dataset, dataset_kind, load_dataset


def row_hashes(x: np.ndarray) -> set[str]:
    return {hashlib.sha1(np.ascontiguousarray(r).tobytes()).hexdigest() for r in x}


def assert_well_formed(ds: Dataset) -> None:
    for split in ("train", "val", "test"):
        x, y = getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}")
        assert x.dtype == np.float32 and y.dtype == np.int64
        assert x.flags.c_contiguous and y.flags.c_contiguous
        assert len(x) == len(y) == ds.sizes[split] > 0
        assert x.shape[1:] == ds.input_shape
        assert y.min() >= 0 and y.max() < ds.n_classes
        assert np.isfinite(x).all()


def rng_states() -> tuple:
    return random.getstate(), np.random.get_state()


def assert_same_rng_states(before: tuple, after: tuple) -> None:
    assert before[0] == after[0]
    np_before, np_after = before[1], after[1]
    assert np_before[0] == np_after[0] and np_before[2:] == np_after[2:]
    np.testing.assert_array_equal(np_before[1], np_after[1])


# ----------------------------------------------------------------------------- basics


def test_digits_is_an_image_dataset():
    ds = load_dataset("digits")
    assert_well_formed(ds)
    assert ds.kind == dataset_kind("digits") == "image"
    assert ds.input_shape == (1, 8, 8)
    assert ds.class_names == [str(k) for k in range(10)]
    assert ds.x_train.min() >= 0.0 and ds.x_train.max() <= 1.0  # pixel values / 16
    assert sum(ds.sizes.values()) == 1797


def test_synthetic_is_tabular_and_standardised_with_train_stats():
    ds = load_dataset("synthetic", n_samples=1000, n_features=6, n_classes=3)
    assert_well_formed(ds)
    assert ds.kind == dataset_kind("synthetic") == "tabular"
    assert ds.input_shape == (6,) and ds.n_classes == 3
    np.testing.assert_allclose(ds.x_train.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(ds.x_train.std(0), 1, atol=1e-4)
    assert not np.allclose(ds.x_test.mean(0), 0, atol=1e-5)  # test stats were not used


def test_dataset_kind_needs_no_loading_and_rejects_unknown_names():
    # npz reads as tabular until its x is seen (load_dataset); an image folder is images
    assert [dataset_kind(n) for n in DATASETS] == ["image", "sequence", "tabular", "tabular",
                                                   "tabular", "image"]
    with pytest.raises(DataError, match="Unknown dataset 'cifar'"):
        dataset_kind("cifar")
    with pytest.raises(DataError, match="Unknown dataset"):
        load_dataset("cifar")


@pytest.mark.parametrize(
    "kwargs",
    [{"val_fraction": 0}, {"test_fraction": -0.1}, {"val_fraction": 0.5, "test_fraction": 0.4},
     {"label_noise": 1.0}, {"label_noise": -0.1}, {"split_seed": -1}, {"split_seed": 1.5}],
)  # fmt: skip
def test_bad_options_raise_data_error(kwargs):
    with pytest.raises(DataError):
        load_dataset("digits", **kwargs)


def test_no_global_rng_state_is_touched():
    random.seed(123)
    np.random.seed(123)
    before = rng_states()
    load_dataset("digits", label_noise=0.3)
    load_dataset("synthetic", n_samples=500, imbalance=3.0, label_noise=0.1)
    assert_same_rng_states(before, rng_states())


# ----------------------------------------------------------------------------- splits


def test_splits_are_disjoint_and_sized_as_requested():
    ds = load_dataset("digits", val_fraction=0.2, test_fraction=0.1)
    train, val, test = (row_hashes(a) for a in (ds.x_train, ds.x_val, ds.x_test))
    assert not (train & val) and not (train & test) and not (val & test)
    assert len(train | val | test) == 1797  # nothing lost (digits rows are all distinct)
    assert abs(ds.sizes["val"] - 0.2 * 1797) <= 2
    assert abs(ds.sizes["test"] - 0.1 * 1797) <= 2


def test_splits_are_stratified():
    ds = load_dataset("synthetic", n_samples=2000, n_classes=4, imbalance=4.0)
    overall = np.bincount(np.concatenate([ds.y_train, ds.y_val, ds.y_test]), minlength=4)
    overall = overall / overall.sum()
    for y in (ds.y_train, ds.y_val, ds.y_test):
        np.testing.assert_allclose(np.bincount(y, minlength=4) / len(y), overall, atol=0.01)


def test_same_split_seed_gives_identical_data_and_a_different_one_does_not():
    a, b = load_dataset("digits", split_seed=3), load_dataset("digits", split_seed=3)
    for field in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    c = load_dataset("digits", split_seed=4)
    assert row_hashes(a.x_test) != row_hashes(c.x_test)


# ----------------------------------------------------------------------------- label noise


def test_label_noise_flips_train_labels_only():
    clean = load_dataset("digits", split_seed=1)
    noisy = load_dataset("digits", split_seed=1, label_noise=0.3)
    # Noise must not move the split: same rows, same val/test labels.
    np.testing.assert_array_equal(noisy.x_train, clean.x_train)
    np.testing.assert_array_equal(noisy.y_val, clean.y_val)
    np.testing.assert_array_equal(noisy.y_test, clean.y_test)
    flipped = noisy.y_train != clean.y_train
    assert flipped.sum() == noisy.noisy_labels == round(0.3 * len(clean.y_train))
    assert clean.noisy_labels == 0
    # Flipped labels go to every other class, not to one fixed neighbour.
    assert len(np.unique(noisy.y_train[flipped & (clean.y_train == 0)])) == 9
    again = load_dataset("digits", split_seed=1, label_noise=0.3)
    np.testing.assert_array_equal(again.y_train, noisy.y_train)


# ----------------------------------------------------------------------------- synthetic


@pytest.mark.parametrize("imbalance", [1.0, 5.0])
def test_synthetic_imbalance_is_largest_over_smallest_class(imbalance):
    ds = load_dataset("synthetic", n_samples=3000, n_classes=4, imbalance=imbalance)
    counts = np.bincount(np.concatenate([ds.y_train, ds.y_val, ds.y_test]))
    assert counts[0] / counts[-1] == pytest.approx(imbalance, rel=0.05)
    assert (np.diff(counts) <= 1).all()  # class 0 is the majority, K-1 the minority


def test_synthetic_rejects_bad_arguments():
    with pytest.raises(DataError, match="imbalance"):
        load_dataset("synthetic", imbalance=0.5)
    with pytest.raises(DataError, match="n_classes"):
        load_dataset("synthetic", n_classes=1)
    with pytest.raises(DataError, match="n_classes=9 needs more features"):
        load_dataset("synthetic", n_features=4, n_classes=9)
    with pytest.raises(DataError, match=r"Class '3' has only \d samples"):
        load_dataset("synthetic", n_samples=200, imbalance=100.0)


# ----------------------------------------------------------------------------- class_subset


def test_class_subset_keeps_and_relabels_in_given_order():
    full = load_dataset("digits")
    ds = load_dataset("digits", class_subset=[7, 3])
    assert ds.class_names == ["7", "3"]
    all_x = np.concatenate([ds.x_train, ds.x_val, ds.x_test])
    all_y = np.concatenate([ds.y_train, ds.y_val, ds.y_test])
    full_x = np.concatenate([full.x_train, full.x_val, full.x_test])
    full_y = np.concatenate([full.y_train, full.y_val, full.y_test])
    assert set(all_y) == {0, 1}
    assert row_hashes(all_x[all_y == 0]) == row_hashes(full_x[full_y == 7])
    assert row_hashes(all_x[all_y == 1]) == row_hashes(full_x[full_y == 3])


@pytest.mark.parametrize("subset", [[0, 10], [2, 2], [4], [-1, 2]])
def test_class_subset_is_validated(subset):
    with pytest.raises(DataError, match="class_subset"):
        load_dataset("digits", class_subset=subset)


# ----------------------------------------------------------------------------- mnist1d


@pytest.fixture
def no_download(monkeypatch):
    from mnist1d import data as m1d

    def boom(*args, **kwargs):
        raise AssertionError("mnist1d.get_dataset must never be called (it downloads)")

    monkeypatch.setattr(m1d, "get_dataset", boom)
    return m1d


@pytest.fixture(scope="module")
def mnist1d_cache(tmp_path_factory) -> Path:
    cache = tmp_path_factory.mktemp("mnist1d-cache")
    load_dataset("mnist1d", cache_dir=cache)
    return cache


def test_mnist1d_is_generated_once_then_read_from_cache(tmp_path, no_download, monkeypatch):
    calls = []
    real = no_download.make_dataset
    monkeypatch.setattr(no_download, "make_dataset", lambda *a: calls.append(1) or real(*a))
    random.seed(7)
    np.random.seed(7)
    before = rng_states()

    first = load_dataset("mnist1d", cache_dir=tmp_path)
    assert calls == [1]
    assert_same_rng_states(before, rng_states())  # make_dataset reseeds; we restore
    assert [p.name for p in tmp_path.iterdir()] == [
        next(tmp_path.glob("mnist1d-*.npz")).name  # one cache file, no temp leftovers
    ]

    second = load_dataset("mnist1d", cache_dir=tmp_path)
    assert calls == [1]
    for field in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(first, field), getattr(second, field))
    assert_well_formed(first)
    assert first.kind == "sequence" and first.input_shape == (1, 40)


def test_mnist1d_keeps_the_benchmark_test_set(mnist1d_cache, no_download):
    ds = load_dataset("mnist1d", cache_dir=mnist1d_cache, val_fraction=0.2, test_fraction=0.3)
    assert ds.sizes == {"train": 3200, "val": 800, "test": 1000}  # test_fraction ignored
    package_args = no_download.get_dataset_args(as_dict=True)
    assert {k: v for k, v in package_args.items() if k != "url"} == datasets_mnist1d.MNIST1D_ARGS
    before = rng_states()
    ref = no_download.make_dataset(no_download.get_dataset_args())
    random.setstate(before[0])
    np.random.set_state(before[1])
    np.testing.assert_allclose(ds.x_test[:, 0], ref["x_test"], rtol=1e-6)
    np.testing.assert_array_equal(ds.y_test, ref["y_test"])
    assert row_hashes(ds.x_train) & row_hashes(ds.x_val) == set()


def test_mnist1d_class_subset_applies_to_the_test_set(mnist1d_cache):
    ds = load_dataset("mnist1d", cache_dir=mnist1d_cache, class_subset=[9, 0, 5])
    assert ds.class_names == ["9", "0", "5"]
    assert set(ds.y_test) == set(ds.y_train) == {0, 1, 2}
    assert 250 < ds.sizes["test"] < 350


@pytest.mark.parametrize("garbage", [b"not a zip file", None])
def test_mnist1d_corrupt_cache_is_regenerated(mnist1d_cache, tmp_path, no_download, garbage):
    good = next(mnist1d_cache.glob("mnist1d-*.npz"))
    bad = tmp_path / good.name
    if garbage is None:  # truncated copy
        bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    else:
        bad.write_bytes(garbage)
    ds = load_dataset("mnist1d", cache_dir=tmp_path)
    ref = load_dataset("mnist1d", cache_dir=mnist1d_cache)
    np.testing.assert_array_equal(ds.x_test, ref.x_test)
    with np.load(bad) as fixed:  # the bad file was replaced by a good one
        assert fixed["x"].shape == (4000, 40)


def test_mnist1d_cache_dir_defaults_to_env(monkeypatch, mnist1d_cache, tmp_path):
    target = tmp_path / "from-env"
    shutil.copytree(mnist1d_cache, target)
    monkeypatch.setenv("DANLU_CACHE_DIR", str(target))
    assert datasets_mnist1d.default_cache_dir() == target
    # must hit the copied cache
    monkeypatch.setattr(datasets_mnist1d, "_generate_mnist1d", pytest.fail)
    assert load_dataset("mnist1d").sizes["test"] == 1000


# ----------------------------------------------------------------------------- csv


def write(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def make_csv(n_per_class: int = 20) -> str:
    rng = np.random.default_rng(0)
    lines = ["height,species,weight"]
    for k, name in enumerate(["setosa", "virginica", "versicolor"]):
        for _ in range(n_per_class):
            lines.append(f"{rng.normal(k):.4f},{name},{rng.normal(10 * k, 3):.4f}")
    return "\n".join(lines) + "\n"


def test_csv_with_string_labels(tmp_path):
    path = write(tmp_path, make_csv())
    ds = load_dataset("csv", csv_path=str(path), csv_label="species")
    assert_well_formed(ds)
    assert ds.kind == "tabular" and ds.input_shape == (2,)
    assert ds.class_names == ["setosa", "versicolor", "virginica"]
    assert sum(ds.sizes.values()) == 60
    np.testing.assert_allclose(ds.x_train.mean(0), 0, atol=1e-5)
    # Class 'virginica' (k=1 above) has the middle weights: labels follow the names.
    means = [ds.x_train[ds.y_train == c, 1].mean() for c in range(3)]
    assert means[0] < means[2] < means[1]


def test_csv_integer_labels_sort_numerically(tmp_path):
    rows = [f"{i % 7}.5,{[2, 10, 1][i % 3]}" for i in range(60)]
    path = write(tmp_path, "x,label\n" + "\n".join(rows) + "\n")
    ds = load_dataset("csv", csv_path=path)
    assert ds.class_names == ["1", "2", "10"]


BAD_CSVS = {
    "empty": ("", "is empty"),
    "no label column": ("a,b,target\n1,2,0\n", r"no label column 'label'; its columns are: a, b"),
    "non-numeric": ("a,b,label\n1,2,x\n3,oops,y\n", r"line 3, column 'b' has value 'oops'"),
    "blank lines count": ("a,b,label\n1,2,x\n\n3,oops,y\n", r"line 4, column 'b'"),
    "missing value": ("a,b,label\n1,2,x\n,4,y\n", r"line 3, column 'a' is empty"),
    "not finite": ("a,b,label\n1,inf,x\n", r"line 2, column 'b' has value 'inf'"),
    "ragged row": ("a,b,label\n1,2,x\n1,2\n", r"line 3 has 2 fields but the header has 3"),
    "missing label": ("a,label\n1,x\n2,\n", r"line 3: label column 'label' is empty"),
    "one class": ("a,label\n1,x\n2,x\n", r"only one class \('x'\)"),
    "no rows": ("a,label\n", "is not a CSV table with a header line"),
    "small class": ("a,label\n" + "1,big\n" * 30 + "2,tiny\n" * 3, r"Class 'tiny' has only 3"),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_CSVS)
def test_bad_csv_gives_a_clear_data_error(tmp_path, case):
    text, message = BAD_CSVS[case]
    path = write(tmp_path, text)
    with pytest.raises(DataError, match=message):
        load_dataset("csv", csv_path=path)


def test_csv_path_problems(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("csv", csv_path=tmp_path / "nope.csv")
    with pytest.raises(DataError, match="not a file"):
        load_dataset("csv", csv_path=tmp_path)
    with pytest.raises(DataError, match="needs a csv_path"):
        load_dataset("csv")
    (tmp_path / "latin1.csv").write_bytes("a,label\n1,caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        load_dataset("csv", csv_path=tmp_path / "latin1.csv")
