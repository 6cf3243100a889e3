"""Killed and abandoned work: a rerun resumes, abandoned runs are marked, servers die with their parent.

Split from test_reliability.py (issue #10's reliability tests): each failed on the code before its fix.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import BIN, DATA, cli
from vae_anomaly import VAEDetector


def test_killed_fit_resumes_when_the_same_command_is_rerun(tmp_path):
    out = tmp_path / "m"
    args = ["fit", DATA / "digits.npz", "--out", out, "--epochs", "40", "--set", "patience=null"]
    proc = subprocess.Popen([str(BIN / "vae-anomaly"), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    manifest = None
    while time.time() < deadline and proc.poll() is None:
        found = list(tmp_path.glob(".m.checkpoint-*/manifest.json"))
        if found and json.loads(found[0].read_text())["epoch"] >= 1:
            manifest = found[0]
            break
        time.sleep(0.2)
    assert manifest is not None, proc.communicate()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    r = cli(*args)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["resumed_from_epoch"] is not None and report["resumed_from_epoch"] >= 1
    assert VAEDetector.load(out).history_[-1]["epoch"] == 39
    assert not list(tmp_path.glob(".m.checkpoint-*"))  # cleaned once the model is saved


def test_abandoned_runs_are_marked_failed(mlflow_store):
    from vae_anomaly import tracking

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run_id = tracking.start_run("exp", tags={"vae_anomaly.pid": str(dead.pid)})
    alive = tracking.start_run("exp")  # this process: still alive, left alone
    assert tracking.fail_abandoned_runs("exp") == [run_id]
    c = tracking.client()
    assert c.get_run(run_id).info.status == "FAILED" and c.get_run(alive).info.status == "RUNNING"


@pytest.mark.slow
def test_prefect_temporary_server_dies_with_its_parent(tmp_path):
    code = ("import time, vae_anomaly.flows._runtime as r; r.tie_temporary_servers_to_this_process();"
            "from prefect.server.api.server import SubprocessASGIServer as S; s = S(); s.start(timeout=120);"
            "print(s.server_process.pid, flush=True); time.sleep(600)")
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env,
                              cwd=Path(__file__).resolve().parents[1])
    server_pid = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline, gone = time.time() + 15, False
    while time.time() < deadline and not gone:
        try:
            os.kill(server_pid, 0)
        except ProcessLookupError:
            gone = True
            break
        time.sleep(0.2)
    if not gone:
        os.kill(server_pid, signal.SIGKILL)
    assert gone, "the temporary Prefect server outlived its killed parent"
