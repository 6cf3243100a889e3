"""Batch scoring on a Dask cluster: a Parquet dataset (file, folder or glob) or a Dask DataFrame.

* The model travels once to each worker (a worker plugin carrying the model folder's bytes: safetensors
  + JSON, never a pickle of torch objects) and is loaded there once; a worker that joins later (one that
  replaced a killed worker) gets it too. Torch threads are pinned per worker so that workers do not
  oversubscribe the cores.
* One partition per input file, scored in bounded chunks; every partition's schema is checked against
  the model and an error names the file and the column.
* Rows keep their single-process identity: ``row`` is the position in the whole dataset (files in name
  order), then the kept columns, ``score`` and ``is_anomaly`` -- the same values as
  :func:`vae_anomaly.file_scoring.score_file`.
* The output folder of parts is committed as a whole: parts are written into a hidden staging folder
  that is renamed into place only when every part succeeded. A failed or killed run leaves no visible
  output; rerunning gives the same parts.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from distributed import WorkerPlugin  # this module is imported only for distributed scoring

from .errors import ConfigError, DataError

PLUGIN_NAME = "vae-anomaly-model"
SAMPLE_PER_PART = 20_000


def parquet_files(source: str | Path) -> list[Path]:
    """The files of a Parquet dataset given as a file, a folder (recursively) or a glob, in name order."""
    text = str(source)
    if any(ch in text for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
    else:
        path = Path(source)
        if not path.exists():
            raise DataError("no such file or folder", file=path)
        files = [path] if path.is_file() else sorted(
            p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in (".parquet", ".pq")
            and not p.name.startswith((".", "_")))
    if not files:
        raise DataError("no Parquet files found", file=source)
    bad = [f for f in files if f.suffix.lower() not in (".parquet", ".pq")]
    if bad:
        raise DataError("distributed scoring reads Parquet; convert CSV first", file=bad[0])
    return files


def row_counts(files: Sequence[Path]) -> list[int]:
    import pyarrow.parquet as pq

    counts = []
    for f in files:
        try:
            counts.append(pq.ParquetFile(f).metadata.num_rows)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a bad file
            raise DataError(f"not a readable Parquet file: {exc}", file=f) from exc
    return counts


class ModelPlugin(WorkerPlugin):
    """Writes the model folder's bytes to the worker's local directory and loads it, once per worker."""

    name = PLUGIN_NAME
    idempotent = False

    def __init__(self, files: dict[str, bytes], threads: int = 1) -> None:
        self.files, self.threads = files, threads

    def setup(self, worker: Any) -> None:
        import torch

        from .detector import VAEDetector

        torch.set_num_threads(self.threads)
        folder = Path(worker.local_directory) / f"vae-anomaly-model-{uuid.uuid4().hex[:8]}"
        folder.mkdir(parents=True)
        for name, data in self.files.items():
            (folder / name).write_bytes(data)
        worker.vae_detector = VAEDetector.load(folder)
        worker.vae_model_loads = getattr(worker, "vae_model_loads", 0) + 1

    def teardown(self, worker: Any) -> None:
        worker.vae_detector = None


def _worker_detector() -> Any:
    from distributed import get_worker

    worker = get_worker()
    det = getattr(worker, "vae_detector", None)
    if det is None:
        raise RuntimeError("the vae-anomaly model plugin is not set up on this worker")
    return det


def _score_frame(det: Any, frame: pd.DataFrame, first_row: int, keep: Sequence[str], file: str | None) -> pd.DataFrame:
    from .file_scoring import _check_schema

    expected = set(det.preprocessor_.columns_) | set(keep)
    _check_schema(frame, expected, det.preprocessor_.columns_, list(keep), file)
    kept = {c: frame[c].to_numpy() for c in keep}
    scores = det.decision_function(frame.drop(columns=list(keep)), source=file, first_row=first_row)
    out = pd.DataFrame({"row": np.arange(first_row, first_row + len(frame), dtype=np.int64)})
    for c, values in kept.items():
        out[c] = values
    out["score"] = scores
    out["is_anomaly"] = (scores > det.threshold_).astype(np.int8)
    return out


def score_part(task: tuple[int, str, int], keep: Sequence[str], staging: str, lineage: str, chunk_rows: int
               ) -> dict[str, Any]:
    """Score one input file into ``staging/part-NNNNN.parquet`` (runs on a worker)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .atomic import atomic_path

    index, file, first_row = task
    det = _worker_detector()
    target = Path(staging) / f"part-{index:05d}.parquet"
    rows, flagged, sample = 0, 0, []
    with atomic_path(target) as tmp:
        writer = None
        try:
            for batch in pq.ParquetFile(file).iter_batches(batch_size=chunk_rows):
                out = _score_frame(det, batch.to_pandas(), first_row + rows, keep, file)
                table = pa.Table.from_pandas(out, preserve_index=False)
                table = table.replace_schema_metadata({b"vae_anomaly.lineage": lineage.encode()})
                writer = writer or pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table)
                rows += len(out)
                flagged += int(out["is_anomaly"].sum())
                sample.append(out["score"].to_numpy()[:: max(1, len(out) // 2000)])
        finally:
            if writer is not None:
                writer.close()
    scores = np.concatenate(sample) if sample else np.empty(0)
    return {"part": target.name, "rows": rows, "flagged": flagged, "sample": scores[:SAMPLE_PER_PART].tolist()}


def score_partition(frame: pd.DataFrame, keep: Sequence[str] = ()) -> pd.DataFrame:
    """``map_partitions`` function for a Dask DataFrame: the partition's scores (and kept columns).

    The partition's index supplies ``row`` when it is a RangeIndex of the whole frame (as after
    ``dd.read_parquet``); the model comes from the worker plugin (see :func:`register_model`).
    """
    det = _worker_detector()
    first = int(frame.index[0]) if len(frame) and pd.api.types.is_integer_dtype(frame.index) else 0
    out = _score_frame(det, frame.reset_index(drop=True), first, keep, None)
    out.index = frame.index
    return out


def model_files(model_dir: str | Path) -> dict[str, bytes]:
    from .persist import META, WEIGHTS, is_model_dir

    model_dir = Path(model_dir)
    if not is_model_dir(model_dir):
        raise ConfigError(f"{model_dir} is not a saved model folder")
    return {name: (model_dir / name).read_bytes() for name in (META, WEIGHTS)}


def register_model(client: Any, model_dir: str | Path, threads: int = 1) -> None:
    """Send the model to every worker (and every worker that joins later), loaded once per worker."""
    client.register_plugin(ModelPlugin(model_files(model_dir), threads), name=PLUGIN_NAME)


def connect(spec: str) -> tuple[Any, Any]:
    """``local`` / ``local:N`` -> a LocalCluster of N worker processes on 127.0.0.1 (one torch thread each);
    ``tcp://host:8786`` -> that scheduler. Returns (client, cluster-or-None)."""
    from distributed import Client, LocalCluster

    if spec == "local" or spec.startswith("local:") or spec.startswith("local["):
        raw = spec.removeprefix("local").strip(":[]")
        try:
            n = int(raw) if raw else max(1, (os.cpu_count() or 2) // 2)
        except ValueError:
            raise ConfigError(f"--dask {spec!r}: expected local, local:N or tcp://host:port") from None
        if n < 1:
            raise ConfigError(f"--dask {spec!r}: need at least one worker")
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None)
        return Client(cluster), cluster
    if spec.startswith("tcp://"):
        try:
            return Client(spec, timeout="10s"), None
        except OSError as exc:
            raise ConfigError(f"--dask {spec}: cannot reach the Dask scheduler ({exc})") from exc
    raise ConfigError(f"--dask {spec!r}: expected local, local:N or tcp://host:port")


def score_dataset(client: Any, model_dir: str | Path, source: str | Path, output: str | Path, *,
                  keep_columns: Sequence[str] = (), overwrite: bool = False, chunk_rows: int = 100_000,
                  lineage: dict[str, Any] | None = None) -> dict[str, Any]:
    """Score a Parquet dataset on ``client``'s cluster into the folder ``output`` (committed atomically)."""
    from .detector import VAEDetector
    from .lineage import build_record

    t0 = time.perf_counter()
    output = Path(output).absolute()
    if output.exists() and not overwrite:
        raise DataError("output already exists; pass --overwrite (overwrite=True) to replace it", file=output)
    if output.exists() and not output.is_dir():
        raise DataError("distributed scores are a folder of Parquet parts; the output names a file", file=output)
    files = parquet_files(source)
    counts = row_counts(files)
    det = VAEDetector.load(model_dir)
    record = lineage or build_record(detector=det, input_path=source)
    register_model(client, model_dir)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(int).tolist()
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = output.parent / f".{output.name}.staging-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        tasks = [(i, str(f), off) for i, (f, off) in enumerate(zip(files, offsets, strict=True))]
        futures = client.map(score_part, tasks, keep=list(keep_columns), staging=str(staging),
                             lineage=json.dumps(record), chunk_rows=chunk_rows, pure=False)
        parts = client.gather(futures)
        (staging / "_lineage.json").write_text(json.dumps(record, indent=1))
        if output.exists():
            shutil.rmtree(output)
        os.replace(staging, output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    from .file_scoring import ScoreSummary, score_drift

    sample = np.concatenate([np.asarray(p["sample"]) for p in parts]) if parts else np.empty(0)
    summary = ScoreSummary(str(source), str(output), rows=sum(p["rows"] for p in parts),
                           flagged=sum(p["flagged"] for p in parts), threshold=float(det.threshold_))
    if len(sample):
        summary.quantiles = {f"p{q}": float(np.percentile(sample, q)) for q in (1, 5, 25, 50, 75, 95, 99)}
        summary.drift_psi, summary.drift_ks = score_drift(det.train_score_quantiles_, sample)
    summary.seconds = time.perf_counter() - t0
    return {**summary.to_dict(), "parts": len(parts)}


def score_with_cluster(detector: Any, spec: str, source: str | Path, output: str | Path, **kwargs: Any
                       ) -> dict[str, Any]:
    """Connect to ``spec`` (see :func:`connect`), score, and close what was opened."""
    import tempfile

    client, cluster = connect(spec)
    try:
        with tempfile.TemporaryDirectory(prefix="vae-anomaly-dask-") as tmp:
            detector.save(Path(tmp) / "model")
            return score_dataset(client, Path(tmp) / "model", source, output, **kwargs)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
