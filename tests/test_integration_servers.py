"""Integration against real server processes on 127.0.0.1: `mlflow server` and `prefect server`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests.conftest import DATA, ROOT, free_port, wait_for_http

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent


@pytest.fixture()
def mlflow_server(tmp_path):
    port = free_port()
    log = tmp_path / "mlflow-server.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
             "--artifacts-destination", str(tmp_path / "server-artifacts")],
            stdout=fh, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", proc, 120, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.usefixtures("prefect_server")
def test_train_register_promote_score_against_mlflow_server(mlflow_server, tmp_path, monkeypatch):
    import mlflow

    from vae_anomaly.flows.score import score_flow
    from vae_anomaly.flows.train import train_flow
    from vae_anomaly.jobs import ScoreJobConfig, TrainJobConfig

    work = tmp_path / "client"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    res = train_flow(TrainJobConfig(data=str(DATA / "breast_cancer.csv"), label_column="diagnosis",
                                    anomaly_label="malignant", id_column="patient_id", train_on="normal",
                                    model_name="served", experiment="server-test", detector={"epochs": 15}))
    assert res["promoted"] and res["tracking_uri"] == mlflow_server
    client = mlflow.MlflowClient(mlflow_server)
    assert str(client.get_model_version_by_alias("served", "champion").version) == res["version"]
    # The Prefect link artifact points at the run's page in the server's UI.
    from vae_anomaly.flows._runtime import mlflow_run_url

    exp_id = client.get_run(res["run_id"]).info.experiment_id
    assert mlflow_run_url(res["run_id"]) == f"{mlflow_server}/#/experiments/{exp_id}/runs/{res['run_id']}"
    out = work / "scores.csv"
    scored = score_flow(ScoreJobConfig(model="served@champion", input=str(DATA / "breast_cancer.csv"), output=str(out),
                                       keep_columns=["patient_id", "diagnosis"], experiment="server-test"))
    assert len(pd.read_csv(out)) == 569 and scored["model_version"]["version"] == res["version"]
    # Artifacts went to the server's store, not the client's folder.
    assert not (work / "mlartifacts").exists() and (tmp_path / "server-artifacts").exists()


def test_serve_registers_flows_yaml_deployments_with_schedules(tmp_path):
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{tmp_path / 'prefect.db'}"}
    env.pop("PREFECT_API_URL", None)
    log = tmp_path / "server.log"
    with open(log, "w") as fh:
        server = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                                  stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    serve = None
    try:
        api = f"http://127.0.0.1:{port}/api"
        wait_for_http(f"{api}/health", server, 180, log)
        serve_log = tmp_path / "serve.log"
        with open(serve_log, "w") as fh:
            serve = subprocess.Popen([str(BIN / "vae-anomaly"), "serve", "--file", str(ROOT / "flows.yaml")],
                                     stdout=fh, stderr=subprocess.STDOUT, env={**env, "PREFECT_API_URL": api},
                                     cwd=ROOT)
        deadline = time.time() + 120
        deps = []
        while time.time() < deadline:
            assert serve.poll() is None, serve_log.read_text()[-3000:]
            deps = httpx.post(f"{api}/deployments/filter", json={}, timeout=10).json()
            if len(deps) >= 4:  # serve registers them one by one
                break
            time.sleep(1)
        by_name = {d["name"]: d for d in deps}
        expected = {"nightly-train", "hourly-score", "weekly-synthesize", "nightly-score-dask"}
        assert set(by_name) == expected, serve_log.read_text()[-2000:]
        sched = {n: d["schedules"][0]["schedule"] for n, d in by_name.items()}
        assert sched["nightly-train"]["cron"] == "0 2 * * *"
        assert sched["hourly-score"]["interval"] == 3600
        assert by_name["hourly-score"]["parameters"]["config"]["model"] == "breast-cancer-vae"
        # The module path of flows.yaml, as given: the served runs import the installed package, not a file path.
        assert by_name["nightly-train"]["entrypoint"] == "vae_anomaly.flows.train.train_flow"
        # serve also created the drift trigger of nightly-train as an automation that runs it
        automations = httpx.post(f"{api}/automations/filter", json={}, timeout=10).json()
        assert [a["trigger"]["expect"] for a in automations
                if any(act.get("deployment_id") == by_name["nightly-train"]["id"] for act in a["actions"])] == [
            ["vae-anomaly.drift.detected"]]
    finally:
        for p in (serve, server):
            if p is not None:
                p.terminate()
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()


def test_serve_without_server_explains_why(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    res = subprocess.run([str(BIN / "vae-anomaly"), "serve", "--file", str(ROOT / "flows.yaml")], capture_output=True,
                         text=True, env=env, cwd=tmp_path, timeout=120)
    assert res.returncode == 2
    assert "ephemeral mode runs flows but never runs schedules" in res.stderr
