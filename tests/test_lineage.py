"""Issue #14 (lineage): every scores file says which model and data made it, and `vae-anomaly lineage`
traces and verifies the chain against the live registry."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import DATA

pytestmark = pytest.mark.usefixtures("prefect_server")
BIN = Path(sys.executable).parent
CANCER = DATA / "breast_cancer.csv"


def _train_and_score(tmp_path, fmt="parquet"):
    from vae_anomaly.flows.score import score_flow
    from vae_anomaly.flows.train import train_flow
    from vae_anomaly.jobs import ScoreJobConfig, TrainJobConfig

    frame = pd.read_csv(CANCER)
    frame.to_csv(tmp_path / "in.csv", index=False)
    trained = train_flow(TrainJobConfig(
        data=str(CANCER), label_column="diagnosis", anomaly_label="malignant", id_column="patient_id",
        train_on="normal", model_name="lin", experiment="lin", detector={"epochs": 5}))
    out = tmp_path / f"scores.{fmt}"
    scored = score_flow(ScoreJobConfig(model="lin", input=str(tmp_path / "in.csv"), output=str(out),
                                       keep_columns=["patient_id", "diagnosis"], experiment="lin"))
    return trained, scored, out


def _lineage(*args, cwd):
    return subprocess.run([str(BIN / "vae-anomaly"), "lineage", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd)


def test_scores_carry_lineage_and_it_verifies(mlflow_store):
    from vae_anomaly.lineage import read_record, trace

    trained, _scored, out = _train_and_score(mlflow_store)
    record = read_record(out)
    assert record["model_name"] == "lin" and record["model_version"] == "1" and record["model_alias"] == "champion"
    assert record["mlflow_run_id"] == trained["run_id"] and record["prefect_flow_run_id"]
    assert len(record["weights_sha256"]) == 64 and len(record["input_sha256"]) == 64
    assert record["training_data_sha256"] and record["tracking_uri"].startswith("sqlite:")
    result = trace(out)
    assert result["ok"], result["checks"]
    assert {c["check"] for c in result["checks"] if c["ok"]} >= {"model version", "training data", "weights", "input"}
    assert result["run"]["params"]["data.sha256"] == record["training_data_sha256"]
    from vae_anomaly.persist import file_sha256

    # Read-only: the store's files and a fresh working folder are the same afterwards.
    before = {p: file_sha256(p) for p in mlflow_store.rglob("*") if p.is_file()}
    (mlflow_store / "elsewhere").mkdir()
    r = _lineage(out, cwd=mlflow_store / "elsewhere")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "lin version 1 (alias champion)" in r.stdout and "[ok      ] weights" in r.stdout
    assert "[ok      ] scores" in r.stdout
    assert {p: file_sha256(p) for p in mlflow_store.rglob("*") if p.is_file()} == before
    assert list((mlflow_store / "elsewhere").iterdir()) == []


def test_lineage_detects_an_edited_input_and_a_tampered_artifact(mlflow_store):
    _trained, _scored, out = _train_and_score(mlflow_store, fmt="csv")
    assert (mlflow_store / "scores.csv.lineage.json").is_file()
    frame = pd.read_csv(mlflow_store / "in.csv")
    frame.loc[0, "mean_radius"] += 1
    frame.to_csv(mlflow_store / "in.csv", index=False)
    r = _lineage(out, "--json", cwd=mlflow_store)
    assert r.returncode == 1
    checks = {c["check"]: c["ok"] for c in json.loads(r.stdout)["checks"]}
    assert checks["input"] is False and checks["weights"] is True
    weights = [p for p in (mlflow_store / "mlartifacts").rglob("model.safetensors")]
    assert weights
    for w in weights:
        data = bytearray(w.read_bytes())
        data[-1] ^= 0xFF
        w.write_bytes(bytes(data))
    r = _lineage(out, "--json", cwd=mlflow_store)
    assert r.returncode == 1
    assert {c["check"]: c["ok"] for c in json.loads(r.stdout)["checks"]}["weights"] is False


def test_lineage_refuses_a_file_without_a_record(tmp_path):
    pd.DataFrame({"score": [1.0]}).to_parquet(tmp_path / "other.parquet")
    r = _lineage(tmp_path / "other.parquet", cwd=tmp_path)
    assert r.returncode == 2 and "carries no vae-anomaly lineage" in r.stderr
