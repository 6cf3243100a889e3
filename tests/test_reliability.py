"""Issue #10: nothing lost, nothing wrong, nothing hung.

Each test here failed on the code before the fix: data-loss paths, wrong results written with
exit 0, inputs that escaped as tracebacks, and mutations the suite used to let survive.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import DATA
from vae_anomaly import VAEDetector
from vae_anomaly.errors import ConfigError, DataError, ModelError, TrainingError

BIN = Path(sys.executable).parent


def cli(*args, cwd=None, env=None, **kw):
    return subprocess.run([str(BIN / "vae-anomaly"), *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **(env or {})}, **kw)


def user_error(r, *fragments):
    """Exit 2, one short paragraph on stderr naming what is wrong, no traceback."""
    assert r.returncode == 2, (r.returncode, r.stdout[-500:], r.stderr[-2000:])
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.stderr.startswith("error:") or "\nerror:" in r.stderr, r.stderr[-800:]
    for f in fragments:
        assert f in r.stderr, (f, r.stderr[-800:])


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(0)
    return pd.DataFrame({"a": rng.normal(size=600), "b": rng.normal(size=600), "c": rng.normal(size=600)})


@pytest.fixture(scope="module")
def fitted(table, tmp_path_factory):
    det = VAEDetector(random_state=0, epochs=3).fit(table)
    path = tmp_path_factory.mktemp("rel") / "model"
    det.save(path)
    return det, path


def _edit_meta(src: Path, dst: Path, edit) -> Path:
    import shutil

    shutil.copytree(src, dst)
    meta = json.loads((dst / "model.json").read_text())
    edit(meta)
    (dst / "model.json").write_text(json.dumps(meta))
    return dst


# --------------------------------------------------------------------------- data loss
def test_save_refuses_a_folder_of_other_files_and_the_working_folder(fitted, tmp_path, monkeypatch):
    det, _ = fitted
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.txt").write_text("years of work")
    with pytest.raises(ModelError, match="other files"):
        det.save(mine)
    assert (mine / "thesis.txt").read_text() == "years of work"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError, match="working folder"):
        det.save(".")
    assert (mine / "thesis.txt").exists()
    with pytest.raises(ModelError, match="is a file"):
        det.save(mine / "thesis.txt")


def test_save_replaces_a_model_folder_whole(fitted, table, tmp_path):
    det, _ = fitted
    target = tmp_path / "m"
    det.save(target)
    other = VAEDetector(random_state=1, epochs=2, latent_dim=2).fit(table)
    other.save(target)
    assert VAEDetector.load(target).model_.latent_dim == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no leftovers of the swap


def test_load_verifies_the_weights_hash(fitted, tmp_path):
    _, path = fitted
    bad = _edit_meta(path, tmp_path / "m", lambda m: m.update(weights_sha256="0" * 64))
    with pytest.raises(ModelError, match="does not match"):
        VAEDetector.load(bad)


def _rehash(folder: Path) -> None:
    from vae_anomaly.persist import file_sha256

    meta = json.loads((folder / "model.json").read_text())
    meta["weights_sha256"] = file_sha256(folder / "model.safetensors")
    (folder / "model.json").write_text(json.dumps(meta))


def test_degenerate_model_and_extreme_input_never_write_scores(fitted, table, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    from vae_anomaly.file_scoring import score_file

    det, path = fitted
    huge = tmp_path / "huge"
    shutil.copytree(path, huge)
    state = load_file(str(huge / "model.safetensors"))
    save_file({k: v * 1e30 if v.is_floating_point() else v for k, v in state.items()}, str(huge / "model.safetensors"))
    _rehash(huge)  # a consistent but degenerate model: the hash check alone cannot catch it
    table.to_csv(tmp_path / "in.csv", index=False)
    with pytest.raises(DataError, match="non-finite anomaly score") as e:
        score_file(VAEDetector.load(huge), tmp_path / "in.csv", tmp_path / "out.parquet")
    assert e.value.row == 0 and not (tmp_path / "out.parquet").exists()
    extreme = table * 1e30
    with pytest.raises(DataError, match=r"non-finite anomaly score \(rows 0, 1, 2"):
        det.decision_function(extreme)
    zero_scale = _edit_meta(path, tmp_path / "zero", lambda m: m["preprocessing"]["numeric"]["a"].update(scale=0))
    with pytest.raises(ModelError, match="scale 0 must be positive"):
        VAEDetector.load(zero_scale)


def test_nan_threshold_is_refused_at_load(fitted, tmp_path):
    _, path = fitted
    bad = _edit_meta(path, tmp_path / "m", lambda m: m["extra"].update(threshold=float("nan")))
    with pytest.raises(ModelError, match="threshold nan is not a finite number"):
        VAEDetector.load(bad)


@pytest.mark.parametrize("edit, fragment", [
    (lambda m: m.pop("model_config"), "model_config"),
    (lambda m: m["model_config"].update(latent_dim=1e9), "latent_dim"),
    (lambda m: m["model_config"].update(latent_dim="big"), "latent_dim must be an integer"),
    (lambda m: m["model_config"].update(hidden_dims=[100000, 100000, 100000]), "parameters"),
    (lambda m: m["extra"].pop("params"), "detector entry is missing"),
    (lambda m: m["extra"]["params"].update(contamination=7), "contamination"),
])
def test_tampered_model_json_is_refused_before_allocating(fitted, tmp_path, edit, fragment):
    _, path = fitted
    with pytest.raises(ModelError, match=fragment):
        VAEDetector.load(_edit_meta(path, tmp_path / "m", edit))


def test_semicolon_csv_is_read_as_columns(tmp_path):
    from vae_anomaly.data import load_dataset

    frame = pd.read_csv(DATA / "breast_cancer.csv")
    frame.to_csv(tmp_path / "semi.csv", sep=";", index=False)
    ds = load_dataset(tmp_path / "semi.csv", label_column="diagnosis", id_column="patient_id")
    assert ds.X.shape == (569, frame.shape[1] - 2)
    assert ds.X.dtypes.map(lambda d: d.kind).eq("f").all()


def test_existing_output_is_refused_and_two_writers_exclude_each_other(fitted, table, tmp_path):
    from vae_anomaly.atomic import exclusive_lock
    from vae_anomaly.file_scoring import score_file

    det, _ = fitted
    table.to_csv(tmp_path / "in.csv", index=False)
    out = tmp_path / "s.parquet"
    score_file(det, tmp_path / "in.csv", out)
    before = out.read_bytes()
    with pytest.raises(DataError, match="already exists"):
        score_file(det, tmp_path / "in.csv", out)
    assert out.read_bytes() == before
    score_file(det, tmp_path / "in.csv", out, overwrite=True)
    with exclusive_lock(tmp_path / ".s.parquet.lock", what="s.parquet"), \
            pytest.raises(DataError, match="another job is already writing"):
        score_file(det, tmp_path / "in.csv", out, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "s.parquet"]


def test_checkpoint_files_from_different_epochs_are_refused(digits, tmp_path):
    import shutil

    from vae_anomaly.models import ModelConfig, build_model
    from vae_anomaly.trainer import TrainConfig, train

    X = digits[0][:300]
    cfg = TrainConfig(seed=0, epochs=3, patience=None, checkpoint_dir=str(tmp_path / "ck"))
    train(build_model(ModelConfig(X.shape[1:])), X, config=cfg)
    manifest = json.loads((tmp_path / "ck" / "manifest.json").read_text())
    folder = tmp_path / "ck" / manifest["folder"]
    # An older epoch's weights beside this epoch's state: what a kill between two renames used to leave.
    train(build_model(ModelConfig(X.shape[1:])), X, config=TrainConfig(seed=0, epochs=1, patience=None,
                                                                       checkpoint_dir=str(tmp_path / "old")))
    old = json.loads((tmp_path / "old" / "manifest.json").read_text())
    shutil.copy(tmp_path / "old" / old["folder"] / "checkpoint.safetensors", folder / "checkpoint.safetensors")
    resume = TrainConfig(seed=0, epochs=5, patience=None, checkpoint_dir=str(tmp_path / "ck"), resume=True)
    with pytest.raises(TrainingError, match="does not match"):
        train(build_model(ModelConfig(X.shape[1:])), X, config=resume)


# --------------------------------------------------------------------------- kills
def test_killed_fit_resumes_when_the_same_command_is_rerun(tmp_path):
    out = tmp_path / "m"
    args = ["fit", DATA / "digits.npz", "--out", out, "--epochs", "40", "--set", "patience=null"]
    proc = subprocess.Popen([str(BIN / "vae-anomaly"), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    manifest = None
    while time.time() < deadline and proc.poll() is None:
        found = list(tmp_path.glob(".m.checkpoint-*/manifest.json"))
        if found and json.loads(found[0].read_text())["epoch"] >= 1:
            manifest = found[0]
            break
        time.sleep(0.2)
    assert manifest is not None, proc.communicate()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    r = cli(*args)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["resumed_from_epoch"] is not None and report["resumed_from_epoch"] >= 1
    assert VAEDetector.load(out).history_[-1]["epoch"] == 39
    assert not list(tmp_path.glob(".m.checkpoint-*"))  # cleaned once the model is saved


def test_abandoned_runs_are_marked_failed(mlflow_store):
    from vae_anomaly import tracking

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run_id = tracking.start_run("exp", tags={"vae_anomaly.pid": str(dead.pid)})
    alive = tracking.start_run("exp")  # this process: still alive, left alone
    assert tracking.fail_abandoned_runs("exp") == [run_id]
    c = tracking.client()
    assert c.get_run(run_id).info.status == "FAILED" and c.get_run(alive).info.status == "RUNNING"


@pytest.mark.slow
def test_prefect_temporary_server_dies_with_its_parent(tmp_path):
    code = ("import time, pipelines, pipelines._runtime as r; r.tie_temporary_servers_to_this_process();"
            "from prefect.server.api.server import SubprocessASGIServer as S; s = S(); s.start(timeout=120);"
            "print(s.server_process.pid, flush=True); time.sleep(600)")
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env,
                              cwd=Path(__file__).resolve().parents[1])
    server_pid = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline, gone = time.time() + 15, False
    while time.time() < deadline and not gone:
        try:
            os.kill(server_pid, 0)
        except ProcessLookupError:
            gone = True
            break
        time.sleep(0.2)
    if not gone:
        os.kill(server_pid, signal.SIGKILL)
    assert gone, "the temporary Prefect server outlived its killed parent"


# --------------------------------------------------------------------------- registry
def _train_data(frame: pd.DataFrame, labels: np.ndarray | None):
    from vae_anomaly.data import Dataset
    from vae_anomaly.jobs import TrainingData

    ds = Dataset(X=frame, y=None, kind="tabular", source="mem")
    return TrainingData(ds, frame, frame, labels)


@pytest.fixture(scope="module")
def cancer_models(cancer):
    """A good detector (trained on benign rows) and a poor one (trained on the malignant rows it should flag)."""
    X, y = cancer
    good = VAEDetector(random_state=0, epochs=40, trim_fraction=0.0).fit(X[y == 0])
    poor = VAEDetector(random_state=0, epochs=5).fit(X[y == 1])
    return good, poor


def _log(det, X, run_name):
    from vae_anomaly import tracking

    run = tracking.start_run("promo", run_name=run_name)
    uri = tracking.log_detector(run, det, X.iloc[:5])
    return run, uri


def test_promotion_better_challenger_wins_worse_loses_and_retry_registers_once(mlflow_store, cancer, cancer_models):
    from vae_anomaly import jobs, tracking

    X, y = cancer
    good, poor = cancer_models
    data = _train_data(X, y)
    cfg = jobs.TrainJobConfig(model_name="m", experiment="promo")
    run_p, uri_p = _log(poor, X, "poor")
    first = jobs.promote(poor, data, cfg, model_uri=uri_p, run_id=run_p)
    assert first.promoted and first.version == "1"
    run_g, uri_g = _log(good, X, "good")
    second = jobs.promote(good, data, cfg, model_uri=uri_g, run_id=run_g)
    assert second.promoted and second.version == "2"  # a better challenger takes the alias
    assert second.new_value > second.champion_value
    again = jobs.promote(good, data, cfg, model_uri=uri_g, run_id=run_g)  # a retried task
    assert again.version == "2" and again.promoted
    assert len(tracking.client().search_model_versions("name='m'")) == 2
    run_p2, uri_p2 = _log(poor, X, "poor again")
    third = jobs.promote(poor, data, cfg, model_uri=uri_p2, run_id=run_p2)
    assert not third.promoted and tracking.champion_version("m") == "2"


def test_unlabelled_promotion_takes_the_lower_negative_elbo(mlflow_store, cancer, cancer_models):
    from vae_anomaly import jobs, tracking

    X, y = cancer
    good, poor = cancer_models
    data = _train_data(X[y == 0].reset_index(drop=True), None)
    cfg = jobs.TrainJobConfig(model_name="u", experiment="promo")
    run_g, uri_g = _log(good, X, "good")
    assert jobs.promote(good, data, cfg, model_uri=uri_g, run_id=run_g).promoted
    run_p, uri_p = _log(poor, X, "poor")
    result = jobs.promote(poor, data, cfg, model_uri=uri_p, run_id=run_p)
    assert result.metric == "val_neg_elbo" and not result.promoted
    assert result.new_value > result.champion_value and tracking.champion_version("u") == "1"


def test_concurrent_promotions_cannot_leave_the_worse_model_champion(mlflow_store, cancer, cancer_models, monkeypatch):
    """Two jobs finishing together: the worse one's alias move is slowed so that, without the lock and
    the re-check, it lands last and wins."""
    from vae_anomaly import jobs, tracking
    from vae_anomaly.tracking import registry

    X, y = cancer
    good, poor = cancer_models
    data = _train_data(X, y)
    cfg = jobs.TrainJobConfig(model_name="c", experiment="promo")
    base, uri_b = _log(poor, X, "base")
    jobs.promote(poor, data, cfg, model_uri=uri_b, run_id=base)  # v1: a champion both challengers beat
    mediocre = VAEDetector(random_state=1, epochs=40, trim_fraction=0.0).fit(X)  # contaminated: between the two
    runs = {"good": _log(good, X, "good"), "mediocre": _log(mediocre, X, "mediocre")}
    real_set = registry.set_champion

    def slow_set(name, version, reason):
        if "mediocre" in reason or version == slow_version.get("v"):
            time.sleep(3)
        real_set(name, version, reason)

    slow_version = {}
    monkeypatch.setattr(registry, "set_champion", slow_set)
    monkeypatch.setattr(tracking, "set_champion", slow_set)
    results, errors = {}, []

    def job(name, det, delay):
        time.sleep(delay)
        try:
            run, uri = runs[name]
            results[name] = jobs.promote(det, data, cfg, model_uri=uri, run_id=run)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    # mediocre registers first (v2) and is slowed while moving the alias; good (v3) comes second.
    slow_version["v"] = "2"
    t1 = threading.Thread(target=job, args=("mediocre", mediocre, 0))
    t2 = threading.Thread(target=job, args=("good", good, 0.5))
    t1.start()
    t2.start()
    t1.join()
    t2.join()
    assert not errors, errors
    assert tracking.champion_version("c") == results["good"].version
    assert results["mediocre"].promoted and results["good"].promoted


def test_dead_tracking_server_fails_in_seconds_with_one_line(monkeypatch, tmp_path):
    from vae_anomaly import tracking
    from vae_anomaly.errors import TrackingError

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    t0 = time.perf_counter()
    with pytest.raises(TrackingError, match="not reachable") as e:
        tracking.check_tracking()
    assert time.perf_counter() - t0 < 10 and "\n" not in str(e.value)


def test_unknown_model_is_a_user_error_and_not_retried(mlflow_store):
    from pipelines._runtime import retry_server_errors_only
    from vae_anomaly import tracking
    from vae_anomaly.errors import TrackingError

    tracking.client().create_registered_model("known")
    for ref, fragment in [("nosuch", "registered model 'nosuch' does not exist"),
                          ("known/7", "has no version 7"), ("known@gold", "no version with alias 'gold'")]:
        with pytest.raises(ModelError, match=fragment) as e:
            tracking.load_detector(ref)
        assert "\n" not in str(e.value)

    class State:
        def __init__(self, exc):
            self.data = exc

    assert not retry_server_errors_only(None, None, State(e.value))
    assert retry_server_errors_only(None, None, State(TrackingError("down")))


def test_registry_loads_leave_no_copies_and_refuse_other_uris(mlflow_store, fitted, table):
    import glob
    import tempfile

    from vae_anomaly import tracking

    det, path = fitted
    run = tracking.start_run("e")
    uri = tracking.log_detector(run, det, table.iloc[:5])
    pattern = os.path.join(tempfile.gettempdir(), "vae-anomaly-model-*")
    before = set(glob.glob(pattern))
    loaded, _ = tracking.load_detector(uri)
    assert set(glob.glob(pattern)) == before
    np.testing.assert_allclose(loaded.decision_function(table), det.decision_function(table), rtol=1e-6)
    for bad in (f"file://{path}", "s3://bucket/model", "ftp://x/y"):
        with pytest.raises(ConfigError, match="only models:/"):
            tracking.load_detector(bad)
    assert tracking.load_detector(str(path))[0].threshold_ == det.threshold_  # a local model folder is fine


# --------------------------------------------------------------------------- inputs
def test_integer_column_names(table):
    from vae_anomaly import VAEOversampler

    frame = table.set_axis([0, 1, 2], axis=1)
    det = VAEDetector(random_state=0, epochs=2).fit(frame)
    assert det.decision_function(frame).shape == (600,)
    assert list(frame.columns) == [0, 1, 2]  # the caller's frame keeps its labels
    y = np.r_[np.zeros(540, int), np.ones(60, int)]
    X_res, y_res = VAEOversampler(random_state=0, epochs=2).fit_resample(frame, y)
    assert len(X_res) == 1080 and np.bincount(y_res).tolist() == [540, 540]


def test_nested_parquet_column_is_named(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from vae_anomaly.data import load_dataset

    pq.write_table(pa.table({"a": [1.0, 2.0], "tags": [[1, 2], [3]]}), tmp_path / "n.parquet")
    with pytest.raises(DataError, match="nested column") as e:
        load_dataset(tmp_path / "n.parquet")
    assert e.value.column == "tags"


def test_oversampler_bad_labels_and_strategies(table):
    from vae_anomaly import VAEOversampler

    y = np.r_[np.zeros(540), np.ones(60)]
    y_nan = y.copy()
    y_nan[7] = np.nan
    with pytest.raises(DataError, match="missing or infinite label") as e:
        VAEOversampler(epochs=1).fit_resample(table, y_nan)
    assert e.value.row == 7
    with pytest.raises(ConfigError, match="sampling_strategy"):
        VAEOversampler(sampling_strategy={5: 100}, epochs=1).fit_resample(table, y)
    with pytest.raises(ConfigError, match="sampling_strategy"):
        VAEOversampler(sampling_strategy="most", epochs=1).fit_resample(table, y)
    with pytest.raises(ConfigError, match="latent_sampling"):
        VAEOversampler(latent_sampling="uniform", epochs=1).fit_resample(table, y)


def test_unknown_and_invalid_options_are_named():
    from vae_anomaly.cli import _parse_sets

    with pytest.raises(ConfigError, match="no option 'laten_dim'; did you mean 'latent_dim'"):
        _parse_sets(["laten_dim=4"], VAEDetector)
    with pytest.raises(ConfigError, match="latent_dim must be"):
        _parse_sets(["latent_dim=0"], VAEDetector)
    with pytest.raises(ConfigError, match="latent_dim must be"):
        VAEDetector(latent_dim=0).fit(np.zeros((50, 3)))


def test_decode_refuses_malformed_code_files(tmp_path, digits):
    from vae_anomaly.generative import GenerativeModel, load_codes, save_codes

    X = digits[0][:200]
    gm = GenerativeModel.fit(X, kind="vqvae", epochs=1)
    save_codes(tmp_path / "c.npz", gm, gm.encode(X))
    raw = (tmp_path / "c.npz").read_bytes()
    (tmp_path / "trunc.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="truncated"):
        load_codes(tmp_path / "trunc.npz", gm)
    with np.load(tmp_path / "c.npz") as npz:
        header, payload = json.loads(bytes(npz["header"]).decode()), npz["payload"]

    def write(name, **changes):
        h = {**header, **changes}
        np.savez(tmp_path / name, header=np.frombuffer(json.dumps(h).encode(), dtype=np.uint8), payload=payload)
        return tmp_path / name

    with pytest.raises(DataError, match="70 bits"):
        load_codes(write("bits.npz", bits=70), gm)
    with pytest.raises(DataError, match="needs"):
        load_codes(write("huge.npz", shape=[10**9, 4], n=10**9), gm)
    with pytest.raises(DataError, match="n=5"):
        load_codes(write("n.npz", n=5), gm)


def test_torch_threads_follow_n_jobs_and_are_restored(table, monkeypatch):
    import torch

    seen = []
    before = torch.get_num_threads()
    VAEDetector(epochs=1, n_jobs=1).fit(table, callbacks=(lambda e, m: seen.append(torch.get_num_threads()),))
    assert seen == [1] and torch.get_num_threads() == before
    monkeypatch.setenv("VAE_ANOMALY_THREADS", "1")
    seen.clear()
    VAEDetector(epochs=1).fit(table, callbacks=(lambda e, m: seen.append(torch.get_num_threads()),))
    assert seen == [1]
    from vae_anomaly.device import thread_count

    monkeypatch.delenv("VAE_ANOMALY_THREADS")
    assert thread_count() == max(1, len(os.sched_getaffinity(0)) // 2)


# --------------------------------------------------------------------------- mutations that used to survive
def test_pyfunc_flags_scores_above_the_threshold(fitted, table):
    from vae_anomaly.tracking.pyfunc_model import VAEAnomalyScorer

    det, _ = fitted
    scorer = VAEAnomalyScorer()
    scorer.detector = det
    out = scorer.predict(None, table)
    assert 0 < out["is_anomaly"].sum() < len(out)
    assert (out["is_anomaly"] == (out["score"] > det.threshold_)).all()


def test_best_weights_are_restored_after_early_stopping(digits):
    import torch

    from vae_anomaly.models import ModelConfig, build_model
    from vae_anomaly.trainer import TrainConfig, train

    X = torch.from_numpy(digits[0][:300])
    torch.manual_seed(0)
    model = build_model(ModelConfig(X.shape[1:]))
    snapshots = {}

    def snapshot(epoch, _metrics):
        snapshots[epoch] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    res = train(model, X, config=TrainConfig(seed=0, epochs=200, patience=2, lr=3e-2), callbacks=[snapshot])
    assert res.stopped_early and res.best_epoch < res.epochs_run - 1
    best, last = snapshots[res.best_epoch], snapshots[res.epochs_run - 1]
    final = model.state_dict()
    assert any(not torch.equal(best[k], last[k]) for k in best)
    assert all(torch.equal(final[k], best[k]) for k in best)


def test_fpr_threshold_uses_the_held_out_rows(table):
    from vae_anomaly.scoring import threshold_from_fpr

    det = VAEDetector(random_state=0, epochs=3, threshold="fpr", target_fpr=0.05).fit(table)
    val = det.train_result_.val_index
    assert det.threshold_ == threshold_from_fpr(det.decision_scores_[val], 0.05)
    assert det.threshold_ != threshold_from_fpr(det.decision_scores_, 0.05)


def test_default_score_is_reconstruction_plus_a_positive_kl(fitted, table):
    det, _ = fitted
    recon = det.decision_function(table, method="recon")
    kl = det.decision_function(table, method="kl")
    assert (kl > 0).all()
    np.testing.assert_allclose(det.decision_function(table), recon + kl, rtol=1e-5)


# --------------------------------------------------------------------------- the command line
@pytest.fixture(scope="module")
def cli_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("climodel")
    r = cli("fit", DATA / "digits.npz", "--out", root / "m", "--epochs", "2")
    assert r.returncode == 0, r.stderr
    return root / "m"


def test_cli_fit_refuses_bad_options_and_foreign_folders(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    user_error(cli("fit", DATA / "breast_cancer.csv", "--out", tmp_path, "--epochs", "1"), "other files")
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    user_error(cli("fit", DATA / "breast_cancer.csv", "--out", ".", cwd=tmp_path), "working folder")
    user_error(cli("fit", DATA / "breast_cancer.csv", "--out", tmp_path / "m", "--epochs", "ten"), "--epochs")
    user_error(cli("fit", DATA / "breast_cancer.csv", "--out", tmp_path / "m", "--set", "foo=1"), "'foo'")
    user_error(cli("fit", DATA / "breast_cancer.csv", "--out", tmp_path / "m", "--set", "latent_dim=0"), "latent_dim")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_cli_outputs_that_cannot_be_written(cli_model, tmp_path):
    (tmp_path / "afile").write_text("x")
    user_error(cli("generate", cli_model, "-n", 4, "-o", tmp_path / "afile" / "s.npz"), "cannot write the output")
    user_error(cli("generate", cli_model, "-n", 100_000_000, "-o", tmp_path / "s.npz"), "GiB")
    user_error(cli("encode", cli_model, DATA / "digits.npz", "-o", tmp_path / "codes.csv"), "use .npz")
    user_error(cli("denoise", cli_model, DATA / "digits.npz", "--evaluate", "pink", "-o", tmp_path / "d.npz"),
               "--evaluate")
    user_error(cli("denoise", cli_model, DATA / "digits.npz", "--evaluate", "gaussian", "--level", "-5",
                   "-o", tmp_path / "d.npz"), "--level")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_cli_disk_full_cleans_up_and_says_one_line(cli_model, tmp_path):
    import resource

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit then fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    r = cli("generate", cli_model, "-n", 2000, "-o", tmp_path / "s.npz", preexec_fn=small_files)
    user_error(r, "cannot write the output")
    assert len(r.stderr.strip().splitlines()) == 1 and list(tmp_path.iterdir()) == []


def test_cli_plot_failures_leave_nothing(cli_model, tmp_path):
    one = tmp_path / "one.npz"
    with np.load(DATA / "digits.npz") as npz:
        np.savez(one, X=npz["X"][:1])
    user_error(cli("plot", cli_model, one, "--out", tmp_path / "figs"), "at least 2 rows")
    (tmp_path / "f.png").write_text("x")
    user_error(cli("plot", cli_model, DATA / "digits.npz", "--out", tmp_path / "f.png"), "names a file")
    user_error(cli("plot", cli_model, DATA / "digits.npz", "--out", tmp_path / "figs", "--method", "umap"), "umap")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png", "one.npz"]


def test_cli_serve_check_and_start_server_refusals(tmp_path):
    import socket

    import yaml

    spec = yaml.safe_load((Path(__file__).resolve().parents[1] / "flows.yaml").read_text())
    bad = json.loads(json.dumps(spec))
    bad["deployments"][0]["parameters"]["config"]["not_a_field"] = 1
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(bad))
    root = Path(__file__).resolve().parents[1]
    user_error(cli("serve", "--check", "--file", tmp_path / "a.yaml", cwd=tmp_path), "not_a_field")
    bad = json.loads(json.dumps(spec))
    bad["deployments"][0]["schedule"]["timezone"] = "Mars/Olympus"
    # Entrypoints must lie under the folder of the file: a copy of the flows beside it, never a file in the checkout.
    import shutil

    shutil.copytree(root / "pipelines", tmp_path / "pipelines", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "tz.yaml").write_text(yaml.safe_dump(bad))
    user_error(cli("serve", "--check", "--file", tmp_path / "tz.yaml", cwd=tmp_path), "Mars/Olympus")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        user_error(cli("serve", "--start-server", "--port", port, "--file", root / "flows.yaml", cwd=tmp_path),
                   "already in use")


@pytest.mark.slow
def test_cli_flow_data_error_is_one_line_not_a_traceback(tmp_path):
    bad = pd.read_csv(DATA / "breast_cancer.csv")
    bad["mean_radius"] = bad["mean_radius"].astype(object)
    bad.loc[3, "mean_radius"] = "abc"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    r = subprocess.run([str(BIN / "vae-anomaly"), "train", str(tmp_path / "bad.csv"), "--label", "diagnosis"],
                       capture_output=True, text=True, cwd=tmp_path, env=env)
    assert r.returncode == 2 and "error: file" in r.stderr and "column 'mean_radius', row 3" in r.stderr
    # Prefect's own run log lines stay; no frame of a traceback through our code reaches the console.
    assert "vae_anomaly/" not in r.stderr and "raise DataError" not in r.stderr, r.stderr
