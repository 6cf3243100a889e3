"""Saved models and checkpoints: nothing a save, load or resume does may lose or mix data.

Split from test_reliability.py (issue #10's reliability tests): each failed on the code before its fix.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import DATA
from tests.conftest import edit_meta as _edit_meta
from vae_anomaly import VAEDetector
from vae_anomaly.errors import DataError, ModelError, TrainingError


def test_save_refuses_a_folder_of_other_files_and_the_working_folder(fitted, tmp_path, monkeypatch):
    det, _ = fitted
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.txt").write_text("years of work")
    with pytest.raises(ModelError, match="other files"):
        det.save(mine)
    assert (mine / "thesis.txt").read_text() == "years of work"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError, match="working folder"):
        det.save(".")
    assert (mine / "thesis.txt").exists()
    with pytest.raises(ModelError, match="is a file"):
        det.save(mine / "thesis.txt")


def test_save_replaces_a_model_folder_whole(fitted, table, tmp_path):
    det, _ = fitted
    target = tmp_path / "m"
    det.save(target)
    other = VAEDetector(random_state=1, epochs=2, latent_dim=2).fit(table)
    other.save(target)
    assert VAEDetector.load(target).model_.latent_dim == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no leftovers of the swap


def test_load_verifies_the_weights_hash(fitted, tmp_path):
    _, path = fitted
    bad = _edit_meta(path, tmp_path / "m", lambda m: m.update(weights_sha256="0" * 64))
    with pytest.raises(ModelError, match="does not match"):
        VAEDetector.load(bad)


def _rehash(folder: Path) -> None:
    from vae_anomaly.persist import file_sha256

    meta = json.loads((folder / "model.json").read_text())
    meta["weights_sha256"] = file_sha256(folder / "model.safetensors")
    (folder / "model.json").write_text(json.dumps(meta))


def test_degenerate_model_and_extreme_input_never_write_scores(fitted, table, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    from vae_anomaly.file_scoring import score_file

    det, path = fitted
    huge = tmp_path / "huge"
    shutil.copytree(path, huge)
    state = load_file(str(huge / "model.safetensors"))
    save_file({k: v * 1e30 if v.is_floating_point() else v for k, v in state.items()}, str(huge / "model.safetensors"))
    _rehash(huge)  # a consistent but degenerate model: the hash check alone cannot catch it
    table.to_csv(tmp_path / "in.csv", index=False)
    with pytest.raises(DataError, match="non-finite anomaly score") as e:
        score_file(VAEDetector.load(huge), tmp_path / "in.csv", tmp_path / "out.parquet")
    assert e.value.row == 0 and not (tmp_path / "out.parquet").exists()
    extreme = table * 1e30
    with pytest.raises(DataError, match=r"non-finite anomaly score \(rows 0, 1, 2"):
        det.decision_function(extreme)
    zero_scale = _edit_meta(path, tmp_path / "zero", lambda m: m["preprocessing"]["numeric"]["a"].update(scale=0))
    with pytest.raises(ModelError, match="scale 0 must be positive"):
        VAEDetector.load(zero_scale)


def test_nan_threshold_is_refused_at_load(fitted, tmp_path):
    _, path = fitted
    bad = _edit_meta(path, tmp_path / "m", lambda m: m["extra"].update(threshold=float("nan")))
    with pytest.raises(ModelError, match="threshold nan is not a finite number"):
        VAEDetector.load(bad)


@pytest.mark.parametrize("edit, fragment", [
    (lambda m: m.pop("model_config"), "model_config"),
    (lambda m: m["model_config"].update(latent_dim=1e9), "latent_dim"),
    (lambda m: m["model_config"].update(latent_dim="big"), "latent_dim must be an integer"),
    (lambda m: m["model_config"].update(hidden_dims=[60000, 60000, 60000]), "parameters"),
    (lambda m: m["model_config"].update(hidden_dims=[100000]), "hidden_dims must be a non-empty list"),
    (lambda m: m["model_config"].update(codebook_size=0), "codebook_size must be an integer in"),
    (lambda m: m["extra"].pop("params"), "detector entry is missing"),
    (lambda m: m["extra"]["params"].update(contamination=7), "contamination"),
])
def test_tampered_model_json_is_refused_before_allocating(fitted, tmp_path, edit, fragment):
    _, path = fitted
    with pytest.raises(ModelError, match=fragment):
        VAEDetector.load(_edit_meta(path, tmp_path / "m", edit))


def test_semicolon_csv_is_read_as_columns(tmp_path):
    from vae_anomaly.data import load_dataset

    frame = pd.read_csv(DATA / "breast_cancer.csv")
    frame.to_csv(tmp_path / "semi.csv", sep=";", index=False)
    ds = load_dataset(tmp_path / "semi.csv", label_column="diagnosis", id_column="patient_id")
    assert ds.X.shape == (569, frame.shape[1] - 2)
    assert ds.X.dtypes.map(lambda d: d.kind).eq("f").all()


def test_existing_output_is_refused_and_two_writers_exclude_each_other(fitted, table, tmp_path):
    from vae_anomaly.atomic import exclusive_lock
    from vae_anomaly.file_scoring import score_file

    det, _ = fitted
    table.to_csv(tmp_path / "in.csv", index=False)
    out = tmp_path / "s.parquet"
    score_file(det, tmp_path / "in.csv", out)
    before = out.read_bytes()
    with pytest.raises(DataError, match="already exists"):
        score_file(det, tmp_path / "in.csv", out)
    assert out.read_bytes() == before
    score_file(det, tmp_path / "in.csv", out, overwrite=True)
    with exclusive_lock(tmp_path / ".s.parquet.lock", what="s.parquet"), \
            pytest.raises(DataError, match="another job is already writing"):
        score_file(det, tmp_path / "in.csv", out, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "s.parquet"]


def test_checkpoint_files_from_different_epochs_are_refused(digits, tmp_path):
    import shutil

    from vae_anomaly.models import ModelConfig, build_model
    from vae_anomaly.trainer import TrainConfig, train

    X = digits[0][:300]
    cfg = TrainConfig(random_state=0, epochs=3, patience=None, checkpoint_dir=str(tmp_path / "ck"))
    train(build_model(ModelConfig(X.shape[1:])), X, config=cfg)
    manifest = json.loads((tmp_path / "ck" / "manifest.json").read_text())
    folder = tmp_path / "ck" / manifest["folder"]
    # An older epoch's weights beside this epoch's state: what a kill between two renames used to leave.
    train(build_model(ModelConfig(X.shape[1:])), X, config=TrainConfig(random_state=0, epochs=1, patience=None,
                                                                       checkpoint_dir=str(tmp_path / "old")))
    old = json.loads((tmp_path / "old" / "manifest.json").read_text())
    shutil.copy(tmp_path / "old" / old["folder"] / "checkpoint.safetensors", folder / "checkpoint.safetensors")
    resume = TrainConfig(random_state=0, epochs=5, patience=None, checkpoint_dir=str(tmp_path / "ck"), resume=True)
    with pytest.raises(TrainingError, match="does not match"):
        train(build_model(ModelConfig(X.shape[1:])), X, config=resume)
