"""One column rule for the score flow, the CLI and the pyfunc: a model knows its id and label columns.

Scoring the file a model was fitted on needs no --keep: the id is carried through, the label left
out; only a column the model has never seen is refused.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import DATA
from vae_anomaly import VAEDetector
from vae_anomaly.errors import SchemaError

CANCER = DATA / "breast_cancer.csv"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from vae_anomaly.fit_command import fit_and_save

    out = tmp_path_factory.mktemp("fit") / "m"
    fit_and_save(CANCER, out, label="diagnosis", id_column="patient_id", epochs=3, options={"n_jobs": 1})
    return out


def test_the_model_remembers_its_id_and_label_columns(model_dir):
    det = VAEDetector.load(model_dir)
    assert det.data_columns_ == {"id": ["patient_id"], "label": ["diagnosis"]}


def test_cli_scores_the_training_file_without_keep(model_dir, tmp_path):
    out = tmp_path / "s.parquet"
    res = subprocess.run([str(BIN / "vae-anomaly"), "score", str(CANCER), "--model-dir", str(model_dir), "-o", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    frame = pd.read_parquet(out)
    assert list(frame.columns) == ["row", "patient_id", "score", "is_anomaly"]
    src = pd.read_csv(CANCER)
    assert frame["patient_id"].tolist() == src["patient_id"].tolist()
    det = VAEDetector.load(model_dir)
    np.testing.assert_allclose(frame["score"], det.decision_function(src.drop(columns=["patient_id", "diagnosis"])),
                               rtol=1e-5)


def test_keep_brings_the_label_back_and_unknown_columns_are_refused(model_dir, tmp_path):
    from vae_anomaly.file_scoring import score_file

    det = VAEDetector.load(model_dir)
    kept = tmp_path / "kept.csv"
    score_file(det, CANCER, kept, keep_columns=["diagnosis"], chunk_rows=100)
    assert list(pd.read_csv(kept).columns) == ["row", "diagnosis", "patient_id", "score", "is_anomaly"]

    bad = tmp_path / "bad.csv"
    pd.read_csv(CANCER).assign(region="north").to_csv(bad, index=False)
    out = tmp_path / "never.parquet"
    with pytest.raises(SchemaError, match="region") as err:
        score_file(det, bad, out)
    assert "unknown to the model" in str(err.value) and not out.exists()

    # A file without the id or label columns scores as before.
    plain = tmp_path / "plain.csv"
    pd.read_csv(CANCER).drop(columns=["patient_id", "diagnosis"]).to_csv(plain, index=False)
    score_file(det, plain, tmp_path / "plain.parquet")
    assert list(pd.read_parquet(tmp_path / "plain.parquet").columns) == ["row", "score", "is_anomaly"]


def test_pyfunc_follows_the_same_rule(model_dir, mlflow_store):
    import mlflow

    from vae_anomaly import tracking

    det = VAEDetector.load(model_dir)
    src = pd.read_csv(CANCER).iloc[:20]
    run = tracking.start_run("cols")
    uri = tracking.log_detector(run, det, src.drop(columns=["patient_id", "diagnosis"]).iloc[:5])
    tracking.end_run(run)
    model = mlflow.pyfunc.load_model(uri)
    # id and label columns are accepted and not scored
    pred = model.predict(src)
    np.testing.assert_allclose(pred["score"], det.decision_function(src.drop(columns=["patient_id", "diagnosis"])),
                               rtol=1e-5)
    # a column the model has never seen is refused, as the score flow refuses it (not silently dropped)
    with pytest.raises(SchemaError, match="region"):
        model.predict(src.assign(region="north"))
    meta = model.metadata.metadata["vae_anomaly"]
    assert meta["id_columns"] == ["patient_id"] and meta["label_columns"] == ["diagnosis"]
    assert len(meta["features"]) == 30


def test_dask_scoring_follows_the_same_rule(model_dir, tmp_path):
    from vae_anomaly.dask_scoring import score_with_cluster

    det = VAEDetector.load(model_dir)
    src = tmp_path / "in"
    src.mkdir()
    frame = pd.read_csv(CANCER)
    frame.iloc[:300].to_parquet(src / "part-0.parquet")
    frame.iloc[300:].to_parquet(src / "part-1.parquet")
    score_with_cluster(det, "local:1", src, tmp_path / "out")
    out = pd.read_parquet(tmp_path / "out")
    assert list(out.columns) == ["row", "patient_id", "score", "is_anomaly"]
    assert out["patient_id"].tolist() == frame["patient_id"].tolist()
    np.testing.assert_allclose(out["score"], det.decision_function(frame.drop(columns=["patient_id", "diagnosis"])),
                               rtol=1e-5)
