"""Utility, fidelity and privacy of VAEOversampler against SMOTE, on real imbalanced data.

Data: the ADBench tables as binary classification (anomaly = minority class) and scikit-learn's
breast-cancer table with the malignant class subsampled to 5% and 10%. For each set and seed: a
stratified 70/30 split; classifiers (logistic regression, gradient-boosted trees) trained on
real rows alone, real + SMOTE, real + VAEOversampler; minority F1, recall and balanced accuracy
on the real 30%.

    .venv/bin/python benchmarks/synth.py
    .venv/bin/python benchmarks/synth.py --sets cancer5 cancer10 6_cardio --seeds 0 1
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import QUALITY_SETS, load_adbench, markdown_table, timer


def load(name: str, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    if name.startswith("cancer"):
        from sklearn.datasets import load_breast_cancer

        share = int(name[len("cancer"):]) / 100
        d = load_breast_cancer()
        y = (d.target == 0).astype(int)  # malignant = 1 = minority
        rng = np.random.default_rng(seed)
        neg = np.flatnonzero(y == 0)
        n_pos = int(round(share * len(neg) / (1 - share)))
        keep = np.r_[neg, rng.choice(np.flatnonzero(y == 1), n_pos, replace=False)]
        return pd.DataFrame(d.data[keep], columns=d.feature_names), y[keep]
    X, y = load_adbench(name)
    return pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])]), y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", nargs="+", default=["cancer5", "cancer10", *[s for s in QUALITY_SETS if s != "32_shuttle"]])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--classifiers", nargs="+", default=["logreg", "gbt"])
    ap.add_argument("--baselines", nargs="*", default=["class weights", "random", "SMOTE", "Borderline-SMOTE", "ADASYN"])
    ap.add_argument("--vae", default="{}", help="VAEOversampler options as JSON (ablations)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import json

    import torch

    torch.set_num_threads(args.threads)
    vae_options = json.loads(args.vae)
    warnings.filterwarnings("ignore")
    from imblearn.over_sampling import ADASYN, SMOTE, BorderlineSMOTE, RandomOverSampler
    from sklearn.model_selection import train_test_split

    from vae_anomaly import VAEOversampler
    from vae_anomaly.synthetic_quality import column_similarity, correlation_difference, privacy_dcr, utility

    rows, fid_rows = [], []
    agg: dict[tuple[str, str], list[float]] = {}
    for name in args.sets:
        per: dict[tuple[str, str], list[dict]] = {}
        fid = []
        for seed in args.seeds:
            X, y = load(name, seed)
            Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)
            Xtr, Xte = Xtr.reset_index(drop=True), Xte.reset_index(drop=True)
            k = min(5, int(np.bincount(ytr).min()) - 1)
            sets = {"real": (Xtr, ytr)}
            samplers = {"random": RandomOverSampler(random_state=seed),
                        "SMOTE": SMOTE(random_state=seed, k_neighbors=k),
                        "Borderline-SMOTE": BorderlineSMOTE(random_state=seed, k_neighbors=k),
                        "ADASYN": ADASYN(random_state=seed, n_neighbors=k)}
            for b in args.baselines:
                if b in samplers:
                    try:
                        sets[b] = samplers[b].fit_resample(Xtr, ytr)
                    except (ValueError, RuntimeError):  # ADASYN refuses when no row has other-class neighbours
                        sets[b] = sets["real"]
            with timer() as t:
                vae = VAEOversampler(random_state=seed, device="cpu", **vae_options)
                sets["VAE"] = vae.fit_resample(Xtr, ytr)
            print(f"{name} seed {seed}: VAEOversampler {t['s']:.1f}s", file=sys.stderr, flush=True)
            for method, (Xa, ya) in sets.items():
                for clf in args.classifiers:
                    per.setdefault((method, clf), []).append(utility(Xa, ya, Xte, yte, 1, clf, seed))
            if "class weights" in args.baselines:
                for clf in args.classifiers:
                    per.setdefault(("class weights", clf), []).append(
                        utility(Xtr, ytr, Xte, yte, 1, clf, seed, class_weight="balanced"))
            real_min = Xtr[ytr == 1]
            pre = vae.preprocessor_
            for method in ("VAE", "SMOTE"):  # SMOTE's rows measured the same way, for reference
                if method not in sets or sets[method] is sets["real"]:
                    continue
                syn = pd.DataFrame(sets[method][0]).iloc[len(Xtr):]
                sim = column_similarity(real_min, syn)
                dcr = privacy_dcr(pre.transform(Xtr), pre.transform(syn), pre.transform(Xte))
                fid.append({"method": method, "column_similarity": float(np.mean(list(sim.values()))),
                            "corr_diff": correlation_difference(real_min, syn), **dcr})
        methods = ["real", *[b for b in args.baselines], "VAE"]
        for clf in args.classifiers:
            line = [name, clf]
            for method in methods:
                r = per[(method, clf)]
                f1 = float(np.mean([m["f1"] for m in r]))
                agg.setdefault((method, clf), []).append(f1)
                line.append(f"{f1:.3f} / {np.mean([m['recall'] for m in r]):.3f} / "
                            f"{np.mean([m['balanced_accuracy'] for m in r]):.3f}")
            rows.append(line)
        for method in ("VAE", "SMOTE"):
            mine = [f for f in fid if f["method"] == method]
            if mine:
                fid_rows.append([name, method] + [float(np.mean([f[k] for f in mine])) for k in
                                                  ("column_similarity", "corr_diff", "dcr_synthetic_median",
                                                   "dcr_holdout_median", "dcr_ratio",
                                                   "share_synthetic_closer_than_p5_holdout")])
    for clf in args.classifiers:
        rows.append(["**mean minority F1**", clf] + [f"**{np.mean(agg[(m, clf)]):.3f}**" for m in methods])
    print(f"Minority F1 / recall / balanced accuracy on the real 30% hold-out, mean over seeds {args.seeds}; "
          f"VAEOversampler options {vae_options}\n")
    print(markdown_table(["data set", "classifier", "real only", *args.baselines, "VAEOversampler"], rows))
    print("\nFidelity and privacy of the generated minority rows (mean over seeds)\n")
    cols = ["column similarity (1-KS/TV)", "|corr diff|", "DCR synthetic", "DCR hold-out", "DCR ratio",
            "share closer than hold-out p5"]
    print(markdown_table(["data set", "sampler", *cols], fid_rows))
    for method in ("VAE", "SMOTE"):
        mine = [r for r in fid_rows if r[1] == method]
        if mine:
            print(f"mean {method}: " + ", ".join(f"{c} {np.mean([r[2 + i] for r in mine]):.3f}" for i, c in enumerate(cols)))


if __name__ == "__main__":
    main()
