"""Wrong results that used to be written with exit 0 (mutations the suite let survive).

Split from test_reliability.py (issue #10's reliability tests): each failed on the code before its fix.
"""

from __future__ import annotations

import numpy as np

from vae_anomaly import VAEDetector


def test_pyfunc_flags_scores_above_the_threshold(fitted, table):
    from vae_anomaly.tracking.pyfunc_model import VAEAnomalyScorer

    det, _ = fitted
    scorer = VAEAnomalyScorer()
    scorer.detector = det
    out = scorer.predict(None, table)
    assert 0 < out["is_anomaly"].sum() < len(out)
    assert (out["is_anomaly"] == (out["score"] > det.threshold_)).all()


def test_best_weights_are_restored_after_early_stopping(digits):
    import torch

    from vae_anomaly.models import ModelConfig, build_model
    from vae_anomaly.trainer import TrainConfig, train

    X = torch.from_numpy(digits[0][:300])
    torch.manual_seed(0)
    model = build_model(ModelConfig(X.shape[1:]))
    snapshots = {}

    def snapshot(epoch, _metrics):
        snapshots[epoch] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    res = train(model, X, config=TrainConfig(random_state=0, epochs=200, patience=2, lr=3e-2), callbacks=[snapshot])
    assert res.stopped_early and res.best_epoch < res.epochs_run - 1
    best, last = snapshots[res.best_epoch], snapshots[res.epochs_run - 1]
    final = model.state_dict()
    assert any(not torch.equal(best[k], last[k]) for k in best)
    assert all(torch.equal(final[k], best[k]) for k in best)


def test_fpr_threshold_uses_the_held_out_rows(table):
    from vae_anomaly.scoring import threshold_from_fpr

    det = VAEDetector(random_state=0, epochs=3, threshold="fpr", target_fpr=0.05).fit(table)
    val = det.train_result_.val_index
    assert det.threshold_ == threshold_from_fpr(det.decision_scores_[val], 0.05)
    assert det.threshold_ != threshold_from_fpr(det.decision_scores_, 0.05)


def test_default_score_is_reconstruction_plus_a_positive_kl(fitted, table):
    det, _ = fitted
    recon = det.decision_function(table, method="recon")
    kl = det.decision_function(table, method="kl")
    assert (kl > 0).all()
    np.testing.assert_allclose(det.decision_function(table), recon + kl, rtol=1e-5)
