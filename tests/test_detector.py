"""VAEDetector: scikit-learn's estimator rules, PyOD's attributes, scores, thresholds, explanations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from vae_anomaly import VAEDetector
from vae_anomaly.errors import ConfigError, DataError, SchemaError
from vae_anomaly.scoring import detection_metrics


@pytest.fixture(scope="module")
def fitted_cancer(cancer):
    X, y = cancer
    normal = X[y == 0]
    det = VAEDetector(random_state=0, epochs=40, contamination=0.05).fit(normal.iloc[:300])
    return det, X, y


def test_sklearn_contract():
    det = VAEDetector(latent_dim=3, beta=2.0)
    c = clone(det)
    assert c.get_params() == det.get_params() and c is not det
    assert det.set_params(beta=4.0).beta == 4.0
    with pytest.raises(NotFittedError):
        det.predict(np.zeros((2, 3)))
    with pytest.raises(ConfigError, match="score_method must be one of"):
        VAEDetector(score_method="bogus").fit(np.random.rand(30, 3))


def test_fit_returns_self_and_pyod_attributes():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    det = VAEDetector(random_state=0, epochs=5, contamination=0.1)
    assert det.fit(X) is det
    assert det.decision_scores_.shape == (200,)
    assert det.labels_.mean() == pytest.approx(0.1, abs=0.02)
    assert det.threshold_ == pytest.approx(np.percentile(det.decision_scores_, 90))
    assert det.fit_predict(X).shape == (200,)
    p = det.predict_proba(X)
    assert p.shape == (200, 2) and np.allclose(p.sum(1), 1) and (p >= 0).all()


def test_scores_are_deterministic_and_detect_anomalies(fitted_cancer):
    det, X, y = fitted_cancer
    s1, s2 = det.decision_function(X), det.decision_function(X)
    np.testing.assert_array_equal(s1, s2)
    # Same row, any batch: same score.
    np.testing.assert_allclose(det.decision_function(X.iloc[[5]]), s1[[5]], rtol=1e-5)
    m = detection_metrics(y, s1, det.threshold_)
    assert m["auroc"] > 0.85, m
    assert set(m) == {"auroc", "auprc", "precision", "recall", "f1"}


@pytest.mark.parametrize("score", ["neg_elbo", "iwae", "recon", "kl"])
def test_other_score_methods(fitted_cancer, score):
    det, X, y = fitted_cancer
    s = det.decision_function(X, method=score)  # the same trained model, scored another way
    assert np.isfinite(s).all()
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y, s) > 0.7
    if score == "iwae":  # the IWAE bound on -log p(x) is tighter (smaller) than the negative ELBO
        assert np.mean(s) <= np.mean(det.decision_function(X, method="neg_elbo")) + 1e-6


def test_recon_kl_decomposes(fitted_cancer):
    det, X, _ = fitted_cancer
    total = det.decision_function(X)
    contrib, names = det.feature_contributions(X)
    assert contrib.shape == (len(X), 30) and names[0] == "mean_radius"
    kl = det.decision_function(X, method="kl")
    np.testing.assert_allclose(contrib.sum(1) + kl, total, rtol=1e-4, atol=1e-3)
    top = det.explain(X.iloc[:2], top=3)
    assert len(top) == 2 and len(top[0]) == 3 and top[0][0][1] >= top[0][1][1]


def test_explanation_points_at_the_corrupted_column(fitted_cancer):
    det, X, _ = fitted_cancer
    row = X.iloc[[0]].copy()
    row["worst_area"] = row["worst_area"] * 8
    assert det.explain(row, top=1)[0][0][0] == "worst_area"


def test_thresholds(cancer):
    X, y = cancer
    normal = X[y == 0]
    fpr_det = VAEDetector(random_state=0, epochs=20, threshold="fpr", target_fpr=0.05).fit(normal)
    clean_val = normal.iloc[:150]
    fpr_det.calibrate_threshold(clean_val, 0.05)
    assert (fpr_det.predict(clean_val).mean()) <= 0.05 + 1e-9
    fixed = VAEDetector(random_state=0, epochs=2, threshold="fixed", threshold_value=123.0).fit(normal)
    assert fixed.threshold_ == 123.0
    with pytest.raises(ConfigError, match="threshold_value"):
        VAEDetector(threshold="fixed").fit(normal)


def test_mixed_dataframe_and_bad_scoring_input():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"amount": rng.gamma(2, 10, 300), "n": rng.integers(0, 5, 300),
                          "shop": rng.choice(["a", "b", "c"], 300)})
    det = VAEDetector(random_state=0, epochs=5).fit(frame)
    assert det.decision_function(frame).shape == (300,)
    contrib, names = det.feature_contributions(frame.iloc[:4])
    assert names == ["amount", "n", "shop"] and contrib.shape == (4, 3)
    bad = frame.iloc[:3].copy()
    bad.loc[bad.index[1], "shop"] = "zzz"
    with pytest.raises(DataError, match="unseen category 'zzz'") as e:
        det.decision_function(bad)
    assert (e.value.column, e.value.row) == ("shop", 1)
    with pytest.raises(SchemaError, match="missing column"):
        det.decision_function(frame.drop(columns="n"))
    nan = frame.iloc[:3].copy()
    nan.loc[nan.index[2], "amount"] = np.nan
    with pytest.raises(DataError, match="missing value") as e:
        det.decision_function(nan)
    assert (e.value.column, e.value.row) == ("amount", 2)


def test_array_input_wrong_width_and_image_shape(digits):
    det = VAEDetector(random_state=0, epochs=2).fit(np.random.rand(50, 4))
    with pytest.raises(SchemaError, match="expected 4 columns, got 5"):
        det.decision_function(np.random.rand(3, 5))
    X, _ = digits
    img = VAEDetector(random_state=0, epochs=2).fit(X[:200])
    assert img.model_.net.conv and img.decision_function(X[:10]).shape == (10,)
    with pytest.raises(SchemaError, match="image shape"):
        img.decision_function(np.zeros((2, 1, 28, 28), np.float32))
    contrib, names = img.feature_contributions(X[:3])
    assert contrib.shape == (3, 64) and names[9] == "c0_y1_x1"


def test_image_one_class_detection(digits):
    from sklearn.metrics import roc_auc_score

    X, y = digits
    train = X[y == 0][:120]
    test = np.concatenate([X[y == 0][120:], X[y != 0][:300]])
    labels = np.r_[np.zeros((y == 0).sum() - 120), np.ones(300)]
    det = VAEDetector(random_state=0, epochs=40).fit(train)
    assert roc_auc_score(labels, det.decision_function(test)) > 0.9


def test_save_load_roundtrip(fitted_cancer, tmp_path):
    det, X, _ = fitted_cancer
    det.save(tmp_path / "det")
    back = VAEDetector.load(tmp_path / "det")
    np.testing.assert_array_equal(back.decision_function(X), det.decision_function(X))
    assert back.threshold_ == det.threshold_
    np.testing.assert_array_equal(back.predict(X), det.predict(X))
    assert back.get_params() == det.get_params()


def test_vqvae_detector(cancer):
    X, y = cancer
    det = VAEDetector(kind="vqvae", random_state=0, epochs=30).fit(X[y == 0])
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y, det.decision_function(X)) > 0.7
    with pytest.raises(ConfigError, match="IWAE"):
        clone(det).set_params(score_method="iwae").fit(X.iloc[:50])
