"""Turn what a user passes (array, DataFrame, images) into model-ready float32 matrices."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .data.transform import ImageScaler, TabularTransformer
from .errors import DataError

Preprocessor = TabularTransformer | ImageScaler


def is_image_input(X: Any) -> bool:
    return not isinstance(X, pd.DataFrame) and np.asarray(X).ndim in (3, 4)


def fit_preprocessor(X: Any, *, categorical_columns: list[str] | None = None, scaling: str = "robust",
                     source: str | Path | None = None) -> Preprocessor:
    if isinstance(X, pd.DataFrame) or np.asarray(X).ndim == 2:
        return TabularTransformer(categorical_columns=categorical_columns, scaling=scaling).fit(X, source=source)
    arr = np.asarray(X)
    if arr.ndim in (3, 4):
        return ImageScaler().fit(arr, source=source)
    raise DataError(f"expected a table (n, d) or images (n, H, W) / (n, C, H, W), got shape {arr.shape}",
                    file=source)


def model_input(pre: Preprocessor, X: Any, *, source: str | Path | None = None, first_row: int = 0) -> np.ndarray:
    """Validated float32 model input: (n, d) for tables, (n, C, H, W) for images."""
    if isinstance(pre, ImageScaler):
        return pre.transform(X, source=source, first_row=first_row)
    if not isinstance(X, pd.DataFrame):
        arr = np.asarray(X)
        if arr.ndim != 2:
            from .errors import SchemaError

            raise SchemaError(f"the model expects a table (n, {len(pre.columns_)}), got an array shaped {arr.shape}",
                              file=source)
        if not pre.from_array_ and arr.shape[1] == len(pre.columns_):
            X = pd.DataFrame(arr, columns=pre.columns_)
    return pre.transform(X, source=source, first_row=first_row)


def likelihood_layout(pre: Preprocessor) -> list[tuple[str, int, int]]:
    if isinstance(pre, ImageScaler):
        return []
    return [(b.kind, b.start, b.end) for b in pre.blocks]


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
