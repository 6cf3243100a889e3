"""The one batching rule (vae_anomaly.batching): batches sized by a working-memory budget, and a row's
score that does not depend on the batch it falls in."""

from __future__ import annotations

import numpy as np
import pytest

from vae_anomaly import batching
from vae_anomaly.batching import chunk_rows, iter_batches, model_row_bytes
from vae_anomaly.detector import VAEDetector
from vae_anomaly.inputs import model_input


def test_chunk_rows_divides_the_budget_by_the_bytes_a_row_takes():
    assert chunk_rows(1000, working_memory=10_000, max_rows=None) == 10
    assert chunk_rows(1000, working_memory=10_000, max_rows=4) == 4
    assert chunk_rows(10**9, working_memory=10_000) == 1  # a row larger than the budget still runs, alone
    # The former fixed 4096-row batches for inputs up to 1 024 features; wider rows get fewer rows a batch.
    assert chunk_rows(model_row_bytes(64)) == chunk_rows(model_row_bytes(1024)) == 4096
    assert chunk_rows(model_row_bytes(32 * 32 * 3)) == batching.WORKING_MEMORY // (4 * 3072 * 16) < 4096


def test_iter_batches_covers_every_row_once_in_order():
    assert [(b.start, b.stop) for b in iter_batches(10, 4)] == [(0, 4), (4, 8), (8, 10)]
    assert list(iter_batches(0, 4)) == []
    assert np.array_equal(np.concatenate([np.arange(23)[b] for b in iter_batches(23, 5)]), np.arange(23))
    with pytest.raises(ValueError, match="batch size"):
        list(iter_batches(3, 0))


@pytest.fixture(scope="module")
def ensemble_and_rows(digits):
    X = digits[0][:400].reshape(400, -1).astype(np.float32)
    det = VAEDetector(epochs=3, n_estimators=2, random_state=0, n_jobs=1, device="cpu").fit(X)
    return det, X


def test_default_batches_give_the_fixed_4096_row_scores_bit_for_bit(ensemble_and_rows):
    det, X = ensemble_and_rows
    data = model_input(det.preprocessor_, X)
    assert np.array_equal(det._scores(data), det._scores(data, batch_size=4096))


@pytest.mark.parametrize("method", ["recon_kl", "neg_elbo", "iwae"])
def test_scores_equal_whatever_the_batch_size(ensemble_and_rows, method, monkeypatch):
    det, X = ensemble_and_rows
    ref = det.decision_function(X, method=method)
    data = model_input(det.preprocessor_, X)
    raw_ref = det._raw_member_scores(data, method)
    for size in (1, 7, 64, 400):
        # Equal up to float32 rounding: a matrix product over another number of rows may round its last bit
        # differently; the sampled scores' noise is keyed by the row, not its batch.
        np.testing.assert_allclose(det._scores(data, batch_size=size, method=method), ref, rtol=1e-5, atol=1e-5)
    # A budget of a few rows' bytes sizes every loop (ensemble members' raw scores, the fitted score) to 3 rows.
    monkeypatch.setattr(batching, "WORKING_MEMORY", 3 * model_row_bytes(X.shape[1]))
    assert chunk_rows(model_row_bytes(X.shape[1])) == 3
    np.testing.assert_allclose(det.decision_function(X, method=method), ref, rtol=1e-5, atol=1e-5)
    for raw, raw_default in zip(det._raw_member_scores(data, method), raw_ref, strict=True):
        np.testing.assert_allclose(raw, raw_default, rtol=1e-5, atol=1e-5)
    assert np.array_equal(det.predict(X), (det.decision_function(X) > det.threshold_).astype(int))


def test_per_feature_contributions_equal_whatever_the_batch_size(ensemble_and_rows):
    det, X = ensemble_and_rows
    data = model_input(det.preprocessor_, X)
    s_ref, c_ref = det._scores(data, per_feature=True)
    s, c = det._scores(data, per_feature=True, batch_size=9)
    np.testing.assert_allclose(s, s_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(c, c_ref, rtol=1e-5, atol=1e-5)


def test_generative_loops_equal_whatever_the_batch_size(ensemble_and_rows):
    from vae_anomaly.generative import GenerativeModel
    from vae_anomaly.models.ensemble import members_of

    det, X = ensemble_and_rows
    gm = GenerativeModel(members_of(det.model_)[0], det.preprocessor_)
    codes = gm.encode(X)
    np.testing.assert_allclose(gm.encode(X, batch_size=7), codes, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gm.decode(codes, batch_size=11), gm.decode(codes), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gm.reconstruct(X, batch_size=13), gm.reconstruct(X), rtol=1e-5, atol=1e-5)
