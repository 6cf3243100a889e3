"""Batch-scoring throughput and peak memory on the two ADBench "scale" sets (over 500 000 rows each).

For each set: fit a VAEDetector on a 20 000-row sample, write the full table to Parquet, then
score it with `vae-anomaly score --model-dir ... -o scores.parquet` in a fresh process (chunked
reads, atomic output) and report rows/s and that process's peak RSS.

    .venv/bin/python benchmarks/score_throughput.py
    .venv/bin/python benchmarks/score_throughput.py --repeat 4      # 4x the rows, same memory bound
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SCALE_SETS, markdown_table, scale_set_model

BIN = Path(sys.executable).parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", nargs="+", default=SCALE_SETS)
    ap.add_argument("--repeat", type=int, default=1, help="tile the table this many times")
    ap.add_argument("--chunk-rows", type=int, default=100_000)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in args.sets:
            frame, y = scale_set_model(name, tmp / f"{name}-model")
            src = tmp / f"{name}.parquet"
            pd.concat([frame] * args.repeat, ignore_index=True).to_parquet(src, row_group_size=100_000)
            out = tmp / f"{name}-scores.parquet"
            cmd = [str(BIN / "python"), "-c", (
                "import resource, sys, json, time; t=time.perf_counter(); sys.argv=['vae-anomaly']+sys.argv[1:];"
                "from vae_anomaly.cli import main\n"
                "try: main()\n"
                "except SystemExit: pass\n"
                "print(json.dumps({'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024,"
                " 'wall_s': time.perf_counter()-t}), file=sys.stderr)"),
                "score", str(src), "--model-dir", str(tmp / f"{name}-model"), "-o", str(out),
                "--chunk-rows", str(args.chunk_rows)]
            t = time.perf_counter()
            res = subprocess.run(cmd, capture_output=True, text=True)
            wall = time.perf_counter() - t
            if res.returncode != 0:
                raise SystemExit(res.stderr[-3000:])
            stats = json.loads(res.stderr.strip().splitlines()[-1])
            summary = json.loads(res.stdout)
            n = summary["rows"]
            scores = pd.read_parquet(out)["score"].to_numpy()[: len(y)]
            from sklearn.metrics import roc_auc_score

            rows.append([name, f"{n:,}", f"{summary['seconds']:.1f}", f"{n / summary['seconds']:,.0f}",
                         f"{60 * n / summary['seconds'] / 1e6:.2f}", f"{wall:.1f}", f"{stats['peak_rss_mb']:.0f}",
                         f"{roc_auc_score(y, scores):.3f}"])
            print(rows[-1], file=sys.stderr, flush=True)
    import torch

    print(f"Batch scoring, chunk {args.chunk_rows:,} rows, torch threads {torch.get_num_threads()}, CPU\n")
    print(markdown_table(["data set", "rows", "scoring s", "rows/s", "M rows/min", "process wall s (incl. start-up)",
                          "peak RSS MB", "AUROC (all rows)"], rows))


if __name__ == "__main__":
    main()
