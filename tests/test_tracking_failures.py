"""`score INPUT --model NAME` against a dead tracking server or an unknown model: one line, in seconds,
one error (never "registered model 'x' does not exist failed against MLflow tracking at ...")."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import DATA, free_port
from vae_anomaly.errors import ModelError, TrackingError

BIN = Path(sys.executable).parent


def _score_cli(tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.perf_counter()
    res = subprocess.run([str(BIN / "vae-anomaly"), "score", str(DATA / "breast_cancer.csv"), "--model", "nosuch",
                          "-o", str(tmp_path / "s.parquet")], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1", **env})
    return res, time.perf_counter() - t0


def test_score_by_name_with_a_dead_tracking_server(tmp_path):
    port = free_port()  # nothing listens there
    res, seconds = _score_cli(tmp_path, {"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}"})
    lines = [ln for ln in (res.stdout + res.stderr).splitlines() if ln.strip()]
    assert res.returncode == 2 and seconds < 20, (seconds, lines)
    assert len(lines) == 1, lines
    assert "not reachable" in lines[0] and f"127.0.0.1:{port}" in lines[0]
    assert "does not exist" not in lines[0] and "failed against" not in lines[0]
    assert not (tmp_path / "s.parquet").exists()


def test_score_by_name_of_an_unknown_model(tmp_path):
    res, seconds = _score_cli(tmp_path, {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"})
    lines = [ln for ln in (res.stdout + res.stderr).splitlines() if ln.strip()]
    assert res.returncode == 2, lines
    assert lines == ["error: registered model 'nosuch' does not exist"], lines
    assert seconds < 30, seconds


def test_library_errors_say_one_thing(monkeypatch, tmp_path, mlflow_store):
    from vae_anomaly import tracking

    # the store answers: a user error, said once
    with pytest.raises(ModelError) as e:
        tracking.load_detector("nosuch")
    assert str(e.value) == "registered model 'nosuch' does not exist"
    # nobody answers (no health probe first): the connection error, without the lookup's "does not exist"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    t0 = time.perf_counter()
    with pytest.raises(TrackingError) as e:
        tracking.load_detector("nosuch")
    msg = str(e.value)
    assert "not reachable" in msg and "while looking up registered model 'nosuch'" in msg
    assert "does not exist" not in msg and "\n" not in msg and time.perf_counter() - t0 < 30
