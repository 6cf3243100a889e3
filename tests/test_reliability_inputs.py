"""Inputs and options that used to escape as tracebacks or be misread.

Split from test_reliability.py (issue #10's reliability tests): each failed on the code before its fix.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from vae_anomaly import VAEDetector
from vae_anomaly.errors import ConfigError, DataError


def test_integer_column_names(table):
    from vae_anomaly import VAEOversampler

    frame = table.set_axis([0, 1, 2], axis=1)
    det = VAEDetector(random_state=0, epochs=2).fit(frame)
    assert det.decision_function(frame).shape == (600,)
    assert list(frame.columns) == [0, 1, 2]  # the caller's frame keeps its labels
    y = np.r_[np.zeros(540, int), np.ones(60, int)]
    X_res, y_res = VAEOversampler(random_state=0, epochs=2).fit_resample(frame, y)
    assert len(X_res) == 1080 and np.bincount(y_res).tolist() == [540, 540]


def test_nested_parquet_column_is_named(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from vae_anomaly.data import load_dataset

    pq.write_table(pa.table({"a": [1.0, 2.0], "tags": [[1, 2], [3]]}), tmp_path / "n.parquet")
    with pytest.raises(DataError, match="nested column") as e:
        load_dataset(tmp_path / "n.parquet")
    assert e.value.column == "tags"


def test_oversampler_bad_labels_and_strategies(table):
    from vae_anomaly import VAEOversampler

    y = np.r_[np.zeros(540), np.ones(60)]
    y_nan = y.copy()
    y_nan[7] = np.nan
    with pytest.raises(DataError, match="missing or infinite label") as e:
        VAEOversampler(epochs=1).fit_resample(table, y_nan)
    assert e.value.row == 7
    with pytest.raises(ConfigError, match="sampling_strategy"):
        VAEOversampler(sampling_strategy={5: 100}, epochs=1).fit_resample(table, y)
    with pytest.raises(ConfigError, match="sampling_strategy"):
        VAEOversampler(sampling_strategy="most", epochs=1).fit_resample(table, y)
    with pytest.raises(ConfigError, match="latent_sampling"):
        VAEOversampler(latent_sampling="uniform", epochs=1).fit_resample(table, y)


def test_unknown_and_invalid_options_are_named():
    from vae_anomaly.cli import _parse_sets

    with pytest.raises(ConfigError, match="no option 'laten_dim'; did you mean 'latent_dim'"):
        _parse_sets(["laten_dim=4"], VAEDetector)
    with pytest.raises(ConfigError, match="latent_dim must be"):
        _parse_sets(["latent_dim=0"], VAEDetector)
    with pytest.raises(ConfigError, match="latent_dim must be"):
        VAEDetector(latent_dim=0).fit(np.zeros((50, 3)))


def test_decode_refuses_malformed_code_files(tmp_path, digits):
    from vae_anomaly.codes import load_codes, save_codes
    from vae_anomaly.generative import GenerativeModel

    X = digits[0][:200]
    gm = GenerativeModel.fit(X, kind="vqvae", epochs=1)
    save_codes(tmp_path / "c.npz", gm, gm.encode(X))
    raw = (tmp_path / "c.npz").read_bytes()
    (tmp_path / "trunc.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="truncated"):
        load_codes(tmp_path / "trunc.npz", gm)
    with np.load(tmp_path / "c.npz") as npz:
        header, payload = json.loads(bytes(npz["header"]).decode()), npz["payload"]

    def write(name, **changes):
        h = {**header, **changes}
        np.savez(tmp_path / name, header=np.frombuffer(json.dumps(h).encode(), dtype=np.uint8), payload=payload)
        return tmp_path / name

    with pytest.raises(DataError, match="70 bits"):
        load_codes(write("bits.npz", bits=70), gm)
    with pytest.raises(DataError, match="needs"):
        load_codes(write("huge.npz", shape=[10**9, 4], n=10**9), gm)
    with pytest.raises(DataError, match="n=5"):
        load_codes(write("n.npz", n=5), gm)


def test_torch_threads_follow_n_jobs_and_are_restored(table, monkeypatch):
    import torch

    seen = []
    before = torch.get_num_threads()
    VAEDetector(epochs=1, n_jobs=1).fit(table, callbacks=(lambda e, m: seen.append(torch.get_num_threads()),))
    assert seen == [1] and torch.get_num_threads() == before
    monkeypatch.setenv("VAE_ANOMALY_THREADS", "1")
    seen.clear()
    VAEDetector(epochs=1).fit(table, callbacks=(lambda e, m: seen.append(torch.get_num_threads()),))
    assert seen == [1]
    from vae_anomaly.device import thread_count

    monkeypatch.delenv("VAE_ANOMALY_THREADS")
    assert thread_count() == max(1, len(os.sched_getaffinity(0)) // 2)
