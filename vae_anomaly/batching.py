"""One batching rule for every loop that runs a model over many rows (scoring, reconstruction, codes,
validation losses): a batch holds as many rows as fit a working-memory budget, bounded.

Modelled on scikit-learn's ``sklearn.utils.get_chunk_n_rows``: rows = budget // bytes of work per row,
at most ``max_rows``, at least one. A row's score never depends on which batch it falls in
(``tests/test_detector.py`` checks scores are equal whatever the batch size), so the budget changes
memory and speed only.
"""

from __future__ import annotations

from collections.abc import Iterator

# Bytes one batch's work may take. Small next to scikit-learn's 1 GiB default: batches of a few thousand
# rows already keep a CPU busy, and a model's activations are several times its input.
WORKING_MEMORY = 256 * 2**20
# The rows per batch never exceed this (the loops' former fixed size): past it, larger batches buy nothing.
MAX_ROWS = 4096
# float32 copies of a row that running a model on one row holds at once: the input, the decoder's mean and
# scale, the per-feature terms and the encoder/decoder activations (an input-sized layer or two). A sampled
# score decodes its latent samples one after another, so they do not multiply it.
ROW_WORK_COPIES = 16


def chunk_rows(row_bytes: int, *, working_memory: int | None = None, max_rows: int | None = MAX_ROWS) -> int:
    """Rows per batch: ``working_memory`` (bytes; default :data:`WORKING_MEMORY`) // ``row_bytes``,
    at most ``max_rows`` (None: no bound), at least 1 (a row larger than the budget still runs, alone)."""
    budget = WORKING_MEMORY if working_memory is None else working_memory
    rows = max(1, int(budget // max(1, int(row_bytes))))
    return rows if max_rows is None else min(rows, max_rows)


def model_row_bytes(n_features: int) -> int:
    """Bytes of work per row for a model over ``n_features`` inputs (pixels count one each)."""
    return 4 * max(1, int(n_features)) * ROW_WORK_COPIES


def iter_batches(n: int, size: int) -> Iterator[slice]:
    """Slices ``[0:size], [size:2*size], ...`` covering ``range(n)``; none when ``n`` is 0."""
    if size < 1:
        raise ValueError(f"batch size must be >= 1, got {size}")
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))
