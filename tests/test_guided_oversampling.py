"""Issue #20: VAE-guided interpolation, the class likelihood-ratio filter, the few-row fallback, and filters
that relax instead of failing where SMOTE succeeds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vae_anomaly import VAEOversampler
from vae_anomaly.errors import DataError


@pytest.fixture(scope="module")
def cancer40():
    """The issue's case: scikit-learn's breast-cancer table with the malignant class cut to 40 rows (357 vs 40)."""
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer(as_frame=True)
    y = d.target.to_numpy()
    keep = np.r_[np.flatnonzero(y == 1), np.flatnonzero(y == 0)[:40]]
    return d.data.iloc[keep].reset_index(drop=True), y[keep]


@pytest.fixture(scope="module")
def overlap():
    """Two overlapping Gaussian classes (300 vs 60): many interpolants between minority rows fall in the
    majority's region, so a class filter has something to drop."""
    rng = np.random.default_rng(1)
    X = np.r_[rng.normal(0, 1, (300, 4)), rng.normal(1.0, 1, (60, 4))]
    return X, np.r_[np.zeros(300, int), np.ones(60, int)]


@pytest.fixture(scope="module")
def fitted(overlap):
    X, y = overlap
    return VAEOversampler(random_state=0, epochs=40).fit(X, y)


def test_the_issue_case_does_not_raise_and_reports_how(cancer40):
    X, y = cancer40
    s = VAEOversampler(epochs=5, random_state=0)
    _X_res, y_res = s.fit_resample(X, y)
    assert np.bincount(y_res).tolist() == [357, 357]
    rep = s.sampling_report_[0]
    assert rep["method"] == s.sampling_method_[0] == "vae-guided interpolation"
    assert rep["requested"] == 317 and rep["accepted"] + rep["relaxed"] == 317
    assert 0 < rep["acceptance_rate"] <= 1 and rep["drawn"] >= rep["passed"] >= rep["accepted"]
    assert rep["acceptance_rate"] == rep["passed"] / rep["drawn"] == s.acceptance_rate_


def test_relaxes_instead_of_raising_and_says_so(overlap):
    X, y = overlap
    s = VAEOversampler(random_state=0, epochs=5, min_distance=1e6, max_rounds=2)
    _, y_res = s.fit_resample(X, y)  # nothing can pass a copy distance of 1e6
    assert np.bincount(y_res).tolist() == [300, 300]
    assert s.sampling_report_[1]["relaxed"] == 240 and s.sampling_report_[1]["accepted"] == 0
    assert s.acceptance_rate_ == 0
    with pytest.raises(DataError, match="only 0 of 240"):
        VAEOversampler(random_state=0, epochs=5, min_distance=1e6, max_rounds=2, on_shortfall="raise").fit_resample(X, y)


@pytest.mark.parametrize("epochs", [1, 3, 20])
def test_cross_val_score_inside_imblearn_pipeline_at_any_epochs(cancer40, epochs):
    from imblearn.pipeline import make_pipeline
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.preprocessing import StandardScaler

    X, y = cancer40
    pipe = make_pipeline(VAEOversampler(random_state=0, epochs=epochs), StandardScaler(),
                         LogisticRegression(max_iter=1000))
    scores = cross_val_score(pipe, X, y, cv=5, scoring="f1", error_score="raise")
    assert np.isfinite(scores).all() and scores.mean() > 0.8


def _on_a_segment(points: np.ndarray, real: np.ndarray, tol: float = 1e-4) -> np.ndarray:
    """For each point: does it lie on the segment between two real rows?"""
    out = []
    for p in points:
        a = real[:, None, :]
        d = real[None, :, :] - a  # (i, j, features)
        lam = np.clip(((p - a) * d).sum(-1) / np.maximum((d * d).sum(-1), 1e-12), 0, 1)
        gap = np.linalg.norm(a + lam[..., None] * d - p, axis=-1)
        out.append(gap.min() < tol * (1 + np.abs(p).max()))
    return np.array(out)


def test_few_row_class_gets_smote_and_says_so(overlap):
    X, y = overlap
    keep = np.r_[np.arange(300), 300 + np.arange(5)]  # 5 minority rows: under few_rows=6
    Xs, ys = X[keep], y[keep]
    s = VAEOversampler(random_state=0, epochs=3)
    X_res, _y_res = s.fit_resample(Xs, ys)
    assert s.sampling_method_[1] == "smote" and s.sampling_report_[1]["requested"] == 295
    assert _on_a_segment(np.asarray(X_res)[305:], Xs[ys == 1]).all()
    from imblearn.over_sampling import SMOTE

    with pytest.raises(ValueError):  # where SMOTE at its defaults refuses, the fallback still delivers
        SMOTE(random_state=0).fit_resample(Xs, ys)
    # Below the threshold switched off, the same class goes through the model.
    s2 = VAEOversampler(random_state=0, epochs=3, few_rows=0)
    s2.fit_resample(Xs, ys)
    assert s2.sampling_method_[1] == "vae-guided interpolation"
    # One row: copies, reported as such (SMOTE itself cannot interpolate from one row).
    one = np.r_[np.arange(300), 300]
    s3 = VAEOversampler(random_state=0, epochs=2)
    X3, _ = s3.fit_resample(X[one], y[one])
    assert s3.sampling_method_[1] == "copies" and np.allclose(X3[301:], X[300], rtol=1e-5, atol=1e-5)


def test_guided_rows_are_interpolations_between_real_minority_rows(fitted, overlap):
    X, y = overlap
    rows = np.asarray(fitted.sample(100, 1))
    assert _on_a_segment(rows, X[y == 1]).all()


def test_class_filter_keeps_only_rows_the_model_puts_in_the_class(fitted):
    # Seeds from every minority row (as SMOTE), so that segments reach into the majority's region.
    on, off = (_refit(fitted, seed_selection="uniform", class_filter=flag) for flag in (True, False))
    x = on.generate(300, 1)
    assert on.sampling_report_[1]["relaxed"] == 0
    assert (on.class_llr(x.reshape(len(x), -1), 1) >= on.llr_margin).all()
    # Off, the same draws keep rows the model assigns to the majority: the filter did work.
    x_off = off.generate(300, 1)
    assert (off.class_llr(x_off.reshape(len(x_off), -1), 1) < 0).any()
    assert on.sampling_report_[1]["acceptance_rate"] < off.sampling_report_[1]["acceptance_rate"]


def _refit(fitted: VAEOversampler, **change: object) -> VAEOversampler:
    """The fitted sampler with other generation options (the fitted model and statistics shared, not retrained)."""
    other = VAEOversampler(**{**fitted.get_params(), **change})
    other.__dict__.update({k: v for k, v in fitted.__dict__.items() if k.endswith("_")})
    other.sampling_report_, other.sampling_method_ = {}, {}
    return other


def test_seed_selection_excludes_rows_the_model_gives_to_the_other_class(fitted):
    w = fitted.seed_weights(1)
    llr = fitted.row_llr_[1]
    assert 0 < (llr < 0).sum() < len(llr)  # the fixture has minority rows inside the majority's region
    assert (w[llr < 0] == 0).all() and np.isclose(w.sum(), 1)
    for option in ("uniform", "density", "boundary"):
        other = _refit(fitted, seed_selection=option)
        assert not np.allclose(other.seed_weights(1), w), option


@pytest.mark.parametrize("change", [{"seed_selection": "uniform"}, {"neighbour_space": "z"}, {"class_filter": False},
                                    {"generation": "latent"}, {"few_rows": 100}])
def test_each_option_changes_the_output(overlap, change):
    X, y = overlap
    base = VAEOversampler(random_state=0, epochs=5).fit_resample(X, y)[0][360:]
    other = VAEOversampler(random_state=0, epochs=5, **change).fit_resample(X, y)[0][360:]
    assert base.shape == other.shape and not np.allclose(base, other)


def test_mixed_columns_stay_valid():
    rng = np.random.default_rng(0)
    n = 500
    y = np.r_[np.zeros(450, int), np.ones(50, int)]
    frame = pd.DataFrame({"amount": rng.normal(20, 5, n) + 30 * y, "items": rng.integers(0, 5, n) + 5 * y,
                          "channel": np.where(y == 1, rng.choice(["web", "app"], n), rng.choice(["web", "store"], n)),
                          "member": rng.random(n) > 0.5})
    X_res, _y_res = VAEOversampler(random_state=0, epochs=10).fit_resample(frame, y)
    syn = X_res.iloc[n:]
    assert X_res.dtypes.to_dict() == frame.dtypes.to_dict()
    assert (syn["items"] == syn["items"].round()).all() and syn["items"].between(5, 9).all()
    # Categories are copied from one end of each segment: only the minority's own categories appear.
    assert set(syn["channel"]) <= {"web", "app"} and syn["member"].isin([True, False]).all()


def test_the_flow_log_line_names_method_rows_and_acceptance(cancer40):
    from types import SimpleNamespace

    from vae_anomaly.jobs.synthesize import describe_sampling, sampling_report

    X, y = cancer40
    s = VAEOversampler(epochs=2, random_state=0, min_distance=1e6, max_rounds=1)  # forces a relaxed top-up
    s.fit_resample(X, y)
    result = SimpleNamespace(oversampler=s)
    assert list(sampling_report(result)) == ["0"]  # the majority class asked for no rows: not reported
    line = describe_sampling(result)
    assert line.startswith("class '0': 317 rows by vae-guided interpolation (acceptance rate 0.00")
    assert "317 topped up after the filters relaxed" in line
