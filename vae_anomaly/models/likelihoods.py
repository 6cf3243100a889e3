"""Decoder likelihoods p(x|z), per feature, so scores can be explained per column or pixel.

Every likelihood turns the decoder's raw output and a target into the negative
log-likelihood of each *original feature* (a pixel, a numeric column, a whole
one-hot block), in nats. Summing those gives -log p(x|z) of the row.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..options import IMAGE_LIKELIHOODS  # spelled once, in the options table

LOG_2PI = math.log(2 * math.pi)
# Bounds on the learned Gaussian log-variance: without a floor, a feature the
# model reconstructs perfectly drives its variance to zero and its NLL to -inf.
LOGVAR_MIN, LOGVAR_MAX = -6.0, 4.0
# A Bernoulli feature's value outside [0, 1] costs 0.5 * (distance / this)^2 nats (50 nats one unit out).
OUT_OF_RANGE_SCALE = 0.1
# Starting log-variance of an image's Gaussian pixels. Pixels lie in [0, 1], so unit variance (the tables'
# start, right for robust-scaled columns) is far too wide, and Adam moves a parameter about lr per step:
# in a 1 000-step budget at lr 1e-3 the variance could not shrink from 1 to a pixel's scale.
IMAGE_LOGVAR_INIT = math.log(0.05)
# Below this |logit| the continuous Bernoulli's log-normaliser and mean use their Taylor series
# (the closed forms are 0/0 at logit 0).
CB_TAYLOR_CUT = 1e-2


@dataclass(frozen=True)
class FeatureBlock:
    """A slice ``[start, end)`` of the model's input holding one original feature."""

    kind: str  # "bernoulli" | "gaussian" | "categorical" | "continuous_bernoulli"
    start: int
    end: int


class Likelihood(nn.Module):
    """Mixed per-block likelihood over a flat feature vector (images are flattened).

    ``blocks`` gives each original feature's kind and slice; consecutive
    features of the same kind are evaluated together for speed.
    """

    def __init__(self, blocks: Sequence[FeatureBlock], n_features: int, logvar_init: float = 0.0) -> None:
        super().__init__()
        self.blocks = list(blocks)
        self.n_features = n_features
        gauss = [b.start for b in self.blocks if b.kind == "gaussian"]
        bern = [b.start for b in self.blocks if b.kind == "bernoulli"]
        self.register_buffer("gauss_idx", torch.tensor(gauss, dtype=torch.long), persistent=False)
        self.register_buffer("bern_idx", torch.tensor(bern, dtype=torch.long), persistent=False)
        cb = [b.start for b in self.blocks if b.kind == "continuous_bernoulli"]
        self.register_buffer("cb_idx", torch.tensor(cb, dtype=torch.long), persistent=False)
        self.cat_blocks = [b for b in self.blocks if b.kind == "categorical"]
        # Learned per-feature log-variance (shared across rows): the decoder
        # learns how noisy each column is, so noisy columns weigh less.
        self.logvar = nn.Parameter(torch.full((len(gauss),), float(logvar_init)))
        # Output position of each original feature in the per-feature NLL.
        kinds_order = {"gaussian": [], "bernoulli": [], "categorical": [], "continuous_bernoulli": []}
        for i, b in enumerate(self.blocks):
            kinds_order[b.kind].append(i)
        self._order = (kinds_order["gaussian"] + kinds_order["bernoulli"] + kinds_order["categorical"]
                       + kinds_order["continuous_bernoulli"])
        inv = [0] * len(self._order)
        for pos, i in enumerate(self._order):
            inv[i] = pos
        self.register_buffer("inverse_order", torch.tensor(inv, dtype=torch.long), persistent=False)
        self._identity_order = self._order == list(range(len(self.blocks)))

    def clamped_logvar(self) -> torch.Tensor:
        return self.logvar.clamp(LOGVAR_MIN, LOGVAR_MAX)

    def nll_per_feature(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """(n, n_original_features) negative log-likelihoods in nats."""
        out = out.float()
        x = x.float()
        parts = []
        if len(self.gauss_idx):
            mu = out.index_select(1, self.gauss_idx)
            xv = x.index_select(1, self.gauss_idx)
            lv = self.clamped_logvar()
            parts.append(0.5 * (LOG_2PI + lv + (xv - mu) ** 2 * torch.exp(-lv)))
        if len(self.bern_idx):
            logits = out if len(self.bern_idx) == out.shape[1] else out.index_select(1, self.bern_idx)
            xv = x if len(self.bern_idx) == x.shape[1] else x.index_select(1, self.bern_idx)
            inside = xv.clamp(0, 1)
            # A flag value outside the two seen at fit time (a table's 0/1 column scored with a 2) is
            # penalised by its distance, not given a cross-entropy that goes negative outside [0, 1].
            parts.append(F.binary_cross_entropy_with_logits(logits, inside, reduction="none")
                         + 0.5 * ((xv - inside) / OUT_OF_RANGE_SCALE) ** 2)
        for b in self.cat_blocks:
            logp = F.log_softmax(out[:, b.start:b.end], dim=1)
            parts.append(-(x[:, b.start:b.end] * logp).sum(dim=1, keepdim=True))
        if len(self.cb_idx):
            logits = out if len(self.cb_idx) == out.shape[1] else out.index_select(1, self.cb_idx)
            xv = x if len(self.cb_idx) == x.shape[1] else x.index_select(1, self.cb_idx)
            inside = xv.clamp(0, 1)
            # -log p(x|l) = BCE(l, x) - log C(l): the cross-entropy plus the normaliser that makes the
            # density integrate to 1 over [0, 1] (Loaiza-Ganem & Cunningham 2019); outside [0, 1] as Bernoulli.
            parts.append(F.binary_cross_entropy_with_logits(logits, inside, reduction="none")
                         - cb_log_norm(logits) + 0.5 * ((xv - inside) / OUT_OF_RANGE_SCALE) ** 2)
        nll = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        return nll if self._identity_order else nll.index_select(1, self.inverse_order)

    def nll(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """(n,) negative log-likelihood of each row."""
        return self.nll_per_feature(out, x).sum(dim=1)

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        """The distribution's mean in input space (probabilities for Bernoulli and one-hot blocks)."""
        res = out.float().clone()
        if len(self.bern_idx):
            res[:, self.bern_idx] = torch.sigmoid(res[:, self.bern_idx])
        if len(self.cb_idx):
            res[:, self.cb_idx] = cb_mean(res[:, self.cb_idx])
        for b in self.cat_blocks:
            res[:, b.start:b.end] = F.softmax(res[:, b.start:b.end], dim=1)
        return res

    def sample(self, out: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw x ~ p(x|z): Gaussian noise, Bernoulli draws, one category per block."""
        res = self.mean(out)
        if len(self.gauss_idx):
            std = torch.exp(0.5 * self.clamped_logvar())
            noise = torch.randn(res.shape[0], len(self.gauss_idx), generator=generator, device=res.device)
            res[:, self.gauss_idx] = res[:, self.gauss_idx] + noise * std
        if len(self.bern_idx):
            p = res[:, self.bern_idx]
            res[:, self.bern_idx] = torch.bernoulli(p, generator=generator)
        if len(self.cb_idx):
            logits = out.float().index_select(1, self.cb_idx)
            u = torch.rand(logits.shape, generator=generator, device=logits.device)
            res[:, self.cb_idx] = cb_icdf(logits, u)
        for b in self.cat_blocks:
            idx = torch.multinomial(res[:, b.start:b.end], 1, generator=generator).squeeze(1)
            res[:, b.start:b.end] = F.one_hot(idx, b.end - b.start).float()
        return res


def blocks_for_image(n_pixels: int, kind: str = "bernoulli") -> list[FeatureBlock]:
    """One block per pixel, all of ``kind`` (one of :data:`IMAGE_LIKELIHOODS`)."""
    if kind not in IMAGE_LIKELIHOODS:
        raise ValueError(f"image likelihood must be one of {IMAGE_LIKELIHOODS}, not {kind!r}")
    return [FeatureBlock(kind, i, i + 1) for i in range(n_pixels)]


# ---------------------------------------------------------------- continuous Bernoulli
# CB(x | l) = C(l) * s^x * (1 - s)^(1 - x) on [0, 1], s = sigmoid(l): an exponential family with natural
# parameter l, density proportional to exp(l * x). Written in the logit l the closed forms are
# C = l / tanh(l / 2), E[x] = 1 / (1 - exp(-l)) - 1 / l and F^-1(u) = log1p(u * expm1(l)) / l,
# all even/odd in l and 0/0 at l = 0, where their Taylor series take over.
def cb_log_norm(logits: torch.Tensor) -> torch.Tensor:
    """log C(l) of the continuous Bernoulli, elementwise (log 2 at l = 0, about log|l| for large |l|)."""
    a = logits.abs()
    safe = torch.where(a < CB_TAYLOR_CUT, torch.full_like(a, CB_TAYLOR_CUT), a)
    exact = torch.log(safe) - torch.log(torch.tanh(safe / 2))
    u2 = (a / 2) ** 2  # (l/2) / tanh(l/2) = 1 + u^2/3 - u^4/45 + ...
    taylor = math.log(2.0) + torch.log1p(u2 / 3 - u2 * u2 / 45)
    return torch.where(a < CB_TAYLOR_CUT, taylor, exact)


def cb_mean(logits: torch.Tensor) -> torch.Tensor:
    """E[x] under the continuous Bernoulli with these logits (not sigmoid(l): the mean is pulled to 1/2)."""
    logits = logits.clamp(-80, 80)  # exp(80) is still finite in float32; the mean is 1/80 from 0 or 1 there
    small = logits.abs() < CB_TAYLOR_CUT
    safe = torch.where(small, torch.full_like(logits, CB_TAYLOR_CUT), logits)
    exact = -1.0 / torch.expm1(-safe) - 1.0 / safe  # 1/(1 - e^-l) - 1/l without cancellation in e^-l
    return torch.where(small, 0.5 + logits / 12, exact)


def cb_icdf(logits: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Inverse CDF of the continuous Bernoulli at ``u`` in [0, 1] (sampling by inversion)."""
    # For l > 0 use the mirror x -> 1 - x (logit -l) so expm1 never overflows.
    neg = logits <= 0
    a = -logits.abs()
    v = torch.where(neg, u, 1 - u)
    small = a > -CB_TAYLOR_CUT
    safe = torch.where(small, torch.full_like(a, -CB_TAYLOR_CUT), a)
    x = torch.where(small, v + a * v * (1 - v) / 2, torch.log1p(v * torch.expm1(safe)) / safe)
    return torch.where(neg, x, 1 - x).clamp(0, 1)


def blocks_for_table(layout: Sequence[tuple[str, int, int]]) -> list[FeatureBlock]:
    """From (kind, start, end) with kind ``numeric``, ``binary`` (a 0/1 flag) or ``categorical``."""
    kinds = {"numeric": "gaussian", "binary": "bernoulli", "categorical": "categorical"}
    return [FeatureBlock(kinds[k], s, e) for k, s, e in layout]
