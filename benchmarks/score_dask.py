"""Distributed batch scoring on Dask against one process, on the same data and model, in one run.

For each scale set (11_donors, 16_http): fit a VAEDetector on a 20 000-row sample, tile the table to at
least --rows rows as a folder of Parquet files (--parts of them), warm each engine up on one part, then,
--repeat times in turn,
* score it in this process with ``score_file`` (one torch thread), and
* on a local cluster of 1 and of 2 worker processes (one thread each; ``local_cluster``, as the CLI's
  ``--dask local:N`` starts) with ``score_dataset``.

Per engine, the medians over the repeats of
* rows/s per thread: the rows over the time spent scoring -- ``score_file``'s own scoring time in this
  process; the sum of the workers' task times (Dask's task stream, ``compute``) on the cluster;
* rows per CPU second: the rows over the CPU time of the processes that score (this one; the worker
  processes, all their threads), which waiting for a core on a shared machine does not inflate;
* end to end: the wall time of the whole call (lineage record, model sent to the workers, scheduling,
  collecting the parts), and the speed-up over 1 worker.
"single process / this" is how many times longer the engine takes per row than the single process.
Peak RSS is each worker's high-water mark over the run (Linux /proc); the single-process figure is this
process's, which also hosts the clusters' schedulers and nannies. Run with OMP_NUM_THREADS=1.

    OMP_NUM_THREADS=1 VAE_ANOMALY_THREADS=1 .venv/bin/python benchmarks/score_dask.py
    OMP_NUM_THREADS=1 VAE_ANOMALY_THREADS=1 .venv/bin/python benchmarks/score_dask.py --rows 1000000 --parts 10
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SCALE_SETS, markdown_table, scale_set_model


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


def _tile(frame: pd.DataFrame, rows: int, parts: int, folder: Path) -> int:
    big = pd.concat([frame] * int(np.ceil(rows / len(frame))), ignore_index=True)
    folder.mkdir()
    for i, part in enumerate(np.array_split(np.arange(len(big)), parts)):
        big.iloc[part].to_parquet(folder / f"part-{i:04d}.parquet", row_group_size=100_000)
    return len(big)


def _single(model_dir: Path, src: Path, out: Path) -> tuple[float, float, float]:
    """(scoring seconds, end-to-end seconds, CPU seconds) of ``score_file`` in this process."""
    from vae_anomaly import VAEDetector
    from vae_anomaly.file_scoring import score_file

    det = VAEDetector.load(model_dir)
    t, cpu = time.perf_counter(), time.process_time()
    summary = score_file(det, src, out, overwrite=True)
    return summary.seconds, time.perf_counter() - t, time.process_time() - cpu


def _dask(client: object, model_dir: Path, src: Path, out: Path) -> tuple[float, float, float]:
    """(the workers' summed task seconds, end-to-end seconds, the worker processes' CPU seconds) of
    ``score_dataset`` on ``client``'s cluster."""
    from distributed import get_task_stream

    from vae_anomaly.dask_scoring import score_dataset

    cpu = client.run(time.process_time)
    with get_task_stream(client) as stream:
        t = time.perf_counter()
        score_dataset(client, model_dir, src, out, overwrite=True)
        wall = time.perf_counter() - t
    cpu = sum(v - cpu[k] for k, v in client.run(time.process_time).items())
    busy = sum(s["stop"] - s["start"] for task in stream.data for s in task["startstops"] if s["action"] == "compute")
    return busy, wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", nargs="+", default=SCALE_SETS)
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--parts", type=int, default=40)
    ap.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--repeat", type=int, default=3, help="runs of each engine, taken in turn; medians reported")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    import torch

    from vae_anomaly.dask_scoring import local_cluster

    torch.set_num_threads(1)
    table = []
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        tmp = Path(tmp)
        # The clusters start once and idle between their turns; every engine runs in every round.
        clients = {w: stack.enter_context(local_cluster(w)) for w in args.workers}
        for name in args.sets:
            model_dir, src = tmp / f"{name}-model", tmp / f"{name}-in"
            frame, _ = scale_set_model(name, model_dir, n_jobs=1)
            n = _tile(frame, args.rows, args.parts, src)
            del frame
            runs: dict[object, list[tuple[float, float, float]]] = {"single": []} | {w: [] for w in args.workers}
            # Each process's high-water mark over this set's runs.
            peaks: dict[object, dict[object, float]] = {k: {} for k in runs}

            def note_peaks(key: object, measured: dict[object, float], peaks: dict = peaks) -> None:
                for proc, mb in measured.items():
                    peaks[key][proc] = max(mb, peaks[key].get(proc, 0.0))

            # Warm-up on one part, untimed: the workers' first imports of torch and pyarrow are not scoring.
            first = next(iter(sorted(src.iterdir())))
            _single(model_dir, first, tmp / "warm.parquet")
            for w, client in clients.items():
                _dask(client, model_dir, first, tmp / f"dask-warm-{w}")
            _reset_peak()
            for client in clients.values():
                client.run(_reset_peak)
            for _ in range(args.repeat):
                runs["single"].append(_single(model_dir, src, tmp / "single.parquet"))
                note_peaks("single", {"self": _peak_rss_mb()})
                for w, client in clients.items():
                    runs[w].append(_dask(client, model_dir, src, tmp / f"dask-{w}"))
                    note_peaks(w, client.run(_peak_rss_mb))
                print(name, "scoring/end-to-end/CPU s:", {k: [" / ".join(f"{x:.2f}" for x in r) for r in v]
                                                          for k, v in runs.items()}, file=sys.stderr, flush=True)
            med = {k: [statistics.median(col) for col in zip(*v, strict=True)] for k, v in runs.items()}
            single_rate, single_cpu_rate = n / med["single"][0], n / med["single"][2]
            for k, (busy, wall, cpu) in med.items():
                label = "single process (1 thread)" if k == "single" else f"dask, {k} worker{'s' if k > 1 else ''}"
                speed = (f"{med[args.workers[0]][1] / wall:.2f}x vs {args.workers[0]} worker"
                         if k != "single" and k != args.workers[0] else "-")
                table.append([name, f"{n:,}", label, f"{n / busy:,.0f}", f"{busy * single_rate / n:.2f}",
                              f"{n / cpu:,.0f}", f"{cpu * single_cpu_rate / n:.2f}", f"{wall:.1f}", f"{n / wall:,.0f}",
                              speed, " / ".join(f"{v:.0f}" for v in sorted(peaks[k].values()))])
            for path in [src, *tmp.glob("dask-*")]:
                shutil.rmtree(path)
    print(f"Distributed scoring, {args.parts} Parquet parts per set, one torch thread per process, "
          f"medians of {args.repeat} runs, {os.cpu_count()} cores\n")
    print(markdown_table(["data set", "rows", "engine", "rows/s per thread (scoring time)", "single process / this",
                          "rows per CPU s", "single process / this (CPU)", "end-to-end s", "end-to-end rows/s",
                          "speed-up", "peak RSS MB per process"], table))


if __name__ == "__main__":
    main()
