"""Helpers shared by the benchmark scripts: data location, timing, peak memory, table printing."""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ADBENCH = Path(os.environ.get("VAE_ANOMALY_ADBENCH", ROOT.parent / "shared" / "datasets" / "adbench"))
QUALITY_SETS = ["6_cardio", "38_thyroid", "23_mammography", "30_satellite", "28_pendigits", "2_annthyroid",
                "40_vowels", "42_WBC", "29_Pima", "32_shuttle"]
SCALE_SETS = ["11_donors", "16_http"]


def load_adbench(name: str) -> tuple[np.ndarray, np.ndarray]:
    path = ADBENCH / f"{name}.npz"
    if not path.exists():
        raise SystemExit(f"{path} not found: set VAE_ANOMALY_ADBENCH to the folder holding the ADBench .npz files")
    with np.load(path, allow_pickle=False) as d:
        return d["X"].astype(np.float64), d["y"].astype(int)


@contextmanager
def timer():
    box = {}
    t = time.perf_counter()
    yield box
    box["s"] = time.perf_counter() - t


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    def fmt(v: object) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)
