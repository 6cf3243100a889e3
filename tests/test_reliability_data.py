"""Issue 18, the data half: encodings and readers that lost or bent data silently, or escaped as tracebacks.

Each test here failed on the code before its fix (one-hot codes wrapping in int8, 16-bit PNGs clipped to
0/255, a dense one-hot block of any size, datetimes and Decimals one-hot encoded, digit categories
typed by the chunk they were read in, IDX/PNG/CLI tracebacks, messages that named no file or option).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vae_anomaly.data import TabularTransformer

# ------------------------------------------------------------------ 1. one-hot codes wider than int8


def _wide_frame(n_numeric: int, n_rows: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n_rows, n_numeric)), columns=[f"n{i}" for i in range(n_numeric)])
    frame["colour"] = np.array(["red", "green", "blue"])[np.arange(n_rows) % 3]
    # A categorical with more than 127 values: its own codes leave int8's range too.
    frame["shop"] = [f"s{i % 150:03d}" for i in range(n_rows)] if n_rows >= 150 else [f"s{i:03d}" for i in range(n_rows)]
    return frame


@pytest.mark.parametrize("n_numeric", [120, 126, 127, 128, 130, 300])
def test_one_hot_block_is_right_after_many_numeric_columns(n_numeric):
    frame = _wide_frame(n_numeric)
    t = TabularTransformer().fit(frame)
    m = t.transform(frame)
    blocks = {b.name: b for b in t.blocks}
    for name in ("colour", "shop"):
        b = blocks[name]
        onehot = m[:, b.start:b.end]
        assert (onehot.sum(axis=1) == 1.0).all(), name  # exactly one 1 per row in the block
        cats = t.categorical_[name]["categories"]
        assert [cats[i] for i in onehot.argmax(axis=1)] == frame[name].tolist()
    # No numeric column was overwritten with a stray 1.0.
    for i in range(n_numeric):
        p = t.numeric_[f"n{i}"]
        np.testing.assert_allclose(m[:, i], (frame[f"n{i}"] - p["center"]) / p["scale"], rtol=1e-5, atol=1e-6)
    back = t.inverse_transform(m)
    assert back["colour"].tolist() == frame["colour"].tolist()
    assert back["shop"].tolist() == frame["shop"].tolist()


def test_vae_detector_fits_and_scores_a_300_column_table_with_categoricals_at_the_end():
    from vae_anomaly.detector import VAEDetector

    frame = _wide_frame(298, n_rows=200)
    det = VAEDetector(epochs=2, random_state=0).fit(frame)
    pre = det.preprocessor_
    m = pre.transform(frame)
    b = next(b for b in pre.blocks if b.name == "colour")
    assert (m[:, b.start:b.end].sum(axis=1) == 1).all()
    scores = det.decision_function(frame)
    assert scores.shape == (200,) and np.isfinite(scores).all()
    # The categorical matters to the score: the same rows with another colour score differently.
    other = frame.assign(colour=frame["colour"].map({"red": "green", "green": "blue", "blue": "red"}))
    assert not np.allclose(det.decision_function(other), scores)
