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
from .options import COMPLEXITY_METHODS, SCORE_METHODS  # spelled once, in the options table


def check_method(method: str) -> None:
    """A guard of the public scoring functions (estimators check ``score_method`` at their boundary)."""
    if method not in SCORE_METHODS:
        raise ConfigError(f"score_method must be one of {SCORE_METHODS}, not {method!r}")


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # splitmix64's constants (Steele, Lea & Flood 2014)
_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _splitmix64(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def row_normals(x: torch.Tensor, shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """Standard normal noise (n, *shape) in which row i's values are a function of ``seed`` and the bytes
    of ``x[i]`` only (counter-based: a keyed hash of the row, then the splitmix64 stream of that key and
    Box-Muller), so a row draws the same noise in any batch, at any position, on any device.

    One torch generator per row gives the same property at about twice the cost of the scores themselves.
    """
    import hashlib

    rows = x.detach().cpu().contiguous().numpy().reshape(len(x), -1)
    key = int(seed).to_bytes(8, "little", signed=True)
    keys = np.frombuffer(b"".join(hashlib.blake2b(r.tobytes(), digest_size=8, key=key).digest() for r in rows),
                         dtype="<u8").astype(np.uint64)
    m = math.prod(shape)
    half = (m + 1) // 2  # one 64-bit draw gives two normals (cos and sin of one Box-Muller pair)
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps by design
        v = _splitmix64(keys[:, None] + _GOLDEN * np.arange(1, half + 1, dtype=np.uint64)[None, :])
    # 24 bits each: exact in float32; u1 in (0, 1] keeps the log finite (|z| <= 5.8).
    u1 = torch.from_numpy(((v >> np.uint64(40)) + np.uint64(1)).astype(np.float32)) * 2.0 ** -24
    u2 = torch.from_numpy((v & np.uint64(0xFFFFFF)).astype(np.float32)) * (2.0 * math.pi * 2.0 ** -24)
    r = torch.sqrt(-2.0 * torch.log(u1))
    return torch.cat([r * torch.cos(u2), r * torch.sin(u2)], dim=1)[:, :m].reshape(len(x), *shape)


@torch.no_grad()
def score_batch(model: nn.Module, x: torch.Tensor, c: torch.Tensor | None = None, *, method: str = "recon_kl",
                n_samples: int = 16, seed: int = 0, per_feature: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Scores (n,) -- higher is more anomalous -- and optionally NLL per original feature (n, F).

    The sampled methods ("neg_elbo", "iwae") draw each row's ``n_samples`` latents from :func:`row_normals`
    with ``seed``: a row's score does not depend on the rows batched with it.
    """
    check_method(method)
    model.eval()
    flat = x.flatten(1)
    lik = model.likelihood
    if model.is_quantized and method == "iwae":
        raise ConfigError("the IWAE score needs a Gaussian latent; use 'recon_kl' with a VQ-VAE")
    if model.is_quantized or method in ("recon_kl", "recon", "kl"):
        # Deterministic: a VQ-VAE's code prior -log p plays the KL's part, and with a point-mass
        # posterior its negative ELBO is this same sum.
        nllf, rate = model.score_terms(x, c)
        score = {"recon": nllf.sum(1), "kl": rate}.get(method, nllf.sum(1) + rate)
        return (score, nllf) if per_feature else score

    from .models.vae import gaussian_kl, gaussian_log_prob

    mu, logvar = model.encode(x, c)
    kl = gaussian_kl(mu, logvar).sum(1)
    nllf = lik.nll_per_feature(model.decode(mu, c), flat)
    # Each row's noise depends only on the seed and the row itself, never on the batch it came in:
    # a row's sampled score is the same whatever the chunk size, row order or scoring path (Dask, pyfunc).
    eps = row_normals(x, (n_samples, *mu.shape[1:]), seed).to(device=mu.device, dtype=mu.dtype)
    std = torch.exp(0.5 * logvar)
    logw, nll_sum = [], torch.zeros_like(kl)
    for j in range(n_samples):
        z = mu + std * eps[:, j]
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


def flag(scores: np.ndarray | list[float], threshold: float) -> np.ndarray:
    """The one flagging rule: 1 where a score is strictly above ``threshold`` (a tie is normal), else 0.

    int64 -- numpy's default integer, what ``predict``, ``labels_`` and the registered pyfunc return
    (``bigint`` in Spark). Scores files store the flag as int8: that narrowing belongs to their Arrow
    schema (``outputs.scores_schema``), not to the rule.
    """
    return (np.asarray(scores) > threshold).astype(np.int64)


def detection_metrics(y_true: np.ndarray, scores: np.ndarray, threshold: float | None = None) -> dict[str, float]:
    """AUROC, AUPRC and -- given a threshold -- precision, recall and F1 of the flags."""
    from sklearn.metrics import average_precision_score, precision_recall_fscore_support, roc_auc_score

    y = np.asarray(y_true).astype(int)
    if len(np.unique(y)) < 2:
        raise ConfigError("metrics need both normal (0) and anomalous (1) labels")
    out = {"auroc": float(roc_auc_score(y, scores)), "auprc": float(average_precision_score(y, scores))}
    if threshold is not None:
        pred = flag(scores, threshold)
        p, r, f, _ = precision_recall_fscore_support(y, pred, average="binary", zero_division=0)
        out.update(precision=float(p), recall=float(r), f1=float(f))
    return out


# ---------------------------------------------------------------- input complexity (Serrà et al., ICLR 2020)


def complexity_bits(images: np.ndarray, method: str) -> np.ndarray:
    """(n,) compressed length in bits of each image (n, C, H, W) in [0, 1], quantised to 8 bits.

    A general-purpose compressor's length estimates how much information an image holds whatever the
    model: simple images (a flat background) get high likelihoods from any generative model, so
    likelihood alone ranks them as normal. PNG (Pillow, compress level 9) needs 1, 3 or 4 channels;
    zlib (level 9) compresses the raw H x W x C bytes.
    """
    if method not in COMPLEXITY_METHODS:
        raise ConfigError(f"complexity_correction must be one of {COMPLEXITY_METHODS} or None, not {method!r}")
    arr = np.asarray(images)
    if arr.ndim != 4:
        raise ConfigError(f"complexity_correction needs images (n, C, H, W), got an array shaped {arr.shape}")
    q = np.rint(np.clip(arr, 0, 1) * 255).astype(np.uint8).transpose(0, 2, 3, 1)  # NHWC bytes
    out = np.empty(len(q), dtype=np.float64)
    if method == "zlib":
        import zlib

        for i, img in enumerate(q):
            out[i] = 8 * len(zlib.compress(np.ascontiguousarray(img).tobytes(), 9))
        return out
    import io

    from PIL import Image

    mode = {1: "L", 3: "RGB", 4: "RGBA"}.get(q.shape[3])
    if mode is None:
        raise ConfigError(f"complexity_correction='png' needs 1, 3 or 4 channels, not {q.shape[3]}; use 'zlib'")
    for i, img in enumerate(q):
        buf = io.BytesIO()
        Image.fromarray(img[:, :, 0] if mode == "L" else img).save(buf, format="PNG", compress_level=9)
        out[i] = 8 * buf.getbuffer().nbytes
    return out


def complexity_corrected(scores_nats: np.ndarray, images: np.ndarray, method: str) -> np.ndarray:
    """Serrà et al.'s score S(x) = -log2 p(x) - L(x), both in bits per dimension.

    ``scores_nats`` are the model's scores (an NLL-like bound, in nats per image); ``L(x)`` is the
    compressed length of :func:`complexity_bits`. High S: the model finds x less likely than its
    complexity alone explains.
    """
    dims = float(np.prod(np.asarray(images).shape[1:]))
    return (np.asarray(scores_nats, dtype=np.float64) / math.log(2) - complexity_bits(images, method)) / dims
