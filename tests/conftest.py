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
