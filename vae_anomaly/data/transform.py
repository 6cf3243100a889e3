"""Fitted preprocessing: tables to model space and back, images to [0, 1].

The transformers are plain data (JSON in, JSON out) so a saved model carries
its preprocessing without pickles, and ``inverse_transform`` restores the
original column names, dtypes and categories for synthetic rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError, SchemaError
from ..options import BinaryColumns, Scaling, check, select
from .columns import category_key, category_keys, check_onehot_budget, check_onehot_chunk, prepare_columns, sort_categories
from .tabular import check_column_types, check_finite, first_non_numeric

_OPTIONS = select("scaling", "binary_columns", "categorical_columns")

@dataclass
class Block:
    """One original column's slice of the transformed matrix."""

    name: str
    kind: Literal["numeric", "categorical"]
    start: int
    end: int


@dataclass
class TabularTransformer:
    """Scale numeric columns, one-hot encode categorical ones; exact inverse.

    ``scaling="robust"`` (the default) centres on the median and divides by the
    IQR-based spread: anomaly-detection training data is contaminated, and a
    mean/std fitted on it is pulled by the very outliers we want to find.
    """

    numeric_columns: list[str] | None = None
    categorical_columns: list[str] | None = None
    scaling: Scaling = "robust"
    # "bernoulli": a numeric column holding exactly two values is a 0/1 flag (lower value 0, upper 1) and the
    # model gives it a Bernoulli likelihood. Under a Gaussian with a learned variance, a rare flag value costs
    # a row hundreds of nats and decides its anomaly score alone; under a Bernoulli it costs -log p(flag).
    binary_columns: BinaryColumns = "gaussian"
    columns_: list[str] = field(default_factory=list)
    numeric_: dict[str, dict[str, Any]] = field(default_factory=dict)
    categorical_: dict[str, dict[str, Any]] = field(default_factory=dict)
    from_array_: bool = False

    # ---------------------------------------------------------------- fitting
    def fit(self, data: pd.DataFrame | np.ndarray, *, source: str | Path | None = None) -> TabularTransformer:
        # A public class: its own arguments are checked by the options table's rows (the estimators' rule).
        check("TabularTransformer", {"scaling": self.scaling, "binary_columns": self.binary_columns,
                                     "categorical_columns": self.categorical_columns}, _OPTIONS)
        if source is None and isinstance(data, pd.DataFrame):
            source = data.attrs.get("source")  # set by load_dataset: errors name the file the table came from
        frame = self._as_frame(data, source, fitting=True)
        if len(frame) == 0:
            raise DataError("no rows to fit on", file=source)
        frame = prepare_columns(frame, file=source, categorical=self.categorical_columns)
        check_finite(frame, file=source)
        check_column_types(frame, file=source, numeric_columns=self.numeric_columns)
        self.columns_ = [str(c) for c in frame.columns]
        for given in (self.numeric_columns or []) + (self.categorical_columns or []):
            if given not in self.columns_:
                raise DataError("column not found in the data", file=source, column=given)
        self.numeric_, self.categorical_ = {}, {}
        categorical = {name: sort_categories(set(category_keys(frame[name]).unique()))
                       for name in self.columns_ if self._is_categorical(name, frame[name])}
        # Before any matrix exists: a column of 50 000 distinct values must not become a dense block first.
        check_onehot_budget(len(frame), {name: len(cats) for name, cats in categorical.items()}, file=source)
        for name in self.columns_:
            col = frame[name]
            if name in categorical:
                # Categories are stored as text and matched by category_key: the same value read as 4, 4.0
                # or "4" (pandas types CSV chunks one by one) is one category, and the JSON always saves.
                self.categorical_[name] = {"categories": categorical[name], "dtype": str(col.dtype)}
            else:
                vals = pd.to_numeric(col).to_numpy(dtype=np.float64)
                center, scale = self._scale_params(vals)
                two = np.unique(vals[:10_000]) if self.binary_columns == "bernoulli" else ()
                binary = len(two) == 2 and len(np.unique(vals)) == 2
                if binary:
                    center, scale = float(two[0]), float(two[1] - two[0])
                self.numeric_[name] = {"binary": True} if binary else {}
                self.numeric_[name].update({
                    "center": center, "scale": scale, "min": float(vals.min()), "max": float(vals.max()),
                    "dtype": str(col.dtype), "integer": bool(pd.api.types.is_integer_dtype(col)),
                })
        return self

    def _is_categorical(self, name: str, col: pd.Series) -> bool:
        if self.categorical_columns is not None and name in self.categorical_columns:
            return True
        if self.numeric_columns is not None and name in self.numeric_columns:
            return False
        return not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)

    def _scale_params(self, vals: np.ndarray) -> tuple[float, float]:
        if self.scaling == "minmax":
            lo, hi = float(vals.min()), float(vals.max())
            return lo, (hi - lo) or 1.0
        if self.scaling == "robust":
            q25, q50, q75 = np.percentile(vals, [25, 50, 75])
            scale = (q75 - q25) / 1.349  # IQR of a standard normal: robust estimate of sigma
            if scale <= 1e-12:
                scale = vals.std()
            return float(q50), float(scale) if scale > 1e-12 else 1.0
        std = float(vals.std())
        return float(vals.mean()), std if std > 1e-12 else 1.0

    # ---------------------------------------------------------------- layout
    @property
    def is_fitted(self) -> bool:
        return bool(self.columns_)

    @property
    def blocks(self) -> list[Block]:
        out, pos = [], 0
        for name in self.columns_:
            if name in self.numeric_:
                out.append(Block(name, "numeric", pos, pos + 1))
                pos += 1
            else:
                width = len(self.categorical_[name]["categories"])
                out.append(Block(name, "categorical", pos, pos + width))
                pos += width
        return out

    @property
    def n_features_out(self) -> int:
        return self.blocks[-1].end if self.columns_ else 0

    # ---------------------------------------------------------------- transform
    def _as_frame(self, data: Any, source: Any, *, fitting: bool = False) -> pd.DataFrame:
        if isinstance(data, pd.DataFrame):
            if not all(isinstance(c, str) for c in data.columns):
                # Integer (or other) column labels: name columns by their text, on a shallow copy --
                # the caller's frame keeps its own labels.
                data = data.set_axis([str(c) for c in data.columns], axis=1)
            if data.columns.duplicated().any():
                dup = data.columns[data.columns.duplicated()][0]
                raise DataError("duplicated column name", file=source, column=dup)
            if fitting:
                self.from_array_ = False
            return data
        arr = np.asarray(data)
        if arr.ndim != 2:
            raise DataError(f"expected a 2-D table, got an array shaped {arr.shape}", file=source)
        if fitting:
            self.from_array_ = True
            names = [f"x{i}" for i in range(arr.shape[1])]
        else:
            names = self.columns_
            if arr.shape[1] != len(names):
                raise SchemaError(f"X has {arr.shape[1]} features, but the model is expecting {len(names)} features "
                                  f"as input (expected {len(names)} columns, got {arr.shape[1]})", file=source)
        if arr.dtype.kind not in "biuf":
            try:
                arr = arr.astype(np.float64)
            except (TypeError, ValueError) as exc:
                raise DataError(f"array is not numeric: {exc}", file=source) from exc
        return pd.DataFrame(arr, columns=names)

    def transform(self, data: pd.DataFrame | np.ndarray, *, source: str | Path | None = None,
                  first_row: int = 0) -> np.ndarray:
        """Validate ``data`` against the fitted schema and return a float32 matrix."""
        if not self.is_fitted:
            raise ConfigError("TabularTransformer is not fitted")
        frame = self._as_frame(data, source)
        have = [str(c) for c in frame.columns]
        missing = [c for c in self.columns_ if c not in have]
        if missing:
            raise SchemaError("missing column", file=source, column=missing[0])
        extra = [c for c in have if c not in self.columns_]
        if extra:
            raise SchemaError("unexpected extra column (not seen at fit time)", file=source, column=extra[0])
        if len(frame) == 0:
            raise DataError("no rows", file=source)
        frame = prepare_columns(frame, file=source, categorical=list(self.categorical_))
        check_onehot_chunk(len(frame), sum(len(c["categories"]) for c in self.categorical_.values()), file=source)
        out = np.empty((len(frame), self.n_features_out), dtype=np.float32)
        for block in self.blocks:
            col = frame[block.name]
            if col.isna().any():
                raise DataError("missing value (NaN or empty cell)", file=source, column=block.name,
                                row=first_row + int(np.flatnonzero(col.isna().to_numpy())[0]))
            if block.kind == "numeric":
                p = self.numeric_[block.name]
                vals = pd.to_numeric(col, errors="coerce")
                if vals.isna().any():
                    pos, value = first_non_numeric(col)  # type: ignore[misc]
                    raise DataError(f"non-numeric value {value!r} in a numeric column", file=source,
                                    column=block.name, row=first_row + pos)
                v = vals.to_numpy(dtype=np.float64)
                if not np.isfinite(v).all():
                    raise DataError("infinite value (inf)", file=source, column=block.name,
                                    row=first_row + int(np.flatnonzero(~np.isfinite(v))[0]))
                out[:, block.start] = (v - p["center"]) / p["scale"]
            else:
                cats = self.categorical_[block.name]["categories"]
                keys = category_keys(col)
                # Codes as intp: pandas sizes categorical codes to the category count (int8 below 128),
                # and start + code computed in int8 wrapped past 127 columns.
                found = keys.map(self._category_index(block.name)).to_numpy(dtype=np.float64)
                if np.isnan(found).any():
                    pos = int(np.flatnonzero(np.isnan(found))[0])
                    raise DataError(f"unseen category {keys.iloc[pos]!r} (known: {cats[:10]})", file=source,
                                    column=block.name, row=first_row + pos)
                codes = found.astype(np.intp)
                out[:, block.start:block.end] = 0.0
                out[np.arange(len(frame)), block.start + codes] = 1.0
        return out

    def _category_index(self, name: str) -> dict[str, int]:
        index: dict[str, int] = {}
        for i, key in enumerate(self.categorical_[name]["categories"]):
            index.setdefault(key, i)  # a model saved before keys were text may list 4 and "4": first wins
        return index

    def inverse_transform(self, matrix: np.ndarray) -> pd.DataFrame:
        """Back to the original columns, dtypes and categories; numeric values clipped to the seen range."""
        matrix = np.asarray(matrix, dtype=np.float64)
        cols: dict[str, Any] = {}
        for block in self.blocks:
            if block.kind == "numeric":
                p = self.numeric_[block.name]
                v = np.clip(matrix[:, block.start] * p["scale"] + p["center"], p["min"], p["max"])
                if p["integer"]:
                    v = np.rint(v)
                cols[block.name] = pd.Series(v).astype(p["dtype"]) if not self.from_array_ else v
            else:
                info = self.categorical_[block.name]
                idx = matrix[:, block.start:block.end].argmax(axis=1)
                values = [info["categories"][i] for i in idx]
                dtype = info["dtype"]
                series = pd.Series(values)
                if dtype == "category":
                    series = series.astype(pd.CategoricalDtype(list(dict.fromkeys(info["categories"]))))
                elif dtype == "bool":
                    series = series.map({"True": True, "False": False}).astype(bool)
                elif dtype != "object":
                    try:
                        series = series.astype(dtype)
                    except (TypeError, ValueError):
                        pass
                cols[block.name] = series
        frame = pd.DataFrame(cols)
        return frame

    # ---------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "tabular", "scaling": self.scaling, "columns": self.columns_, "numeric": self.numeric_,
            "categorical": self.categorical_, "from_array": self.from_array_,
            "numeric_columns": self.numeric_columns, "categorical_columns": self.categorical_columns,
            "binary_columns": self.binary_columns,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TabularTransformer:
        t = cls(d.get("numeric_columns"), d.get("categorical_columns"), d["scaling"],
                d.get("binary_columns", "gaussian"))
        t.columns_, t.numeric_, t.categorical_ = list(d["columns"]), dict(d["numeric"]), dict(d["categorical"])
        # Models saved before categories were stored as text hold JSON numbers: same keys, same order.
        t.categorical_ = {name: {**info, "categories": [category_key(c) for c in info["categories"]]}
                          for name, info in t.categorical_.items()}
        t.from_array_ = bool(d.get("from_array", False))
        return t


@dataclass
class ImageScaler:
    """Checks one image shape (C, H, W) and scales pixel values to [0, 1]."""

    shape_: tuple[int, int, int] | None = None
    divisor_: float = 1.0

    def fit(self, images: np.ndarray, *, source: str | Path | None = None) -> ImageScaler:
        from .images import to_nchw

        images = to_nchw(np.asarray(images), source=source)
        if len(images) == 0:
            raise DataError("no images to fit on", file=source)
        self.shape_ = tuple(int(s) for s in images.shape[1:])  # type: ignore[assignment]
        if images.dtype == np.uint8:
            self.divisor_ = 255.0
        elif images.dtype == np.uint16:
            self.divisor_ = 65535.0  # 16-bit pixels (a 16-bit PNG): the type's full range, not the sample's max
        else:
            mx = float(np.max(images))
            mn = float(np.min(images))
            if not np.isfinite(mx) or not np.isfinite(mn):
                raise DataError("NaN or infinite pixel value", file=source)
            if mn < 0:
                raise DataError(f"negative pixel value {mn}; expected [0, 1] or [0, 255]", file=source)
            self.divisor_ = 1.0 if mx <= 1.0 else 255.0 if mx <= 255.0 else mx
        return self

    def transform(self, images: np.ndarray, *, source: str | Path | None = None, first_row: int = 0) -> np.ndarray:
        from .images import to_nchw

        if self.shape_ is None:
            raise ConfigError("ImageScaler is not fitted")
        arr = np.asarray(images)
        if arr.ndim not in (3, 4):
            raise SchemaError(f"expected images shaped like {self.shape_}, got an array shaped {arr.shape}",
                              file=source)
        arr = to_nchw(arr, source=source)
        if tuple(arr.shape[1:]) != self.shape_:
            raise SchemaError(f"image shape (C, H, W) {tuple(arr.shape[1:])} differs from the model's {self.shape_}",
                              file=source)
        # Integer pixels (and floats above 1) are in the fitted range; floats within [0, 1]
        # are already unit-scaled (a model's own output, a denoiser's input) and pass as they are.
        divisor = self.divisor_
        if arr.dtype.kind == "f" and arr.size and float(np.nanmax(arr)) <= 1.0:
            divisor = 1.0
        elif arr.dtype == np.uint8 and divisor == 65535.0:
            divisor = 255.0  # 8-bit pixels for a 16-bit model: the same brightness on their own scale
        elif arr.dtype == np.uint16 and divisor == 255.0:
            divisor = 65535.0
        out = arr.astype(np.float32) / np.float32(divisor)
        flat = out.reshape(len(out), -1)
        bad = ~np.isfinite(flat).all(axis=1)
        if bad.any():
            raise DataError("NaN or infinite pixel value", file=source, index=first_row + int(np.flatnonzero(bad)[0]))
        np.clip(out, 0.0, 1.0, out=out)
        return out

    def inverse_transform(self, images: np.ndarray) -> np.ndarray:
        arr = np.clip(np.asarray(images, dtype=np.float32), 0, 1)
        if self.divisor_ == 65535.0:
            return np.rint(arr * np.float32(65535)).astype(np.uint16)
        return np.rint(arr * 255).astype(np.uint8) if self.divisor_ == 255.0 else arr

    @property
    def n_features_out(self) -> int:
        assert self.shape_ is not None
        return int(np.prod(self.shape_))

    def to_dict(self) -> dict[str, Any]:
        return {"type": "image", "shape": list(self.shape_ or ()), "divisor": self.divisor_}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ImageScaler:
        return cls(tuple(d["shape"]), float(d["divisor"]))  # type: ignore[arg-type]


def transformer_from_dict(d: dict[str, Any]) -> TabularTransformer | ImageScaler:
    """Rebuild saved preprocessing; malformed or degenerate entries (a scale of 0, NaN) are refused."""
    from ..errors import ModelError

    if not isinstance(d, dict):
        raise ModelError("preprocessing is missing or not an object")
    try:
        if d.get("type") == "tabular":
            t = TabularTransformer.from_dict(d)
            for name, p in t.numeric_.items():
                for key in ("center", "scale", "min", "max"):
                    v = p[key]
                    if isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v):
                        raise ModelError(f"preprocessing of column {name!r}: {key} is {v!r}, not a finite number")
                if p["scale"] <= 0:
                    raise ModelError(f"preprocessing of column {name!r}: scale {p['scale']} must be positive")
            if [b for b in t.columns_ if b not in t.numeric_ and b not in t.categorical_]:
                raise ModelError("preprocessing lists a column with neither numeric nor categorical parameters")
            return t
        if d.get("type") == "image":
            t2 = ImageScaler.from_dict(d)
            if len(t2.shape_ or ()) != 3 or not np.isfinite(t2.divisor_) or t2.divisor_ <= 0:
                raise ModelError(f"image preprocessing is malformed: shape {t2.shape_}, divisor {t2.divisor_}")
            return t2
    except ModelError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"preprocessing is malformed ({type(exc).__name__}: {exc})") from exc
    raise ModelError(f"unknown preprocessing type {d.get('type')!r}")
