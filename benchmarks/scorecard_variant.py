"""VAEDetector on the shared scorecard's protocol, one CSV row per (set, size, seed) like scorecard.py's.

The same sets, halves, sizes (200, 1 000, 5 000), seeds (3), stratified samples and 70/30 splits as
../shared/bench/scorecard.py, for the project's detector only (so a candidate costs one run); the
variant ``quantile`` first maps every column through scikit-learn's QuantileTransformer (normal
output) and fits with ``scaling="standard"``. Compare two CSVs with benchmarks/scorecard_compare.py.

  .venv/bin/python benchmarks/scorecard_variant.py choose default base.csv
  .venv/bin/python benchmarks/scorecard_variant.py choose default w64.csv '{"hidden_dims": [64, 32]}'
"""

from __future__ import annotations

import os

# One thread per process: OpenMP pools that spin while another process holds the cores run many times slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("VAE_ANOMALY_THREADS", "1")

import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.preprocessing import QuantileTransformer  # noqa: E402

from vae_anomaly import VAEDetector  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared" / "bench"))
from scorecard import DATA, HALVES, sample  # noqa: E402

SIZES = (200, 1000, 5000)


def main(half: str, variant: str, out: str, options: dict) -> None:
    with open(out, "w") as fh:
        print("set,size,seed,method,auroc,fit_s", file=fh, flush=True)
        for name in HALVES[half]:
            data = np.load(DATA / f"{name}.npz")
            X0, y0 = data["X"].astype(np.float32), data["y"].astype(int)
            for i, size in enumerate(SIZES):
                if i and len(X0) <= SIZES[i - 1]:
                    break  # the whole set was already evaluated at a smaller size
                for seed in range(3):
                    X, y = sample(X0, y0, size, seed)
                    if y.sum() < 6:
                        continue
                    Xtr, Xte, _, yte = train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)
                    t0 = time.perf_counter()
                    opts = dict(options)
                    if variant == "quantile":
                        q = QuantileTransformer(n_quantiles=min(1000, len(Xtr)), output_distribution="normal",
                                                random_state=seed).fit(Xtr)
                        Xtr, Xte = q.transform(Xtr).astype(np.float32), q.transform(Xte).astype(np.float32)
                        opts.setdefault("scaling", "standard")
                    scores = VAEDetector(random_state=seed, **opts).fit(Xtr).decision_function(Xte)
                    auc = roc_auc_score(yte, scores) if np.all(np.isfinite(scores)) else float("nan")
                    print(f"{name},{size},{seed},project,{auc:.4f},{time.perf_counter() - t0:.2f}", file=fh, flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]) if len(sys.argv) > 4 else {})
