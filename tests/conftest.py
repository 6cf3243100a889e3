"""Shared fixtures. Heavy servers (Prefect, MLflow) are started once per session, in their own modules."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
ADBENCH = ROOT.parent / "shared" / "datasets" / "adbench"

# Keep CI deterministic and within 2 cores.
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session")
def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0).astype(np.float32)[:, None], d.target


@pytest.fixture(scope="session")
def cancer():
    import pandas as pd

    frame = pd.read_csv(DATA / "breast_cancer.csv")
    y = (frame.pop("diagnosis") == "malignant").astype(int).to_numpy()
    frame.pop("patient_id")
    return frame, y


@pytest.fixture()
def in_tmp(tmp_path, monkeypatch):
    """Run in a temporary working directory (MLflow's default store is ./mlflow.db)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def prefect_server():
    """One Prefect test server (ephemeral, SQLite) for the whole session: it takes 12-25 s to start."""
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    from prefect.testing.utilities import prefect_test_harness

    import vae_anomaly.flows  # noqa: F401  (sets Prefect's environment defaults)

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture()
def mlflow_store(tmp_path, monkeypatch):
    """A real MLflow SQLite store in a temporary working directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return tmp_path


def wait_for_http(url: str, proc, timeout: float, log: Path) -> None:
    """Poll ``url`` until it answers 200; fail with the server's log if it exits or stays silent."""
    import time

    import httpx

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} did not answer in {timeout} s:\n{log.read_text()[-3000:]}")


class PrefectAPIServer:
    """A real `prefect server start` subprocess: its API URL, the environment that points at it, its log."""

    def __init__(self, url: str, env: dict[str, str], log: Path, home: Path) -> None:
        self.url, self.env, self.log, self.home = url, env, log, home

    def client(self):  # noqa: ANN201 - httpx.Client on the API
        import httpx

        return httpx.Client(base_url=self.url, timeout=20)


@pytest.fixture(scope="session")
def prefect_api_server(tmp_path_factory):
    """One real `prefect server` for the session (schedules and triggers need one; the ephemeral
    server runs neither). Its scheduler loops every second and schedules at most a few runs ahead,
    so an interval deployment gets its first run within seconds and does not flood a 2-core machine."""
    import subprocess
    import sys

    home = tmp_path_factory.mktemp("prefect-api-server")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({
        "PREFECT_HOME": str(home / "home"),
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "PREFECT_UI_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "1",
        "PREFECT_SERVER_SERVICES_SCHEDULER_RECENT_DEPLOYMENTS_LOOP_SECONDS": "1",
        "PREFECT_SERVER_SERVICES_SCHEDULER_MIN_RUNS": "1",
        "PREFECT_SERVER_SERVICES_SCHEDULER_MAX_RUNS": "2",
        "PREFECT_SERVER_SERVICES_SCHEDULER_MIN_SCHEDULED_TIME": "PT5S",
        "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "1",
    })
    log = home / "server.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                 "--port", str(port)], stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=home)
    url = f"http://127.0.0.1:{port}/api"
    try:
        wait_for_http(f"{url}/health", proc, 180, log)
        yield PrefectAPIServer(url, {**env, "PREFECT_API_URL": url}, log, home)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


# ----------------------------------------------------------- the reliability tests' shared pieces
BIN = Path(sys.executable).parent


def cli(*args, cwd=None, env=None, **kw) -> subprocess.CompletedProcess:
    """The installed ``vae-anomaly`` command, as a user runs it."""
    return subprocess.run([str(BIN / "vae-anomaly"), *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **(env or {})}, **kw)


def user_error(r: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit 2, one short paragraph on stderr naming what is wrong, no traceback."""
    assert r.returncode == 2, (r.returncode, r.stdout[-500:], r.stderr[-2000:])
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.stderr.startswith("error:") or "\nerror:" in r.stderr, r.stderr[-800:]
    for f in fragments:
        assert f in r.stderr, (f, r.stderr[-800:])


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    """600 rows of three standard-normal columns."""
    rng = np.random.default_rng(0)
    return pd.DataFrame({"a": rng.normal(size=600), "b": rng.normal(size=600), "c": rng.normal(size=600)})


@pytest.fixture(scope="module")
def fitted(table, tmp_path_factory):
    """A detector fitted on ``table`` (3 epochs) and the folder it was saved to."""
    from vae_anomaly import VAEDetector

    det = VAEDetector(random_state=0, epochs=3).fit(table)
    path = tmp_path_factory.mktemp("rel") / "model"
    det.save(path)
    return det, path


def edit_meta(src: Path, dst: Path, edit) -> Path:
    """A copy of the model folder ``src`` at ``dst`` with ``edit`` (a function of the dict) applied to its model.json."""
    import json
    import shutil

    shutil.copytree(src, dst)
    meta = json.loads((dst / "model.json").read_text())
    edit(meta)
    (dst / "model.json").write_text(json.dumps(meta))
    return dst
