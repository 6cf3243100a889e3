"""Writing results to files: one writer that picks the format from the suffix, always atomically.

Tables go to ``.parquet`` or ``.csv``; image arrays to ``.npz`` (every array) or ``.png`` (a grid
for looking at). A suffix that does not fit what is written is refused before anything is written.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_path
from .errors import DataError

TABLE_SUFFIXES = (".parquet", ".csv", ".pq")
ARRAY_SUFFIXES = (".npz", ".png")
GRID_MAX = 64  # a grid past 64 images is unreadable (and slow to draw); .npz keeps them all


def check_output(path: str | Path, kind: str) -> Path:
    """Refuse an output name that cannot hold ``kind`` ("table", "images", "codes") before any work is done."""
    path = Path(path)
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

        plots.save_png(plots.image_grid(arr[:GRID_MAX]), path)
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
