"""One-class image benchmark on scikit-learn's digits: train on one digit, score a test set of all digits.

For each digit d: a stratified 70/30 split of all 1 797 images (seed 0); fit on the training images
of digit d only; AUROC on the test set with "not d" as the anomaly. VAEDetector (conv VAE on the
8x8 images) against IForest and PyOD's VAE on the raw 64 pixels, in one run.

    .venv/bin/python benchmarks/digits_one_class.py
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import markdown_table, timer


def main() -> None:
    warnings.filterwarnings("ignore")
    from pyod.models.iforest import IForest
    from pyod.models.vae import VAE
    from sklearn.datasets import load_digits
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    from vae_anomaly import VAEDetector

    d = load_digits()
    X = (d.images / 16.0).astype(np.float32)
    Xtr, Xte, ytr, yte = train_test_split(X, d.target, test_size=0.3, stratify=d.target, random_state=0)
    rows, table = [], {"VAEDetector": [], "IForest": [], "PyOD-VAE": []}
    times = {k: [] for k in table}
    for digit in range(10):
        train = Xtr[ytr == digit]
        labels = (yte != digit).astype(int)
        for name, make, prep in (
            ("VAEDetector", lambda: VAEDetector(random_state=0, device="cpu"), lambda a: a[:, None]),
            ("IForest", lambda: IForest(random_state=0), lambda a: a.reshape(len(a), -1)),
            ("PyOD-VAE", lambda: VAE(random_state=0, verbose=0, device="cpu"), lambda a: a.reshape(len(a), -1)),
        ):
            with timer() as t:
                det = make().fit(prep(train))
            table[name].append(roc_auc_score(labels, det.decision_function(prep(Xte))))
            times[name].append(t["s"])
        rows.append([digit] + [table[k][-1] for k in table])
        print(rows[-1], file=sys.stderr, flush=True)
    rows.append(["**mean**"] + [f"**{np.mean(v):.3f}**" for v in table.values()])
    rows.append(["mean fit s"] + [f"{np.mean(v):.2f}" for v in times.values()])
    print("One-class digits: AUROC per training digit (test set: all digits, 30% split, seed 0)\n")
    print(markdown_table(["digit", *table], rows))


if __name__ == "__main__":
    main()
