"""Issue 18, the data half: encodings and readers that lost or bent data silently, or escaped as tracebacks.

Each test here failed on the code before its fix (one-hot codes wrapping in int8, 16-bit PNGs clipped to
0/255, a dense one-hot block of any size, datetimes and Decimals one-hot encoded, digit categories
typed by the chunk they were read in, IDX/PNG/CLI tracebacks, messages that named no file or option).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vae_anomaly.data import ImageScaler, TabularTransformer, load_dataset, read_image_folder

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


# ------------------------------------------------------------------ 2. 16-bit PNGs


def _png16(path, array):
    from PIL import Image

    Image.fromarray(np.asarray(array, dtype=np.uint16)).save(path)
    with Image.open(path) as im:  # really a 16-bit file
        assert im.mode.startswith("I")


def test_16bit_png_is_read_at_its_depth(tmp_path):
    values = np.array([[0, 1000, 30000, 65535], [257, 12345, 40000, 65000]], dtype=np.uint16)
    for k in range(3):
        _png16(tmp_path / f"{k}.png", values + k)
    iset = read_image_folder(tmp_path)
    assert iset.images.dtype == np.uint16
    np.testing.assert_array_equal(iset.images[0, 0], values)
    np.testing.assert_array_equal(iset.images[2, 0], values + 2)
    scaler = ImageScaler().fit(iset.images)
    unit = scaler.transform(iset.images)
    np.testing.assert_allclose(unit[0, 0], values / 65535.0, rtol=1e-6)
    assert len(np.unique(unit)) > 2  # not flattened to 0 and 1
    back = scaler.inverse_transform(unit)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, iset.images)


def test_16bit_png_resized_and_mixed_with_8bit(tmp_path):
    from PIL import Image

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _png16(tmp_path / "a" / "deep.png", np.full((8, 8), 40000))
    Image.fromarray(np.full((8, 8), 200, np.uint8)).save(tmp_path / "b" / "flat.png")
    iset = read_image_folder(tmp_path, size=(4, 4))
    assert iset.images.dtype == np.uint16 and iset.images.shape == (2, 1, 4, 4)
    assert (iset.images[0] == 40000).all()
    assert (iset.images[1] == 200 * 257).all()  # the 8-bit image on the same 0..65535 scale
    ds = load_dataset(tmp_path)
    assert ds.X.dtype == np.uint16 and sorted(np.unique(ds.X).tolist()) == [40000, 51400]


def test_model_fitted_on_16bit_scores_8bit_images_of_the_same_brightness():
    deep = np.full((4, 1, 4, 4), 51400, np.uint16)  # 200 * 257
    flat = np.full((4, 1, 4, 4), 200, np.uint8)
    scaler = ImageScaler().fit(deep)
    np.testing.assert_allclose(scaler.transform(flat), scaler.transform(deep), rtol=1e-6)
