"""The jobs as library functions, below the flows: ``jobs.score.run`` is what ``vae-anomaly score --model-dir``
writes, file or Dask, with the same lineage record (no Prefect, no MLflow); the train flow's fit bookkeeping
(its child MLflow run) is ``jobs.train.fit_in_child_run``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

BIN = Path(sys.executable).parent


def _cli(*args, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VAE_ANOMALY_THREADS": "1"}
    return subprocess.run([str(BIN / "vae-anomaly"), *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


@pytest.fixture()
def scored_input(table, tmp_path):
    frame = table.assign(id=np.arange(len(table)))
    frame.to_csv(tmp_path / "in.csv", index=False)
    return tmp_path / "in.csv", frame


def _same_record(cli: dict, job: dict) -> None:
    # The time of scoring, and the hashes of files whose metadata holds it (Dask parts: their row counts compare).
    varying = {"scored_at", "scores_sha256", "parts"}
    assert {k: v for k, v in cli.items() if k not in varying} == {k: v for k, v in job.items() if k not in varying}
    assert ({n: p["rows"] for n, p in cli.get("parts", {}).items()} == {n: p["rows"] for n, p in job.get("parts", {}).items()})


def test_cli_model_dir_scores_and_lineage_are_the_jobs(fitted, scored_input, tmp_path):
    """The CLI's ``--model-dir`` path and ``jobs.score.run`` write the same rows and the same lineage; the record
    names the model folder (as the Dask path always did), so ``lineage`` can check the weights against it."""
    from vae_anomaly.jobs import ScoreJobConfig
    from vae_anomaly.jobs.score import run
    from vae_anomaly.lineage import input_fingerprint, read_record, trace

    det, model_dir = fitted
    src, frame = scored_input
    r = _cli("score", src, "--model-dir", model_dir, "-o", tmp_path / "cli.parquet", "--keep", "id", "--chunk-rows", 100,
             cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    printed = json.loads(r.stdout)
    result = run(ScoreJobConfig(model_dir=str(model_dir), input=str(src), output=str(tmp_path / "job.parquet"),
                                keep_columns=["id"], chunk_rows=100))
    cli_frame, job_frame = pd.read_parquet(tmp_path / "cli.parquet"), pd.read_parquet(tmp_path / "job.parquet")
    pd.testing.assert_frame_equal(cli_frame, job_frame)
    assert list(cli_frame.columns) == ["row", "id", "score", "is_anomaly"] and cli_frame["id"].tolist() == list(range(600))
    np.testing.assert_allclose(cli_frame["score"], -det.score_samples(frame[["a", "b", "c"]]), rtol=1e-5)
    assert printed["rows"] == result.summary["rows"] == 600 and printed["flagged"] == result.summary["flagged"]
    assert result.model_uri == str(model_dir.resolve()) and result.model_version == {}

    cli_record, job_record = read_record(tmp_path / "cli.parquet"), read_record(tmp_path / "job.parquet")
    _same_record(cli_record, job_record)
    assert cli_record["model_uri"] == str(model_dir.resolve())
    assert cli_record["weights_sha256"] == type(det).load(model_dir).model_meta_["weights_sha256"]
    assert cli_record["input_sha256"] == input_fingerprint(src)
    assert cli_record["tracking_uri"] is None and cli_record["prefect_flow_run_id"] is None
    assert trace(tmp_path / "cli.parquet")["ok"]


@pytest.mark.slow
def test_cli_model_dir_on_dask_is_the_jobs(fitted, scored_input, tmp_path):
    from vae_anomaly.jobs import ScoreJobConfig
    from vae_anomaly.jobs.score import run

    _, model_dir = fitted
    _, frame = scored_input
    (tmp_path / "parts").mkdir()
    frame.iloc[:300].to_parquet(tmp_path / "parts" / "a.parquet")
    frame.iloc[300:].to_parquet(tmp_path / "parts" / "b.parquet")
    r = _cli("score", tmp_path / "parts", "--model-dir", model_dir, "--dask", "local:1", "-o", tmp_path / "cli",
             "--keep", "id", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    result = run(ScoreJobConfig(model_dir=str(model_dir), input=str(tmp_path / "parts"), output=str(tmp_path / "job"),
                                keep_columns=["id"], dask="local:1"))
    cli_frame, job_frame = (pd.read_parquet(tmp_path / d).sort_values("id", ignore_index=True) for d in ("cli", "job"))
    pd.testing.assert_frame_equal(cli_frame, job_frame)
    assert json.loads(r.stdout)["rows"] == result.summary["rows"] == 600
    cli_record = json.loads((tmp_path / "cli" / "_lineage.json").read_text())
    job_record = json.loads((tmp_path / "job" / "_lineage.json").read_text())
    _same_record(cli_record, job_record)
    assert cli_record["model_uri"] == str(model_dir.resolve())


def test_a_missing_model_folder_is_one_clear_error(scored_input, tmp_path):
    r = _cli("score", scored_input[0], "--model-dir", tmp_path / "nope", "-o", tmp_path / "s.parquet", cwd=tmp_path)
    assert r.returncode == 2 and "nope" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "s.parquet").exists()


def test_the_fit_bookkeeping_is_a_library_step(mlflow_store, cancer):
    """The train flow's fit task is one call: ``jobs.train.fit_in_child_run`` opens the child run "fit" under the
    job's run, logs every epoch and the throughput into it, and ends it FINISHED -- or FAILED when the fit fails."""
    from vae_anomaly import jobs, tracking

    X, y = cancer
    data = jobs.TrainingData(None, X.iloc[:400], X.iloc[400:], y[400:])
    config = jobs.TrainJobConfig(experiment="bookkeeping", detector={"epochs": 3})
    parent = tracking.start_run("bookkeeping", run_name="train")
    det = jobs.train.fit_in_child_run(data, config, parent)
    c = tracking.client()
    children = c.search_runs([c.get_run(parent).info.experiment_id], f"tags.mlflow.parentRunId = '{parent}'")
    assert [r.info.run_name for r in children] == ["fit"] and children[0].info.status == "FINISHED"
    assert len(c.get_metric_history(children[0].info.run_id, "val_loss")) == det.train_result_.epochs_run == 3
    assert children[0].data.metrics["samples_per_second"] > 0

    def broken(epoch, metrics):
        raise RuntimeError("epoch callback failed")

    with pytest.raises(RuntimeError, match="epoch callback failed"):
        jobs.train.fit_in_child_run(data, config, parent, callbacks=(broken,))
    failed = [r for r in c.search_runs([c.get_run(parent).info.experiment_id], f"tags.mlflow.parentRunId = '{parent}'")
              if r.info.status == "FAILED"]
    assert len(failed) == 1 and failed[0].info.run_name == "fit"
    assert c.get_run(parent).info.status == "RUNNING"  # the job's own run is the caller's to end


def test_demo_runs_the_jobs_of_flows_yaml():
    """``vae-anomaly demo`` reads flows.yaml's nightly-train and hourly-score configs (one copy of the demo's job),
    with their paths made absolute and the runs in the demo's experiment."""
    import yaml

    from tests.conftest import DATA, ROOT
    from vae_anomaly.cli import DEMO_EXPERIMENT, FLOWS_FILE
    from vae_anomaly.flows.deployments import demo_configs
    from vae_anomaly.jobs import ScoreJobConfig, TrainJobConfig

    assert FLOWS_FILE == ROOT / "flows.yaml"
    raw = {d["name"]: d["parameters"]["config"] for d in yaml.safe_load(FLOWS_FILE.read_text())["deployments"]}
    train, score = demo_configs(FLOWS_FILE, DEMO_EXPERIMENT)
    assert train == TrainJobConfig(**{**raw["nightly-train"], "data": str(DATA / "breast_cancer.csv"),
                                      "experiment": "vae-anomaly-demo"})
    assert score == ScoreJobConfig(**{**raw["hourly-score"], "input": str(DATA / "breast_cancer.csv"),
                                      "experiment": "vae-anomaly-demo"})
    # What the demo always ran: benign-only training on the sample table, then the whole table scored by that model.
    assert (train.train_on, train.anomaly_label, train.detector) == ("normal", "malignant", {"contamination": 0.05})
    assert score.model == train.model_name == "breast-cancer-vae" and score.drift_psi_threshold == 1.0
    assert score.keep_columns == ["patient_id", "diagnosis"]


def test_defaults_are_declared_once():
    """The default experiment, registered model and chunk size: one constant each, which the CLI, the job
    configs and the scoring functions all show."""
    import inspect

    from vae_anomaly import cli, defaults
    from vae_anomaly.dask_scoring import score_dataset
    from vae_anomaly.data.tabular import iter_table
    from vae_anomaly.file_scoring import score_file
    from vae_anomaly.jobs import ScoreJobConfig, TrainJobConfig

    assert TrainJobConfig().experiment == ScoreJobConfig().experiment == defaults.EXPERIMENT
    assert TrainJobConfig().model_name == ScoreJobConfig().model == defaults.MODEL_NAME
    assert ScoreJobConfig().chunk_rows == defaults.CHUNK_ROWS
    for fn in (score_file, score_dataset, iter_table):
        assert inspect.signature(fn).parameters["chunk_rows"].default is defaults.CHUNK_ROWS, fn
    score_opts = inspect.signature(cli.score).parameters
    assert score_opts["model"].default is defaults.MODEL_NAME and score_opts["chunk_rows"].default is defaults.CHUNK_ROWS
    train_opts = inspect.signature(cli.train).parameters
    assert train_opts["model_name"].default is defaults.MODEL_NAME and train_opts["experiment"].default is defaults.EXPERIMENT
