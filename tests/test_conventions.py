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


def _pyod_twin(det, X_train):
    """PyOD's own BaseDetector on the same training scores, threshold and scores: its formulas, not ours."""
    from pyod.models.base import BaseDetector

    class Twin(BaseDetector):
        def __init__(self, contamination):  # noqa: ANN001
            super().__init__(contamination=contamination)

        def fit(self, X, y=None):  # noqa: ANN001, ANN202
            self._set_n_classes(y)
            self.decision_scores_ = det.decision_scores_.copy()
            self._process_decision_scores()
            self.threshold_ = det.threshold_  # ours (same contamination quantile up to interpolation)
            self.labels_ = (self.decision_scores_ > self.threshold_).astype(int)
            return self

        def decision_function(self, X):  # noqa: ANN001, ANN202
            return det.decision_function(X)

    return Twin(contamination=det.contamination).fit(X_train)


def test_pyod_probability_and_confidence_match_pyod(fitted):
    det, X, _ = fitted
    twin = _pyod_twin(det, X.iloc[:400])
    new = X.iloc[350:].to_numpy()  # training rows and unseen rows
    for method in ("linear", "unify"):
        np.testing.assert_allclose(det.predict_proba(new, method=method), twin.predict_proba(new, method=method),
                                   rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(det.predict_confidence(new), twin.predict_confidence(new), rtol=1e-9, atol=1e-12)
    labels, conf = det.predict(new, return_confidence=True)
    t_labels, t_conf = twin.predict(new, return_confidence=True)
    np.testing.assert_array_equal(labels, t_labels)
    np.testing.assert_allclose(conf, t_conf, rtol=1e-9, atol=1e-12)
    proba, conf2 = det.predict_proba(new, method="unify", return_confidence=True)
    np.testing.assert_allclose(conf2, conf)
    assert proba.shape == (len(new), 2) and ((proba >= 0) & (proba <= 1)).all()
    # "unify" is not "linear" (the old predict_proba ignored the method)
    assert not np.allclose(det.predict_proba(new, method="unify"), det.predict_proba(new, method="linear"))
    from vae_anomaly.errors import ConfigError

    with pytest.raises(ConfigError, match="'linear' or 'unify'"):
        det.predict_proba(new, method="sigmoid")


def test_pyod_methods_after_load(fitted, tmp_path):
    det, X, _ = fitted
    loaded = VAEDetector.load(det.save(tmp_path / "m"))
    new = X.iloc[350:]
    # linear and unify need only the saved range and moments: exact after a load
    for method in ("linear", "unify"):
        np.testing.assert_allclose(loaded.predict_proba(new, method=method), det.predict_proba(new, method=method),
                                   rtol=1e-6, atol=1e-9)
    # confidence interpolates the 101 saved quantiles instead of counting the training scores: an
    # approximation (ExCeeD's binomial is steep near the threshold), the same labels and close values
    np.testing.assert_allclose(loaded.predict_confidence(new), det.predict_confidence(new), atol=0.12)
    assert np.mean(np.abs(loaded.predict_confidence(new) - det.predict_confidence(new))) < 0.01
