"""What a table column may hold before it is encoded: category keys, value types, the one-hot budget.

* **Category keys.** A categorical value is matched by its text, and a number by its value: ``4``, ``4.0``,
  ``"4"`` and ``"04"`` are the one category ``"4"``. A CSV column is typed per chunk by pandas (digits only
  -> integers, digits and words -> text), so the same file gives the same keys whatever the chunking.
* **Value types.** Decimals are numbers (converted to float64). Dates and times -- datetime64 columns,
  timezone-aware timestamps, ``datetime`` objects and ISO 8601 text such as ``2024-01-05 10:00`` -- are
  refused before training, naming the column: one-hot encoding every timestamp learns nothing that carries
  over to new times. Convert them to numbers first, or name the column in ``categorical_columns`` to use
  each distinct value as a category.
* **One-hot budget.** The dense one-hot block of a matrix (rows x categories x 4 bytes) may take at most
  ``VAE_ANOMALY_ONEHOT_BUDGET_MB`` MiB (default 2048); past it a column is refused before anything is
  allocated, naming the column and its number of categories.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError

ONEHOT_BUDGET_ENV = "VAE_ANOMALY_ONEHOT_BUDGET_MB"
ONEHOT_BUDGET_MB = 2048
# A column with more distinct values than this share of its rows is likely an identifier.
IDENTIFIER_SHARE = 0.5

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")
_ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|[+-]\d{2}(:?\d{2})?)?)?")
_TRUE, _FALSE = {"True", "TRUE", "true"}, {"False", "FALSE", "false"}  # pandas' own boolean spellings
_EXACT_FLOAT_INT = 2**53


def _number_key(value: float) -> str:
    if value.is_integer() and abs(value) < _EXACT_FLOAT_INT:
        return str(int(value))
    return repr(value)


def category_key(value: Any) -> str:
    """The text a categorical value is matched (and stored) by."""
    if isinstance(value, bool | np.bool_):
        return "True" if value else "False"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating | Decimal):
        f = float(value)
        return _number_key(f) if np.isfinite(f) else str(value)
    if isinstance(value, str):
        if value in _TRUE:
            return "True"
        if value in _FALSE:
            return "False"
        if _INTEGER.fullmatch(value):
            return str(int(value))
        if _NUMBER.fullmatch(value):
            f = float(value)
            if np.isfinite(f):
                return _number_key(f)
        return value
    return str(value)


def category_keys(col: pd.Series) -> pd.Series:
    """:func:`category_key` of every value (computed once per distinct value)."""
    uniques = pd.unique(col)
    keys = {u: category_key(u) for u in uniques}
    return col.map(keys).astype(object)


def sort_categories(keys: set[str]) -> list[str]:
    """Numbers by value first, then text: the one-hot order of a fitted column."""
    def order(k: str) -> tuple[int, float, str]:
        return (0, float(k), k) if _NUMBER.fullmatch(k) else (1, 0.0, k)

    return sorted(keys, key=order)


# ------------------------------------------------------------------------------------------ value types

def _is_datetime_dtype(col: pd.Series) -> bool:
    return (pd.api.types.is_datetime64_any_dtype(col) or pd.api.types.is_timedelta64_dtype(col)
            or isinstance(col.dtype, pd.PeriodDtype))


def _datetime_refusal(name: str, what: str, file: Any) -> DataError:
    return DataError(f"holds date/time values ({what}); the model reads numbers and categories: convert the column "
                     "to numbers first (epoch seconds, hour of day, day of week), drop it, or name it in "
                     "categorical_columns to use each distinct value as a category", file=file, column=name)


def prepare_columns(frame: pd.DataFrame, *, file: str | Path | None = None,
                    categorical: Sequence[str] | None = None) -> pd.DataFrame:
    """Decimal columns as float64; date/time columns refused unless named in ``categorical``.

    Returns ``frame`` itself when nothing changes, else a shallow copy with the converted columns.
    """
    declared = set(categorical or ())
    out = frame
    for name in frame.columns:
        col = frame[name]
        if name in declared:
            continue
        if _is_datetime_dtype(col):
            raise _datetime_refusal(str(name), str(col.dtype), file)
        if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col) or not len(col):
            continue
        sample = col.iloc[:1000]
        if pd.api.types.is_object_dtype(col):
            if all(isinstance(v, Decimal) for v in sample) and all(isinstance(v, Decimal) for v in col):
                if out is frame:
                    out = frame.copy(deep=False)
                out[name] = col.astype(np.float64)
                continue
            if any(isinstance(v, _dt.date | _dt.time | _dt.timedelta | np.datetime64) for v in sample):
                raise _datetime_refusal(str(name), "Python date/time objects", file)
        uniques = pd.unique(col)
        if len(uniques) and all(isinstance(v, str) and _ISO_DATETIME.fullmatch(v.strip()) for v in uniques):
            raise _datetime_refusal(str(name), f"text such as {str(uniques[0])!r}", file)
    return out


# ------------------------------------------------------------------------------------------ budget

def onehot_budget_bytes() -> int:
    """The one-hot budget in bytes (``VAE_ANOMALY_ONEHOT_BUDGET_MB``, default 2048 MiB)."""
    raw = os.environ.get(ONEHOT_BUDGET_ENV)
    if raw is None or raw.strip() == "":
        return ONEHOT_BUDGET_MB * 2**20
    try:
        mb = float(raw)
    except ValueError:
        mb = float("nan")
    if not np.isfinite(mb) or mb <= 0:
        raise ConfigError(f"{ONEHOT_BUDGET_ENV} must be a positive number of MiB, not {raw!r}")
    return int(mb * 2**20)


def _size(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.1f} GiB" if n_bytes >= 2**30 else f"{n_bytes / 2**20:.1f} MiB"


def check_onehot_budget(n_rows: int, widths: dict[str, int], *, file: str | Path | None = None) -> None:
    """Refuse a fit whose one-hot block (``n_rows`` x the categories of ``widths``) exceeds the budget."""
    if not widths:
        return
    budget = onehot_budget_bytes()
    need = 4 * n_rows * sum(widths.values())
    if need <= budget:
        return
    name, k = max(widths.items(), key=lambda kv: kv[1])
    hint = ""
    if k > IDENTIFIER_SHARE * n_rows:
        hint = (f" Nearly every row has its own value ({k:,} in {n_rows:,} rows): it looks like an identifier -- "
                "pass it as the id column (--id) or drop it.")
    raise DataError(f"{k:,} categories: one-hot encoding {n_rows:,} rows x {sum(widths.values()):,} category columns "
                    f"would take {_size(need)}, over the budget of {_size(budget)} (set {ONEHOT_BUDGET_ENV} to "
                    f"change it), so nothing was allocated.{hint} Or drop the column, or group rare values "
                    "into one", file=file, column=name)


def check_onehot_chunk(n_rows: int, onehot_width: int, *, file: str | Path | None = None) -> None:
    """Refuse a chunk whose one-hot block would exceed the budget (scoring: use smaller chunks)."""
    if not onehot_width:
        return
    budget = onehot_budget_bytes()
    need = 4 * n_rows * onehot_width
    if need > budget:
        raise DataError(f"a chunk of {n_rows:,} rows x {onehot_width:,} category columns would take {_size(need)}, "
                        f"over the one-hot budget of {_size(budget)}: score in smaller chunks (--chunk-rows) or "
                        f"set {ONEHOT_BUDGET_ENV}", file=file)
