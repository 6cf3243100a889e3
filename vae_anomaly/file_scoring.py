"""Batch scoring of files: chunked reads, bounded memory, atomic output, a summary with score drift.

The output holds ``row`` (0-based position in the input), the ``keep_columns``
(ids, labels: copied, not scored), ``score`` and ``is_anomaly``. One column rule (:func:`column_plan`),
shared with the pyfunc: the model's features are scored; the id columns it was fitted with are
carried through and its label columns left out (unless named in ``keep_columns``); any other
column is refused. It appears under its final name only when
every chunk was scored: a failure (bad row in chunk 7, a kill) leaves no file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .atomic import atomic_path
from .defaults import CHUNK_ROWS
from .errors import DataError, SchemaError

RESERVOIR = 100_000


@dataclass
class ScoreSummary:
    input: str
    output: str
    rows: int = 0
    flagged: int = 0
    threshold: float = 0.0
    quantiles: dict[str, float] = field(default_factory=dict)
    drift_psi: float | None = None
    drift_ks: float | None = None
    seconds: float = 0.0

    @property
    def flagged_share(self) -> float:
        return self.flagged / self.rows if self.rows else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["flagged_share"] = self.flagged_share
        d["rows_per_second"] = self.rows / self.seconds if self.seconds else None
        return d


class _Reservoir:
    """Uniform sample of a stream (Vitter's algorithm R), for quantiles in bounded memory."""

    def __init__(self, size: int, seed: int = 0) -> None:
        self.size, self.seen = size, 0
        self.buf = np.empty(size)
        self.rng = np.random.default_rng(seed)

    def add(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        room = max(0, min(len(values), self.size - self.seen))
        self.buf[self.seen:self.seen + room] = values[:room]
        rest = values[room:]
        if len(rest):
            # Row at stream position t replaces a random slot with probability size / (t + 1).
            positions = self.seen + room + np.arange(len(rest))
            slots = self.rng.integers(0, positions + 1)
            keep = slots < self.size
            self.buf[slots[keep]] = rest[keep]
        self.seen += len(values)

    def sample(self) -> np.ndarray:
        return self.buf[: min(self.seen, self.size)]


def score_drift(train_quantiles: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """Population stability index over the training deciles, and the KS distance to the training scores."""
    q = np.asarray(train_quantiles)
    edges = np.unique(q[:: max(1, (len(q) - 1) // 10)])
    if len(edges) < 3:
        return 0.0, 0.0
    inner = edges[1:-1]
    expected = np.diff(np.searchsorted(q, np.r_[-np.inf, inner, np.inf], side="right")) / len(q)
    actual = np.bincount(np.searchsorted(inner, scores, side="right"), minlength=len(inner) + 1) / max(1, len(scores))
    e, a = np.clip(expected, 1e-4, None), np.clip(actual, 1e-4, None)
    psi = float(np.sum((a - e) * np.log(a / e)))
    grid = np.sort(scores)
    cdf_new = np.arange(1, len(grid) + 1) / len(grid)
    cdf_train = np.interp(grid, q, np.linspace(0, 1, len(q)))
    return psi, float(np.max(np.abs(cdf_new - cdf_train)))


def _writer(path: Path, fmt: str, metadata: dict[bytes, bytes] | None = None, schema: Any = None):  # noqa: ANN202
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        from .lineage import SCORES_KEY, ScoresHash
        from .outputs import conform

        # One schema for the whole file: given (from Parquet inputs' footers) or fixed by the first chunk.
        state: dict[str, Any] = {"schema": None if schema is None else schema.with_metadata(metadata or {})}
        scores_hash = ScoresHash()  # lands in the footer at close, for `lineage` to verify the scores

        def write(frame: pd.DataFrame, file: Any = None, row: int | None = None) -> None:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if state["schema"] is None:
                state["schema"] = table.schema.with_metadata({**(table.schema.metadata or {}), **(metadata or {})})
            table = conform(table, state["schema"], file=file, row=row)
            if "w" not in state:
                state["w"] = pq.ParquetWriter(path, state["schema"])
            state["w"].write_table(table)
            scores_hash.update(frame["row"], frame["score"], frame["is_anomaly"])

        def close() -> None:
            if "w" not in state and state["schema"] is not None:  # no rows: still a readable file
                state["w"] = pq.ParquetWriter(path, state["schema"])
            if "w" in state:
                state["w"].add_key_value_metadata({SCORES_KEY.decode(): scores_hash.hexdigest()})
                state["w"].close()

        return write, close
    fh = open(path, "w", newline="")
    first = {"header": True}

    def write_csv(frame: pd.DataFrame, file: Any = None, row: int | None = None) -> None:
        frame.to_csv(fh, header=first["header"], index=False)
        first["header"] = False

    return write_csv, fh.close


def output_format(path: str | Path) -> str:
    from .outputs import check_output

    return "csv" if check_output(path, "table").suffix.lower() == ".csv" else "parquet"


def score_file(detector: Any, input_path: str | Path, output_path: str | Path, *, keep_columns: Sequence[str] = (),
               chunk_rows: int = CHUNK_ROWS, verbose: bool = False, overwrite: bool = False,
               lineage: dict[str, Any] | None = None) -> ScoreSummary:
    """Score a table (CSV/Parquet file or folder, chunked) or an image source; write scores atomically.

    An existing output is refused unless ``overwrite``; a lock beside the output refuses a second
    job writing the same file at the same time (instead of one silently replacing the other).
    """
    from .atomic import exclusive_lock
    from .outputs import check_keep_columns, check_name_length

    keep_columns = check_keep_columns(keep_columns, getattr(detector.preprocessor_, "columns_", []) or [])
    output_path = Path(output_path)
    check_name_length(output_path)  # before the lock file beside it is named
    with exclusive_lock(output_path.parent / f".{output_path.name}.lock", what=str(output_path)):
        from .lineage import build_record
        from .outputs import check_scores_output

        check_scores_output(output_path, input_path, overwrite=overwrite, folder=False)

        record = lineage or build_record(detector=detector, input_path=input_path)
        return _score_file(detector, input_path, output_path, keep_columns=keep_columns, chunk_rows=chunk_rows,
                           verbose=verbose, lineage=record)


def column_plan(detector: Any, present: Sequence[str], keep_columns: Sequence[str] = ()) -> tuple[list[str], list[str]]:
    """``(kept, dropped)`` columns for an input holding ``present``: ``keep_columns``, then the model's
    own id columns that are present (carried through); the model's label columns that are present
    and not kept are dropped. Every other column must be a feature (see :func:`check_columns`)."""
    known = getattr(detector, "data_columns_", None) or {}
    keep = list(keep_columns)
    keep += [c for c in known.get("id", []) if c in present and c not in keep]
    drop = [c for c in known.get("label", []) if c in present and c not in keep]
    return keep, drop


def check_columns(frame: pd.DataFrame, detector: Any, keep: Sequence[str], drop: Sequence[str] = (),
                  file: Any = None) -> None:
    """Refuse a missing feature or kept column, and any column the model has never seen."""
    columns = detector.preprocessor_.columns_
    _check_schema(frame, set(columns) | set(keep) | set(drop), columns, list(keep), file)


def score_chunk(detector: Any, frame: pd.DataFrame, *, row: int, keep: Sequence[str] = (), drop: Sequence[str] = (),
                file: Any = None, first_row: int = 0) -> pd.DataFrame:
    """The scores of one chunk, as every scorer writes them (this file's and the Dask workers').

    Columns: ``row`` (int64, numbered from ``row``: the chunk's position in the whole input), the ``keep``
    columns (copied, not scored), ``score`` and ``is_anomaly`` (int8). The ``drop`` columns (the model's
    label columns) are left out and the rest is scored; ``file`` and ``first_row`` (the chunk's first row
    within ``file``) name a bad value's place in an error. The caller checks the columns first.
    """
    from .scoring import flag

    kept = {c: frame[c].to_numpy() for c in keep}
    features = frame.drop(columns=[*keep, *(c for c in drop if c in frame.columns)])
    scores = detector.decision_function(features, source=file, first_row=first_row)
    out = pd.DataFrame({"row": np.arange(row, row + len(frame), dtype=np.int64)})
    for c, values in kept.items():
        out[c] = values
    out["score"] = scores
    out["is_anomaly"] = flag(scores, detector.threshold_).astype(np.int8)
    return out


def _score_file(detector: Any, input_path: str | Path, output_path: Path, *, keep_columns: Sequence[str],
                chunk_rows: int, verbose: bool, lineage: dict[str, Any]) -> ScoreSummary:
    import itertools
    import time

    from .data.tabular import iter_table
    from .data.transform import TabularTransformer
    from .progress import progress_bar
    from .scoring import flag

    t0 = time.perf_counter()
    input_path, output_path = Path(input_path), Path(output_path)
    fmt = output_format(output_path)
    if output_path.resolve() == input_path.resolve():
        raise DataError("the output would overwrite the input", file=output_path)
    summary = ScoreSummary(str(input_path), str(output_path), threshold=float(detector.threshold_))
    reservoir = _Reservoir(RESERVOIR)
    pre = detector.preprocessor_
    chunks: Any = iter(())
    keep_columns, drop = list(keep_columns), []
    if isinstance(pre, TabularTransformer):
        # The first chunk tells which of the model's id and label columns this input has.
        chunks = iter_table(input_path, chunk_rows=chunk_rows, check_values=False)
        first = next(chunks, None)
        if first is not None:
            keep_columns, drop = column_plan(detector, [str(c) for c in first.frame.columns], keep_columns)
            chunks = itertools.chain([first], chunks)
    with atomic_path(output_path) as tmp:
        import json

        from .lineage import PARQUET_KEY

        write, close = _writer(tmp, fmt, {PARQUET_KEY: json.dumps(lineage).encode()},
                               _parquet_schema(input_path, keep_columns) if fmt == "parquet" else None)
        try:
            if isinstance(pre, TabularTransformer):
                keep = list(keep_columns)
                expected = set(pre.columns_) | set(keep) | set(drop)
                with progress_bar(None, "scoring", enabled=verbose) as bar:
                    for chunk in chunks:
                        frame = chunk.frame
                        if chunk.first_row == 0 or len(frame.columns) != len(expected):
                            _check_schema(frame, expected, pre.columns_, keep, chunk.file)
                        out = score_chunk(detector, frame, row=summary.rows, keep=keep, drop=drop, file=chunk.file,
                                          first_row=chunk.first_row)
                        write(out, chunk.file, chunk.first_row)
                        summary.rows += len(out)
                        summary.flagged += int(out["is_anomaly"].sum())
                        reservoir.add(out["score"].to_numpy())
                        bar.advance(f"scored {summary.rows:,} rows")
            else:
                from .data import load_dataset

                ds = load_dataset(input_path)
                scores = detector.decision_function(ds.X, source=input_path)
                out = pd.DataFrame({"row": np.arange(len(scores)), "score": scores,
                                    "is_anomaly": flag(scores, summary.threshold).astype(np.int8)})
                write(out)
                summary.rows, summary.flagged = len(scores), int(out["is_anomaly"].sum())
                reservoir.add(scores)
        finally:
            close()
        if fmt == "csv":
            # The sidecar (with the CSV's own hash) goes in place before the CSV: whatever a kill leaves,
            # a CSV in place always has the record that says it is ours and what it held.
            from .atomic import write_text_atomic
            from .lineage import sidecar_path
            from .persist import file_sha256

            write_text_atomic(sidecar_path(output_path), json.dumps({**lineage, "scores_sha256": file_sha256(tmp)},
                                                                    indent=1))
    sample = reservoir.sample()
    summary.quantiles = {f"p{p}": float(np.percentile(sample, p)) for p in (1, 5, 25, 50, 75, 95, 99)}
    train_q = getattr(detector, "train_score_quantiles_", None)
    if train_q is not None and len(sample):
        summary.drift_psi, summary.drift_ks = score_drift(np.asarray(train_q), sample)
    summary.seconds = time.perf_counter() - t0
    return summary


def _parquet_schema(input_path: str | Path, keep: Sequence[str]) -> Any:
    """The scores' schema fixed from a Parquet input's footers (None for other inputs: the first chunk fixes it)."""
    from .data.tabular import table_files
    from .outputs import scores_schema

    try:
        files = table_files(input_path)
    except DataError:
        return None  # an image source, or nothing there: the reader names the problem
    if not keep or not files or any(f.suffix.lower() not in (".parquet", ".pq") for f in files):
        return None
    return scores_schema(files, keep)


def _check_schema(frame: pd.DataFrame, expected: set[str], columns: list[str], keep: list[str], file: Path) -> None:
    have = [str(c) for c in frame.columns]
    for c in keep:
        if c not in have:
            raise SchemaError("column to keep not found", file=file, column=c)
    missing = [c for c in columns if c not in have]
    if missing:
        raise SchemaError(f"the model's column is missing (model columns: {columns[:10]}...)", file=file,
                          column=missing[0])
    extra = [c for c in have if c not in expected]
    if extra:
        raise SchemaError("column unknown to the model: neither one of its features nor the id or label "
                          "column it was fitted with (keep it with keep_columns / --keep, or drop it)", file=file,
                          column=extra[0])
