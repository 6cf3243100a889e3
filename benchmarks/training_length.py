"""How long should a detector train? Test AUROC and label-free stopping statistics after every epoch.

For each scorecard cell (shared set, size, seed; ../shared/bench/scorecard.py's sampling and split) a
VAE is trained for a fixed number of gradient steps (adaptive batch, no early stopping); after every
epoch the test AUROC and statistics of the training rows' losses are written to a CSV. ``--summarise``
then compares stopping rules offline: fixed step counts, the best epoch in hindsight, and ODIM's
separation peak (raw, clipped, on log-losses) and a contamination-aware gap, each with a patience.

    .venv/bin/python benchmarks/training_length.py --half choose --sizes 200,1000 --seeds 2 --steps 2500 --csv traj.csv
    .venv/bin/python benchmarks/training_length.py --summarise traj.csv
"""

from __future__ import annotations

import argparse
import collections
import csv
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
SHARED_BENCH = Path(__file__).resolve().parents[1].parent / "shared" / "bench"


def run(args: argparse.Namespace) -> None:
    import numpy as np
    import torch
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    sys.path.insert(0, str(SHARED_BENCH))
    from scorecard import DATA, HALVES, sample

    from vae_anomaly.fitting import auto_batch_size, build_seeded
    from vae_anomaly.inputs import fit_preprocessor, likelihood_layout, model_input, model_input_shape
    from vae_anomaly.models import ModelConfig
    from vae_anomaly.trainer import TrainConfig, row_losses, train, two_component_separation

    torch.set_num_threads(1)
    out = open(args.csv, "w")
    print("set,size,seed,batch,epoch,step,test_auc,sep,train_loss,sep_rob,sep_log,gap,train_auc", file=out, flush=True)
    for name in HALVES[args.half]:
        d = np.load(DATA / f"{name}.npz")
        X0, y0 = d["X"].astype(np.float32), d["y"].astype(int)
        for size in (int(s) for s in args.sizes.split(",")):
            for seed in range(args.seeds):
                X, y = sample(X0, y0, size, seed)
                if y.sum() < 6:
                    continue
                Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)
                pre = fit_preprocessor(Xtr)
                A, B = model_input(pre, Xtr), model_input(pre, Xte)
                model = build_seeded(ModelConfig(model_input_shape(pre), blocks=likelihood_layout(pre)), seed)
                batch = auto_batch_size(len(A))
                per_epoch = max(1, -(-int(len(A) * 0.9) // batch))
                At, Bt = torch.from_numpy(A), torch.from_numpy(B)

                def log(epoch: int, metrics: dict, *, _n=name, _s=size, _sd=seed, _b=batch, _p=per_epoch,
                        _At=At, _Bt=Bt, _yte=yte, _ytr=ytr, _y=y, _model=model) -> None:
                    tr = row_losses(_model, _At)
                    q1, q99 = np.quantile(tr, [0.01, 0.99])
                    q25, q50, q75, qc = np.quantile(tr, [0.25, 0.5, 0.75, 1 - max(_y.mean(), 0.02)])
                    gap = (tr[tr >= qc].mean() - q50) / max(q75 - q25, 1e-9)
                    print(f"{_n},{_s},{_sd},{_b},{epoch},{(epoch + 1) * _p},"
                          f"{roc_auc_score(_yte, row_losses(_model, _Bt)):.4f},{two_component_separation(tr):.5f},"
                          f"{metrics['train_loss']:.4f},{two_component_separation(np.clip(tr, q1, q99)):.5f},"
                          f"{two_component_separation(np.log(tr - tr.min() + 1.0)):.5f},{gap:.4f},"
                          f"{roc_auc_score(_ytr, tr):.4f}", file=out, flush=True)

                train(model, A, config=TrainConfig(epochs=max(2, args.steps // per_epoch), batch_size=batch,
                                                   random_state=seed, patience=None, trim_fraction=0.1), callbacks=[log])


def summarise(path: str) -> None:
    import numpy as np

    rows = collections.defaultdict(list)
    for r in csv.DictReader(open(path)):
        rows[(r["set"], int(r["size"]), int(r["seed"]))].append({k: v if k == "set" else float(v) for k, v in r.items()})

    def at_step(tr, k):
        return min(tr, key=lambda t: abs(t["step"] - k))["test_auc"]

    def peak(tr, key, patience, smooth=3):
        best, auc, last, hist = -np.inf, tr[0]["test_auc"], 0.0, []
        for t in tr:
            hist.append(t[key])
            s = float(np.mean(hist[-smooth:]))
            if s > best:
                best, auc, last = s, t["test_auc"], t["step"]
            elif t["step"] - last > patience:
                break
        return auc

    rules = {f"steps {k}": (lambda tr, k=k: at_step(tr, k)) for k in (400, 1000, 1500, 2500)}
    rules["best epoch (oracle)"] = lambda tr: max(t["test_auc"] for t in tr)
    for key in ("sep", "sep_rob", "sep_log", "gap"):
        for p in (300, 600):
            rules[f"{key} peak, patience {p}"] = (lambda tr, key=key, p=p: peak(tr, key, p))
    longest = max(t["step"] for tr in rows.values() for t in tr)
    by = collections.defaultdict(lambda: collections.defaultdict(list))
    for (_n, size, _sd), tr in rows.items():
        if tr[-1]["step"] < 0.95 * longest:
            continue  # an unfinished cell
        for rule, f in rules.items():
            by[size][rule].append(f(tr))
            by["all"][rule].append(f(tr))
    for size, res in by.items():
        print(f"size {size}: {len(res['steps 400'])} cells")
        for rule, v in res.items():
            print(f"  {rule:<28} {np.mean(v):.3f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--half", default="choose", choices=["choose", "confirm"])
    ap.add_argument("--sizes", default="200,1000")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=2500)
    ap.add_argument("--csv", default="training_length.csv")
    ap.add_argument("--summarise", metavar="CSV")
    a = ap.parse_args()
    summarise(a.summarise) if a.summarise else run(a)
