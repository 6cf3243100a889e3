"""VAEOversampler: imbalanced-learn's sampler rules, types kept, filters, errors; the synthesize flow end to end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.conftest import DATA
from vae_anomaly import VAEOversampler
from vae_anomaly.errors import DataError

FAST = {"epochs": 150, "device": "cpu"}


@pytest.fixture(scope="module")
def mixed():
    rng = np.random.default_rng(0)
    n = 400
    y = np.r_[np.zeros(360, int), np.ones(40, int)]
    frame = pd.DataFrame({
        "amount": np.where(y == 1, rng.normal(50, 5, n), rng.normal(20, 5, n)).round(2),
        "items": np.where(y == 1, rng.integers(5, 10, n), rng.integers(0, 5, n)).astype(np.int64),
        "channel": np.where(y == 1, rng.choice(["web", "app"], n, p=[0.8, 0.2]), rng.choice(["web", "app", "store"], n)),
        "member": rng.random(n) > 0.5,
    })
    return frame, y


def test_fit_resample_balances_and_keeps_types(mixed):
    X, y = mixed
    sampler = VAEOversampler(random_state=0, **FAST)
    X_res, y_res = sampler.fit_resample(X, y)
    assert np.bincount(y_res).tolist() == [360, 360]
    pd.testing.assert_frame_equal(X_res.iloc[:400], X)  # real rows first, untouched
    syn = X_res.iloc[400:]
    assert list(X_res.columns) == list(X.columns)
    assert X_res.dtypes.to_dict() == X.dtypes.to_dict()
    assert (syn["items"] == syn["items"].round()).all()
    assert set(syn["channel"]) <= {"web", "app", "store"}
    for col in ("amount", "items"):
        assert syn[col].between(X[col].min(), X[col].max()).all()
    # The generator learned the minority class: synthetic rows look like class 1, not class 0.
    assert syn["amount"].mean() > 40 and syn["items"].mean() > 4.5


def test_sampling_strategies(mixed):
    X, y = mixed
    _, y1 = VAEOversampler(random_state=0, sampling_strategy=0.5, **FAST).fit_resample(X, y)
    assert np.bincount(y1).tolist() == [360, 180]
    _, y2 = VAEOversampler(random_state=0, sampling_strategy={1: 100}, **FAST).fit_resample(X, y)
    assert np.bincount(y2).tolist() == [360, 100]
    with pytest.raises(ValueError):
        VAEOversampler(sampling_strategy={1: 10}, **FAST).fit_resample(X, y)  # fewer than exist: imblearn's rule


def test_inside_imblearn_pipeline(cancer):
    from imblearn.pipeline import make_pipeline
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    X, y = cancer
    pipe = make_pipeline(VAEOversampler(random_state=0, **FAST), StandardScaler(), LogisticRegression(max_iter=500))
    pipe.fit(X, y)
    assert pipe.score(X, y) > 0.9


@pytest.mark.parametrize("options", [{"min_class_rows": 1, "filter_anomalous": False, "min_distance": None},
                                     {}, {"generation": "latent"}], ids=["no-filters", "defaults", "latent"])
def test_imblearn_sampler_checks(options):
    from imblearn.utils.estimator_checks import parametrize_with_checks

    sampler = VAEOversampler(random_state=0, epochs=2, device="cpu", **options)
    # The checks that apply to an over-sampler that keeps types: run each and collect failures.
    failures = []
    decorator = parametrize_with_checks([sampler])
    params = decorator.mark.args[1] if hasattr(decorator, "mark") else decorator.args[1]
    ran = 0
    for estimator, check in params:
        name = getattr(check, "func", check).__name__
        if not name.startswith("check_samplers") and name not in ("check_target_type",):
            continue
        if name in ("check_samplers_sparse", "check_samplers_list", "check_samplers_pandas_sparse"):
            continue  # sparse input and plain lists: not supported by design (the model needs dense tensors)
        ran += 1
        try:
            check(estimator)
        except Exception as exc:  # noqa: BLE001
            failures.append(f"{name}: {exc}")
    assert ran >= 5
    assert not failures, failures


def test_images_per_class(digits):
    X, y = digits
    keep = (y == 0) | ((y == 1) & (np.arange(len(y)) % 6 == 0))
    Xs, ys = (X[keep] * 255).astype(np.uint8), y[keep]
    X_res, y_res = VAEOversampler(random_state=0, **FAST).fit_resample(Xs, ys)
    assert X_res.dtype == np.uint8 and X_res.shape[1:] == (1, 8, 8)
    assert np.bincount(y_res).tolist()[:2] == [178, 178]


def test_filters_reject_copies_and_errors(mixed):
    X, y = mixed
    with pytest.raises(DataError, match="single class"):
        VAEOversampler(**FAST).fit_resample(X, np.zeros(len(X), int))
    y_small = y.copy()
    y_small[np.flatnonzero(y == 1)[3:]] = 0
    with pytest.raises(DataError, match="class 1 has 3 rows"):
        VAEOversampler(min_class_rows=6, **FAST).fit_resample(X, y_small)
    # A copy threshold so large nothing passes: asked to raise, a clear error, not a silent shortfall.
    with pytest.raises(DataError, match="passed the quality and privacy filters"):
        VAEOversampler(min_distance=1e6, max_rounds=2, on_shortfall="raise", **FAST).fit_resample(X, y)
    s = VAEOversampler(random_state=0, **FAST)
    s.fit_resample(X, y)
    pre = s.preprocessor_
    syn = pre.transform(s.sample(200, 1))
    assert s.sampling_report_[1]["relaxed"] == 0
    d = np.min(np.linalg.norm(syn[:, None, :] - pre.transform(X)[None], axis=2), axis=1)
    assert (d >= s.min_distance_[1] - 1e-6).all()


@pytest.mark.usefixtures("prefect_server")
def test_synthesize_flow_end_to_end(mlflow_store):
    import mlflow

    from vae_anomaly.flows.synthesize import synthesize_flow
    from vae_anomaly.jobs.synthesize import SynthJobConfig

    out = mlflow_store / "balanced.parquet"
    res = synthesize_flow(SynthJobConfig(data=str(DATA / "breast_cancer.csv"), label_column="diagnosis",
                                         id_column="patient_id", output=str(out), oversampler={"epochs": 30}))
    frame = pd.read_parquet(out)
    assert frame["diagnosis"].value_counts().to_dict() == res["counts"] == {"benign": 250, "malignant": 250}
    assert frame["is_synthetic"].sum() == 250 - 148
    m = res["metrics"]
    for key in ("real_logreg_f1", "smote_logreg_f1", "vae_logreg_f1", "vae_gbt_f1", "fidelity_column_similarity",
                "privacy_dcr_ratio"):
        assert np.isfinite(m[key]), key
    run = mlflow.MlflowClient().get_run(res["mlflow_run_id"])
    assert run.data.metrics["vae_logreg_f1"] == pytest.approx(m["vae_logreg_f1"])
    # Which method made the rows, and how many the filters accepted, are on the run.
    assert run.data.params["sampling_method.malignant"] == "vae-guided interpolation"
    assert 0 < run.data.metrics["acceptance_rate_malignant"] <= 1
    assert run.data.metrics["relaxed_rows_malignant"] >= 0
    arts = {a.path for a in mlflow.MlflowClient().list_artifacts(res["mlflow_run_id"], "figures")}
    assert "figures/real_vs_synthetic.png" in arts
