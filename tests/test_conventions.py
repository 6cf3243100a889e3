"""scikit-learn and PyOD conventions: score_method (not `score`), a real score(), PyOD's probability and confidence."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from vae_anomaly import VAEDetector

FAST = {"epochs": 3, "batch_size": 64, "random_state": 0, "n_jobs": 1, "device": "cpu"}


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(0)
    return rng.normal(size=(160, 5)).astype(np.float32)


@pytest.fixture(scope="module")
def fitted(cancer):
    X, y = cancer
    det = VAEDetector(epochs=20, contamination=0.1, random_state=0, n_jobs=1, device="cpu").fit(X.iloc[:400])
    return det, X, y


def test_score_is_a_method_not_a_parameter(table):
    det = VAEDetector(**FAST)
    assert callable(det.score) and det.get_params()["score_method"] == "recon_kl"
    assert "score" not in det.get_params()
    det.fit(table)
    # Higher = more normal: the mean of score_samples (the negated decision function).
    assert det.score(table) == pytest.approx(float(np.mean(det.score_samples(table))))
    assert det.score(table) > det.score(table + 8.0)


def test_grid_search_and_pipeline_score(table):
    search = GridSearchCV(VAEDetector(**FAST), {"beta": [0.5, 1.0]}, cv=2).fit(table)
    assert math.isfinite(search.best_score_)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    pipe = Pipeline([("scale", StandardScaler()), ("vae", VAEDetector(**FAST))]).fit(table)
    assert math.isfinite(pipe.score(table))


def test_score_method_round_trips_and_old_saved_models_load(tmp_path, table):
    det = VAEDetector(**{**FAST, "score_method": "neg_elbo"}).fit(table)
    path = det.save(tmp_path / "m")
    again = VAEDetector.load(path)
    assert again.score_method == "neg_elbo"
    np.testing.assert_allclose(again.decision_function(table[:20]), det.decision_function(table[:20]), rtol=1e-6)
    # A model saved by 0.1.0 names the option "score": it still loads, with the same meaning.
    meta_path = path / "model.json"
    meta = json.loads(meta_path.read_text())
    params = meta["extra"]["params"]
    params["score"] = params.pop("score_method")
    meta_path.write_text(json.dumps(meta))
    old = VAEDetector.load(path)
    assert old.score_method == "neg_elbo" and callable(old.score)
    np.testing.assert_allclose(old.decision_function(table[:20]), det.decision_function(table[:20]), rtol=1e-6)


def test_clone_keeps_score_method():
    det = VAEDetector(score_method="iwae")
    assert clone(det).score_method == "iwae"
