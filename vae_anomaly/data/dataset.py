"""One entry point that reads any supported source into a validated :class:`Dataset`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..errors import DataError
from .fingerprint import fingerprint
from .images import IMAGE_SUFFIXES, read_idx, read_image_folder, read_npz, to_nchw
from .tabular import TABLE_SUFFIXES, read_table


@dataclass
class Dataset:
    """Features, optional labels and ids, and where they came from."""

    X: pd.DataFrame | np.ndarray
    y: np.ndarray | None
    kind: Literal["tabular", "image"]
    source: str
    ids: np.ndarray | None = None
    class_names: list[str] = field(default_factory=list)
    label_column: str | None = None

    @property
    def fingerprint(self) -> dict[str, Any]:
        return fingerprint(self.X, self.y)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source, "kind": self.kind, "rows": len(self.X)}
        if self.kind == "tabular":
            assert isinstance(self.X, pd.DataFrame)
            num = self.X.select_dtypes(include=[np.number]).columns
            out["columns"] = len(self.X.columns)
            out["numeric_columns"] = list(map(str, num))
            out["categorical_columns"] = [str(c) for c in self.X.columns if c not in num]
        else:
            out["image_shape"] = list(self.X.shape[1:])
            out["dtype"] = str(self.X.dtype)
        if self.y is not None:
            vals, counts = np.unique(self.y, return_counts=True)
            out["label_column"] = self.label_column
            out["classes"] = {str(v): int(c) for v, c in zip(vals, counts, strict=True)}
        out["sha256"] = self.fingerprint["sha256"][:16]
        return out


def _kind_of(path: Path) -> str:
    if path.is_dir():
        files = [p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")]
        if files and all(p.suffix.lower() in TABLE_SUFFIXES for p in files):
            return "table"
        return "images"
    name = path.name.lower()
    if name.endswith((".idx", ".idx.gz")) or "-idx" in name or "ubyte" in name:
        return "idx"
    if path.suffix.lower() == ".npz":
        return "npz"
    if path.suffix.lower() in TABLE_SUFFIXES:
        return "table"
    if path.suffix.lower() in IMAGE_SUFFIXES:
        raise DataError("a single image is not a data set; pass its folder", file=path)
    raise DataError(f"unsupported data format {path.suffix!r}", file=path)


def check_labels(y: np.ndarray, *, source: Any, column: str | None = None, min_classes: int = 2) -> None:
    """A label needs at least ``min_classes`` classes to learn classes from."""
    classes = np.unique(y)
    if len(classes) < min_classes:
        raise DataError(f"label has a single class ({classes[0]!r}); at least {min_classes} are needed",
                        file=source, column=column)


def load_dataset(
    path: str | Path,
    *,
    label_column: str | None = None,
    id_column: str | None = None,
    labels_path: str | Path | None = None,
    image_size: tuple[int, int] | None = None,
    x_key: str | None = None,
    y_key: str | None = None,
    require_classes: bool = False,
) -> Dataset:
    """Read a table (CSV/Parquet file or folder), an image folder, an NPZ or an IDX file.

    ``labels_path`` pairs an IDX image file with its IDX label file.
    ``require_classes`` refuses labels with a single class (for class-conditional work).
    """
    path = Path(path)
    if not path.exists():
        raise DataError("no such file or folder", file=path)
    kind = _kind_of(path)
    y: np.ndarray | None = None
    ids = None
    names: list[str] = []
    if kind == "table":
        frame = read_table(path)
        for col in (label_column, id_column):
            if col is not None and col not in frame.columns:
                raise DataError(f"column not found (columns: {list(frame.columns)[:20]})", file=path, column=col)
        if label_column is not None:
            y = frame.pop(label_column).to_numpy()
        if id_column is not None:
            ids = frame.pop(id_column).to_numpy()
        if frame.shape[1] == 0:
            raise DataError("no feature columns left after removing the label and id columns", file=path)
        frame.attrs["source"] = str(path)  # so errors found while fitting on it name the file
        ds = Dataset(frame, y, "tabular", str(path), ids, label_column=label_column)
    else:
        if kind == "images":
            iset = read_image_folder(path, size=image_size)
            X, y, names = iset.images, iset.labels, iset.class_names
        elif kind == "npz":
            X, y = read_npz(path, x_key=x_key, y_key=y_key)
        else:
            X = read_idx(path)
            if labels_path is not None:
                y = read_idx(labels_path).astype(np.int64)
                if len(y) != len(X):
                    raise DataError(f"{len(X)} images but {len(y)} labels", file=labels_path)
        if kind == "npz" and X.ndim == 2:
            frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
            ds = Dataset(frame, y, "tabular", str(path))
        else:
            ds = Dataset(to_nchw(X, source=path), y, "image", str(path), class_names=names)
    if require_classes:
        if ds.y is None:
            raise DataError("a label is needed (pass the label column or a labelled source)", file=path)
        check_labels(ds.y, source=path, column=label_column)
    return ds
