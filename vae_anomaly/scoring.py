"""Anomaly scores from a trained model, per-feature contributions, thresholds and metrics.

The default score is the reconstruction error -- the negative log-likelihood of
x under the decoder at the posterior *mean* -- plus the KL of the posterior
from the prior. Using the mean (not a sampled z) makes it deterministic: the
same row always gets the same score. Rows the model cannot reconstruct *and*
rows it encodes far from the prior's typical set both score high.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .errors import ConfigError

SCORE_METHODS: tuple[str, ...] = ("recon_kl", "neg_elbo", "iwae", "recon", "kl")


def check_method(method: str) -> None:
    if method not in SCORE_METHODS:
        raise ConfigError(f"score must be one of {SCORE_METHODS}, not {method!r}")


@torch.no_grad()
def score_batch(model: nn.Module, x: torch.Tensor, c: torch.Tensor | None = None, *, method: str = "recon_kl",
                n_samples: int = 16, seed: int = 0, per_feature: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Scores (n,) -- higher is more anomalous -- and optionally NLL per original feature (n, F)."""
    check_method(method)
    model.eval()
    flat = x.flatten(1)
    lik = model.likelihood
    if hasattr(model, "quantize"):  # VQ-VAE: the code prior's -log p plays the KL's part
        if method == "iwae":
            raise ConfigError("the IWAE score needs a Gaussian latent; use 'recon_kl' with a VQ-VAE")
        q, codes, _ = model.quantize(x)
        nllf = lik.nll_per_feature(model.decode(q), flat)
        rate = model.rate(codes)
        score = {"recon": nllf.sum(1), "kl": rate}.get(method, nllf.sum(1) + rate)
        return (score, nllf) if per_feature else score

    from .models.vae import gaussian_kl, gaussian_log_prob

    mu, logvar = model.encode(x, c)
    kl = gaussian_kl(mu, logvar).sum(1)
    nllf = lik.nll_per_feature(model.decode(mu, c), flat)
    if method in ("recon_kl", "recon", "kl"):
        score = {"recon": nllf.sum(1), "kl": kl}.get(method, nllf.sum(1) + kl)
    else:
        # Seeded noise keeps the sampled scores reproducible for a given batch.
        gen = torch.Generator(device=x.device).manual_seed(seed)
        std = torch.exp(0.5 * logvar)
        logw, nll_sum = [], torch.zeros_like(kl)
        for _ in range(n_samples):
            z = mu + std * torch.randn(mu.shape, generator=gen, device=mu.device)
            nll = lik.nll(model.decode(z, c), flat)
            nll_sum += nll
            if method == "iwae":
                logw.append(-nll + gaussian_log_prob(z, torch.zeros_like(z), torch.zeros_like(z))
                            - gaussian_log_prob(z, mu, logvar))
        if method == "neg_elbo":
            score = nll_sum / n_samples + kl
        else:
            score = -(torch.logsumexp(torch.stack(logw), 0) - math.log(n_samples))
    return (score, nllf) if per_feature else score


def threshold_from_contamination(scores: np.ndarray, contamination: float) -> float:
    """Flag the top ``contamination`` share of training scores (PyOD's rule)."""
    if not 0 < contamination < 0.5:
        raise ConfigError(f"contamination must lie in (0, 0.5), got {contamination}")
    return float(np.percentile(scores, 100 * (1 - contamination)))


def threshold_from_fpr(clean_scores: np.ndarray, fpr: float) -> float:
    """Threshold whose false-positive rate on clean validation scores is at most ``fpr``."""
    if not 0 < fpr < 1:
        raise ConfigError(f"target false-positive rate must lie in (0, 1), got {fpr}")
    return float(np.quantile(clean_scores, 1 - fpr, method="higher"))


def detection_metrics(y_true: np.ndarray, scores: np.ndarray, threshold: float | None = None) -> dict[str, float]:
    """AUROC, AUPRC and -- given a threshold -- precision, recall and F1 of the flags."""
    from sklearn.metrics import average_precision_score, precision_recall_fscore_support, roc_auc_score

    y = np.asarray(y_true).astype(int)
    if len(np.unique(y)) < 2:
        raise ConfigError("metrics need both normal (0) and anomalous (1) labels")
    out = {"auroc": float(roc_auc_score(y, scores)), "auprc": float(average_precision_score(y, scores))}
    if threshold is not None:
        pred = (np.asarray(scores) > threshold).astype(int)
        p, r, f, _ = precision_recall_fscore_support(y, pred, average="binary", zero_division=0)
        out.update(precision=float(p), recall=float(r), f1=float(f))
    return out
