"""Issue 18, the data half: encodings and readers that lost or bent data silently, or escaped as tracebacks.

Each test here failed on the code before its fix (one-hot codes wrapping in int8, 16-bit PNGs clipped to
0/255, a dense one-hot block of any size, datetimes and Decimals one-hot encoded, digit categories
typed by the chunk they were read in, IDX/PNG/CLI tracebacks, messages that named no file or option).
"""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from vae_anomaly.data import ImageScaler, TabularTransformer, load_dataset, read_idx, read_image_folder, read_table
from vae_anomaly.errors import DataError

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


# ------------------------------------------------------------------ 3. very many categories


def test_fifty_thousand_categories_refused_before_the_dense_matrix(tmp_path):
    import time
    import tracemalloc

    from vae_anomaly.detector import VAEDetector

    n = 50_000
    path = tmp_path / "ids.csv"
    pd.DataFrame({"x": np.arange(n) % 97 / 10.0, "order_ref": [f"ord-{i:06d}" for i in range(n)]}).to_csv(
        path, index=False)
    ds = load_dataset(path)
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(DataError) as e:
            VAEDetector(epochs=1).fit(ds.X)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    msg = str(e.value)
    assert e.value.file == str(path) and e.value.column == "order_ref"
    assert "50,000 categories" in msg and "VAE_ANOMALY_ONEHOT_BUDGET_MB" in msg
    assert "identifier" in msg  # every row its own value: the hint says so
    assert peak < 300 * 2**20, f"peak {peak / 2**20:.0f} MiB: the one-hot matrix was allocated"
    assert time.perf_counter() - t0 < 20


def test_onehot_budget_is_configurable_and_checked_per_scoring_chunk(monkeypatch):
    frame = pd.DataFrame({"x": np.arange(2000) / 7.0, "c": [f"v{i % 500}" for i in range(2000)]})
    monkeypatch.setenv("VAE_ANOMALY_ONEHOT_BUDGET_MB", "1")  # 2000 x 500 x 4 bytes = 3.8 MiB > 1 MiB
    with pytest.raises(DataError, match="500 categories"):
        TabularTransformer().fit(frame)
    monkeypatch.setenv("VAE_ANOMALY_ONEHOT_BUDGET_MB", "8")
    t = TabularTransformer().fit(frame)
    monkeypatch.setenv("VAE_ANOMALY_ONEHOT_BUDGET_MB", "1")
    with pytest.raises(DataError, match="chunk") as e:
        t.transform(frame, source="big.csv")
    assert e.value.file == "big.csv"
    assert t.transform(frame.iloc[:200]).shape == (200, 501)  # a smaller chunk is fine
    monkeypatch.setenv("VAE_ANOMALY_ONEHOT_BUDGET_MB", "lots")
    from vae_anomaly.errors import ConfigError

    with pytest.raises(ConfigError, match="VAE_ANOMALY_ONEHOT_BUDGET_MB"):
        TabularTransformer().fit(frame)


# ------------------------------------------------------------------ 4. datetimes and Decimals


def _typed_frame(n: int = 30) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame({
        "x": rng.normal(size=n),
        "price": [Decimal(f"{v:.2f}") for v in rng.uniform(1, 100, n)],
        "kind": np.array(["a", "b"])[np.arange(n) % 2],
    })


def test_decimal_columns_become_numbers_from_parquet_and_dataframes(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from vae_anomaly.detector import VAEDetector

    frame = _typed_frame()
    path = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    assert pa.types.is_decimal(pq.read_schema(path).field("price").type)
    read = read_table(path)
    assert pd.api.types.is_float_dtype(read["price"])
    np.testing.assert_allclose(read["price"], [float(v) for v in frame["price"]])
    det = VAEDetector(epochs=2, random_state=0).fit(load_dataset(path).X)
    assert "price" in det.preprocessor_.numeric_
    det.save(tmp_path / "model")  # was: TypeError, Decimal is not JSON serialisable
    t = TabularTransformer().fit(frame)  # a DataFrame of Decimal objects, no file
    assert "price" in t.numeric_ and "kind" in t.categorical_
    np.testing.assert_allclose(t.transform(frame)[:, 1] * t.numeric_["price"]["scale"] + t.numeric_["price"]["center"],
                               frame["price"].astype(float), rtol=1e-5)


@pytest.mark.parametrize("tz", [None, "UTC", "Europe/Berlin"])
def test_datetime_columns_are_refused_before_training_with_a_hint(tmp_path, tz):
    from vae_anomaly.detector import VAEDetector

    frame = _typed_frame().drop(columns="price")
    frame["seen"] = pd.date_range("2024-01-01", periods=len(frame), freq="h", tz=tz)
    path = tmp_path / "t.parquet"
    frame.to_parquet(path)
    ds = load_dataset(path)
    with pytest.raises(DataError) as e:
        VAEDetector(epochs=2).fit(ds.X)
    assert e.value.file == str(path) and e.value.column == "seen"
    assert "date/time" in str(e.value) and "epoch seconds" in str(e.value) and "categorical_columns" in str(e.value)
    assert not (tmp_path / "model").exists()


def test_datetime_text_in_a_csv_is_refused_the_same_way(tmp_path):
    frame = _typed_frame().drop(columns="price")
    frame["seen"] = pd.date_range("2024-01-01", periods=len(frame), freq="h", tz="UTC").astype(str)
    frame.to_csv(tmp_path / "t.csv", index=False)
    ds = load_dataset(tmp_path / "t.csv")
    with pytest.raises(DataError, match="date/time") as e:
        TabularTransformer().fit(ds.X)
    assert (e.value.file, e.value.column) == (str(tmp_path / "t.csv"), "seen")
    # Month labels ("2024-01") are categories, not timestamps.
    frame["seen"] = [f"2024-{1 + i % 3:02d}" for i in range(len(frame))]
    assert "seen" in TabularTransformer().fit(frame).categorical_


def test_datetime_declared_categorical_is_encoded_as_text_and_saved(tmp_path):
    from vae_anomaly.detector import VAEDetector

    frame = _typed_frame().drop(columns="price")
    frame["day"] = pd.to_datetime(np.array(["2024-01-01", "2024-01-02"])[np.arange(len(frame)) % 2]).tz_localize("UTC")
    det = VAEDetector(epochs=2, random_state=0, categorical_columns=["day"]).fit(frame)
    assert det.preprocessor_.categorical_["day"]["categories"] == ["2024-01-01 00:00:00+00:00",
                                                                   "2024-01-02 00:00:00+00:00"]
    det.save(tmp_path / "model")
    loaded = VAEDetector.load(tmp_path / "model")
    np.testing.assert_allclose(loaded.decision_function(frame), det.decision_function(frame), rtol=1e-5)


# ------------------------------------------------------------------ 5. digit categories, typed per chunk


def _digit_category_csv(path):
    rng = np.random.default_rng(0)
    rows = ["a,code"] + [f"{rng.normal():.3f},{'xy'[i % 2] if i < 30 else i % 7}" for i in range(60)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_model_scores_its_own_training_csv_with_digit_categories_in_any_chunking(tmp_path):
    from vae_anomaly.detector import VAEDetector
    from vae_anomaly.file_scoring import score_file

    path = _digit_category_csv(tmp_path / "digits.csv")
    det = VAEDetector(epochs=2, random_state=0).fit(load_dataset(path).X)
    assert all(isinstance(c, str) for c in det.preprocessor_.categorical_["code"]["categories"])
    whole = score_file(det, path, tmp_path / "s_whole.csv")
    # Chunks of 10 rows: the last three hold only digits, which pandas reads as integers.
    chunked = score_file(det, path, tmp_path / "s_chunked.csv", chunk_rows=10)
    assert whole.rows == chunked.rows == 60
    a = pd.read_csv(tmp_path / "s_whole.csv")["score"]
    b = pd.read_csv(tmp_path / "s_chunked.csv")["score"]
    np.testing.assert_allclose(a, b, rtol=1e-5)


def test_categories_match_across_types_and_old_models_still_load():
    t = TabularTransformer(categorical_columns=["k"]).fit(pd.DataFrame({"x": [1.0, 2, 3], "k": [1, 2, 2]}))
    assert t.categorical_["k"]["categories"] == ["1", "2"]
    same = t.transform(pd.DataFrame({"x": [1.0, 2], "k": ["2", "1"]}))  # the same values read as text
    np.testing.assert_array_equal(same, t.transform(pd.DataFrame({"x": [1.0, 2], "k": [2, 1]})))
    np.testing.assert_array_equal(same, t.transform(pd.DataFrame({"x": [1.0, 2], "k": [2.0, 1.0]})))
    assert t.inverse_transform(same)["k"].tolist() == [2, 1] and t.inverse_transform(same)["k"].dtype == np.int64
    # A model saved before categories were stored as text (JSON numbers) keeps its one-hot order.
    old = t.to_dict()
    old["categorical"]["k"]["categories"] = [1, 2]
    loaded = TabularTransformer.from_dict(old)
    np.testing.assert_array_equal(loaded.transform(pd.DataFrame({"x": [1.0, 2], "k": [2, 1]})), same)
    flags = TabularTransformer().fit(pd.DataFrame({"x": [1.0, 2, 3], "f": [True, False, True]}))
    assert flags.inverse_transform(flags.transform(pd.DataFrame({"x": [1.0], "f": [False]})))["f"].tolist() == [False]


# ------------------------------------------------------------------ 6. tracebacks -> one line


def _idx(path, dims, body=b""):
    path.write_bytes(bytes([0, 0, 0x08, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + body)
    return path


@pytest.mark.parametrize("dims", [(2**32 - 1, 2**32 - 1, 3), (2**31, 2**31, 2**31), (2**32 - 1,) * 4])
def test_idx_header_dimensions_that_overflow(tmp_path, dims):
    p = _idx(tmp_path / "x.idx", dims, b"\x00" * 16)
    with pytest.raises(DataError) as e:
        read_idx(p)
    assert e.value.file == str(p)
    assert " -" not in str(e.value)  # no negative byte count


def test_idx_with_zero_images(tmp_path):
    p = _idx(tmp_path / "x.idx", (0, 28, 28))
    with pytest.raises(DataError, match="0 images") as e:
        load_dataset(p)
    assert e.value.file == str(p)


def _png_header_only(path, width, height, idat: bytes = b""):
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit grayscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def test_decompression_bomb_png_is_a_data_error(tmp_path):
    (tmp_path / "c").mkdir()
    _png_header_only(tmp_path / "c" / "bomb.png", 60_000, 60_000, zlib.compress(b""))
    with pytest.raises(DataError, match="pixels") as e:
        read_image_folder(tmp_path)
    assert e.value.file.endswith("bomb.png")


def test_png_over_pillows_warning_limit_is_refused_not_loaded(tmp_path):
    # 10 000 x 10 000 = 100 M pixels: over Pillow's 89 M warning limit, under its error limit; a valid file.
    w = h = 10_000
    rows = (b"\x00" + b"\x00" * (w // 8)) * h
    (tmp_path / "c").mkdir()
    _png_header_only(tmp_path / "c" / "huge.png", w, h, zlib.compress(rows, 9))
    with pytest.raises(DataError, match="pixels") as e:
        read_image_folder(tmp_path)
    assert e.value.file.endswith("huge.png")


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "vae_anomaly.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def test_train_on_unknown_value_is_one_line_naming_the_option(tmp_path):
    (tmp_path / "d.csv").write_text("a,b\n" + "\n".join(f"{i},{i % 3}" for i in range(20)) + "\n")
    res = _cli("train", tmp_path / "d.csv", "--train-on", "sometimes", cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr and "validation error" not in res.stderr
    assert "--train-on" in res.stderr and "'all'" in res.stderr and "'normal'" in res.stderr
    assert "sometimes" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


# ------------------------------------------------------------------ 7. messages


def test_header_spaces_are_stripped_consistently(tmp_path):
    p = tmp_path / "h.csv"
    p.write_text("a, b ,c\n1,2,3\n4,5,6\n")
    assert list(read_table(p).columns) == ["a", "b", "c"]
    from vae_anomaly.data import iter_table

    assert [list(c.frame.columns) for c in iter_table(p, chunk_rows=1)] == [["a", "b", "c"]] * 2
    assert list(read_table(p, columns=["b"]).columns) == ["b"]


def test_header_names_that_collide_after_stripping_name_both(tmp_path):
    p = tmp_path / "h.csv"
    p.write_text("a,b,b \n1,2,3\n")
    with pytest.raises(DataError, match="duplicated") as e:
        read_table(p)
    assert "'b'" in str(e.value) and "'b '" in str(e.value) and e.value.file == str(p)


def test_one_row_fit_names_the_file(tmp_path):
    (tmp_path / "one.csv").write_text("a,b\n1,2\n")
    res = _cli("fit", tmp_path / "one.csv", "--out", tmp_path / "m", "--epochs", "1")
    assert res.returncode == 2
    assert "one.csv" in res.stderr and "1 row" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "m").exists()


def test_train_on_normal_without_normal_rows_names_file_and_option(tmp_path):
    from vae_anomaly.jobs.train import TrainJobConfig, ingest, split

    path = tmp_path / "all_anomalies.csv"
    pd.DataFrame({"a": np.arange(20.0), "y": [1] * 20}).to_csv(path, index=False)
    cfg = TrainJobConfig(data=str(path), label_column="y", anomaly_label="1", train_on="normal")
    with pytest.raises(DataError) as e:
        split(ingest(cfg), cfg)
    assert e.value.file == str(path) and e.value.column == "y"
    assert "--train-on normal" in str(e.value) and "no rows labelled normal" in str(e.value)


@pytest.mark.parametrize(("n_rare", "options", "said"), [
    (1, {}, "hold-out split"),  # was: scikit-learn's ValueError from the stratified split
    (4, {"min_class_rows": 6}, "min_class_rows"),  # was: "column 'y'", no file, no option
])
def test_small_class_names_file_label_and_option(tmp_path, n_rare, options, said):
    from vae_anomaly.jobs.synthesize import SynthJobConfig, balance, ingest

    rng = np.random.default_rng(0)
    path = tmp_path / "small.csv"
    frame = pd.DataFrame(rng.normal(size=(40, 3)), columns=list("abc"))
    frame["kind"] = ["n"] * (40 - n_rare) + ["r"] * n_rare
    frame.to_csv(path, index=False)
    cfg = SynthJobConfig(data=str(path), label_column="kind", oversampler={"epochs": 1, **options})
    with pytest.raises(DataError) as e:
        balance(ingest(cfg), cfg)
    assert e.value.file == str(path) and e.value.column == "kind"
    assert "class 'r' has" in str(e.value) and said in str(e.value)
