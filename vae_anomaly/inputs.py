"""Turn what a user passes (array, DataFrame, images) into model-ready float32 matrices."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .data.transform import ImageScaler, TabularTransformer
from .errors import DataError, SchemaError

Preprocessor = TabularTransformer | ImageScaler


def is_image_input(X: Any) -> bool:
    return not isinstance(X, pd.DataFrame) and np.asarray(X).ndim in (3, 4)


def check_array_input(X: Any, *, source: str | Path | None = None) -> Any:
    """What scikit-learn's ``check_array`` refuses, refused with the project's errors (and its wording,
    so scikit-learn's estimator checks recognise them): sparse, complex, non-numeric objects, 1-D input,
    no samples or no features."""
    from .errors import DataTypeError

    if isinstance(X, pd.DataFrame):
        if X.shape[1] == 0:
            raise DataError(f"0 feature(s) (shape={X.shape}) while a minimum of 1 is required.", file=source)
        return X
    if hasattr(X, "toarray") or type(X).__module__.startswith("scipy.sparse"):
        raise DataError("sparse input is not supported: pass a dense array (X.toarray()) or a DataFrame",
                        file=source)
    arr = np.asarray(X)
    if arr.dtype.kind == "c":
        raise DataError("Complex data not supported", file=source)
    if arr.dtype.kind == "O":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise DataTypeError(f"array is not numeric: {exc}", file=source) from exc
    if arr.ndim < 2:
        raise SchemaError(f"expected a 2-D table (n, d) or images, got an array shaped {arr.shape}. Reshape your data "
                          "with X.reshape(-1, 1) for one feature or X.reshape(1, -1) for one sample", file=source)
    if arr.ndim == 2 and arr.shape[1] == 0:
        raise DataError(f"0 feature(s) (shape={arr.shape}) while a minimum of 1 is required.", file=source)
    return arr


def fit_preprocessor(X: Any, *, categorical_columns: list[str] | None = None, scaling: str = "robust",
                     binary_columns: str = "gaussian", source: str | Path | None = None) -> Preprocessor:
    X = check_array_input(X, source=source)
    if isinstance(X, pd.DataFrame) or np.asarray(X).ndim == 2:
        return TabularTransformer(categorical_columns=categorical_columns, scaling=scaling,
                                  binary_columns=binary_columns).fit(X, source=source)
    arr = np.asarray(X)
    if arr.ndim in (3, 4):
        return ImageScaler().fit(arr, source=source)
    raise DataError(f"expected a table (n, d) or images (n, H, W) / (n, C, H, W), got shape {arr.shape}",
                    file=source)


def model_input(pre: Preprocessor, X: Any, *, source: str | Path | None = None, first_row: int = 0,
                owner: str = "the model") -> np.ndarray:
    """Validated float32 model input: (n, d) for tables, (n, C, H, W) for images.

    ``owner`` names the estimator in the feature-count message (scikit-learn's wording, which its checks match).
    """
    X = check_array_input(X, source=source)
    if isinstance(pre, ImageScaler):
        return pre.transform(X, source=source, first_row=first_row)
    if not isinstance(X, pd.DataFrame):
        arr = np.asarray(X)
        if arr.ndim != 2:
            raise SchemaError(f"the model expects a table (n, {len(pre.columns_)}), got an array shaped {arr.shape}. "
                              "Reshape your data", file=source)
        if arr.shape[1] != len(pre.columns_):
            raise SchemaError(f"X has {arr.shape[1]} features, but {owner} is expecting {len(pre.columns_)} "
                              f"features as input (expected {len(pre.columns_)} columns, got {arr.shape[1]})",
                              file=source)
        if not pre.from_array_:
            X = pd.DataFrame(arr, columns=pre.columns_)
    return pre.transform(X, source=source, first_row=first_row)


def likelihood_layout(pre: Preprocessor) -> list[tuple[str, int, int]]:
    if isinstance(pre, ImageScaler):
        return []
    return [("binary" if b.kind == "numeric" and pre.numeric_[b.name].get("binary") else b.kind, b.start, b.end)
            for b in pre.blocks]


def model_input_shape(pre: Preprocessor) -> tuple[int, ...]:
    if isinstance(pre, ImageScaler):
        assert pre.shape_ is not None
        return pre.shape_
    return (pre.n_features_out,)


def feature_names(pre: Preprocessor) -> list[str]:
    """Names of the per-feature score contributions: columns, or pixels as ``c{ch}_y{row}_x{col}``."""
    if isinstance(pre, TabularTransformer):
        return list(pre.columns_)
    c, h, w = pre.shape_  # type: ignore[misc]
    return [f"c{k}_y{i}_x{j}" for k in range(c) for i in range(h) for j in range(w)]
