"""How good are synthetic rows: utility (train on them, test on real), fidelity and privacy."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def column_similarity(real: pd.DataFrame, synthetic: pd.DataFrame) -> dict[str, float]:
    """Per column: 1 - KS statistic (numeric) or 1 - total-variation distance (categorical); 1 = identical."""
    from scipy.stats import ks_2samp

    out = {}
    for col in real.columns:
        r, s = real[col], synthetic[col]
        if pd.api.types.is_numeric_dtype(r) and not pd.api.types.is_bool_dtype(r):
            out[str(col)] = 1.0 - float(ks_2samp(r.to_numpy(float), s.to_numpy(float)).statistic)
        else:
            pr = r.astype(str).value_counts(normalize=True)
            ps = s.astype(str).value_counts(normalize=True)
            idx = pr.index.union(ps.index)
            out[str(col)] = 1.0 - 0.5 * float((pr.reindex(idx, fill_value=0) - ps.reindex(idx, fill_value=0)).abs().sum())
    return out


def correlation_difference(real: pd.DataFrame, synthetic: pd.DataFrame) -> float:
    """Mean absolute difference of the Pearson correlation matrices of the numeric columns."""
    num = [c for c in real.columns if pd.api.types.is_numeric_dtype(real[c]) and not pd.api.types.is_bool_dtype(real[c])]
    if len(num) < 2:
        return 0.0
    a = np.nan_to_num(real[num].astype(float).corr().to_numpy())
    b = np.nan_to_num(synthetic[num].astype(float).corr().to_numpy())
    iu = np.triu_indices(len(num), 1)
    return float(np.mean(np.abs(a[iu] - b[iu])))


def distance_to_closest_record(reference: np.ndarray, queries: np.ndarray) -> np.ndarray:
    from sklearn.neighbors import NearestNeighbors

    return NearestNeighbors(n_neighbors=1).fit(reference).kneighbors(queries)[0][:, 0]


def privacy_dcr(train: np.ndarray, synthetic: np.ndarray, holdout: np.ndarray) -> dict[str, float]:
    """Median distance to the closest training row, for synthetic rows and for real hold-out rows.

    Synthetic rows much closer to the training rows than fresh real rows are would be copies.
    """
    ds = distance_to_closest_record(train, synthetic)
    dh = distance_to_closest_record(train, holdout)
    return {"dcr_synthetic_median": float(np.median(ds)), "dcr_holdout_median": float(np.median(dh)),
            "dcr_ratio": float(np.median(ds) / max(np.median(dh), 1e-12)),
            "share_synthetic_closer_than_p5_holdout": float(np.mean(ds < np.percentile(dh, 5)))}


def utility(X_train: Any, y_train: np.ndarray, X_test: Any, y_test: np.ndarray, minority: Any,
            classifier: str = "logreg", seed: int = 0, class_weight: str | None = None) -> dict[str, float]:
    """Train a classifier on (X_train, y_train), test on real held-out rows: minority F1, recall, balanced accuracy."""
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score, f1_score, recall_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    X_train, X_test = pd.DataFrame(X_train), pd.DataFrame(X_test)
    cat = [c for c in X_train.columns if not pd.api.types.is_numeric_dtype(X_train[c]) or
           pd.api.types.is_bool_dtype(X_train[c])]
    num = [c for c in X_train.columns if c not in cat]
    pre = make_column_transformer((StandardScaler(), num), (OneHotEncoder(handle_unknown="ignore"), cat))
    if classifier == "logreg":
        clf = LogisticRegression(max_iter=2000, class_weight=class_weight)
    elif classifier == "gbt":
        clf = HistGradientBoostingClassifier(random_state=seed, class_weight=class_weight)
    else:
        raise ValueError(f"unknown classifier {classifier!r}")
    model = make_pipeline(pre, clf).fit(X_train, y_train)
    pred = model.predict(X_test)
    # The minority class's own F1 and recall: labels=[minority] reads the same with two classes or more
    # (pos_label with the default average='binary' raises on three classes).
    return {"f1": float(f1_score(y_test, pred, labels=[minority], average="macro", zero_division=0)),
            "recall": float(recall_score(y_test, pred, labels=[minority], average="macro", zero_division=0)),
            "balanced_accuracy": float(balanced_accuracy_score(y_test, pred))}
