"""Fine-tuning from another run: weights really load, frozen layers really stay put."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from trainer import runlog, runner
from trainer.config import make_config
from trainer.models import build_model
from trainer.pretrained import FineTuneError, feature_extractor, load_pretrained

DIGITS = {"dataset": "digits", "epochs": 2, "batch_size": 64, "norm": "batch"}


def _run(root: Path, **overrides) -> Path:
    run_dir = runlog.create_run(root, make_config({**DIGITS, **overrides}))
    runner.execute(run_dir)
    return run_dir


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Pretrain on digits 0-4; the fine-tuning runs below learn 5-9.
    run_dir = _run(tmp_path_factory.mktemp("runs"), class_subset=[0, 1, 2, 3, 4])
    assert runlog.read_json(run_dir / runlog.STATUS)["state"] == "finished"
    return run_dir


def _source_state(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / runlog.CHECKPOINT, weights_only=True)["state_dict"]


def test_load_pretrained_copies_every_feature_tensor(pretrained: Path):
    config = make_config({**DIGITS, "class_subset": [5, 6, 7, 8, 9]})
    model = build_model(config, (1, 8, 8), 5)
    info = load_pretrained(model, pretrained.parent, pretrained.name)
    source = _source_state(pretrained)
    for key, value in feature_extractor(model).state_dict().items():
        torch.testing.assert_close(value, source[f"features.{key}"])
    assert info["loaded_tensors"] == len(source)  # same number of classes: the head loads too


def test_frozen_fine_tuning_keeps_the_features_and_trains_the_head(pretrained: Path):
    run_dir = _run(pretrained.parent, class_subset=[5, 6, 7, 8, 9], init_from=pretrained.name,
                   freeze_features=True)
    status = runlog.read_json(run_dir / runlog.STATUS)
    assert status["state"] == "finished", status["reason"]
    before, after = _source_state(pretrained), _source_state(run_dir)
    for key in before:
        if key.startswith("features."):  # weights and BatchNorm statistics alike
            torch.testing.assert_close(after[key], before[key], msg=key)
    assert any(not torch.equal(after[k], before[k]) for k in before if k.startswith("head."))
    summary = runlog.read_json(run_dir / runlog.SUMMARY)
    assert summary["finetune"]["frozen"] and summary["finetune"]["init_from"] == pretrained.name
    assert summary["trainable_params"] < summary["n_params"]


def test_full_fine_tuning_starts_from_the_source_and_changes_everything(pretrained: Path):
    run_dir = _run(pretrained.parent, class_subset=[5, 6, 7, 8, 9], init_from=pretrained.name)
    before, after = _source_state(pretrained), _source_state(run_dir)
    changed = [k for k in before if before[k].is_floating_point()
               and not torch.equal(after[k], before[k])]
    assert any(k.startswith("features.") for k in changed)
    summary = runlog.read_json(run_dir / runlog.SUMMARY)
    assert summary["trainable_params"] == summary["n_params"]
    assert not summary["finetune"]["frozen"]


def test_another_architecture_fails_with_a_clear_reason(pretrained: Path):
    run_dir = _run(pretrained.parent, init_from=pretrained.name, width=2.0)
    status = runlog.read_json(run_dir / runlog.STATUS)
    assert status["state"] == "failed" and "another architecture" in status["reason"]


def test_a_run_without_checkpoint_fails_with_a_clear_reason(tmp_path: Path):
    source = runlog.create_run(tmp_path, make_config(DIGITS))  # queued: no checkpoint yet
    model = build_model(make_config(DIGITS), (1, 8, 8), 10)
    with pytest.raises(FineTuneError, match=r"no checkpoint\.pt"):
        load_pretrained(model, tmp_path, source.name)
    with pytest.raises(FineTuneError, match="invalid run id"):
        load_pretrained(model, tmp_path, "../elsewhere")


def test_a_checkpoint_that_is_a_symlink_or_fifo_is_refused(tmp_path: Path):
    model = build_model(make_config(DIGITS), (1, 8, 8), 10)
    outside = tmp_path / "weights.pt"
    torch.save({"state_dict": model.state_dict()}, outside)
    linked, fifo = (runlog.create_run(tmp_path, make_config(DIGITS)) for _ in range(2))
    (linked / runlog.CHECKPOINT).symlink_to(outside)  # weights from outside the runs root
    os.mkfifo(fifo / runlog.CHECKPOINT)  # torch.load would wait forever
    with pytest.raises(FineTuneError, match=r"checkpoint\.pt is a symbolic link"):
        load_pretrained(model, tmp_path, linked.name)
    with pytest.raises(FineTuneError, match=r"checkpoint\.pt is a FIFO"):
        load_pretrained(model, tmp_path, fifo.name)
