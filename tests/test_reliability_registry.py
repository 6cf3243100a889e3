"""The MLflow registry: promotion decisions, races, dead servers, unknown models, no leftover copies.

Split from test_reliability.py (issue #10's reliability tests): each failed on the code before its fix.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pandas as pd
import pytest

from vae_anomaly import VAEDetector
from vae_anomaly.errors import ConfigError, ModelError


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
    from vae_anomaly import tracking
    from vae_anomaly.errors import TrackingError
    from vae_anomaly.flows._runtime import retry_server_errors_only

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
