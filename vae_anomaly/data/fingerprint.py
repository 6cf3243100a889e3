"""Dataset fingerprints: a content hash plus the schema, logged with every run."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import pandas as pd


def fingerprint(data: pd.DataFrame | np.ndarray, labels: np.ndarray | None = None) -> dict[str, Any]:
    """Return ``{"sha256", "n_rows", "schema"}``; equal data gives an equal hash, any changed cell a new one."""
    h = hashlib.sha256()
    if isinstance(data, pd.DataFrame):
        schema: dict[str, Any] = {"columns": {str(c): str(t) for c, t in data.dtypes.items()}}
        h.update(json.dumps(schema, sort_keys=True).encode())
        h.update(pd.util.hash_pandas_object(data, index=False).to_numpy().tobytes())
    else:
        arr = np.ascontiguousarray(data)
        schema = {"shape": list(arr.shape[1:]), "dtype": str(arr.dtype)}
        h.update(json.dumps(schema, sort_keys=True).encode())
        h.update(memoryview(arr).cast("B"))
    if labels is not None:
        h.update(np.ascontiguousarray(np.asarray(labels).astype(str)).tobytes())
    return {"sha256": h.hexdigest(), "n_rows": len(data), "schema": schema}
