"""Issue #14 (distributed scoring): a real distributed.LocalCluster of worker processes on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pandas as pd
import pytest

from vae_anomaly import VAEDetector
from vae_anomaly.errors import SchemaError
from vae_anomaly.file_scoring import score_file

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from vae_anomaly.dask_scoring import connect

    root = tmp_path_factory.mktemp("dask")
    rng = np.random.default_rng(0)
    n = 240_000
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.normal(size=n),
                          "id": np.arange(n) * 7})
    det = VAEDetector(epochs=2, random_state=0, n_jobs=1).fit(frame.drop(columns="id").iloc[:5000])
    det.save(root / "model")
    (root / "in").mkdir()
    for i in range(24):
        frame.iloc[i * 10_000:(i + 1) * 10_000].to_parquet(root / "in" / f"part-{i:03d}.parquet")
    client, cluster = connect("local:2")
    yield root, client, det
    client.close()
    cluster.close()


def test_distributed_scores_equal_single_process_and_load_once_per_worker(setup):
    from vae_anomaly.dask_scoring import score_dataset
    from vae_anomaly.lineage import read_record

    root, client, det = setup
    summary = score_dataset(client, root / "model", root / "in", root / "out", keep_columns=["id"], chunk_rows=4000)
    single = score_file(det, root / "in", root / "single.parquet", keep_columns=["id"])
    a, b = pd.read_parquet(root / "out"), pd.read_parquet(root / "single.parquet")
    assert list(a.columns) == list(b.columns) == ["row", "id", "score", "is_anomaly"]
    assert (a["row"].to_numpy() == b["row"].to_numpy()).all() and (a["id"].to_numpy() == b["id"].to_numpy()).all()
    np.testing.assert_allclose(a["score"], b["score"], rtol=1e-6)
    assert summary["rows"] == 240_000 and summary["flagged"] == single.flagged
    loads = client.run(lambda dask_worker: dask_worker.vae_model_loads)
    assert sorted(loads.values()) == [1, 1]  # 24 partitions, one load per worker
    assert read_record(root / "out")["weights_sha256"] == VAEDetector.load(root / "model").model_meta_["weights_sha256"]
    # The same job again gives the same result (and needs --overwrite to replace it).
    score_dataset(client, root / "model", root / "in", root / "out", keep_columns=["id"], overwrite=True)
    np.testing.assert_array_equal(pd.read_parquet(root / "out")["score"], a["score"])


def test_a_partition_with_a_bad_schema_names_file_and_column_and_writes_nothing(setup, tmp_path):
    from vae_anomaly.dask_scoring import score_dataset

    root, client, _ = setup
    (tmp_path / "in").mkdir()
    good = pd.read_parquet(root / "in" / "part-000.parquet")
    good.to_parquet(tmp_path / "in" / "p0.parquet")
    good.rename(columns={"b": "B"}).to_parquet(tmp_path / "in" / "p1.parquet")
    with pytest.raises(SchemaError) as e:
        score_dataset(client, root / "model", tmp_path / "in", tmp_path / "out", keep_columns=["id"])
    assert "p1.parquet" in str(e.value) and ("'b'" in str(e.value) or "'B'" in str(e.value))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]  # no output, no staging left behind


def test_a_worker_killed_mid_job_still_gives_complete_correct_output(setup, tmp_path):
    from vae_anomaly.dask_scoring import score_dataset

    root, client, det = setup
    pids = client.run(os.getpid)
    killed = {}

    def kill_when_running():
        deadline = time.time() + 60
        while time.time() < deadline:
            staging = [p for p in tmp_path.glob(".out.staging-*") if any(p.glob("part-*.parquet"))]
            if staging and not (tmp_path / "out").exists():
                victim = sorted(pids.values())[0]
                os.kill(victim, signal.SIGKILL)
                killed["pid"] = victim
                return
            time.sleep(0.005)

    t = threading.Thread(target=kill_when_running)
    t.start()
    summary = score_dataset(client, root / "model", root / "in", tmp_path / "out", keep_columns=["id"],
                            chunk_rows=2000)
    t.join()
    assert killed, "the job finished before a worker could be killed"
    out = pd.read_parquet(tmp_path / "out")
    assert summary["rows"] == len(out) == 240_000
    assert (out["row"].to_numpy() == np.arange(240_000)).all()
    np.testing.assert_allclose(out["score"].to_numpy()[:1000],
                               det.decision_function(pd.read_parquet(root / "in" / "part-000.parquet")
                                                     .drop(columns="id").iloc[:1000]), rtol=1e-6)


def test_pyfunc_predict_on_a_pandas_batch_as_spark_udf_calls_it(mlflow_store, setup):
    """mlflow.pyfunc.spark_udf loads the model once per executor and calls predict on pandas batches."""
    import mlflow

    from vae_anomaly import tracking

    root, _, det = setup
    batch = pd.read_parquet(root / "in" / "part-001.parquet").drop(columns="id").iloc[:500]
    run = tracking.start_run("spark")
    uri = tracking.log_detector(run, VAEDetector.load(root / "model"), batch.iloc[:5])
    model = mlflow.pyfunc.load_model(uri)
    out = model.predict(batch)
    assert list(out.columns) == ["score", "is_anomaly"] and len(out) == 500
    np.testing.assert_allclose(out["score"], det.decision_function(batch), rtol=1e-6)


def test_a_bad_value_is_named_at_the_same_file_and_row_by_both_scorers(setup, tmp_path):
    """One frame builder for both paths: a NaN in the second file's row 2 500 (of the third 1 000-row chunk)
    is that file's row 2 500 in the Dask worker's error too, not its position in the whole dataset."""
    from vae_anomaly.dask_scoring import score_dataset
    from vae_anomaly.errors import DataError

    root, client, det = setup
    (tmp_path / "in").mkdir()
    for i in range(2):
        part = pd.read_parquet(root / "in" / f"part-00{i}.parquet")
        if i == 1:
            part.loc[part.index[2500], "b"] = np.nan
        part.to_parquet(tmp_path / "in" / f"p{i}.parquet")
    with pytest.raises(DataError) as single:
        score_file(det, tmp_path / "in", tmp_path / "single.parquet", keep_columns=["id"], chunk_rows=1000)
    with pytest.raises(DataError) as dask:
        score_dataset(client, root / "model", tmp_path / "in", tmp_path / "out", keep_columns=["id"], chunk_rows=1000)
    assert (single.value.file, single.value.column, single.value.row) == (str(tmp_path / "in" / "p1.parquet"), "b", 2500)
    assert (dask.value.file, dask.value.column, dask.value.row) == (single.value.file, "b", 2500)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def _page_faults_of_reused_buffers() -> int:
    """Minor page faults of this thread while it allocates, fills and frees an 8 MB array 20 times (after once)."""
    import resource

    np.ones(1_000_000).sum()
    before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
    for _ in range(20):
        np.ones(1_000_000).sum()
    return resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before


@pytest.mark.skipif(not hasattr(__import__("resource"), "RUSAGE_THREAD"), reason="per-thread rusage is Linux's")
def test_workers_reuse_freed_buffers_and_run_no_statistical_profiler(setup):
    """What made a worker score at a third of a single process's rate (benchmarks/RESULTS.md): the nanny's
    MALLOC_TRIM_THRESHOLD_ made every chunk-sized array a fresh mmap (each of its pages faulted in again),
    and distributed's 10 ms profiler took the GIL from the scoring thread."""
    from vae_anomaly.dask_scoring import send_model_to_workers

    root, client, _ = setup
    send_model_to_workers(client, root / "model")
    assert all(client.run(lambda dask_worker: dask_worker.vae_reuses_freed_memory).values())
    assert not any(client.run(lambda dask_worker: "profile" in dask_worker.periodic_callbacks).values())
    # On a task thread, as score_part runs. Measured here: 0 faults; ~8 400 with each array a fresh mmap.
    faults = client.submit(_page_faults_of_reused_buffers, pure=False).result()
    assert faults < 1_000, faults
