"""Shared fixtures. Heavy servers (Prefect, MLflow) are started once per session, in their own modules."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
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

    import pipelines  # noqa: F401  (sets Prefect's environment defaults)

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture()
def mlflow_store(tmp_path, monkeypatch):
    """A real MLflow SQLite store in a temporary working directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return tmp_path
