"""Training that adapts to each data set: the label-free separation stopping rule (ODIM), batch sizes and
step budgets read from the data, and 0/1 flag columns with a Bernoulli likelihood."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vae_anomaly import VAEDetector
from vae_anomaly.fitting import auto_batch_size, auto_epochs
from vae_anomaly.trainer import TrainConfig, two_component_separation


def test_separation_is_larger_for_a_bulk_and_a_tail_than_for_one_group():
    rng = np.random.default_rng(0)
    one_group = rng.normal(size=2000)
    bulk_and_tail = np.concatenate([rng.normal(size=1800), rng.normal(8, 1, size=200)])
    assert two_component_separation(bulk_and_tail) > 3 * two_component_separation(one_group)
    # Scale-free (losses are min-max scaled first) and defined on degenerate input.
    assert two_component_separation(bulk_and_tail * 50 + 3) == pytest.approx(two_component_separation(bulk_and_tail))
    assert two_component_separation(np.ones(10)) == 0.0
    assert two_component_separation(np.array([1.0, np.nan])) == 0.0


def _contaminated(n: int = 600, d: int = 6, share: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 2))
    X = z @ rng.normal(size=(2, d)) + 0.1 * rng.normal(size=(n, d))
    y = np.zeros(n, int)
    y[: int(share * n)] = 1
    X[y == 1] = rng.normal(0, 3, size=(int(share * n), d))
    return X.astype(np.float32), y


def test_separation_stopping_keeps_the_peak_and_stops_before_the_ceiling():
    X, _ = _contaminated()
    det = VAEDetector(random_state=0, stopping="separation", separation_patience=50, max_steps=5000,
                      batch_size=64).fit(X)
    result = det.train_result_
    seps = [h["separation"] for h in det.history_]
    assert result.stopped_early and result.epochs_run < auto_epochs(len(X), 64, 0.1, 5000, 100_000)
    assert result.best_separation == max(seps)
    assert seps[result.best_epoch] == max(seps)
    # The kept weights are the peak's: the training rows' separation measured now equals the recorded one.
    import torch

    from vae_anomaly.trainer import row_losses

    rows = torch.from_numpy(det.preprocessor_.transform(X)[np.sort(np.setdiff1d(np.arange(len(X)), result.val_index))])
    assert two_component_separation(row_losses(det.model_, rows)) == pytest.approx(max(seps), rel=1e-4)
    # The reported best validation loss is the kept epoch's own, not the separation.
    assert result.best_val_loss == pytest.approx(det.history_[result.best_epoch]["val_loss"])


def test_validation_stopping_is_unchanged_and_reports_no_separation():
    X, _ = _contaminated(n=300)
    det = VAEDetector(random_state=0, epochs=5).fit(X)
    assert "separation" not in det.history_[0] and det.train_result_.best_separation is None
    with pytest.raises(Exception, match="stopping"):
        TrainConfig(stopping="peak")  # type: ignore[arg-type]


def test_auto_batch_gives_small_tables_more_steps():
    assert auto_batch_size(200 * 0.7) == 16
    assert auto_batch_size(1000 * 0.7) == 64
    assert auto_batch_size(5000 * 0.7) == 128
    X, _ = _contaminated(n=140)
    det = VAEDetector(random_state=0, batch_size="auto", max_steps=400).fit(X)
    assert det.train_config_.batch_size == 16
    # 126 training rows in batches of 16: 8 steps an epoch, so 400 steps are 50 epochs (no 200-epoch cap).
    assert det.train_config_.epochs == 50


def test_binary_columns_get_a_bernoulli_likelihood_and_bounded_scores():
    rng = np.random.default_rng(0)
    n = 400
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "flag": (rng.random(n) < 0.03).astype(int)})
    bern = VAEDetector(random_state=0, epochs=20, binary_columns="bernoulli").fit(X)
    gauss = VAEDetector(random_state=0, epochs=20).fit(X)
    assert [b.kind for b in bern.model_.likelihood.blocks] == ["gaussian", "gaussian", "bernoulli"]
    assert [b.kind for b in gauss.model_.likelihood.blocks] == ["gaussian"] * 3
    flagged = X["flag"].to_numpy() == 1
    # A rare flag costs about -log p(flag) nats under the Bernoulli, far less than under a fitted Gaussian.
    s_bern, s_gauss = bern.decision_function(X), gauss.decision_function(X)
    gap_bern = np.median(s_bern[flagged]) - np.median(s_bern[~flagged])
    gap_gauss = np.median(s_gauss[flagged]) - np.median(s_gauss[~flagged])
    assert 0 < gap_bern < 10 < gap_gauss
    # A flag value never seen at fit time is penalised, not rewarded by a negative cross-entropy.
    odd = X.iloc[:5].copy()
    odd["flag"] = 2
    assert (bern.decision_function(odd) > bern.decision_function(X.iloc[:5]) + 20).all()


def test_new_options_survive_save_and_load(tmp_path):
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"a": rng.normal(size=200), "flag": rng.integers(0, 2, 200)})
    det = VAEDetector(random_state=0, binary_columns="bernoulli", stopping="separation", batch_size="auto",
                      max_steps=300).fit(X)
    det.save(tmp_path / "m")
    back = VAEDetector.load(tmp_path / "m")
    assert back.get_params()["binary_columns"] == "bernoulli" and back.get_params()["stopping"] == "separation"
    assert back.get_params()["batch_size"] == "auto" and back.get_params()["max_steps"] == 300
    np.testing.assert_allclose(back.decision_function(X), det.decision_function(X), rtol=1e-5)


def test_stopping_none_trains_the_whole_budget_and_keeps_the_last_weights():
    X, _ = _contaminated(n=200)
    det = VAEDetector(random_state=0, stopping="none", max_steps=300, patience=1).fit(X)
    result = det.train_result_
    # patience=1 would stop a validation run at the first epoch without improvement; "none" ignores it.
    assert result.epochs_run == det.train_config_.epochs and not result.stopped_early
    assert result.best_epoch == result.epochs_run - 1
