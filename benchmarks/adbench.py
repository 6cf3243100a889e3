"""ADBench unsupervised protocol: VAEDetector against PyOD's IForest, ECOD and VAE in one run.

For each data set and seed 0, 1, 2: a stratified sample of at most 12 000 rows (seeded), a
stratified 70/30 split, fit on the 70% without labels (anomalies included), AUROC and AUPRC of the
scores on the 30%.

    .venv/bin/python benchmarks/adbench.py                      # all 17 quality sets, three seeds
    .venv/bin/python benchmarks/adbench.py --suite small        # the ten small sets
    .venv/bin/python benchmarks/adbench.py --sets 6_cardio 42_WBC --seeds 0
    .venv/bin/python benchmarks/adbench.py --detectors VAEDetector --vae '{"n_estimators": 1}' --label single
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    ALL_QUALITY_SETS,
    LARGER_SETS,
    QUALITY_SETS,
    load_adbench,
    markdown_table,
    stratified_sample,
    timer,
)

VAE_PARAMS: dict = {}


def make_detector(name: str, seed: int):  # noqa: ANN201
    if name == "VAEDetector":
        from vae_anomaly import VAEDetector

        return VAEDetector(random_state=seed, device="cpu", **VAE_PARAMS)
    if name == "IForest":
        from pyod.models.iforest import IForest

        return IForest(random_state=seed)
    if name == "ECOD":
        from pyod.models.ecod import ECOD

        return ECOD()
    if name == "PyOD-VAE":
        from pyod.models.vae import VAE

        return VAE(random_state=seed, verbose=0, device="cpu")
    raise SystemExit(f"unknown detector {name}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", choices=["all", "small", "large"], default="all")
    ap.add_argument("--sets", nargs="+", default=None)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--detectors", nargs="+", default=["VAEDetector", "IForest", "ECOD"])
    ap.add_argument("--vae", default="{}", help="VAEDetector options as JSON (ablations)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (one process per core scales best)")
    ap.add_argument("--label", default=None, help="name of the VAEDetector column in the table")
    ap.add_argument("--auto-steps", type=int, default=None, help="gradient-step budget of epochs='auto' (ablation)")
    ap.add_argument("--score-methods", nargs="*", default=[],
                    help="also score the fitted VAEDetector with these methods (neg_elbo, iwae, recon, kl)")
    args = ap.parse_args()
    if args.sets is None:
        args.sets = {"all": ALL_QUALITY_SETS, "small": QUALITY_SETS, "large": LARGER_SETS}[args.suite]
    import json

    VAE_PARAMS.update(json.loads(args.vae))
    if args.auto_steps:
        VAE_PARAMS["max_steps"] = args.auto_steps
    warnings.filterwarnings("ignore")
    import torch
    from sklearn.metrics import average_precision_score, roc_auc_score
    from sklearn.model_selection import train_test_split

    torch.set_num_threads(args.threads)
    res: dict[tuple[str, str], list[tuple[float, float, float, float]]] = {}
    methods: dict[tuple[str, str], list[float]] = {}
    for ds in args.sets:
        X_all, y_all = load_adbench(ds)
        for seed in args.seeds:
            X, y = stratified_sample(X_all, y_all, seed=seed)
            Xtr, Xte, _, yte = train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)
            for det_name in args.detectors:
                det = make_detector(det_name, seed)
                with timer() as tf:
                    det.fit(Xtr)
                with timer() as ts:
                    s = det.decision_function(Xte)
                s = np.nan_to_num(s, nan=np.nanmax(s))
                res.setdefault((ds, det_name), []).append(
                    (roc_auc_score(yte, s), average_precision_score(yte, s), tf["s"], ts["s"]))
                if det_name == "VAEDetector":
                    for m in args.score_methods:
                        sm = det.decision_function(Xte, method=m)
                        methods.setdefault((ds, m), []).append(roc_auc_score(yte, sm))
                print(f"{ds:16s} seed {seed} {det_name:12s} AUROC {res[(ds, det_name)][-1][0]:.3f} "
                      f"fit {tf['s']:.1f}s", file=sys.stderr, flush=True)
    dets = args.detectors
    rows = []
    auroc = np.array([[np.mean([r[0] for r in res[(ds, d)]]) for d in dets] for ds in args.sets])
    auprc = np.array([[np.mean([r[1] for r in res[(ds, d)]]) for d in dets] for ds in args.sets])
    for i, ds in enumerate(args.sets):
        rows.append([ds] + [f"{auroc[i, j]:.3f} / {auprc[i, j]:.3f}" for j in range(len(dets))])
    ranks = np.mean([(-auroc[i]).argsort().argsort() + 1 for i in range(len(args.sets))], axis=0)
    rows.append(["**mean**"] + [f"**{auroc[:, j].mean():.3f} / {auprc[:, j].mean():.3f}**" for j in range(len(dets))])
    rows.append(["mean rank (AUROC)"] + [f"{r:.2f}" for r in ranks])
    fit_t = [np.mean([r[2] for ds in args.sets for r in res[(ds, d)]]) for d in dets]
    score_t = [np.mean([r[3] for ds in args.sets for r in res[(ds, d)]]) for d in dets]
    rows.append(["mean fit time (s)"] + [f"{t:.2f}" for t in fit_t])
    rows.append(["mean score time (s)"] + [f"{t:.3f}" for t in score_t])
    print(f"AUROC / AUPRC on the 30% test split, mean over seeds {args.seeds}; VAEDetector options {VAE_PARAMS}\n")
    names = [args.label if (d == "VAEDetector" and args.label) else d for d in dets]
    print(markdown_table(["data set", *names], rows))
    if args.score_methods:
        base = [float(np.mean([r[0] for r in res[(ds, "VAEDetector")]])) for ds in args.sets]
        print("\nVAEDetector AUROC by score method (same fitted models; the first column is its `score`)\n")
        mrows = [[ds, f"{base[i]:.3f}"] + [f"{np.mean(methods[(ds, m)]):.3f}" for m in args.score_methods]
                 for i, ds in enumerate(args.sets)]
        mrows.append(["**mean**", f"**{np.mean(base):.3f}**"] +
                     [f"**{np.mean([np.mean(methods[(ds, m)]) for ds in args.sets]):.3f}**" for m in args.score_methods])
        print(markdown_table(["data set", VAE_PARAMS.get("score_method", "recon_kl"), *args.score_methods], mrows))
    if "IForest" in dets and "VAEDetector" in dets:
        gap = auroc[:, dets.index("VAEDetector")] - auroc[:, dets.index("IForest")]
        print(f"\nVAEDetector - IForest AUROC per set: min {gap.min():+.3f} ({args.sets[int(gap.argmin())]}), "
              f"mean {gap.mean():+.3f}")


if __name__ == "__main__":
    main()
