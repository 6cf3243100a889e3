"""One-class image benchmark on scikit-learn's digits: train on one digit, score a test set of all digits.

For each digit d and seed: a stratified 70/30 split of all 1 797 images; fit on the training images
of digit d only; AUROC on the test set with "not d" as the anomaly. VAEDetector as an image model
(conv VAE, Gaussian pixels by default) and on the 64 pixels as a table (MLP, Gaussian columns), against
IForest (and PyOD's VAE with --pyod) on the raw 64 pixels, in one run.

    .venv/bin/python benchmarks/digits_one_class.py                 # seeds 0 and 1
    .venv/bin/python benchmarks/digits_one_class.py --seeds 0 --pyod
    .venv/bin/python benchmarks/digits_one_class.py --image '{"image_likelihood": "continuous_bernoulli"}'

``--vae`` options go to both VAEDetector paths; ``--image`` options to the image path only (image-only
options such as ``complexity_correction``).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import markdown_table, timer


def main() -> None:
    import argparse
    import json

    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--pyod", action="store_true", help="also PyOD's VAE (slow)")
    ap.add_argument("--vae", default="{}", help="extra VAEDetector options as JSON (ablations)")
    ap.add_argument("--image", default="{}", help="extra VAEDetector options for the image path only (JSON)")
    ap.add_argument("--no-table", action="store_true", help="skip the 64-column path (when only --image varies)")
    ap.add_argument("--no-image", action="store_true", help="skip the image path")
    ap.add_argument("--complexity", action="store_true",
                    help="also score the image path's fitted models with complexity_correction png and zlib")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    import torch
    from pyod.models.iforest import IForest
    from sklearn.datasets import load_digits
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    from vae_anomaly import VAEDetector

    torch.set_num_threads(args.threads)
    extra = json.loads(args.vae)
    image_extra = {**extra, **json.loads(args.image)}
    d = load_digits()
    X = (d.images / 16.0).astype(np.float32)
    makers = [
        ("VAEDetector (image)", lambda s: VAEDetector(random_state=s, device="cpu", **image_extra),
         lambda a: a[:, None]),
        ("VAEDetector (64 columns)", lambda s: VAEDetector(random_state=s, device="cpu", **extra),
         lambda a: a.reshape(len(a), -1)),
        ("IForest", lambda s: IForest(random_state=s), lambda a: a.reshape(len(a), -1)),
    ]
    if args.no_table:
        makers = [m for m in makers if m[0] != "VAEDetector (64 columns)"]
    if args.no_image:
        makers = [m for m in makers if m[0] != "VAEDetector (image)"]
    if args.pyod:
        from pyod.models.vae import VAE

        makers.append(("PyOD-VAE", lambda s: VAE(random_state=s, verbose=0, device="cpu"),
                       lambda a: a.reshape(len(a), -1)))
    table = {name: [[] for _ in range(10)] for name, _, _ in makers}
    times = {name: [] for name, _, _ in makers}
    # Serra et al.'s correction changes only the score: the same fitted image model, scored three ways.
    corrections = ("png", "zlib") if args.complexity else ()
    for c in corrections:
        table[f"image + {c}"], times[f"image + {c}"] = [[] for _ in range(10)], []
    for seed in args.seeds:
        Xtr, Xte, ytr, yte = train_test_split(X, d.target, test_size=0.3, stratify=d.target, random_state=seed)
        for digit in range(10):
            train = Xtr[ytr == digit]
            labels = (yte != digit).astype(int)
            for name, make, prep in makers:
                with timer() as t:
                    det = make(seed).fit(prep(train))
                table[name][digit].append(roc_auc_score(labels, det.decision_function(prep(Xte))))
                times[name].append(t["s"])
                if name == "VAEDetector (image)":
                    for c in corrections:
                        with timer() as t:
                            det.set_params(complexity_correction=c)
                            table[f"image + {c}"][digit].append(roc_auc_score(labels, det.decision_function(prep(Xte))))
                        times[f"image + {c}"].append(t["s"])
                    det.set_params(complexity_correction=image_extra.get("complexity_correction"))
            print(seed, digit, {k: round(v[digit][-1], 3) for k, v in table.items()}, file=sys.stderr, flush=True)
    rows = [[digit] + [float(np.mean(table[k][digit])) for k in table] for digit in range(10)]
    means = {k: float(np.mean([np.mean(v) for v in table[k]])) for k in table}
    rows.append(["**mean**"] + [f"**{means[k]:.4f}**" for k in table])
    rows.append(["mean fit s"] + [f"{np.mean(v):.2f}" for v in times.values()])
    print(f"One-class digits: AUROC per training digit (test set: all digits, 30% split), mean over seeds "
          f"{args.seeds}; VAEDetector options {extra}, image path {image_extra}\n")
    print(markdown_table(["digit", *table], rows))


if __name__ == "__main__":
    main()
