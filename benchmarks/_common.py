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
LARGER_SETS = ["22_magic.gamma", "1_ALOI", "5_campaign", "34_smtp", "8_celeba", "33_skin", "10_cover"]
ALL_QUALITY_SETS = QUALITY_SETS + LARGER_SETS
SCALE_SETS = ["11_donors", "16_http"]
MAX_QUALITY_ROWS = 12_000  # the protocol's stratified sample per set: every set weighs the same


def stratified_sample(X: np.ndarray, y: np.ndarray, max_rows: int = MAX_QUALITY_ROWS, seed: int = 0
                      ) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_rows`` rows with the anomaly share kept (seeded)."""
    if len(X) <= max_rows:
        return X, y
    from sklearn.model_selection import train_test_split

    keep, _, y_keep, _ = train_test_split(np.arange(len(X)), y, train_size=max_rows, stratify=y, random_state=seed)
    return X[keep], y_keep


def load_adbench(name: str) -> tuple[np.ndarray, np.ndarray]:
    path = ADBENCH / f"{name}.npz"
    if not path.exists():
        raise SystemExit(f"{path} not found: set VAE_ANOMALY_ADBENCH to the folder holding the ADBench .npz files")
    with np.load(path, allow_pickle=False) as d:
        return d["X"].astype(np.float64), d["y"].astype(int)


def scale_set_model(name: str, model_dir: Path, **options: object) -> tuple[object, np.ndarray]:
    """A scale set as a DataFrame (columns x0, x1, ...) and its labels; a VAEDetector (``options``) fitted
    on a seeded 20 000-row sample of it is saved to ``model_dir``."""
    import pandas as pd

    from vae_anomaly import VAEDetector

    X, y = load_adbench(name)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    VAEDetector(random_state=0, device="cpu", **options).fit(frame.sample(20_000, random_state=0)).save(model_dir)
    return frame, y


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
