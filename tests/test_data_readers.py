"""Readers, the tabular transformer and the fingerprint, on the shipped samples and on real files on disk."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from tests.conftest import DATA
from vae_anomaly.data import (
    TabularTransformer,
    fingerprint,
    iter_table,
    load_dataset,
    read_idx,
    read_image_folder,
    read_npz,
    read_table,
    write_idx,
)


def test_csv_sample_with_label_and_id():
    ds = load_dataset(DATA / "breast_cancer.csv", label_column="diagnosis", id_column="patient_id")
    assert ds.kind == "tabular"
    assert ds.X.shape == (569, 30)
    assert "diagnosis" not in ds.X.columns and "patient_id" not in ds.X.columns
    assert set(ds.y) == {"benign", "malignant"}
    assert ds.ids[:3].tolist() == [1, 2, 3]
    assert ds.summary()["classes"] == {"benign": 357, "malignant": 212}


def test_parquet_file_and_partition_folder_match_csv(tmp_path):
    frame = read_table(DATA / "breast_cancer.csv")
    frame.to_parquet(tmp_path / "one.parquet")
    part = tmp_path / "parts"
    part.mkdir()
    frame.iloc[:300].to_parquet(part / "part-0.parquet")
    frame.iloc[300:].to_parquet(part / "part-1.parquet")
    pd.testing.assert_frame_equal(read_table(tmp_path / "one.parquet"), frame)
    pd.testing.assert_frame_equal(read_table(part), frame)


def test_chunked_reading_is_bounded_and_complete(tmp_path):
    frame = read_table(DATA / "breast_cancer.csv")
    chunks = list(iter_table(DATA / "breast_cancer.csv", chunk_rows=100))
    assert [len(c.frame) for c in chunks] == [100] * 5 + [69]
    assert [c.first_row for c in chunks] == [0, 100, 200, 300, 400, 500]
    pd.testing.assert_frame_equal(pd.concat([c.frame for c in chunks], ignore_index=True), frame)
    frame.to_parquet(tmp_path / "t.parquet", row_group_size=50)
    assert max(len(c.frame) for c in iter_table(tmp_path / "t.parquet", chunk_rows=64)) <= 64


def test_idx_sample_pairs_images_and_labels():
    ds = load_dataset(DATA / "digits_idx" / "images-idx3-ubyte.gz", labels_path=DATA / "digits_idx" / "labels-idx1-ubyte.gz")
    assert ds.kind == "image" and ds.X.shape == (1797, 1, 8, 8) and ds.X.dtype == np.uint8
    assert np.bincount(ds.y).tolist()[:2] == [178, 182]


def test_idx_roundtrip_plain_and_gz(tmp_path):
    arr = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    for name in ("x.idx", "x.idx.gz"):
        write_idx(tmp_path / name, arr)
        np.testing.assert_array_equal(read_idx(tmp_path / name), arr)
    floats = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    write_idx(tmp_path / "f.idx", floats)
    np.testing.assert_array_equal(read_idx(tmp_path / "f.idx"), floats)


def test_npz_and_png_samples():
    X, y = read_npz(DATA / "digits.npz")
    assert X.shape == (1797, 8, 8) and len(y) == 1797
    iset = read_image_folder(DATA / "digits_png")
    assert iset.images.shape == (200, 1, 8, 8)
    assert iset.class_names == [str(i) for i in range(10)]
    assert np.bincount(iset.labels).tolist() == [20] * 10


def test_rgb_folder_and_resize(tmp_path):
    from PIL import Image

    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for k in range(3):
            Image.fromarray(np.full((32, 32, 3), 40 * k, dtype=np.uint8)).save(tmp_path / cls / f"{k}.png")
    iset = read_image_folder(tmp_path)
    assert iset.images.shape == (6, 3, 32, 32)
    assert read_image_folder(tmp_path, size=(16, 16)).images.shape == (6, 3, 16, 16)


def test_transformer_roundtrip_mixed_types_exact():
    frame = pd.DataFrame({
        "amount": [1.5, 2.25, 3.0, 10.0, 7.5],
        "count": np.array([1, 2, 3, 4, 5], dtype=np.int64),
        "city": ["paris", "rome", "paris", "oslo", "rome"],
        "flag": [True, False, True, True, False],
        "grade": pd.Categorical(["a", "b", "a", "c", "b"]),
    })
    t = TabularTransformer().fit(frame)
    assert t.categorical_.keys() == {"city", "flag", "grade"}
    Z = t.transform(frame)
    assert Z.shape == (5, 2 + 3 + 2 + 3) and Z.dtype == np.float32
    t2 = TabularTransformer.from_dict(__import__("json").loads(__import__("json").dumps(t.to_dict())))
    back = t2.inverse_transform(Z)
    assert list(back.columns) == list(frame.columns)
    pd.testing.assert_series_equal(back["count"], frame["count"])
    assert back["amount"].tolist() == pytest.approx(frame["amount"].tolist())
    assert back["city"].tolist() == frame["city"].tolist()
    assert back["flag"].tolist() == frame["flag"].tolist() and back["flag"].dtype == bool
    assert back["grade"].dtype == "category" and back["grade"].tolist() == frame["grade"].tolist()


def test_transformer_overrides_and_clips_to_seen_range():
    frame = pd.DataFrame({"code": [1, 2, 3, 1, 2, 3], "v": [0.0, 1, 2, 3, 4, 5]})
    t = TabularTransformer(categorical_columns=["code"]).fit(frame)
    # Categories are stored as text (matched by value whatever dtype a chunk was read with); the
    # inverse gives the column's own dtype back.
    assert "code" in t.categorical_ and t.categorical_["code"]["categories"] == ["1", "2", "3"]
    Z = t.transform(frame)
    Z[:, -1] = 1000.0  # far outside the data
    back = t.inverse_transform(Z)
    assert back["v"].max() == 5.0 and back["code"].dtype == np.int64


def test_fingerprint_changes_with_one_cell():
    frame = read_table(DATA / "breast_cancer.csv")
    a = fingerprint(frame)
    b = fingerprint(frame.copy())
    frame.iloc[10, 3] += 1e-3
    assert a == b and fingerprint(frame)["sha256"] != a["sha256"]
    assert a["n_rows"] == 569 and "mean_radius" in a["schema"]["columns"]
    img = np.zeros((4, 1, 8, 8), np.uint8)
    assert fingerprint(img)["schema"] == {"shape": [1, 8, 8], "dtype": "uint8"}


def test_gzip_idx_is_really_gzip():
    with gzip.open(DATA / "digits_idx" / "labels-idx1-ubyte.gz", "rb") as fh:
        assert fh.read(4) == bytes([0, 0, 8, 1])


def test_atomic_outputs_get_normal_permissions_and_no_leftovers(tmp_path):
    import os

    from vae_anomaly.atomic import atomic_path, write_text_atomic

    write_text_atomic(tmp_path / "a.txt", "hello")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~umask
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "b.txt") as tmp:
        tmp.write_text("partial")
        raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


@pytest.mark.parametrize("options, fragment", [
    ({"scaling": "zscore"}, "scaling must be one of 'robust', 'standard', 'minmax'; got 'zscore'"),
    ({"binary_columns": "flag"}, "binary_columns must be one of 'bernoulli', 'gaussian'; got 'flag'"),
    ({"categorical_columns": "colour"}, "categorical_columns must be None or a list of column names; got .colour."),
])
def test_transformer_and_preprocess_config_check_their_options_by_the_table(options, fragment):
    """PreprocessConfig and the public TabularTransformer refuse the same values with the table's message."""
    from vae_anomaly.data import TabularTransformer
    from vae_anomaly.errors import ConfigError
    from vae_anomaly.fitting import PreprocessConfig

    with pytest.raises(ConfigError, match="PreprocessConfig: " + fragment):
        PreprocessConfig(**options)
    with pytest.raises(ConfigError, match="TabularTransformer: " + fragment):
        TabularTransformer(**options).fit(pd.DataFrame({"a": [1.0, 2.0, 3.0]}))
