"""Batch scoring on a Dask cluster: a Parquet dataset (file, folder or glob).

* The model travels once to each worker (a worker plugin carrying the model folder's bytes: safetensors
  + JSON, never a pickle of torch objects) and is loaded there once; a worker that joins later (one that
  replaced a killed worker) gets it too. Torch threads are pinned per worker so that workers do not
  oversubscribe the cores, and the worker's allocator reuses freed buffers as one process's does
  (:func:`reuse_freed_memory`): a worker scores at the single-process rate per thread.
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

import contextlib
import glob
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from distributed import WorkerPlugin  # this module is imported only for distributed scoring

from .atomic import pid_alive, replace_folder
from .defaults import CHUNK_ROWS
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


# glibc's mallopt parameters (malloc.h), and the most its own adaptive mmap threshold grows to on 64-bit.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024


def reuse_freed_memory() -> bool:
    """Let this process's allocator keep and reuse freed scoring buffers, as a plain process does.

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which also freezes glibc's mmap
    threshold at 128 KiB: every array of a chunk (a 100 000-row frame, each layer's activations) is then
    a fresh mmap, page-faulted in and unmapped again, and a worker scored at under half the rate of
    ``score_file`` in one process. Allocations up to 32 MiB come from the heap again (the ceiling of
    glibc's own adaptive threshold), and free memory above 64 MiB at its top is still returned to the
    system. False where the C library has no ``mallopt`` (not glibc): nothing changes there.
    """
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)) and bool(
        mallopt(_M_TRIM_THRESHOLD, 2 * _MMAP_THRESHOLD_MAX))


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
        worker.vae_reuses_freed_memory = reuse_freed_memory()
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


def _file_columns(det: Any, frame: pd.DataFrame, keep: Sequence[str], file: str) -> list[str]:
    """Check an input file's columns (its first batch's) against the model, the file scorer's rule; the
    columns to drop: its label columns, and id columns it has that the job does not keep (no other file
    had them)."""
    from .file_scoring import _check_schema, column_plan

    planned, drop = column_plan(det, [str(c) for c in frame.columns], keep)
    drop += [c for c in planned if c not in keep]
    _check_schema(frame, set(det.preprocessor_.columns_) | set(keep) | set(drop), det.preprocessor_.columns_,
                  list(keep), file)
    return drop


def score_part(task: tuple[int, str, int], keep: Sequence[str], staging: str, schema: Any, lineage: str,
               chunk_rows: int) -> dict[str, Any]:
    """Score one input file into ``staging/part-NNNNN.parquet`` (runs on a worker).

    Every part has ``schema`` (fixed before the job from all files), also a part of 0 rows; the part's
    SHA-256 goes into the folder's manifest for ``lineage`` to verify. The staging folder is never
    created here: when the job failed and removed it, a task still running stops instead of
    recreating it, and it also stops between batches once the job left the abort marker.
    """
    import tempfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    from .file_scoring import score_chunk
    from .persist import file_sha256

    index, file, first_row = task
    det = _worker_detector()
    folder = Path(staging)
    target = folder / f"part-{index:05d}.parquet"
    schema = schema.with_metadata({b"vae_anomaly.lineage": lineage.encode()})
    rows, flagged, sample = 0, 0, []
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)  # no staging: no part
    os.close(fd)
    tmp = Path(name)
    try:
        with pq.ParquetWriter(tmp, schema) as writer:
            drop: list[str] | None = None
            for batch in pq.ParquetFile(file).iter_batches(batch_size=chunk_rows):
                if (folder / ABORT_MARKER).exists():
                    raise RuntimeError("the job was aborted")
                frame = batch.to_pandas()
                if drop is None:  # one file, one schema: checked on its first batch
                    drop = _file_columns(det, frame, keep, file)
                # Errors name the row within the file, as the file scorer's do.
                out = score_chunk(det, frame, row=first_row + rows, keep=keep, drop=drop, file=file, first_row=rows)
                columns = [pa.array(out["row"].to_numpy(), pa.int64())]
                columns += [batch.column(c).cast(schema.field(c).type) for c in keep]
                columns += [pa.array(out["score"].to_numpy(), pa.float64()),
                            pa.array(out["is_anomaly"].to_numpy(), pa.int8())]
                writer.write_table(pa.Table.from_arrays(columns, schema=schema))
                rows += len(out)
                flagged += int(out["is_anomaly"].sum())
                sample.append(out["score"].to_numpy()[:: max(1, len(out) // 2000)])
            if rows == 0:  # a 0-row file still gives a readable part with the same columns
                writer.write_table(schema.empty_table())
        digest = file_sha256(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    scores = np.concatenate(sample) if sample else np.empty(0)
    return {"part": target.name, "rows": rows, "flagged": flagged, "sha256": digest,
            "sample": scores[:SAMPLE_PER_PART].tolist()}


def model_files(model_dir: str | Path) -> dict[str, bytes]:
    from .persist import META, WEIGHTS, is_model_dir

    model_dir = Path(model_dir)
    if not is_model_dir(model_dir):
        raise ConfigError(f"{model_dir} is not a saved model folder")
    return {name: (model_dir / name).read_bytes() for name in (META, WEIGHTS)}


def send_model_to_workers(client: Any, model_dir: str | Path, threads: int = 1) -> None:
    """Send the model to every worker (and every worker that joins later), loaded once per worker."""
    client.register_plugin(ModelPlugin(model_files(model_dir), threads), name=PLUGIN_NAME)


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and ``taskset`` narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def parse_spec(spec: str) -> int | str:
    """``local`` -> half the cores (at least 1), ``local:N`` -> N (at most one worker per core),
    ``tcp://host:port`` -> that address. Anything else is a :class:`ConfigError` naming the option."""
    if spec == "local" or spec.startswith("local:") or spec.startswith("local["):
        raw = spec.removeprefix("local").strip(":[]")
        cores = available_cores()
        try:
            n = int(raw) if raw else max(1, cores // 2)
        except ValueError:
            raise ConfigError(f"--dask {spec!r}: expected local, local:N or tcp://host:port") from None
        if n < 1:
            raise ConfigError(f"--dask {spec!r}: need at least one worker")
        if n > cores:
            # Each worker is a process with one torch thread: more workers than cores only adds
            # processes and memory (local:999 once started workers until the machine gave out).
            raise ConfigError(f"--dask {spec!r}: at most {cores} local worker processes here (one per core; "
                              f"this machine gives {cores}); use a tcp:// cluster for more")
        return n
    if spec.startswith("tcp://"):
        return spec
    raise ConfigError(f"--dask {spec!r}: expected local, local:N or tcp://host:port")


_QUIET_LOGGERS = ("distributed", "tornado", "asyncio")


@contextlib.contextmanager
def quiet_distributed() -> Iterator[None]:
    """Silence distributed's own logging while our cluster lives, here and in the workers it spawns.

    Our errors reach the user as one line through the client (a worker's exception is re-raised in
    this process); distributed would otherwise also log the worker's traceback, every closed
    connection at shutdown (CommClosedError) and every worker's reaction to Ctrl-C.
    """
    import logging

    saved = {}
    for name in [n for n in logging.root.manager.loggerDict if n.startswith(_QUIET_LOGGERS)] + list(_QUIET_LOGGERS):
        logger = logging.getLogger(name)
        saved.setdefault(name, logger.level)
        logger.setLevel(logging.CRITICAL + 1)
    # Worker processes are spawned (a fresh interpreter) and set up logging from dask's config,
    # which they read from the environment at import.
    env = {"DASK_LOGGING__DISTRIBUTED": "critical", "DASK_LOGGING__TORNADO": "critical"}
    old_env = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def remove_stale(folder: Path, prefix: str) -> None:
    """Remove ``folder/<prefix><pid>-*`` left by a run of ours that was killed (SIGKILL, power loss): the
    pid in the name is no longer alive. Another user's or a live run's folders are left alone."""
    try:
        entries = list(folder.glob(f"{prefix}*"))
    except OSError:
        return
    for entry in entries:
        pid = entry.name[len(prefix):].split("-", 1)[0]
        try:
            mine = entry.stat().st_uid == os.getuid()
        except OSError:
            continue
        if pid.isdigit() and mine and not pid_alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)


TEMP_PREFIX = "vae-anomaly-dask-"


def local_worker_config() -> dict[str, Any]:
    """The dask config for the worker processes of a cluster we start: the current one, with
    distributed's statistical profiler off. It wakes every 10 ms to walk every thread's stack, taking
    the GIL from the scoring thread between torch's many small calls: with it a worker spent ~1.7x the
    time on the same task (benchmarks/RESULTS.md). A cluster the user runs (tcp://) keeps its dask settings;
    the model plugin still sets the allocator thresholds of every worker that scores
    (:func:`reuse_freed_memory`), for the rest of that worker process's life.

    Each nanny keeps this and hands it to every worker it spawns, also one replacing a killed worker. A
    copy: the nanny's own snapshot shares nested dicts with dask's global config, which a
    ``dask.config.set`` block restores when it ends, while the cluster may live on.
    """
    import copy

    import dask

    settings = copy.deepcopy(dask.config.get("distributed"))
    settings["worker"]["profile"]["enabled"] = False
    return {"distributed": settings}


def _ignore_sigint(owner_pid: int) -> IgnoreSigint:
    """Runs in a worker process as soon as it unpickles its start-up arguments (before its event loop
    installs a Ctrl-C handler): SIGINT is ignored there, so only our process reacts to a Ctrl-C.

    The cluster's own process also rebuilds the plugin (distributed copies worker specs, and a copy goes
    through ``__reduce__``); there it must change nothing, or the job itself would ignore Ctrl-C."""
    import signal
    import threading

    if os.getpid() != owner_pid and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    return IgnoreSigint()


class IgnoreSigint(WorkerPlugin):
    """Passed in a LocalCluster's worker arguments; unpickling it in the spawned worker (also one that
    replaces a killed worker) ignores SIGINT there. A terminal's Ctrl-C reaches the whole process group;
    without this each worker printed its own KeyboardInterrupt traceback (hundreds of lines)."""

    name = "vae-anomaly-ignore-sigint"

    def __reduce__(self) -> tuple[Any, tuple[int]]:
        return _ignore_sigint, (os.getpid(),)


@contextlib.contextmanager
def local_cluster(n_workers: int) -> Iterator[Any]:
    """A LocalCluster of ``n_workers`` processes (one thread each) on 127.0.0.1, and its client.

    * Its scratch space (worker folders, the model copy) lives in one temporary folder removed at the end.
    * Worker processes ignore SIGINT (:class:`IgnoreSigint`): Ctrl-C at a terminal reaches every process
      of the group, and only this one should react -- by closing the cluster -- instead of each worker
      printing its own traceback.
    * The client closes before the cluster, and distributed's logging stays quiet meanwhile.
    """
    import tempfile

    import dask
    from distributed import Client, LocalCluster

    remove_stale(Path(tempfile.gettempdir()), TEMP_PREFIX)
    scratch = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-"))
    cluster = client = None
    # The scheduler and nannies keep their scratch under dask's temporary-directory, not local_directory.
    with quiet_distributed(), dask.config.set({"temporary-directory": str(scratch)}):
        try:
            cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                   dashboard_address=None, local_directory=str(scratch), plugins={IgnoreSigint()},
                                   config=local_worker_config(),
                                   # no dashboard; its HTTP endpoints on a free local port, not 8787
                                   # (a second cluster on the machine warned that 8787 was taken)
                                   scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
            client = Client(cluster)
            client.vae_scratch = scratch  # where the model copy goes (see score_with_cluster)
            yield client
        finally:
            if client is not None:
                client.close()
            if cluster is not None:
                cluster.close()
            shutil.rmtree(scratch, ignore_errors=True)


@contextlib.contextmanager
def cluster_client(spec: str) -> Iterator[Any]:
    """``local`` / ``local:N`` -> :func:`local_cluster`; ``tcp://host:8786`` -> a client of that scheduler."""
    import tempfile

    target = parse_spec(spec)
    if isinstance(target, int):
        with local_cluster(target) as client:
            yield client
        return
    from distributed import Client

    with quiet_distributed():
        try:
            client = Client(target, timeout="10s")
        except OSError as exc:
            raise ConfigError(f"--dask {spec}: cannot reach the Dask scheduler ({exc})") from exc
        scratch = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-"))
        try:
            client.vae_scratch = scratch
            yield client
        finally:
            client.close()
            shutil.rmtree(scratch, ignore_errors=True)


def connect(spec: str) -> tuple[Any, Any]:
    """``local`` / ``local:N`` -> a LocalCluster of N worker processes on 127.0.0.1 (one torch thread each,
    :func:`local_worker_config`);
    ``tcp://host:8786`` -> that scheduler. Returns (client, cluster-or-None); the caller closes both.
    Prefer :func:`cluster_client`, which also cleans up and keeps distributed quiet."""
    from distributed import Client, LocalCluster

    target = parse_spec(spec)
    if isinstance(target, int):
        cluster = LocalCluster(n_workers=target, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None, config=local_worker_config())
        return Client(cluster), cluster
    try:
        return Client(target, timeout="10s"), None
    except OSError as exc:
        raise ConfigError(f"--dask {spec}: cannot reach the Dask scheduler ({exc})") from exc


def score_dataset(client: Any, model_dir: str | Path, source: str | Path, output: str | Path, *,
                  keep_columns: Sequence[str] = (), overwrite: bool = False, chunk_rows: int = CHUNK_ROWS,
                  lineage: dict[str, Any] | None = None) -> dict[str, Any]:
    """Score a Parquet dataset on ``client``'s cluster into the folder ``output`` (committed atomically).

    Refused before any work: an output that is, holds or lies inside the input, and an existing
    output this tool did not write (see :func:`vae_anomaly.outputs.check_scores_output`).
    """
    from .detector import VAEDetector
    from .lineage import build_record
    from .outputs import SCORES_MARKER, check_keep_columns, check_scores_output, scores_schema

    t0 = time.perf_counter()
    output = check_scores_output(output, source, overwrite=overwrite, folder=True)
    files = parquet_files(source)
    counts = row_counts(files)
    det = VAEDetector.load(model_dir)
    keep = check_keep_columns(keep_columns, det.preprocessor_.columns_)
    import pyarrow.parquet as pq

    from .file_scoring import column_plan

    # The file scorer's column rule: the model's id columns come along, its label columns are left out.
    keep, _ = column_plan(det, [str(c) for c in pq.read_schema(files[0]).names], keep)
    schema = scores_schema(files, keep)
    record = lineage or build_record(detector=det, input_path=source)
    send_model_to_workers(client, model_dir)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(int).tolist()
    output.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(output.parent, f".{output.name}.staging-")
    staging = output.parent / f".{output.name}.staging-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    futures: list[Any] = []
    try:
        tasks = [(i, str(f), off) for i, (f, off) in enumerate(zip(files, offsets, strict=True))]
        futures = client.map(score_part, tasks, keep=keep, staging=str(staging), schema=schema,
                             lineage=json.dumps(record), chunk_rows=chunk_rows, pure=False)
        parts = client.gather(futures)
        manifest = {**record, "parts": {p["part"]: {"rows": p["rows"], "sha256": p["sha256"]} for p in parts}}
        (staging / SCORES_MARKER).write_text(json.dumps(manifest, indent=1))
        # Checked again at the last moment: the folder may have changed while we scored.
        check_scores_output(output, source, overwrite=overwrite, folder=True)
        if output.exists():
            replace_folder(staging, output)
        else:
            os.replace(staging, output)
    except BaseException:
        _abort(client, futures, staging)
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


ABORT_MARKER = ".abort"


def _executing(keys: set[str], dask_worker: Any = None) -> int:
    """How many of ``keys`` still run on this worker (cancelled tasks run on until they return)."""
    return sum(1 for ts in dask_worker.state.executing if str(ts.key) in keys)


def _abort(client: Any, futures: Sequence[Any], staging: Path, timeout: float = 30.0) -> None:
    """Stop a failed run's tasks and remove its staging folder -- after they stopped writing into it.

    Cancelling a future does not stop a task that already runs; each task looks for the abort marker
    between batches and gives up, and the folder goes only when none of them runs any more (else a
    task's next temporary file would recreate or refill it).
    """
    import contextlib as _contextlib

    with _contextlib.suppress(OSError):
        (staging / ABORT_MARKER).touch()
    keys = {str(f.key) for f in futures}
    with _contextlib.suppress(Exception):
        client.cancel(list(futures), force=True)
    deadline = time.monotonic() + timeout
    while keys and time.monotonic() < deadline:
        try:
            if not sum(client.run(_executing, keys, on_error="ignore").values()):
                break
        except Exception:  # noqa: BLE001 - a cluster going down has nothing left running
            break
        time.sleep(0.1)
    for _ in range(5):
        shutil.rmtree(staging, ignore_errors=True)
        if not staging.exists():
            break
        time.sleep(0.2)


def score_with_cluster(detector: Any, spec: str, source: str | Path, output: str | Path, **kwargs: Any
                       ) -> dict[str, Any]:
    """Connect to ``spec`` (see :func:`cluster_client`), score, and close and remove what was opened.

    The output is checked before any cluster starts; the model copy the workers receive lives in the
    run's scratch folder, removed with it.
    """
    from .outputs import check_keep_columns, check_scores_output, scores_schema

    check_scores_output(output, source, overwrite=bool(kwargs.get("overwrite")), folder=True)
    keep = check_keep_columns(kwargs.get("keep_columns") or [], getattr(detector.preprocessor_, "columns_", []))
    scores_schema(parquet_files(source), keep)  # a kept column missing or of two types: before any cluster
    with cluster_client(spec) as client:
        model_dir = Path(client.vae_scratch) / "model"
        detector.save(model_dir)
        return score_dataset(client, model_dir, source, output, **{**kwargs, "keep_columns": keep})
