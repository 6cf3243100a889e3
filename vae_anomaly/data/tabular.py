"""Readers and validation for tables: CSV and Parquet, one file or a folder of parts.

Readers check what pandas would silently accept (duplicated headers that it
renames to ``a.1``, text in a numeric column that turns it into ``object``,
NaN/inf) and raise :class:`DataError` naming the file, column and row.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..defaults import CHUNK_ROWS
from ..errors import DataError

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")
# An object column is a broken numeric column (rather than a categorical one)
# when at least this share of its values parse as numbers.
NUMERIC_LIKE_SHARE = 0.9


@dataclass(frozen=True)
class TableChunk:
    """A slice of a table with the file and the 0-based row of its first line."""

    frame: pd.DataFrame
    file: Path
    first_row: int


def table_files(path: str | Path) -> list[Path]:
    """The files that make up a table: the file itself or a folder's parts in name order."""
    path = Path(path)
    if not path.exists():
        raise DataError("no such file or folder", file=path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TABLE_SUFFIXES
                       and not p.name.startswith((".", "_")))
        if not files:
            raise DataError("folder holds no .csv or .parquet files", file=path)
        kinds = {f.suffix.lower() == ".csv" for f in files}
        if len(kinds) > 1:
            raise DataError("folder mixes CSV and Parquet parts", file=path)
        return files
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise DataError(f"unsupported table format {path.suffix!r} (expected .csv or .parquet)", file=path)
    return [path]


# Delimiters a CSV file may use; the header line decides (a comma wins when present).
CSV_DELIMITERS = (",", ";", "\t", "|")


def csv_delimiter(file: Path) -> str:
    """The delimiter of a CSV file, read off its header line.

    Semicolon files (Excel in many locales), tab- and pipe-separated files are read as such instead of
    as one text column; a header with none of them is a one-column table.
    """
    try:
        with open(file, encoding="utf-8", newline="") as fh:
            first = fh.readline()
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text: {exc}", file=file) from exc
    except OSError as exc:
        raise DataError(f"cannot read file: {exc}", file=file) from exc
    counts = {d: first.count(d) for d in CSV_DELIMITERS}
    if counts[","]:
        return ","
    best = max(CSV_DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def _header(file: Path) -> list[str]:
    """Column names as the file spells them (a CSV's with their spaces; see :func:`_column_names`)."""
    try:
        if file.suffix.lower() == ".csv":
            delimiter = csv_delimiter(file)
            with open(file, newline="", encoding="utf-8") as fh:
                first = next(csv.reader(fh, delimiter=delimiter), None)
            if first is None:
                raise DataError("file is empty", file=file)
            return first
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pq.ParquetFile(file).schema_arrow
        for f in schema:
            if pa.types.is_nested(f.type) or (pa.types.is_dictionary(f.type) and pa.types.is_nested(f.type.value_type)):
                raise DataError(f"nested column of type {f.type} (struct, list or map) is not supported: "
                                "flatten it into plain columns", file=file, column=f.name)
        return list(schema.names)
    except DataError:
        raise
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text: {exc}", file=file) from exc
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise DataError(f"cannot read table header: {exc}", file=file) from exc


def _column_names(file: Path, header: list[str]) -> list[str]:
    """A CSV's column names without the spaces around them (``a, b ,c`` -> a, b, c), every one of them:
    pandas' ``skipinitialspace`` removes only the leading ones, and ``b`` and ``b `` then differ."""
    return [c.strip() for c in header] if file.suffix.lower() == ".csv" else list(header)


def _check_header(file: Path, header: list[str], raw: list[str] | None = None) -> None:
    raw = header if raw is None else raw
    seen: dict[str, int] = {}
    for i, name in enumerate(header):
        if name == "":
            raise DataError(f"column {i} has an empty name", file=file)
        if name in seen:
            j = seen[name]
            spelled = (f": {raw[j]!r} and {raw[i]!r} are one name once the spaces around them are removed"
                       if raw[j] != raw[i] else "")
            raise DataError(f"duplicated column name (positions {j} and {i}){spelled}", file=file, column=name)
        seen[name] = i


def _iter_file(file: Path, chunk_rows: int, columns: Sequence[str] | None,
               names: Sequence[str] | None = None) -> Iterator[pd.DataFrame]:
    try:
        if file.suffix.lower() == ".csv":
            # Columns chosen by position and named by their stripped names (``names``), whatever spaces
            # the header has around them.
            names = list(names) if names is not None else _column_names(file, _header(file))
            wanted = sorted(names.index(c) for c in columns) if columns is not None else list(range(len(names)))
            reader = pd.read_csv(file, chunksize=chunk_rows, usecols=wanted if columns is not None else None,
                                 skipinitialspace=True, sep=csv_delimiter(file))
            for frame in reader:
                yield frame.set_axis([names[i] for i in wanted], axis=1)
        else:
            import pyarrow.parquet as pq

            pf = pq.ParquetFile(file)
            for batch in pf.iter_batches(batch_size=chunk_rows, columns=list(columns) if columns else None):
                yield _decimals_as_floats(batch).to_pandas()
    except DataError:
        raise
    except pd.errors.EmptyDataError as exc:
        raise DataError("file is empty", file=file) from exc
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        raise DataError(f"cannot parse table: {exc}", file=file) from exc
    except Exception as exc:  # pyarrow's ArrowInvalid and friends
        raise DataError(f"cannot read table: {exc}", file=file) from exc


def _decimals_as_floats(batch: Any) -> Any:
    """Parquet decimal columns as float64: pandas would hold them as Python Decimal objects, which
    neither scale nor save (a model's JSON cannot hold them)."""
    import pyarrow as pa

    if not any(pa.types.is_decimal(f.type) for f in batch.schema):
        return batch
    arrays = [a.cast(pa.float64()) if pa.types.is_decimal(a.type) else a for a in batch.columns]
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def iter_table(
    path: str | Path,
    *,
    chunk_rows: int = CHUNK_ROWS,
    columns: Sequence[str] | None = None,
    check_values: bool = True,
) -> Iterator[TableChunk]:
    """Stream a table in chunks of at most ``chunk_rows`` rows; memory stays bounded.

    Every part of a folder must have the same columns as the first.
    """
    files = table_files(path)
    reference: list[str] | None = None
    any_rows = False
    for file in files:
        raw = _header(file)
        header = _column_names(file, raw)
        _check_header(file, header, raw)
        if reference is None:
            reference = header
            if columns is not None:
                missing = [c for c in columns if c not in header]
                if missing:
                    raise DataError("column not found", file=file, column=missing[0])
        elif header != reference:
            extra = [c for c in header if c not in reference]
            gone = [c for c in reference if c not in header]
            what = f"extra column {extra[0]!r}" if extra else f"missing column {gone[0]!r}" if gone else "columns in another order"
            raise DataError(f"part differs from the first part: {what}", file=file)
        row = 0
        for frame in _iter_file(file, chunk_rows, columns, header):
            if check_values:
                check_finite(frame, file=file, first_row=row)
            any_rows = any_rows or len(frame) > 0
            yield TableChunk(frame, file, row)
            row += len(frame)
    if not any_rows:
        raise DataError("table has a header but no rows", file=path)


def read_table(
    path: str | Path,
    *,
    columns: Sequence[str] | None = None,
    numeric_columns: Sequence[str] | None = None,
    chunk_rows: int = 200_000,
) -> pd.DataFrame:
    """Read a whole table, validated. For larger-than-memory data use :func:`iter_table`."""
    frames = [c.frame for c in iter_table(path, chunk_rows=chunk_rows, columns=columns)]
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(drop=True)
    check_column_types(frame, file=path, numeric_columns=numeric_columns)
    return frame


def check_finite(frame: pd.DataFrame, *, file: str | Path | None = None, first_row: int = 0) -> None:
    """Refuse missing values and infinities, naming the first cell at fault."""
    if frame.empty:
        return
    isna = frame.isna().to_numpy()
    if isna.any():
        r, c = np.argwhere(isna)[0]
        raise DataError("missing value (NaN or empty cell)", file=file, column=frame.columns[c], row=first_row + int(r))
    num = frame.select_dtypes(include=[np.number])
    if num.shape[1]:
        values = num.to_numpy(dtype=np.float64, copy=False)
        bad = ~np.isfinite(values)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise DataError(f"infinite value {values[r, c]}", file=file, column=num.columns[c], row=first_row + int(r))


def first_non_numeric(series: pd.Series) -> tuple[int, object] | None:
    """Position and value of the first entry that does not parse as a number."""
    parsed = pd.to_numeric(series, errors="coerce")
    bad = parsed.isna() & series.notna()
    if bad.any():
        pos = int(np.flatnonzero(bad.to_numpy())[0])
        return pos, series.iloc[pos]
    return None


def check_column_types(
    frame: pd.DataFrame,
    *,
    file: str | Path | None = None,
    numeric_columns: Sequence[str] | None = None,
    first_row: int = 0,
) -> None:
    """Find text in numeric columns: named ones, and object columns that are mostly numbers."""
    for name in frame.columns:
        col = frame[name]
        if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            continue
        explicit = numeric_columns is not None and name in numeric_columns
        parsed = pd.to_numeric(col, errors="coerce")
        share = float(parsed.notna().mean()) if len(col) else 0.0
        if explicit or share >= NUMERIC_LIKE_SHARE:
            found = first_non_numeric(col)
            if found is not None:
                pos, value = found
                raise DataError(f"non-numeric value {value!r} in a numeric column", file=file, column=name,
                                row=first_row + pos)
