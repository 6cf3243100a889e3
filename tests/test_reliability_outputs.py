"""Issue #18 (outputs, Dask, lineage): nothing a user gave us is deleted, every part is readable, lineage
verifies the scores themselves, a read-only command writes nothing, and a Dask run cleans up after itself.

Real files, a real distributed.LocalCluster of worker processes (1 worker, 1 thread), real subprocesses.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vae_anomaly import VAEDetector
from vae_anomaly.errors import DataError

BIN = Path(sys.executable).parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "VAE_ANOMALY_THREADS": "1"}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("model")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=600), "b": rng.normal(size=600)})
    det = VAEDetector(epochs=1, random_state=0, n_jobs=1).fit(frame)
    det.save(root / "model")
    return det, root / "model", frame


def _parts(folder: Path, frame: pd.DataFrame, n: int = 2, ids: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    step = -(-len(frame) // n)
    for i in range(n):
        chunk = frame.iloc[i * step:(i + 1) * step].copy()
        if ids:
            chunk["id"] = np.arange(len(chunk)) + 1000 * i
        chunk.to_parquet(folder / f"p{i}.parquet")
    return folder


@pytest.fixture(scope="module")
def client():
    from vae_anomaly.dask_scoring import connect

    c, cluster = connect("local:1")
    yield c
    c.close()
    cluster.close()


def _cli(*args, cwd, timeout=120):
    return subprocess.run([str(BIN / "vae-anomaly"), *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env=ENV, timeout=timeout)


# ---- 1. an output never destroys the user's files or the input ---------------------------------------

def test_dask_overwrite_refuses_a_folder_of_the_users_own_files(model, tmp_path):
    _, model_dir, frame = model
    _parts(tmp_path / "in", frame)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("my thesis")
    r = _cli("score", tmp_path / "in", "--model-dir", model_dir, "--dask", "local:1", "-o", tmp_path / "mine",
             "--overwrite", "--keep", "id", cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "did not write" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]
    assert (tmp_path / "mine" / "notes.txt").read_text() == "my thesis"


@pytest.mark.parametrize("where", ["input", "parent", "inside"])
def test_dask_output_that_is_holds_or_lies_inside_the_input_is_refused(model, client, tmp_path, where):
    from vae_anomaly.dask_scoring import score_dataset

    _, model_dir, frame = model
    src = _parts(tmp_path / "data" / "in", frame)
    before = {p: p.read_bytes() for p in src.iterdir()}
    out = {"input": src, "parent": tmp_path / "data", "inside": src / "scores"}[where]
    for overwrite in (False, True):
        with pytest.raises(DataError, match="input"):
            score_dataset(client, model_dir, src, out, keep_columns=["id"], overwrite=overwrite)
    assert {p: p.read_bytes() for p in src.iterdir()} == before
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["in"]


def test_dask_overwrite_replaces_only_an_earlier_output_of_this_tool(model, client, tmp_path):
    from vae_anomaly.dask_scoring import score_dataset

    _, model_dir, frame = model
    src = _parts(tmp_path / "in", frame)
    score_dataset(client, model_dir, src, tmp_path / "out", keep_columns=["id"])
    with pytest.raises(DataError, match="already exists"):
        score_dataset(client, model_dir, src, tmp_path / "out", keep_columns=["id"])
    score_dataset(client, model_dir, src, tmp_path / "out", keep_columns=["id"], overwrite=True)
    assert len(pd.read_parquet(tmp_path / "out")) == len(frame)
    # A stray file of the user's in an earlier output: that folder is no longer only ours.
    (tmp_path / "out" / "summary.xlsx").write_text("mine")
    with pytest.raises(DataError, match="did not write"):
        score_dataset(client, model_dir, src, tmp_path / "out", keep_columns=["id"], overwrite=True)
    assert (tmp_path / "out" / "summary.xlsx").read_text() == "mine"


def test_single_process_overwrite_refuses_a_foreign_file_and_an_output_inside_the_input(model, tmp_path):
    from vae_anomaly.file_scoring import score_file

    det, _, frame = model
    frame.to_csv(tmp_path / "in.csv", index=False)
    (tmp_path / "report.csv").write_text("my,own\n1,2\n")
    with pytest.raises(DataError, match="did not write"):
        score_file(det, tmp_path / "in.csv", tmp_path / "report.csv", overwrite=True)
    assert (tmp_path / "report.csv").read_text() == "my,own\n1,2\n"
    pd.DataFrame({"x": [1]}).to_parquet(tmp_path / "other.parquet")
    with pytest.raises(DataError, match="did not write"):
        score_file(det, tmp_path / "in.csv", tmp_path / "other.parquet", overwrite=True)
    # Our own earlier output is replaced.
    score_file(det, tmp_path / "in.csv", tmp_path / "s.csv")
    score_file(det, tmp_path / "in.csv", tmp_path / "s.csv", overwrite=True)
    # An output inside a folder being scored would be read as input by the next run.
    src = _parts(tmp_path / "folder", frame, ids=False)
    with pytest.raises(DataError, match="input"):
        score_file(det, src, src / "scores.parquet")
    assert sorted(p.name for p in src.iterdir()) == ["p0.parquet", "p1.parquet"]


# ---- 2. every part is readable, with one schema --------------------------------------------------------

def test_dask_a_zero_row_file_gives_a_readable_part_and_the_folder_reads_as_one_table(model, client, tmp_path):
    import pyarrow.parquet as pq

    from vae_anomaly.dask_scoring import score_dataset

    _, model_dir, frame = model
    src = _parts(tmp_path / "in", frame)
    pd.read_parquet(src / "p0.parquet").iloc[:0].to_parquet(src / "p00-empty.parquet")
    summary = score_dataset(client, model_dir, src, tmp_path / "out", keep_columns=["id"])
    parts = sorted((tmp_path / "out").glob("part-*.parquet"))
    assert len(parts) == 3 and all(p.stat().st_size > 0 for p in parts)
    schemas = {str(pq.read_schema(p).remove_metadata()) for p in parts}
    assert len(schemas) == 1
    out = pd.read_parquet(tmp_path / "out")
    assert summary["rows"] == len(out) == len(frame) and list(out["row"]) == list(range(len(frame)))


def test_dask_kept_column_of_two_types_is_refused_naming_file_and_column_or_widened(model, client, tmp_path):
    from vae_anomaly.dask_scoring import score_dataset
    from vae_anomaly.errors import SchemaError

    _, model_dir, frame = model
    src = _parts(tmp_path / "in", frame)
    p1 = pd.read_parquet(src / "p1.parquet")
    p1.assign(id=p1["id"].astype(str)).to_parquet(src / "p1.parquet")
    with pytest.raises(SchemaError) as e:
        score_dataset(client, model_dir, src, tmp_path / "out", keep_columns=["id"])
    assert "p1.parquet" in str(e.value) and "'id'" in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]
    # int32 in one part and int64 in another is one integer column in every part.
    p1.assign(id=p1["id"].astype("int32")).to_parquet(src / "p1.parquet")
    score_dataset(client, model_dir, src, tmp_path / "out", keep_columns=["id"])
    out = pd.read_parquet(tmp_path / "out")
    assert out["id"].dtype == np.int64 and len(out) == len(frame)


def test_single_process_kept_column_of_two_types_is_one_line_naming_file_and_column(model, tmp_path):
    from vae_anomaly.errors import SchemaError
    from vae_anomaly.file_scoring import score_file

    det, model_dir, frame = model
    src = _parts(tmp_path / "in", frame)
    p1 = pd.read_parquet(src / "p1.parquet")
    p1.assign(id=p1["id"].astype(str)).to_parquet(src / "p1.parquet")
    with pytest.raises(SchemaError) as e:
        score_file(det, src, tmp_path / "s.parquet", keep_columns=["id"])
    assert "p1.parquet" in str(e.value) and "'id'" in str(e.value)
    # A CSV whose id turns from numbers to text in a later chunk: refused naming the file, column and row.
    csv = frame.assign(id=[str(i) if i >= 400 else i for i in range(len(frame))])
    csv.loc[400, "id"] = "X-400"
    csv.to_csv(tmp_path / "in.csv", index=False)
    r = _cli("score", tmp_path / "in.csv", "--model-dir", model_dir, "-o", tmp_path / "s.parquet", "--keep", "id",
             "--chunk-rows", "200", cwd=tmp_path)
    assert r.returncode == 2 and "'id'" in r.stderr and "row 400" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "in.csv"]
    # CSV out has no schema to break: the same input is written.
    r = _cli("score", tmp_path / "in.csv", "--model-dir", model_dir, "-o", tmp_path / "s.csv", "--keep", "id",
             "--chunk-rows", "200", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert pd.read_csv(tmp_path / "s.csv")["id"].iloc[400] == "X-400"


def test_single_process_zero_row_part_keeps_the_output_readable(model, tmp_path):
    """A guard for the fixed-schema writer (this case already passed before issue #18)."""
    from vae_anomaly.file_scoring import score_file

    det, _, frame = model
    src = _parts(tmp_path / "in", frame)
    pd.read_parquet(src / "p0.parquet").iloc[:0].to_parquet(src / "p00-empty.parquet")
    score_file(det, src, tmp_path / "s.parquet", keep_columns=["id"])
    assert len(pd.read_parquet(tmp_path / "s.parquet")) == len(frame)


# ---- 3. lineage verifies the scores themselves ---------------------------------------------------------

def _lineage(scores, cwd, *extra):
    return _cli("lineage", scores, "--json", *extra, cwd=cwd, timeout=60)


def _checks(r):
    return {c["check"]: c["ok"] for c in __import__("json").loads(r.stdout)["checks"]}


def test_lineage_catches_scores_set_to_zero_and_an_edited_csv(model, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from vae_anomaly.file_scoring import score_file

    det, _, frame = model
    frame.to_csv(tmp_path / "in.csv", index=False)
    score_file(det, tmp_path / "in.csv", tmp_path / "s.parquet")
    score_file(det, tmp_path / "in.csv", tmp_path / "s.csv")
    for name in ("s.parquet", "s.csv"):
        r = _lineage(tmp_path / name, tmp_path)
        assert r.returncode == 0 and _checks(r)["scores"] is True, r.stdout + r.stderr
    # Scores zeroed and written back with the lineage record (the schema's metadata) kept.
    table = pq.read_table(tmp_path / "s.parquet")
    zeroed = table.set_column(table.schema.get_field_index("score"), "score", pa.array(np.zeros(len(table))))
    pq.write_table(zeroed, tmp_path / "s.parquet")
    r = _lineage(tmp_path / "s.parquet", tmp_path)
    assert r.returncode == 1 and _checks(r)["scores"] is False, r.stdout
    # ... and even with the footer's scores hash copied over.
    score_file(det, tmp_path / "in.csv", tmp_path / "s.parquet", overwrite=True)
    footer = pq.ParquetFile(tmp_path / "s.parquet").metadata.metadata
    with pq.ParquetWriter(tmp_path / "s.parquet", zeroed.schema) as w:
        w.write_table(zeroed)
        w.add_key_value_metadata({k.decode(): v.decode() for k, v in footer.items() if b"scores" in k})
    assert _checks(_lineage(tmp_path / "s.parquet", tmp_path))["scores"] is False
    # One score in a CSV edited.
    text = (tmp_path / "s.csv").read_text().splitlines()
    row = text[5].split(",")
    row[1] = "0.0"
    (tmp_path / "s.csv").write_text("\n".join([*text[:5], ",".join(row), *text[6:]]) + "\n")
    r = _lineage(tmp_path / "s.csv", tmp_path)
    assert r.returncode == 1 and _checks(r)["scores"] is False, r.stdout


def test_lineage_catches_a_deleted_or_edited_part_of_a_dask_output(model, client, tmp_path):
    from vae_anomaly.dask_scoring import score_dataset

    _, model_dir, frame = model
    src = _parts(tmp_path / "in", frame, n=3)
    score_dataset(client, model_dir, src, tmp_path / "out", keep_columns=["id"])
    r = _lineage(tmp_path / "out", tmp_path)
    assert r.returncode == 0 and _checks(r)["scores"] is True, r.stdout + r.stderr
    part = pd.read_parquet(tmp_path / "out" / "part-00001.parquet")
    part.assign(score=0.0).to_parquet(tmp_path / "out" / "part-00001.parquet")
    r = _lineage(tmp_path / "out", tmp_path)
    assert r.returncode == 1 and _checks(r)["scores"] is False and "part-00001" in r.stdout
    (tmp_path / "out" / "part-00001.parquet").unlink()
    r = _lineage(tmp_path / "out", tmp_path)
    assert r.returncode == 1 and "missing: part-00001.parquet" in r.stdout


# ---- 4. lineage is read-only and opens only the configured tracking store ------------------------------

def test_lineage_never_creates_the_tracking_store_a_scores_file_names(model, tmp_path):
    from vae_anomaly.file_scoring import score_file
    from vae_anomaly.lineage import build_record

    det, _, frame = model
    frame.to_csv(tmp_path / "in.csv", index=False)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "work").mkdir()
    named = f"sqlite:///{tmp_path / 'elsewhere' / 'new.db'}"
    record = {**build_record(detector=det, input_path=tmp_path / "in.csv"), "model_name": "m", "model_version": "1",
              "mlflow_run_id": "abc", "tracking_uri": named}
    score_file(det, tmp_path / "in.csv", tmp_path / "s.parquet", lineage=record)
    env = {k: v for k, v in ENV.items() if k != "MLFLOW_TRACKING_URI"}
    for extra in ((), ("--use-recorded-tracking-uri",)):
        r = subprocess.run([str(BIN / "vae-anomaly"), "lineage", str(tmp_path / "s.parquet"), *extra],
                           capture_output=True, text=True, cwd=tmp_path / "work", env=env, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        assert named in r.stdout and "skipped" in r.stdout  # shown, not opened
        assert list((tmp_path / "elsewhere").iterdir()) == [], extra
        assert list((tmp_path / "work").iterdir()) == [], extra  # nor ./mlflow.db, ./mlruns ...


# ---- 5-7. a Dask run: bounded workers, Ctrl-C, failures, cleanup, quiet --------------------------------

def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def test_dask_local_workers_are_bounded_by_the_cores(model, tmp_path):
    import time

    _, model_dir, frame = model
    _parts(tmp_path / "in", frame)
    t0 = time.monotonic()
    r = _cli("score", tmp_path / "in", "--model-dir", model_dir, "--dask", "local:999", "-o", tmp_path / "out",
             cwd=tmp_path, timeout=60)
    assert r.returncode == 2 and f"at most {_cores()} local worker" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and time.monotonic() - t0 < 30
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def _big_input(folder: Path, frame: pd.DataFrame, files: int = 6, rows: int = 60_000) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(files):
        pd.DataFrame({c: rng.normal(size=rows) for c in frame.columns}).to_parquet(folder / f"p{i}.parquet")
    return folder


def _alive(pgid: int) -> list[int]:
    """Running (not zombie: exited, waiting to be reaped) processes of the process group ``pgid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def test_ctrl_c_stops_a_dask_run_within_seconds_with_one_line_and_leaves_nothing(model, tmp_path):
    import signal
    import time

    _, model_dir, frame = model
    src = _big_input(tmp_path / "in", frame)
    (tmp_path / "tmp").mkdir()
    env = {**ENV, "TMPDIR": str(tmp_path / "tmp")}
    # A terminal's Ctrl-C goes to the whole foreground process group: the job and its workers.
    proc = subprocess.Popen([str(BIN / "vae-anomaly"), "score", str(src), "--model-dir", str(model_dir), "--dask",
                             f"local:{min(2, _cores())}", "-o", str(tmp_path / "out"), "--chunk-rows", "500"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True,
                            # as from a terminal: an ignored SIGINT would be inherited from this test process
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list(tmp_path.glob(".out.staging-*/.part-*")):
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        assert list(tmp_path.glob(".out.staging-*")), "scoring never started"
        os.killpg(proc.pid, signal.SIGINT)
        t0 = time.monotonic()
        _out, err = proc.communicate(timeout=30)
        took = time.monotonic() - t0
    finally:
        if _alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, (err, _out[-500:], "runner's SIGINT handler:", signal.getsignal(signal.SIGINT))
    assert len(err.strip().splitlines()) == 1 and "interrupted" in err, err
    assert took < 15, took
    time.sleep(1)
    assert not _alive(proc.pid), "processes of the job outlived it"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "tmp"]  # no output, no staging
    assert list((tmp_path / "tmp").iterdir()) == []  # no model copy, no worker scratch


def test_a_failed_dask_run_is_one_line_and_leaves_no_staging_scratch_or_model_copy(model, tmp_path):
    import time

    _, model_dir, frame = model
    src = _big_input(tmp_path / "in", frame, files=1, rows=120_000)
    pd.DataFrame({"a": [0.0] * 10, "B": [0.0] * 10}).to_parquet(src / "p9-bad.parquet")
    (tmp_path / "tmp").mkdir()
    env = {**ENV, "TMPDIR": str(tmp_path / "tmp")}
    r = subprocess.run([str(BIN / "vae-anomaly"), "score", str(src), "--model-dir", str(model_dir), "--dask",
                        f"local:{min(2, _cores())}", "-o", str(tmp_path / "out"), "--chunk-rows", "500"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "p9-bad.parquet" in r.stderr, r.stderr
    for _ in range(2):  # and a task still running when the job failed does not bring the staging back
        assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "tmp"]
        assert list((tmp_path / "tmp").iterdir()) == []
        time.sleep(2)


def test_a_successful_dask_run_prints_only_its_summary_and_cleans_up(model, tmp_path):
    _, model_dir, frame = model
    src = _parts(tmp_path / "in", frame)
    (tmp_path / "tmp").mkdir()
    env = {**ENV, "TMPDIR": str(tmp_path / "tmp")}
    r = subprocess.run([str(BIN / "vae-anomaly"), "score", str(src), "--model-dir", str(model_dir), "--dask",
                        f"local:{min(2, _cores())}", "-o", str(tmp_path / "out"), "--keep", "id"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert __import__("json").loads(r.stdout)["rows"] == len(frame)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out", "tmp"]
    assert list((tmp_path / "tmp").iterdir()) == []


# ---- 8. one line, not a traceback ----------------------------------------------------------------------

@pytest.mark.parametrize("keep, words, dask", [
    (["id", "id"], "given twice", False), (["id", "a"], "the model scores", False),
    (["id", "score"], "the scores' own", False), (["id", "a"], "the model scores", True)])
def test_bad_keep_columns_are_one_line_naming_the_option(model, tmp_path, keep, words, dask):
    _, model_dir, frame = model
    _parts(tmp_path / "in", frame)
    args = [a for c in keep for a in ("--keep", c)] + (["--dask", "local:1"] if dask else [])
    r = _cli("score", tmp_path / "in", "--model-dir", model_dir, "-o", tmp_path / "out.parquet", *args, cwd=tmp_path)
    assert r.returncode == 2 and words in r.stderr and "--keep" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


@pytest.mark.parametrize("dask", [False, True])
def test_a_file_name_too_long_is_one_line(model, tmp_path, dask):
    _, model_dir, frame = model
    _parts(tmp_path / "in", frame)
    for out in (tmp_path / ("x" * 300) / "s.parquet", tmp_path / ("x" * 300 + ".parquet")):
        if dask:
            out = out.with_suffix("")
        r = _cli("score", tmp_path / "in", "--model-dir", model_dir, "-o", out, "--keep", "id",
                 *(["--dask", "local:1"] if dask else []), cwd=tmp_path)
        assert r.returncode == 2 and "too long" in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_a_300_character_model_name_gives_a_writable_default_output(tmp_path):
    from vae_anomaly.jobs import default_output

    path = tmp_path / default_output("m" * 300)
    assert len(path.name) <= 255
    path.parent.mkdir(parents=True)
    path.write_text("")
    assert default_output("m" * 300) != default_output("m" * 299 + "n")


def _three_classes() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.concat([pd.DataFrame({"a": rng.normal(i, 1, k), "b": rng.normal(-i, 1, k), "cls": f"c{i}"})
                      for i, k in enumerate([120, 50, 30])], ignore_index=True)


def test_synthesize_judges_three_classes_without_a_sklearn_error(tmp_path):
    from vae_anomaly.jobs import synthesize as synth_job

    _three_classes().to_csv(tmp_path / "three.csv", index=False)
    config = synth_job.SynthJobConfig(data=str(tmp_path / "three.csv"), label_column="cls",
                                      oversampler={"epochs": 2})
    ds = synth_job.ingest(config)
    result = synth_job.balance(ds, config)
    metrics = synth_job.synthesis_metrics(result, config.random_state)
    assert 0.0 <= metrics["vae_logreg_f1"] <= 1.0 and 0.0 <= metrics["real_logreg_f1"] <= 1.0


@pytest.mark.usefixtures("prefect_server")
def test_synthesize_writes_its_output_last_so_a_late_failure_leaves_none(mlflow_store, monkeypatch):
    from vae_anomaly.flows.synthesize import synthesize_flow
    from vae_anomaly.jobs import synthesize as synth_job

    _three_classes().to_csv(mlflow_store / "three.csv", index=False)

    def judging_fails(*_args, **_kwargs):
        raise DataError("judging failed", file=mlflow_store / "three.csv")

    monkeypatch.setattr(synth_job, "synthesis_metrics", judging_fails)
    out = mlflow_store / "balanced.parquet"
    with pytest.raises(DataError, match="judging failed"):
        synthesize_flow(synth_job.SynthJobConfig(data=str(mlflow_store / "three.csv"), label_column="cls",
                                                 output=str(out), oversampler={"epochs": 2}))
    assert not out.exists() and not list(mlflow_store.glob(".balanced*"))


def test_the_sigint_plugin_changes_nothing_in_the_process_that_owns_the_cluster():
    """distributed copies worker specs (a deepcopy goes through the plugin's __reduce__): in the job's own
    process that copy must leave Ctrl-C working; only a worker process ignores it."""
    import copy
    import signal

    from vae_anomaly.dask_scoring import IgnoreSigint

    before = signal.getsignal(signal.SIGINT)
    copy.deepcopy({"plugins": {IgnoreSigint()}})
    assert signal.getsignal(signal.SIGINT) is before
    code = ("import pickle, signal, sys; sys.path.insert(0, '.'); "
            "pickle.loads(sys.stdin.buffer.read()); print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN)")
    import pickle

    out = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(IgnoreSigint()), capture_output=True,
                         cwd=Path(__file__).resolve().parents[1], timeout=60)
    assert out.stdout.decode().strip() == "True", out.stderr.decode()[-2000:]
