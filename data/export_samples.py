"""Re-create the sample data in this folder from scikit-learn's bundled data sets (no network).

    .venv/bin/python data/export_samples.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_breast_cancer, load_digits

from vae_anomaly.data import write_idx

HERE = Path(__file__).parent


def main() -> None:
    bc = load_breast_cancer(as_frame=True)
    frame = bc.frame.copy()
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    # scikit-learn codes malignant as 0; the anomaly-detection convention is 1 = the rare, abnormal class.
    frame["diagnosis"] = np.where(frame.pop("target") == 0, "malignant", "benign")
    frame.insert(0, "patient_id", np.arange(1, len(frame) + 1))
    frame.to_csv(HERE / "breast_cancer.csv", index=False, float_format="%.6g")

    digits = load_digits()
    # The 8x8 images hold 0..16; stretch to the usual 0..255 byte range.
    images = np.rint(digits.images * (255 / 16)).astype(np.uint8)
    np.savez_compressed(HERE / "digits.npz", X=images, y=digits.target.astype(np.int64))
    idx = HERE / "digits_idx"
    idx.mkdir(exist_ok=True)
    write_idx(idx / "images-idx3-ubyte.gz", images)
    write_idx(idx / "labels-idx1-ubyte.gz", digits.target.astype(np.uint8))
    png = HERE / "digits_png"
    for label in range(10):
        folder = png / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        for k, i in enumerate(np.flatnonzero(digits.target == label)[:20]):
            Image.fromarray(images[i], mode="L").save(folder / f"{k:02d}.png")


if __name__ == "__main__":
    main()
