"""Distributed batch scoring on Dask: rows/s and peak RSS per worker for 1 and 2 local worker processes,
beside the single-process figure, in one run.

For each scale set (11_donors, 16_http): fit a VAEDetector on a 20 000-row sample, tile the table to at
least --rows rows as a folder of Parquet files (--parts of them), then score it
* in this process with ``score_file`` (one torch thread, the same as one worker), and
* on a ``LocalCluster`` of 1 and of 2 worker processes (one torch thread each) with ``score_dataset``.
Peak RSS is each worker process's high-water mark during the job (reset before it, Linux /proc); the
single-process row measures this process the same way.

    .venv/bin/python benchmarks/score_dask.py
    .venv/bin/python benchmarks/score_dask.py --rows 1000000 --parts 20     # a quick run
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SCALE_SETS, load_adbench, markdown_table


def _reset_peak() -> None:
    # Worker processes may be forked from this one and inherit its high-water mark: reset it (Linux).
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", nargs="+", default=SCALE_SETS)
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--parts", type=int, default=40)
    ap.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    import torch

    from vae_anomaly import VAEDetector
    from vae_anomaly.dask_scoring import connect, score_dataset
    from vae_anomaly.file_scoring import score_file

    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in args.sets:
            X, _ = load_adbench(name)
            frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
            det = VAEDetector(random_state=0, device="cpu", n_jobs=1).fit(frame.sample(20_000, random_state=0))
            det.save(tmp / "model")
            reps = int(np.ceil(args.rows / len(frame)))
            big = pd.concat([frame] * reps, ignore_index=True)
            src = tmp / "in"
            src.mkdir()
            for i, part in enumerate(np.array_split(np.arange(len(big)), args.parts)):
                big.iloc[part].to_parquet(src / f"part-{i:04d}.parquet", row_group_size=100_000)
            n = len(big)
            del big
            single = VAEDetector.load(tmp / "model")
            _reset_peak()
            t = time.perf_counter()
            score_file(single, src, tmp / "single.parquet")
            single_s = time.perf_counter() - t
            rows.append([name, f"{n:,}", "single process (1 thread)", f"{single_s:.1f}", f"{n / single_s:,.0f}", "-",
                         f"{_peak_rss_mb():.0f}"])
            for w in args.workers:
                client, cluster = connect(f"local:{w}")
                try:
                    client.run(_reset_peak)  # also: workers are up before the clock starts
                    t = time.perf_counter()
                    score_dataset(client, tmp / "model", src, tmp / f"dask-{w}", overwrite=True)
                    secs = time.perf_counter() - t
                    peaks = client.run(_peak_rss_mb)
                finally:
                    client.close()
                    cluster.close()
                base = next((r for r in rows if r[0] == name and r[2].startswith("dask, 1 worker")), None)
                speed = f"{(n / secs) / float(base[4].replace(',', '')):.2f}x vs 1 worker" if base else "-"
                rows.append([name, f"{n:,}", f"dask, {w} worker{'s' if w > 1 else ''}", f"{secs:.1f}", f"{n / secs:,.0f}",
                             speed, " / ".join(f"{v:.0f}" for v in sorted(peaks.values()))])
                shutil.rmtree(tmp / f"dask-{w}")
                print(rows[-1], file=sys.stderr, flush=True)
            shutil.rmtree(src)
            (tmp / "single.parquet").unlink()
    print(f"Distributed scoring, {args.parts} Parquet parts per set, one torch thread per process\n")
    print(markdown_table(["data set", "rows", "engine", "seconds", "rows/s", "speed-up", "peak RSS MB per worker"], rows))


if __name__ == "__main__":
    main()
