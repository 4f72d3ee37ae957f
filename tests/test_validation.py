"""Bad input is refused up front: exit 2, one line per problem, nothing created.

The command line is called in-process (``trainer.__main__.main``) except once, where the real
process's exit status and stderr are checked.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli
from trainer import data, datasets_csv, runlog
from trainer.__main__ import main
from trainer.config import ConfigError, make_config, parse_set


def refused(capsys: pytest.CaptureFixture, root: Path, *sets: str, queue: bool = True
            ) -> list[str]:
    """Run ``python -m trainer run [--queue] --set ...``; assert it exits 2 having created
    nothing, and return its error lines."""
    args = ["run", "--runs-dir", str(root), *(["--queue"] if queue else []), "--set", *sets]
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert not root.exists() or not any(root.iterdir()), "a refused run left files behind"
    lines = err.splitlines()
    assert lines and all(line.startswith("error: ") for line in lines), err
    return lines


# --- the cases of the fault pass --------------------------------------------------------------


@pytest.mark.parametrize("sets, field", [
    (["focal_alpha=NaN,1", "loss=focal"], "focal_alpha"),
    (["lr=NaN"], "lr"),
    (["epochs=true"], "epochs"),
    (["class_subset=[true, 1]"], "class_subset"),
    (["class_subset=0,99"], "class_subset"),
    (["init_from=20250101-000000-nope-0000"], "init_from"),
    (["init_from=abc\n"], "init_from"),
    (["dataset=csv", "csv_path=/no/such/file.csv"], "csv_path"),
    (["name=" + "x" * 100_000], "name"),
    (["name=two\nlines"], "name"),
    (["tags=" + "t" * 51], "tags"),
])
def test_bad_input_is_refused_with_one_line(capsys, tmp_path, sets, field):
    for queue in (True, False):
        lines = refused(capsys, tmp_path / "runs", *sets, queue=queue)
        assert len(lines) == 1 and lines[0].startswith(f"error: {field}: "), lines
        assert len(lines[0]) < 300  # a 100,000-character name is not echoed back


def test_every_problem_is_reported_at_once(capsys, tmp_path):
    lines = refused(capsys, tmp_path / "runs", "epochs=0", "lr=-1", "optimizer=nope",
                    "flooding", "bogus=1", "dropout=x")
    fields = [line.split(":")[1].strip() for line in lines]
    assert fields == ["flooding", "bogus", "epochs", "lr", "optimizer", "dropout"], lines


def test_clashing_fields_are_all_reported(capsys, tmp_path):
    lines = refused(capsys, tmp_path / "runs", "dataset=synthetic", "model=cnn", "tta=flips",
                    "augment_shift=2")
    assert sorted(line.split(":")[1].strip() for line in lines) == [
        "augment_shift", "model", "tta"]


def test_a_field_without_a_value_says_the_format_is_wrong():
    with pytest.raises(ConfigError) as exc:
        parse_set(["flooding"])
    assert str(exc.value.errors[0]) == "flooding: expected FIELD=VALUE, e.g. flooding=0.1"
    with pytest.raises(ConfigError, match="expected FIELD=VALUE"):
        parse_set(["=3"])


def test_the_real_process_exits_2_with_a_line_per_problem(tmp_path):
    proc = run_cli("run", "--queue", "--runs-dir", str(tmp_path), "--set", "epochs=true",
                   "focal_alpha=NaN,1")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "error: epochs: expected a whole number, not true/false (got True)",
        "error: focal_alpha: item 1: Input should be a finite number (got nan)",
    ]
    assert not any(tmp_path.iterdir())


def test_good_input_still_queues(capsys, tmp_path):
    source = tmp_path / "runs" / "20250101-000000-src-0000"
    source.mkdir(parents=True)
    runlog.write_json_atomic(source / runlog.STATUS, runlog.new_status(source.name, "finished"))
    (source / runlog.CHECKPOINT).write_bytes(b"weights")
    assert main(["run", "--queue", "--runs-dir", str(tmp_path / "runs"), "--set",
                 "class_subset=5,6,7", f"init_from={source.name}", "name=" + "n" * 100]) == 0
    assert len(list((tmp_path / "runs").iterdir())) == 2


def test_fine_tuning_from_a_run_that_did_not_finish_is_refused(capsys, tmp_path):
    root = tmp_path / "runs"
    source = root / "20250101-000000-src-0000"
    source.mkdir(parents=True)
    runlog.write_json_atomic(source / runlog.STATUS, runlog.new_status(source.name, "failed"))
    assert main(["run", "--queue", "--runs-dir", str(root), "--set",
                 f"init_from={source.name}"]) == 2
    assert "is failed" in capsys.readouterr().err
    assert [p.name for p in root.iterdir()] == [source.name]


# --- run ids --------------------------------------------------------------------------------


def test_a_run_id_with_a_trailing_newline_is_not_a_run_id(tmp_path):
    assert runlog.is_run_id("20250101-000000-abcd")
    for bad in ("20250101-000000-abcd\n", "abc\n", "\nabc", "a/b", "", "A", None):
        assert not runlog.is_run_id(bad)
    with pytest.raises(ValueError):
        runlog.check_run_id("abc\n")
    with pytest.raises(ValueError):
        runlog.run_path(tmp_path, "abc\n")
    with pytest.raises(ConfigError, match="init_from"):
        make_config(init_from="abc\n")


# --- CSV files ------------------------------------------------------------------------------


def test_a_file_that_is_not_a_csv_table_is_never_quoted(capsys, tmp_path):
    secret = tmp_path / "hostname"
    secret.write_text("top-secret-host\n")
    lines = refused(capsys, tmp_path / "runs", "dataset=csv", f"csv_path={secret}")
    assert len(lines) == 1 and "not a CSV table" in lines[0]
    assert "top-secret" not in lines[0]
    for text in ("secret-a,secret-b\n", "top-secret-host\nline two\n"):
        secret.write_text(text)
        with pytest.raises(data.DataError) as exc:
            data.load_dataset("csv", csv_path=secret)
        assert "secret" not in str(exc.value).replace(str(secret), "")


def test_a_csv_table_may_name_its_columns(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b,target\n1,2,0\n")
    with pytest.raises(data.DataError, match="its columns are: a, b, target") as exc:
        data.load_dataset("csv", csv_path=path)
    assert exc.value.field == "csv_label"


def test_a_fifo_is_not_opened(tmp_path):
    fifo = tmp_path / "pipe.csv"
    import os
    os.mkfifo(fifo)
    with pytest.raises(data.DataError, match="not a file"):
        data.load_dataset("csv", csv_path=fifo)


def test_csv_sizes_are_bounded(capsys, tmp_path, monkeypatch):
    wide = tmp_path / "wide.csv"
    n = 100_000
    wide.write_text(",".join(f"c{i}" for i in range(n)) + ",label\n"
                    + ",".join(["1"] * n) + ",0\n")
    lines = refused(capsys, tmp_path / "runs", "dataset=csv", f"csv_path={wide}")
    assert "100,001 columns; the limit is 1,001" in lines[0], lines
    tall = tmp_path / "tall.csv"
    tall.write_text("a,b,label\n" + "1,2,0\n1,2,1\n" * 50)
    monkeypatch.setattr(datasets_csv, "MAX_CSV_ROWS", 60)
    with pytest.raises(data.DataError, match="more than 60 data rows"):
        data.load_dataset("csv", csv_path=tall)
    monkeypatch.setattr(datasets_csv, "MAX_CSV_ROWS", 10**6)
    monkeypatch.setattr(datasets_csv, "MAX_CSV_CELLS", 150)
    with pytest.raises(data.DataError, match=r"more than 150 values \(rows × columns\)"):
        data.load_dataset("csv", csv_path=tall)
    monkeypatch.setattr(datasets_csv, "MAX_CSV_BYTES", 100)
    with pytest.raises(data.DataError, match="MiB; the limit is"):
        data.load_dataset("csv", csv_path=tall)


def test_csv_problems_are_refused_before_a_run_exists(capsys, tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,label\n" + "".join(f"{i},{i % 3}\n" for i in range(60)))
    lines = refused(capsys, tmp_path / "runs", "dataset=csv", f"csv_path={path}",
                    "class_subset=0,7")
    assert lines == ["error: class_subset: class_subset has class 7, but the classes are 0..2."]
    lines = refused(capsys, tmp_path / "runs", "dataset=csv", f"csv_path={path}",
                    "csv_label=y")
    assert lines[0].startswith("error: csv_label: ")


# --- experiments ------------------------------------------------------------------------------


def test_an_experiment_lists_every_problem_and_creates_nothing(capsys, tmp_path):
    root = tmp_path / "runs"
    assert main(["experiment", "ablation", "--runs-dir", str(root), "--set", "epochs=true",
                 "lr=NaN", "--trick", "flooding"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(":")[1].strip() for line in lines] == ["epochs", "lr"], lines
    assert main(["experiment", "ablation", "--runs-dir", str(root), "--set", "epochs=1",
                 "class_subset=0,99", "--trick", "flooding"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: class_subset: class_subset has class 99, but the classes are 0..9."]
    assert not root.exists() or not [p for p in root.rglob("*") if p.is_file()]


def test_a_bad_field_does_not_hide_a_clash_elsewhere():
    with pytest.raises(ConfigError) as exc:
        make_config(name="x" * 101, tags=["t" * 51], dataset="synthetic", model="cnn")
    assert [e.field for e in exc.value.errors] == ["name", "model", "tags"]


def test_fuzzed_set_values_are_refused_cleanly_or_give_a_config_the_run_accepts(capsys, tmp_path):
    """Seeded fuzz of ``--set``: every outcome is exit 2 with one ``error:`` line per problem
    and nothing created, or one queued run whose config.json validates again (focal_alpha=NaN,1
    used to be queued, then rejected by its own run)."""
    import random

    from trainer.catalogue import CATALOGUE

    rng = random.Random(20261202)
    pool = ["NaN", "inf", "-inf", "-1", "0", "1", "2.5", "true", "false", "1e308", "[]", "[1,2]",
            "0,99", "NaN,1", "none", "null", "", "{}", '"a"', "x" * 120, "5,6,7", "0.1,0.2",
            "balanced", "csv", "cnn", "focal", "a\tb"]
    names = [t.name for t in CATALOGUE if t.name not in ("csv_path", "init_from")]
    root = tmp_path / "runs"
    for _trial in range(150):
        items = [f"{rng.choice(names)}={rng.choice(pool)}" for _ in range(rng.randint(1, 4))]
        before = set(root.iterdir()) if root.exists() else set()
        code = main(["run", "--queue", "--runs-dir", str(root), "--set", *items])
        _out, err = capsys.readouterr()
        after = set(root.iterdir()) if root.exists() else set()
        if code == 2:
            assert after == before, items
            assert err and all(line.startswith("error: ") and len(line) < 400
                               for line in err.splitlines()), (items, err)
        else:
            assert code == 0 and not err, (items, err)
            (new,) = after - before
            make_config(runlog.read_json(new / runlog.CONFIG))  # the run accepts it back
