"""Writing results to files: one writer that picks the format from the suffix, always atomically.

Tables go to ``.parquet`` or ``.csv``; image arrays to ``.npz`` (every array) or ``.png`` (a grid
for looking at). A suffix that does not fit what is written is refused before anything is written.
"""

from __future__ import annotations

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
