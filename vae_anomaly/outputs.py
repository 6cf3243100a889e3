"""Writing results to files: one writer that picks the format from the suffix, always atomically.

Tables go to ``.parquet`` or ``.csv``; image arrays to ``.npz`` (every array) or ``.png`` (a grid
for looking at). A suffix that does not fit what is written is refused before anything is written.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_path
from .errors import DataError, SchemaError

TABLE_SUFFIXES = (".parquet", ".csv", ".pq")
ARRAY_SUFFIXES = (".npz", ".png")
GRID_MAX = 64  # a grid past 64 images is unreadable (and slow to draw); .npz keeps them all


def check_name_length(path: str | Path) -> None:
    """Refuse a path the file system cannot name (a 300-character folder or file name) before any work,
    instead of an OSError traceback when the output is finally written."""
    import os

    path = Path(path).absolute()
    limit = 255
    with contextlib.suppress(OSError, ValueError):
        existing = next(p for p in [path, *path.parents] if p.exists())
        limit = os.pathconf(existing, "PC_NAME_MAX")
    for part in path.parts:
        if len(os.fsencode(part)) > limit:
            raise DataError(f"file name too long: {len(part)} characters in {part[:40]}... (this file system "
                            f"allows {limit}); choose a shorter name", file=str(path)[:300])
    if len(os.fsencode(str(path))) >= 4096:
        raise DataError("path too long (4096 bytes or more); choose a shorter path", file=str(path)[:300])


def check_keep_columns(keep: Sequence[str], model_columns: Sequence[str]) -> list[str]:
    """``--keep`` names columns copied beside the scores: each once, none the model scores, none named like
    the scores' own columns (the output would hold two columns of one name)."""
    from .errors import ConfigError

    keep = [str(c) for c in keep]
    seen: set[str] = set()
    for c in keep:
        if c in seen:
            raise ConfigError(f"--keep {c!r} is given twice (keep_columns)")
        seen.add(c)
        if c in ("row", "score", "is_anomaly"):
            raise ConfigError(f"--keep {c!r}: that is one of the scores' own output columns (row, score, "
                              "is_anomaly); rename the input column")
        if c in model_columns:
            raise ConfigError(f"--keep {c!r} is a column the model scores; --keep copies other columns "
                              "(ids, labels) beside the scores")
    return keep


def check_output(path: str | Path, kind: str) -> Path:
    """Refuse an output name that cannot hold ``kind`` ("table", "images", "codes") before any work is done."""
    path = Path(path)
    check_name_length(path)
    suffix = path.suffix.lower()
    allowed = {"table": TABLE_SUFFIXES, "images": ARRAY_SUFFIXES, "codes": (".npz",),
               "rows_or_images": TABLE_SUFFIXES + ARRAY_SUFFIXES}[kind]
    if suffix not in allowed:
        names = [a for a in allowed if a != ".pq"]
        raise DataError(f"cannot write {kind.replace('_', ' ')} to a {suffix or 'suffix-less'} file: "
                        f"use {', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else
                        f"cannot write {kind} to a {suffix or 'suffix-less'} file: use {names[0]}", file=path)
    if path.is_dir():
        raise DataError("the output names a folder; give a file name", file=path)
    return path


def write_table(frame: Any, path: str | Path) -> Path:
    path = check_output(path, "table")
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
    return path


def write_arrays(path: str | Path, **arrays: Any) -> Path:
    path = check_output(path, "codes")
    with atomic_path(path, suffix=".tmp.npz") as tmp:
        np.savez_compressed(tmp, **{k: np.asarray(v) for k, v in arrays.items() if v is not None})
    return path


def write_rows_or_images(obj: Any, path: str | Path, labels: Any = None) -> Path:
    """A DataFrame to .csv/.parquet; images to a .png grid or an .npz of arrays."""
    import pandas as pd

    path = Path(path)
    if isinstance(obj, pd.DataFrame):
        return write_table(obj, path)
    path = check_output(path, "images")
    arr = np.asarray(obj)
    if path.suffix.lower() == ".png":
        from . import plots

        shown = min(len(arr), GRID_MAX)
        plots.save_png(plots.image_grid(arr[:GRID_MAX], suptitle=f"{shown} of {len(arr)} generated images"
                                        if shown < len(arr) else f"{shown} generated images"), path)
        return path
    return write_arrays(path, X=arr, y=labels)


# ---- where scores may go -------------------------------------------------------------------------------

SCORES_MARKER = "_lineage.json"  # written last into every folder of parts this tool commits
_PART_NAME = re.compile(r"part-\d{5}\.parquet")


def _input_paths(source: str | Path) -> list[Path]:
    """What a scoring run reads: the path itself, or every file a glob matches (resolved, links followed)."""
    text = str(source)
    if any(ch in text for ch in "*?["):
        import glob

        return [Path(p).resolve() for p in glob.glob(text, recursive=True)]
    return [Path(source).resolve()]


def is_scores_output(path: str | Path) -> bool:
    """True when ``path`` is a scores file or folder this tool wrote (it carries our lineage record)."""
    import json

    from .lineage import PARQUET_KEY, sidecar_path

    path = Path(path)
    try:
        if path.is_dir():
            record = json.loads((path / SCORES_MARKER).read_text())
            names = [p.name for p in path.iterdir()]
            return isinstance(record, dict) and "format" in record and all(
                n == SCORES_MARKER or _PART_NAME.fullmatch(n) for n in names)
        if path.suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return PARQUET_KEY in (pq.ParquetFile(path).schema_arrow.metadata or {})
        return isinstance(json.loads(sidecar_path(path).read_text()), dict)
    except Exception:  # noqa: BLE001 - unreadable (any reason) means "not ours"
        return False


def check_scores_output(output: str | Path, source: str | Path, *, overwrite: bool, folder: bool) -> Path:
    """Refuse, before any work, an output that could destroy data; return it as an absolute path.

    Refused: an output that is the input, holds the input (``--overwrite`` of a parent folder would
    delete it) or lies inside an input folder (the next run would read the scores as input); an
    existing output unless ``overwrite``; and even with ``overwrite``, anything this tool did not
    write -- a folder of the user's own files, a file without our lineage record.
    """
    check_name_length(output)
    output = Path(output).absolute()
    out = output.resolve()
    for inp in _input_paths(source):
        if out == inp:
            raise DataError("the output is the input; choose another output", file=output)
        if inp.is_relative_to(out):
            raise DataError(f"the output holds the input {inp}; replacing it would delete the input", file=output)
        if inp.is_dir() and out.is_relative_to(inp):
            raise DataError(f"the output lies inside the input folder {inp}; the next run would read the "
                            "scores as input", file=output)
    if not (output.exists() or output.is_symlink()):
        return output
    if not overwrite:
        raise DataError("output already exists; pass --overwrite (overwrite=True) to replace it", file=output)
    if folder and not output.is_dir():
        raise DataError("distributed scores are a folder of Parquet parts; the output names a file", file=output)
    if not folder and output.is_dir():
        raise DataError("the output names a folder; give a file name", file=output)
    if output.is_symlink() or not is_scores_output(output):
        what = "a folder holding files" if output.is_dir() else "a file"
        raise DataError(f"the output is {what} this tool did not write; --overwrite replaces only an earlier "
                        "scores output of vae-anomaly (with its lineage record): choose another output", file=output)
    return output


def scores_schema(files: Sequence[Path], keep: Sequence[str]) -> Any:
    """The one Arrow schema every scores part (or chunk) is written with: ``row``, kept columns, ``score``,
    ``is_anomaly``.

    A kept column's type comes from the input files' schemas (read from their footers, before any work);
    integer widths widen to int64, ints and floats to float64, an all-null column takes the others' type.
    Any other difference is refused naming the file and the column: written as it came, one part would be
    an integer and another a string, and the folder could not be read as one table.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    fields = [pa.field("row", pa.int64())]
    schemas = []
    for f in files:
        try:
            schemas.append(pq.read_schema(f))
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a bad file
            raise DataError(f"not a readable Parquet file: {exc}", file=f) from exc
    for c in keep:
        chosen, origin = None, None
        for f, schema in zip(files, schemas, strict=True):
            if c not in schema.names:
                raise SchemaError("column to keep not found", file=f, column=c)
            t = schema.field(c).type
            if pa.types.is_dictionary(t):
                t = t.value_type
            merged = _merge_types(chosen, t)
            if merged is None:
                raise SchemaError(f"the kept column is {t} here but {chosen} in {origin}; every file must hold it "
                                  "with one type (the parts must read back as one table)", file=f, column=c)
            if merged != chosen:
                chosen, origin = merged, f
        fields.append(pa.field(c, chosen if chosen is not None else pa.null()))
    fields += [pa.field("score", pa.float64()), pa.field("is_anomaly", pa.int8())]
    return pa.schema(fields)


def _merge_types(a: Any, b: Any) -> Any:
    """The type both ``a`` and ``b`` convert to without loss of meaning, or None."""
    import pyarrow as pa

    if a is None or pa.types.is_null(a):
        return b
    if pa.types.is_null(b) or a == b:
        return a
    t = pa.types
    if t.is_integer(a) and t.is_integer(b):
        return pa.int64()
    if (t.is_integer(a) or t.is_floating(a)) and (t.is_integer(b) or t.is_floating(b)):
        return pa.float64()
    if (t.is_string(a) or t.is_large_string(a)) and (t.is_string(b) or t.is_large_string(b)):
        return pa.large_string()
    return None


def conform(table: Any, schema: Any, *, file: Any = None, row: int | None = None) -> Any:
    """``table`` with ``schema``'s column types (a lossless cast), or a :class:`SchemaError` naming the column
    whose values cannot take the type the earlier rows fixed (an id that turns from numbers to text)."""
    import pyarrow as pa

    if table.schema.remove_metadata() == schema.remove_metadata():
        return table.replace_schema_metadata(schema.metadata)
    columns = []
    for field in schema:
        col = table.column(field.name)
        if col.type != field.type:
            try:
                col = col.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                raise SchemaError(f"the kept column holds {col.type} values here but {field.type} before: one "
                                  "output cannot hold both (make the column one type, e.g. all text)",
                                  file=file, column=field.name, row=row) from exc
        columns.append(col)
    return pa.Table.from_arrays(columns, schema=schema)
