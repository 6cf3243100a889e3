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

LOG_2PI = math.log(2 * math.pi)
# Bounds on the learned Gaussian log-variance: without a floor, a feature the
# model reconstructs perfectly drives its variance to zero and its NLL to -inf.
LOGVAR_MIN, LOGVAR_MAX = -6.0, 4.0
# A Bernoulli feature's value outside [0, 1] costs 0.5 * (distance / this)^2 nats (50 nats one unit out).
OUT_OF_RANGE_SCALE = 0.1


@dataclass(frozen=True)
class FeatureBlock:
    """A slice ``[start, end)`` of the model's input holding one original feature."""

    kind: str  # "bernoulli" | "gaussian" | "categorical"
    start: int
    end: int


class Likelihood(nn.Module):
    """Mixed per-block likelihood over a flat feature vector (images are flattened).

    ``blocks`` gives each original feature's kind and slice; consecutive
    features of the same kind are evaluated together for speed.
    """

    def __init__(self, blocks: Sequence[FeatureBlock], n_features: int) -> None:
        super().__init__()
        self.blocks = list(blocks)
        self.n_features = n_features
        gauss = [b.start for b in self.blocks if b.kind == "gaussian"]
        bern = [b.start for b in self.blocks if b.kind == "bernoulli"]
        self.register_buffer("gauss_idx", torch.tensor(gauss, dtype=torch.long), persistent=False)
        self.register_buffer("bern_idx", torch.tensor(bern, dtype=torch.long), persistent=False)
        self.cat_blocks = [b for b in self.blocks if b.kind == "categorical"]
        # Learned per-feature log-variance (shared across rows): the decoder
        # learns how noisy each column is, so noisy columns weigh less.
        self.logvar = nn.Parameter(torch.zeros(len(gauss)))
        # Output position of each original feature in the per-feature NLL.
        kinds_order = {"gaussian": [], "bernoulli": [], "categorical": []}
        for i, b in enumerate(self.blocks):
            kinds_order[b.kind].append(i)
        self._order = kinds_order["gaussian"] + kinds_order["bernoulli"] + kinds_order["categorical"]
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
        for b in self.cat_blocks:
            idx = torch.multinomial(res[:, b.start:b.end], 1, generator=generator).squeeze(1)
            res[:, b.start:b.end] = F.one_hot(idx, b.end - b.start).float()
        return res


def blocks_for_image(n_pixels: int) -> list[FeatureBlock]:
    return [FeatureBlock("bernoulli", i, i + 1) for i in range(n_pixels)]


def blocks_for_table(layout: Sequence[tuple[str, int, int]]) -> list[FeatureBlock]:
    """From (kind, start, end) with kind ``numeric``, ``binary`` (a 0/1 flag) or ``categorical``."""
    kinds = {"numeric": "gaussian", "binary": "bernoulli", "categorical": "categorical"}
    return [FeatureBlock(kinds[k], s, e) for k, s, e in layout]
