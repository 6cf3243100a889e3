"""Real Prefect flow runs (shared test server) against a real MLflow store on disk."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.conftest import DATA
from vae_anomaly.errors import SchemaError, TrackingError
from vae_anomaly.jobs import ScoreJobConfig, TrainJobConfig

pytestmark = pytest.mark.usefixtures("prefect_server")
CANCER = str(DATA / "breast_cancer.csv")


def train_config(**kw):
    base = dict(data=CANCER, label_column="diagnosis", anomaly_label="malignant", id_column="patient_id",
                train_on="normal", model_name="cancer", experiment="test", detector={"epochs": 25})
    base.update(kw)
    return TrainJobConfig(**base)


def test_train_register_promote_then_score_by_alias(mlflow_store):
    import mlflow

    from vae_anomaly.flows.score import score_flow
    from vae_anomaly.flows.train import train_flow

    res = train_flow(train_config())
    assert res["version"] == "1" and res["promoted"] and res["metrics"]["val_auroc"] > 0.85
    client = mlflow.MlflowClient()
    assert str(client.get_model_version_by_alias("cancer", "champion").version) == "1"
    run = client.get_run(res["run_id"])
    assert run.data.tags["prefect.flow_run_id"]
    assert run.data.params["data.sha256"] and run.data.metrics["val_auroc"] == pytest.approx(res["metrics"]["val_auroc"])
    assert run.inputs.dataset_inputs and run.inputs.dataset_inputs[0].dataset.digest
    figures = {a.path for a in client.list_artifacts(res["run_id"], "figures")}
    assert {"figures/training_curves.png", "figures/score_histogram.png", "figures/roc_pr.png"} <= figures
    child = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{res['run_id']}'")
    assert len(child) == 1 and len(client.get_metric_history(child[0].info.run_id, "val_loss")) >= 5
    assert any(k.startswith("system/") for k in child[0].data.metrics), child[0].data.metrics.keys()

    out = mlflow_store / "scores.parquet"
    scored = score_flow(ScoreJobConfig(model="cancer", input=CANCER, output=str(out), experiment="test",
                                       keep_columns=["patient_id", "diagnosis"], chunk_rows=100))
    frame = pd.read_parquet(out)
    assert len(frame) == 569 and list(frame.columns) == ["row", "patient_id", "diagnosis", "score", "is_anomaly"]
    assert frame["row"].tolist() == list(range(569))
    assert scored["model_version"]["version"] == "1"
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(frame["diagnosis"] == "malignant", frame["score"]) > 0.85
    summary = client.get_run(scored["mlflow_run_id"]).data.metrics
    assert summary["rows"] == 569 and 0 < summary["flagged_share"] < 1
    assert "drift_psi" in summary

    # The registered pyfunc loads from the registry (models from code, no pickle) and scores.
    model = mlflow.pyfunc.load_model("models:/cancer@champion")
    X = pd.read_csv(CANCER).drop(columns=["patient_id", "diagnosis"]).iloc[:5]
    pred = model.predict(X)
    assert list(pred.columns) == ["score", "is_anomaly"]
    np.testing.assert_allclose(pred["score"].to_numpy(), frame["score"].to_numpy()[:5], rtol=1e-5)

    # A challenger that is not better is registered but does not take the champion alias. The same job
    # again gives the same model (seeded), so the strict rule must keep v1. (A barely trained model is no
    # longer a reliable loser here: 1 epoch at lr 1e-6 scored val_auroc 0.953 against the champion's 0.947.)
    worse = train_flow(train_config())
    assert worse["version"] == "2" and not worse["promoted"]
    assert "does not beat champion v1" in worse["reason"]
    assert str(client.get_model_version_by_alias("cancer", "champion").version) == "1"
    assert "does not beat" in client.get_model_version("cancer", "2").tags["promotion_decision"]


def test_score_refuses_a_different_schema_and_writes_nothing(mlflow_store, tmp_path):
    from vae_anomaly.flows.score import score_flow
    from vae_anomaly.flows.train import train_flow

    train_flow(train_config(detector={"epochs": 3}))
    frame = pd.read_csv(CANCER).drop(columns=["diagnosis"])
    frame["unexpected"] = 1.0
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    out = tmp_path / "out.parquet"
    with pytest.raises(SchemaError, match="unexpected"):
        score_flow(ScoreJobConfig(model="cancer", input=str(bad), output=str(out), keep_columns=["patient_id"],
                                  experiment="test"))
    assert not out.exists() and not list(tmp_path.glob(".out.parquet*"))


def test_bad_data_fails_clearly_without_retries(mlflow_store, tmp_path):
    from vae_anomaly.errors import DataError
    from vae_anomaly.flows.train import train_flow

    p = tmp_path / "bad.csv"
    p.write_text("a,b,label\n1,2,0\n3,,1\n")
    with pytest.raises(DataError, match="row 1"):
        train_flow(train_config(data=str(p), label_column="label", anomaly_label=None, id_column=None))


def test_tracking_server_down_retries_then_clear_error(tmp_path, monkeypatch):
    import vae_anomaly.flows.train as train_mod
    from tests.conftest import free_port
    from vae_anomaly import tracking

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    calls = {"n": 0}
    real = tracking.check_tracking

    def counting():
        calls["n"] += 1
        return real()

    monkeypatch.setattr(tracking, "check_tracking", counting)
    monkeypatch.setattr(train_mod, "connect_tracking",
                        train_mod.connect_tracking.with_options(retries=2, retry_delay_seconds=0))
    with pytest.raises(TrackingError, match=r"MLflow tracking at http://127\.0\.0\.1"):
        train_mod.train_flow(train_config())
    assert calls["n"] == 3  # first try + 2 retries
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "mlflow.db").exists()


def test_flows_yaml_work_pool_and_prefect_keys(tmp_path):
    """flows.yaml doubles as a prefect.yaml: its project keys and a deployment's work_pool are read, and a
    malformed work_pool is refused naming the entry and field (not silently ignored)."""
    from tests.conftest import ROOT
    from vae_anomaly.errors import ConfigError
    from vae_anomaly.flows.deployments import load_flows_file

    spec = load_flows_file(ROOT / "flows.yaml")
    assert spec.name == "vae-anomaly" and spec.prefect_version
    assert all(d.work_pool is not None and d.work_pool.name == "vae-anomaly" for d in spec.deployments)
    (tmp_path / "f.py").write_text("")
    (tmp_path / "flows.yaml").write_text("deployments:\n  - name: a\n    entrypoint: f.py:x\n    work_pool: {nme: p}\n")
    with pytest.raises(ConfigError, match=r"deployment #0 \('a'\), field 'work_pool"):
        load_flows_file(tmp_path / "flows.yaml")
    train = next(d for d in spec.deployments if d.name == "nightly-train")
    assert [t.expect for t in train.triggers] == [["vae-anomaly.drift.detected"]]
    (tmp_path / "flows.yaml").write_text("deployments:\n  - name: a\n    entrypoint: f.py:x\n"
                                         "    triggers: [{expekt: [x]}]\n")
    with pytest.raises(ConfigError, match=r"deployment #0 \('a'\), field 'triggers.0.expe"):
        load_flows_file(tmp_path / "flows.yaml")


def test_drift_thresholds():
    from vae_anomaly.jobs.score import drift_exceeded

    summary = {"drift_psi": 0.5, "drift_ks": 0.3}
    assert drift_exceeded(summary, ScoreJobConfig()) == ["PSI 0.5 > 0.2"]
    assert drift_exceeded(summary, ScoreJobConfig(drift_psi_threshold=1.0)) == []
    assert drift_exceeded(summary, ScoreJobConfig(drift_psi_threshold=None, drift_ks_threshold=0.25)) == ["KS 0.3 > 0.25"]
    assert drift_exceeded({"drift_psi": None, "drift_ks": None}, ScoreJobConfig()) == []


@pytest.fixture()
def unwritable_dir(tmp_path):
    """A folder this process cannot create, even as root: sysfs refuses mkdir with EPERM; otherwise a
    folder inside a read-only one."""
    import os
    from pathlib import Path

    target = Path("/sys/vae-anomaly-test-artifacts")
    try:
        os.makedirs(target)
    except PermissionError:
        return target
    os.rmdir(target)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    return locked / "artifacts"


def task_runs_of(state) -> dict[str, int]:
    """Task name -> how many times it ran (1 = never retried), for one flow run on the test server."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id={"any_": [state.state_details.flow_run_id]}))
    return {r.name.rsplit("-", 1)[0]: r.run_count for r in runs}


def test_unwritable_artifact_location_fails_once_before_the_work(mlflow_store, unwritable_dir):
    """An artifact location this process cannot write is permanent: no retry, one FAILED run, and the
    train flow stops before fitting (it used to fit for 24 s, then retry 3 times; the score flow left one
    FAILED run per retry)."""
    import mlflow
    from mlflow.entities import ViewType

    from vae_anomaly.flows.score import score_flow
    from vae_anomaly.flows.train import train_flow

    train_flow(train_config(detector={"epochs": 3}))  # the champion, in a writable experiment
    client = mlflow.MlflowClient()
    locked = client.create_experiment("locked", artifact_location=unwritable_dir.as_uri())

    state = train_flow(train_config(experiment="locked"), return_state=True)
    assert state.is_failed()
    with pytest.raises(TrackingError, match=r"Operation not permitted|Permission denied"):
        state.result()
    counts = task_runs_of(state)
    assert counts["open_run"] == 1 and "fit" not in counts, counts  # not retried, and no training happened

    out = mlflow_store / "scores.parquet"
    state = score_flow(ScoreJobConfig(model="cancer", input=CANCER, output=str(out), experiment="locked",
                                       keep_columns=["patient_id", "diagnosis"]), return_state=True)
    assert state.is_failed()
    counts = task_runs_of(state)
    assert counts["open_run"] == 1 and "score" not in counts, counts
    assert not out.exists()
    runs = client.search_runs([locked], run_view_type=ViewType.ALL)
    assert sorted(r.data.tags["job"] for r in runs) == ["score", "train"]  # one run per flow, not per attempt
    assert {r.info.status for r in runs} == {"FAILED"}


def test_a_retried_task_reuses_its_mlflow_run(mlflow_store, monkeypatch):
    """A transient failure (connection reset) after the run was opened is retried, and the retry logs
    into the same run: one FINISHED run, the task ran twice."""
    import mlflow

    import vae_anomaly.flows.score as score_mod
    from vae_anomaly import tracking
    from vae_anomaly.flows.train import train_flow
    from vae_anomaly.tracking import runs as runs_mod

    train_flow(train_config(detector={"epochs": 3}))
    real, calls = runs_mod.log_dict, {"n": 0}

    def flaky(run_id, obj, name):
        calls["n"] += 1
        if calls["n"] == 1:  # the first write meets a dropped connection, classified by tracking.wrap
            tracking.wrap("logging", lambda: (_ for _ in ()).throw(ConnectionResetError(104, "Connection reset")))
        return real(run_id, obj, name)

    monkeypatch.setattr(tracking, "log_dict", flaky)
    monkeypatch.setattr(score_mod, "open_run", score_mod.open_run.with_options(retry_delay_seconds=0))
    state = score_mod.score_flow(ScoreJobConfig(model="cancer", input=CANCER, output=str(mlflow_store / "s.parquet"),
                                                experiment="scored", keep_columns=["patient_id", "diagnosis"]),
                                 return_state=True)
    assert state.is_completed(), state
    assert task_runs_of(state)["open_run"] == 2
    client = mlflow.MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("scored").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].info.run_id == state.result()["mlflow_run_id"]


def test_error_classification_for_retries():
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, PERMISSION_DENIED, RESOURCE_DOES_NOT_EXIST

    from vae_anomaly import tracking
    from vae_anomaly.errors import ConfigError, ModelError
    from vae_anomaly.flows._runtime import is_transient

    def wrapped(exc):
        try:
            tracking.wrap("x", lambda: (_ for _ in ()).throw(exc))
        except Exception as e:  # noqa: BLE001
            return e
        raise AssertionError("wrap did not raise")

    assert is_transient(wrapped(ConnectionRefusedError(111, "refused")))
    assert is_transient(wrapped(MlflowException("server error", error_code=INTERNAL_ERROR)))
    assert not is_transient(wrapped(PermissionError(13, "Permission denied", "/srv/mlartifacts")))
    assert not is_transient(wrapped(NotADirectoryError(20, "Not a directory")))
    assert not is_transient(wrapped(MlflowException("no", error_code=PERMISSION_DENIED)))
    assert not is_transient(wrapped(MlflowException("gone", error_code=RESOURCE_DOES_NOT_EXIST)))  # ModelError
    assert not is_transient(ModelError("unknown model")) and not is_transient(ConfigError("bad option"))


def test_prefect_shows_progress_artifacts_and_names(mlflow_store):
    """What a Prefect UI user sees for a real train and score run: descriptive run names, epoch/loss lines
    from the run logger (not only "Finished in state"), a markdown summary with the promotion decision,
    and links to the MLflow runs."""
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, LogFilter
    from prefect.logging.handlers import APILogWorker

    import vae_anomaly.flows._runtime as runtime
    from vae_anomaly.flows.score import score_flow
    from vae_anomaly.flows.train import train_flow

    runtime.PROGRESS_SECONDS = 0.0  # every epoch: the run is short (the default is one line per 5 s)
    try:
        state = train_flow(train_config(detector={"epochs": 6, "patience": None}), return_state=True)
    finally:
        runtime.PROGRESS_SECONDS = 5.0
    res = state.result()
    scored = score_flow(ScoreJobConfig(model="cancer", input=CANCER, output=str(mlflow_store / "s.parquet"),
                                       experiment="test", keep_columns=["patient_id", "diagnosis"]), return_state=True)
    APILogWorker.drain_all(timeout=10)
    with get_client(sync_client=True) as client:
        train_run = client.read_flow_run(state.state_details.flow_run_id)
        score_run = client.read_flow_run(scored.state_details.flow_run_id)
        logs = client.read_logs(LogFilter(flow_run_id={"any_": [train_run.id]}))
        arts = {a.key: a for a in client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id={"any_": [train_run.id, score_run.id]}))}
    assert train_run.name == "train cancer on breast_cancer.csv"
    assert score_run.name == "score breast_cancer.csv with cancer"
    epochs = [log.message for log in logs if log.message.startswith("epoch ")]
    assert len(epochs) == 6 and "train_loss" in epochs[0] and "val_loss" in epochs[-1], epochs
    assert any(log.message.startswith("trained 6 epochs") for log in logs)
    summary = arts["train-summary"].data
    assert "version **1**" in summary and "promoted to champion" in summary and "val_auroc" in summary
    assert res["reason"] in summary
    link = arts["mlflow-train-run"].data  # Prefect stores a link artifact as a markdown link
    assert link.startswith(f"[MLflow train run {res['run_id']}](file://") and res["run_id"] in link.split("](")[1]
    assert scored.result()["mlflow_run_id"] in arts["mlflow-score-run"].data


@pytest.mark.slow
def test_a_killed_job_takes_its_temporary_prefect_server_with_it(tmp_path):
    """A flow command without PREFECT_API_URL runs on Prefect's temporary server; SIGKILL the command (no
    atexit runs) and the server goes too, stopped by the watchdog the command owns -- with nothing of
    Prefect's patched (``prefect.server.api.server.subprocess`` is the real module)."""
    import os
    import signal
    import subprocess
    import sys

    import psutil

    code = ("import subprocess, sys, time, prefect.server.api.server as s, vae_anomaly.flows._runtime as r\n"
            "r.tie_temporary_servers_to_this_process(); r.tie_temporary_servers_to_this_process()\n"
            "print(s.subprocess is subprocess, s.SubprocessASGIServer().server_process.pid, len(r._watchdogs), flush=True)\n"
            "time.sleep(600)\n")
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    job = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        unpatched, server_pid, watchdogs = job.stdout.readline().split()
        assert unpatched == "True" and watchdogs == "1"  # called twice: one server, one watchdog
        server = psutil.Process(int(server_pid))
        watchdog = next(p for p in psutil.Process(job.pid).children() if "psutil" in " ".join(p.cmdline()))
        assert server.is_running() and watchdog.is_running()
    finally:
        os.kill(job.pid, signal.SIGKILL)
        job.wait()
    _, alive = psutil.wait_procs([server, watchdog], timeout=20)
    for p in alive:
        p.kill()
    assert not alive, f"outlived the killed job: {[p.cmdline()[:4] for p in alive]}"
