"""Mean fit + score seconds of the default VAEDetector at 5 000 rows (the scorecard's largest size), one
thread, against PyOD's IForest in the same run. Sets with at least 5 000 rows from both scorecard halves.

    .venv/bin/python benchmarks/detector_fit_time.py
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("VAE_ANOMALY_THREADS", "1")
SHARED_BENCH = Path(__file__).resolve().parents[1].parent / "shared" / "bench"


def main() -> None:
    import numpy as np
    from pyod.models.iforest import IForest
    from sklearn.model_selection import train_test_split

    sys.path.insert(0, str(SHARED_BENCH))
    from scorecard import DATA, HALVES, sample

    from vae_anomaly import VAEDetector

    ours, iforest = [], []
    for name in HALVES["choose"] + HALVES["confirm"]:
        d = np.load(DATA / f"{name}.npz")
        X0, y0 = d["X"].astype(np.float32), d["y"].astype(int)
        if len(X0) < 5000:
            continue
        X, y = sample(X0, y0, 5000, 0)
        Xtr, Xte, _, _ = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
        for times, make in ((ours, lambda: VAEDetector(random_state=0)), (iforest, lambda: IForest(random_state=0))):
            t0 = time.perf_counter()
            make().fit(Xtr).decision_function(Xte)
            times.append(time.perf_counter() - t0)
        print(f"{name:16s} VAEDetector {ours[-1]:.2f} s  IForest {iforest[-1]:.2f} s", flush=True)
    print(f"mean over {len(ours)} sets at 5000 rows: VAEDetector {np.mean(ours):.2f} s, IForest {np.mean(iforest):.2f} s")


if __name__ == "__main__":
    main()
