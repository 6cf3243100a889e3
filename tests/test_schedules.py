"""Schedules, triggers and `prefect deploy` against a real `prefect server` on 127.0.0.1.

The ephemeral server that the other flow tests use runs neither schedules nor triggers, so these
tests share one real server subprocess (``prefect_api_server`` in conftest.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent

TICK_FLOW = '''
from pathlib import Path

from prefect import flow
from prefect.runtime import flow_run


@flow(name="tick")
def tick() -> str:
    out = Path(__file__).with_name("ticks")
    out.mkdir(exist_ok=True)
    (out / str(flow_run.get_id())).write_text("ran")
    return "ran"
'''


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def deployment_by_name(api, name: str, serve: subprocess.Popen, log: Path, timeout: float = 60) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert serve.poll() is None, log.read_text()[-3000:]
        found = api.post("/deployments/filter", json={"deployments": {"name": {"any_": [name]}}}).json()
        if found:
            return found[0]
        time.sleep(0.5)
    raise AssertionError(f"deployment {name!r} not registered in {timeout} s:\n{log.read_text()[-3000:]}")


def wait_for_automation(api, deployment_id: str, serve: subprocess.Popen, log: Path, timeout: float = 60) -> dict:
    """The automation that runs ``deployment_id`` (serve creates it right after the deployment)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert serve.poll() is None, log.read_text()[-3000:]
        for a in api.post("/automations/filter", json={}).json():
            if any(act.get("deployment_id") == deployment_id for act in a["actions"]):
                return a
        time.sleep(0.5)
    raise AssertionError(f"no automation for deployment {deployment_id} in {timeout} s:\n{log.read_text()[-3000:]}")


def test_interval_schedule_fires_on_its_own_and_the_run_completes(prefect_api_server, tmp_path):
    """`vae-anomaly serve` registers an interval deployment; the server's scheduler (not us) creates
    its runs, and the served runner executes one to COMPLETED. On SQLAlchemy 2.1 the scheduler fails
    every loop ("Can't evaluate bulk DML statement") and no run is ever created."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "tick.py").write_text(TICK_FLOW)
    (project / "flows.yaml").write_text(
        "deployments:\n"
        "  - name: tick-every-3s\n"
        "    entrypoint: tick.py:tick\n"
        "    schedule: {interval: 3}\n")
    log = tmp_path / "serve.log"
    serve = None
    try:
        with open(log, "w") as fh:
            serve = subprocess.Popen([str(BIN / "vae-anomaly"), "serve", "--file", str(project / "flows.yaml")],
                                     stdout=fh, stderr=subprocess.STDOUT, cwd=project,
                                     env={**prefect_api_server.env, "PREFECT_RUNNER_POLL_FREQUENCY": "1"})
        with prefect_api_server.client() as api:
            dep = deployment_by_name(api, "tick-every-3s", serve, log)
            assert dep["schedules"][0]["schedule"]["interval"] == 3
            deadline, runs = time.time() + 75, []
            while time.time() < deadline:
                assert serve.poll() is None, log.read_text()[-3000:]
                runs = api.post("/flow_runs/filter",
                                json={"flow_runs": {"deployment_id": {"any_": [dep["id"]]}}}).json()
                if any(r["state_type"] == "COMPLETED" for r in runs):
                    break
                time.sleep(1)
        done = [r for r in runs if r["state_type"] == "COMPLETED"]
        assert done, (f"no scheduled run completed in 75 s; runs: {[(r['name'], r['state_type']) for r in runs]}\n"
                      f"server log:\n{prefect_api_server.log.read_text()[-3000:]}\nserve log:\n{log.read_text()[-2000:]}")
        # Created by the server's scheduler, not by hand, and the flow body really ran.
        assert done[0]["auto_scheduled"] is True
        assert (done[0].get("created_by") or {}).get("type") == "SCHEDULE"
        assert (project / "ticks" / done[0]["id"]).read_text() == "ran"
    finally:
        stop(serve)


def test_flows_yaml_deploys_with_prefects_own_cli(prefect_api_server, tmp_path):
    """flows.yaml is a valid prefect.yaml: `prefect deploy --prefect-file flows.yaml --all` registers every
    entry on its work pool with the same schedule, parameters and pause state that `vae-anomaly serve` reads."""
    from tests.conftest import ROOT
    from vae_anomaly.flows.deployments import load_flows_file

    spec = load_flows_file(ROOT / "flows.yaml")  # our own reader accepts the same file
    env = {**prefect_api_server.env, "PREFECT_HOME": str(tmp_path / "client-home")}
    pools = {d.work_pool.name for d in spec.deployments if d.work_pool}
    assert pools, "flows.yaml names no work pool: `prefect deploy` refuses it"
    for pool in pools:
        subprocess.run([str(BIN / "prefect"), "work-pool", "create", pool, "--type", "process", "--overwrite"],
                       env=env, cwd=tmp_path, check=True, capture_output=True, timeout=120)
    res = subprocess.run([str(BIN / "prefect"), "--no-prompt", "deploy", "--prefect-file", str(ROOT / "flows.yaml"),
                          "--all"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    with prefect_api_server.client() as api:
        names = [d.name for d in spec.deployments]
        found = {d["name"]: d for d in api.post("/deployments/filter",
                                                json={"deployments": {"name": {"any_": names}}}).json()}
    assert set(found) == set(names)
    for d in spec.deployments:
        got = found[d.name]
        assert got["work_pool_name"] == d.work_pool.name
        assert got["parameters"] == d.parameters
        assert got["paused"] == d.paused
        assert got["entrypoint"] == d.entrypoint
        sched = got["schedules"][0]["schedule"]
        if d.schedule.cron:
            assert (sched["cron"], sched["timezone"]) == (d.schedule.cron, d.schedule.timezone)
        else:
            assert sched["interval"] == d.schedule.interval
    # The drift trigger of the train deployment became an automation that runs that deployment.
    with prefect_api_server.client() as api:
        automations = api.post("/automations/filter", json={}).json()
    retrain = [a for a in automations if a["trigger"].get("expect") == ["vae-anomaly.drift.detected"]
               and any(act.get("deployment_id") == found["nightly-train"]["id"] for act in a["actions"])]
    assert len(retrain) == 1 and retrain[0]["enabled"], automations
    assert retrain[0]["trigger"]["match"] == {"prefect.resource.id": "vae-anomaly.model.breast-cancer-vae"}


def test_drifted_batch_emits_an_event_and_the_trigger_retrains(prefect_api_server, tmp_path, monkeypatch):
    """Drift closes the loop on a real server: a batch whose score PSI crosses the threshold emits
    vae-anomaly.drift.detected; the train deployment's trigger (declared in flows.yaml, served by
    `vae-anomaly serve`) makes the automation run it; the retrained version is registered and its
    promotion is still decided against the champion. A batch like the training data emits nothing."""
    import mlflow
    import pandas as pd
    from prefect.events.worker import EventsWorker
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from tests.conftest import DATA
    from vae_anomaly.flows.score import DRIFT_EVENT, score_flow
    from vae_anomaly.flows.train import train_flow
    from vae_anomaly.jobs import ScoreJobConfig, TrainJobConfig

    monkeypatch.chdir(tmp_path)
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    cancer = pd.read_csv(DATA / "breast_cancer.csv")
    numeric = [c for c in cancer.columns if c not in ("patient_id", "diagnosis")]
    cancer[cancer["diagnosis"] == "benign"].to_csv(tmp_path / "like-training.csv", index=False)
    drifted = cancer.copy()
    drifted[numeric] = drifted[numeric] * 1.5  # every feature moved: PSI ~8 against the training scores
    drifted.to_csv(tmp_path / "drifted.csv", index=False)
    config = {"data": str(DATA / "breast_cancer.csv"), "label_column": "diagnosis", "anomaly_label": "malignant",
              "id_column": "patient_id", "train_on": "normal", "model_name": "drifty", "experiment": "drift",
              "detector": {"epochs": 3}}

    project = tmp_path / "project"
    project.mkdir()
    # A module entrypoint, as in the shipped flows.yaml: the served run imports the installed package's flow.
    (project / "flows.yaml").write_text(
        "deployments:\n"
        "  - name: retrain-on-drift\n"
        "    entrypoint: vae_anomaly.flows.train.train_flow\n"
        f"    parameters: {{config: {json.dumps(config)}}}\n"
        "    triggers:\n"
        f"      - {{type: event, expect: [{DRIFT_EVENT}], match: {{prefect.resource.id: vae-anomaly.model.drifty}}}}\n")
    log = tmp_path / "serve.log"
    serve = None
    try:
        with open(log, "w") as fh:
            serve = subprocess.Popen([str(BIN / "vae-anomaly"), "serve", "--file", str(project / "flows.yaml")],
                                     stdout=fh, stderr=subprocess.STDOUT, cwd=project,
                                     env={**prefect_api_server.env, "MLFLOW_TRACKING_URI": store,
                                          "PREFECT_RUNNER_POLL_FREQUENCY": "1", "OMP_NUM_THREADS": "1",
                                          "VAE_ANOMALY_THREADS": "1"})
        with temporary_settings({PREFECT_API_URL: prefect_api_server.url}):
            # Prefect keys its events worker by client type, not by API URL: a worker started by an earlier
            # test (against the session's other server) would carry these events there. Stop it first.
            EventsWorker.drain_all(timeout=20)
            first = train_flow(TrainJobConfig(**config))  # version 1, the champion
            with prefect_api_server.client() as api:  # the trigger must exist before the event is sent
                dep = deployment_by_name(api, "retrain-on-drift", serve, log)
                wait_for_automation(api, dep["id"], serve, log)
            calm = score_flow(ScoreJobConfig(model="drifty", input=str(tmp_path / "like-training.csv"),
                                             keep_columns=["patient_id", "diagnosis"], experiment="drift",
                                             output=str(tmp_path / "calm.parquet")))
            moved = score_flow(ScoreJobConfig(model="drifty", input=str(tmp_path / "drifted.csv"),
                                              keep_columns=["patient_id", "diagnosis"], experiment="drift",
                                              output=str(tmp_path / "moved.parquet")))
            EventsWorker.drain_all(timeout=20)
        assert first["version"] == "1" and first["promoted"]
        assert calm["drift_event"] is None and calm["summary"]["drift_psi"] < 0.2
        assert moved["drift_event"] and moved["summary"]["drift_psi"] > 0.2

        with prefect_api_server.client() as api:
            deadline, events = time.time() + 30, []
            while time.time() < deadline and not events:  # the server persists events in batches
                events = api.post("/events/filter", json={"filter": {
                    "event": {"name": [DRIFT_EVENT]}, "resource": {"id": ["vae-anomaly.model.drifty"]}}}).json()["events"]
                time.sleep(1)
            assert [e["id"] for e in events] == [moved["drift_event"]]  # one event: the drifted batch's
            assert events[0]["payload"]["drift_psi"] == pytest.approx(moved["summary"]["drift_psi"])
            deadline, runs = time.time() + 90, []
            while time.time() < deadline:
                assert serve.poll() is None, log.read_text()[-3000:]
                runs = api.post("/flow_runs/filter",
                                json={"flow_runs": {"deployment_id": {"any_": [dep["id"]]}}}).json()
                if any(r["state_type"] in ("COMPLETED", "FAILED", "CRASHED") for r in runs):
                    break
                time.sleep(1)
        assert len(runs) == 1, [(r["name"], r["state_type"]) for r in runs]
        run = runs[0]
        assert run["state_type"] == "COMPLETED", (run["state_type"], log.read_text()[-3000:])
        assert (run.get("created_by") or {}).get("type") == "AUTOMATION"
        assert run["name"] == "train drifty on breast_cancer.csv"
        client = mlflow.MlflowClient(store)
        v2 = client.get_model_version("drifty", "2")  # the retrain registered a new version ...
        assert v2.tags["promotion_decision"]  # ... and the registry's rule decided its promotion
    finally:
        stop(serve)
