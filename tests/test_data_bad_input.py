"""Every bad-input case gets a DataError naming the file and the column, row or index at fault."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vae_anomaly.data import (
    TabularTransformer,
    load_dataset,
    read_idx,
    read_image_folder,
    read_npz,
    read_table,
    write_idx,
)
from vae_anomaly.errors import DataError, SchemaError


def write(path, text):
    path.write_text(text)
    return path


def test_empty_file(tmp_path):
    p = write(tmp_path / "e.csv", "")
    with pytest.raises(DataError, match="empty") as e:
        read_table(p)
    assert e.value.file == str(p)


def test_header_only(tmp_path):
    p = write(tmp_path / "h.csv", "a,b,c\n")
    with pytest.raises(DataError, match="no rows"):
        read_table(p)


def test_nan_names_column_and_row(tmp_path):
    p = write(tmp_path / "n.csv", "a,b\n1,2\n3,\n5,6\n")
    with pytest.raises(DataError) as e:
        read_table(p)
    assert (e.value.column, e.value.row) == ("b", 1)


def test_inf_names_column_and_row(tmp_path):
    p = write(tmp_path / "i.csv", "a,b\n1,2\n3,4\ninf,6\n")
    with pytest.raises(DataError, match="infinite") as e:
        read_table(p)
    assert (e.value.column, e.value.row) == ("a", 2)


def test_text_in_numeric_column(tmp_path):
    rows = "\n".join(f"{i},{i * 2}" for i in range(30))
    p = write(tmp_path / "t.csv", "a,b\n" + rows + "\n30,oops\n")
    with pytest.raises(DataError, match="non-numeric value 'oops'") as e:
        read_table(p)
    assert (e.value.column, e.value.row) == ("b", 30)


def test_text_in_declared_numeric_column(tmp_path):
    p = write(tmp_path / "t.csv", "a,b\n1,x\n2,y\n")
    with pytest.raises(DataError) as e:
        read_table(p, numeric_columns=["b"])
    assert (e.value.column, e.value.row) == ("b", 0)


def test_duplicated_column_names(tmp_path):
    p = write(tmp_path / "d.csv", "a,b,a\n1,2,3\n")
    with pytest.raises(DataError, match="duplicated") as e:
        read_table(p)
    assert e.value.column == "a"


def test_missing_label_column(tmp_path):
    p = write(tmp_path / "l.csv", "a,b\n1,2\n")
    with pytest.raises(DataError, match="column not found") as e:
        load_dataset(p, label_column="target")
    assert e.value.column == "target"


def test_single_class_label_when_classes_needed(tmp_path):
    p = write(tmp_path / "s.csv", "a,y\n1,0\n2,0\n3,0\n")
    with pytest.raises(DataError, match="single class") as e:
        load_dataset(p, label_column="y", require_classes=True)
    assert e.value.column == "y"


def test_partition_with_different_columns(tmp_path):
    d = tmp_path / "parts"
    d.mkdir()
    pd.DataFrame({"a": [1], "b": [2]}).to_parquet(d / "p0.parquet")
    pd.DataFrame({"a": [1], "c": [2]}).to_parquet(d / "p1.parquet")
    with pytest.raises(DataError, match="extra column 'c'") as e:
        read_table(d)
    assert e.value.file.endswith("p1.parquet")


def test_corrupt_parquet(tmp_path):
    p = tmp_path / "bad.parquet"
    p.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataError, match="cannot read"):
        read_table(p)


def _png_folder(tmp_path, sizes):
    from PIL import Image

    (tmp_path / "c").mkdir()
    for k, s in enumerate(sizes):
        Image.fromarray(np.zeros((s, s), np.uint8)).save(tmp_path / "c" / f"{k}.png")
    return tmp_path


def test_corrupt_image(tmp_path):
    root = _png_folder(tmp_path, [8, 8])
    (root / "c" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DataError, match="corrupt") as e:
        read_image_folder(root)
    assert e.value.file.endswith("broken.png")


def test_non_image_file_in_image_folder(tmp_path):
    root = _png_folder(tmp_path, [8])
    (root / "c" / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="not an image") as e:
        read_image_folder(root)
    assert e.value.file.endswith("notes.txt")


def test_mixed_image_sizes(tmp_path):
    root = _png_folder(tmp_path, [8, 8, 9])
    with pytest.raises(DataError, match="differs") as e:
        read_image_folder(root)
    assert e.value.file.endswith("2.png")


def test_idx_bad_magic(tmp_path):
    p = tmp_path / "x.idx"
    p.write_bytes(b"\x12\x34\x08\x03" + b"\x00" * 20)
    with pytest.raises(DataError, match="magic") as e:
        read_idx(p)
    assert e.value.file == str(p)


def test_idx_truncated_body(tmp_path):
    p = tmp_path / "x.idx"
    write_idx(p, np.zeros((10, 4, 4), np.uint8))
    p.write_bytes(p.read_bytes()[:-7])
    with pytest.raises(DataError, match="truncated"):
        read_idx(p)


def test_idx_truncated_gzip(tmp_path):
    p = tmp_path / "x.idx.gz"
    write_idx(p, np.zeros((100, 8, 8), np.uint8))
    p.write_bytes(p.read_bytes()[:-10])
    with pytest.raises(DataError, match="truncated"):
        read_idx(p)


def test_truncated_npz(tmp_path):
    p = tmp_path / "x.npz"
    np.savez(p, X=np.zeros((50, 8, 8)), y=np.zeros(50))
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(DataError, match="truncated") as e:
        read_npz(p)
    assert e.value.file == str(p)


def test_npz_nan_names_index(tmp_path):
    X = np.zeros((5, 3), np.float32)
    X[3, 2] = np.nan
    np.savez(tmp_path / "n.npz", X=X)
    with pytest.raises(DataError) as e:
        read_npz(tmp_path / "n.npz")
    assert e.value.index == (3, 2)


def test_npz_object_array_is_refused_without_unpickling(tmp_path):
    np.savez(tmp_path / "o.npz", X=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(DataError):
        read_npz(tmp_path / "o.npz")


def test_transformer_unseen_category_missing_and_extra_columns():
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "city": ["x", "y", "x"]})
    t = TabularTransformer().fit(frame)
    with pytest.raises(DataError, match="unseen category 'z'") as e:
        t.transform(pd.DataFrame({"a": [1.0, 2.0], "city": ["x", "z"]}), source="new.csv", first_row=100)
    assert (e.value.column, e.value.row, e.value.file) == ("city", 101, "new.csv")
    with pytest.raises(SchemaError, match="missing column") as e:
        t.transform(pd.DataFrame({"a": [1.0]}))
    assert e.value.column == "city"
    with pytest.raises(SchemaError, match="extra column") as e:
        t.transform(pd.DataFrame({"a": [1.0], "city": ["x"], "b": [2]}))
    assert e.value.column == "b"
    with pytest.raises(DataError, match="non-numeric") as e:
        t.transform(pd.DataFrame({"a": ["1", "zz"], "city": ["x", "x"]}))
    assert (e.value.column, e.value.row) == ("a", 1)


def test_cli_bad_input_exits_nonzero_with_one_message(tmp_path):
    import subprocess
    import sys

    p = write(tmp_path / "n.csv", "a,b\n1,2\n3,\n")
    res = subprocess.run([sys.executable, "-m", "vae_anomaly.cli", "info", str(p)], capture_output=True, text=True)
    assert res.returncode == 2
    assert "column 'b'" in res.stderr and "row 1" in res.stderr
    assert "Traceback" not in res.stderr
