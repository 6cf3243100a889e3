"""Ablations for VAEOversampler under the shared synth scorecard's protocol, with any sampler options.

The shared scorecard (``../shared/bench/synth_scorecard.py``) runs each baseline with its defaults and
one VAEOversampler configuration. An ablation needs several configurations side by side on the same
splits -- and baselines at other settings (SMOTE at a partial balance, to tell what the number of rows
does from what the VAE does). Same protocol: stratified sample of min(size, n) rows per set, stratified
70/30 split, logistic regression and histogram gradient boosting trained on real + generated rows,
minority F1 / AUPRC on the real 30%; cells with fewer than 6 training minority rows are skipped.

    .venv/bin/python benchmarks/synth_ablation.py --half choose --sizes 1000 --seeds 3 \
        smote 'smote:{"sampling_strategy": 0.5}' 'vae:{"generation": "latent"}' vae

A spec is ``NAME[:JSON options]`` with NAME one of none, random, smote, borderline, adasyn, vae.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics as st
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("VAE_ANOMALY_THREADS", "1")

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "bench"


def make(spec: str, seed: int):  # noqa: ANN201
    name, _, opts = spec.partition(":")
    options = json.loads(opts) if opts else {}
    if name == "none":
        return None
    if name == "vae":
        from vae_anomaly import VAEOversampler

        return VAEOversampler(random_state=seed, **options)
    from imblearn import over_sampling as o

    cls = {"random": o.RandomOverSampler, "smote": o.SMOTE, "borderline": o.BorderlineSMOTE, "adasyn": o.ADASYN}[name]
    return cls(random_state=seed, **options)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("specs", nargs="+")
    ap.add_argument("--half", choices=["choose", "confirm", "all"], default="choose")
    ap.add_argument("--sizes", default="1000")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--time", type=int, metavar="ROWS",
                    help="instead: time fit_resample of each spec on a stratified ROWS-row sample of --time-set")
    ap.add_argument("--time-set", default="5_campaign")
    a = ap.parse_args()
    warnings.filterwarnings("ignore")
    sys.path.insert(0, str(SHARED))
    from scorecard import DATA, HALVES, sample

    if a.time:
        d = np.load(DATA / f"{a.time_set}.npz", allow_pickle=False)
        X, y = sample(d["X"].astype(np.float64), d["y"].astype(int), a.time, 0)
        print(f"fit_resample on {len(X)} rows x {X.shape[1]} columns of {a.time_set} ({int(y.sum())} minority), "
              f"best of {a.seeds}:")
        for spec in a.specs:
            times, cpu = [], []
            for seed in range(a.seeds):
                t0, c0 = time.perf_counter(), time.process_time()
                make(spec, seed).fit_resample(X, y)
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
            # CPU seconds too: on a shared machine the wall time mostly measures the other processes.
            print(f"| `{spec}` | {min(times):.3f} s wall | {min(cpu):.3f} s CPU |")
        return 0
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score, f1_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    sets = HALVES["choose"] + HALVES["confirm"] if a.half == "all" else HALVES[a.half]
    res: dict[tuple, list[float]] = collections.defaultdict(list)
    cost: dict[str, list[float]] = collections.defaultdict(list)
    sizes = sorted(int(s) for s in a.sizes.split(","))
    for name in sets:
        d = np.load(DATA / f"{name}.npz", allow_pickle=False)
        X0, y0 = d["X"].astype(np.float64), d["y"].astype(int)
        for i, size in enumerate(sizes):
            if i and len(X0) <= sizes[i - 1]:
                break
            for seed in range(a.seeds):
                X, y = sample(X0, y0, size, seed)
                Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)
                if ytr.sum() < 6:
                    continue
                for spec in a.specs:
                    t0 = time.perf_counter()
                    try:
                        smp = make(spec, seed)
                        Xr, yr = (Xtr, ytr) if smp is None else smp.fit_resample(Xtr, ytr)
                    except Exception as exc:  # noqa: BLE001 -- a failing sampler is a finding
                        print(f"{name} {size} {seed} {spec}: {type(exc).__name__}: {exc}"[:200], file=sys.stderr)
                        continue
                    cost[spec].append(time.perf_counter() - t0)
                    for c in ("logreg", "hgb"):
                        m = (make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)) if c == "logreg"
                             else HistGradientBoostingClassifier(random_state=seed))
                        m.fit(np.asarray(Xr, dtype=float), np.asarray(yr))
                        res[(name, size, spec, c, "f1")].append(f1_score(yte, m.predict(Xte)))
                        res[(name, size, spec, c, "auprc")].append(average_precision_score(yte, m.predict_proba(Xte)[:, 1]))
    cells = sorted({(k[0], k[1]) for k in res if all((k[0], k[1], s, "hgb", "f1") in res for s in a.specs)})
    base = "smote" if "smote" in a.specs else a.specs[0]
    print(f"half {a.half}, sizes {a.sizes}, seeds {a.seeds}: {len(cells)} cells; differences against {base!r}")
    print("| sampler | F1 logreg | F1 hgb | AUPRC logreg | AUPRC hgb | ΔF1 logreg (worst cell) | ΔF1 hgb (worst cell) | s |")
    print("|---|---|---|---|---|---|---|---|")
    for spec in a.specs:
        def mean(c: str, m: str, s: str = spec) -> float:
            return st.mean(st.mean(res[(n, z, s, c, m)]) for n, z in cells)

        def delta(c: str, s: str = spec) -> str:
            diff = [st.mean(res[(n, z, s, c, "f1")]) - st.mean(res[(n, z, base, c, "f1")]) for n, z in cells]
            return f"{st.mean(diff):+.3f} ({min(diff):+.3f})"

        print(f"| `{spec}` | {mean('logreg', 'f1'):.3f} | {mean('hgb', 'f1'):.3f} | {mean('logreg', 'auprc'):.3f} | "
              f"{mean('hgb', 'auprc'):.3f} | {delta('logreg')} | {delta('hgb')} | {st.mean(cost[spec] or [0]):.2f} |")
    print("\nper cell minority F1 logreg/hgb: " + " | ".join(a.specs))
    for n, z in cells:
        print(f"  {n[:16]:<16}{z:>6} " + "  ".join(
            f"{st.mean(res[(n, z, s, 'logreg', 'f1')]):.3f}/{st.mean(res[(n, z, s, 'hgb', 'f1')]):.3f}" for s in a.specs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
