"""VQ-VAE with an EMA codebook, k-means initialisation and dead-code restarts.

One module, sane defaults (commitment 0.25, decay 0.99), in the spirit of
lucidrains' vector-quantize-pytorch. After training, :meth:`VQVAE.fit_prior`
fits the empirical per-position code distribution so :meth:`VQVAE.sample` works
and ``-log p(codes)`` serves as the rate term of the anomaly score.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .vae import LossOutput, _Backbone, make_likelihood


def kmeans(x: torch.Tensor, k: int, iters: int = 10, generator: torch.Generator | None = None) -> torch.Tensor:
    """Plain Lloyd's k-means on ``x`` (n, d); centres start at random rows."""
    n = x.shape[0]
    idx = torch.randint(0, n, (k,), generator=generator, device=x.device) if n < k else \
        torch.randperm(n, generator=generator, device=x.device)[:k]
    centres = x[idx].clone()
    for _ in range(iters):
        assign = torch.cdist(x, centres).argmin(1)
        sums = torch.zeros_like(centres).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k).to(x.dtype)
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None]
    return centres


class VectorQuantizer(nn.Module):
    """Nearest-code quantisation with straight-through gradients and EMA code updates."""

    def __init__(self, dim: int, codebook_size: int, *, decay: float = 0.99, commitment: float = 0.25,
                 kmeans_init: bool = True, dead_code_threshold: float = 0.5, eps: float = 1e-5) -> None:
        super().__init__()
        self.dim, self.codebook_size = dim, codebook_size
        self.decay, self.commitment, self.eps = decay, commitment, eps
        self.dead_code_threshold = dead_code_threshold
        self.register_buffer("embed", torch.randn(codebook_size, dim) * 0.1)
        self.register_buffer("embed_avg", self.embed.clone())
        self.register_buffer("cluster_size", torch.ones(codebook_size))
        self.register_buffer("initted", torch.tensor(not kmeans_init))

    def codes(self, z: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code for each row of ``z`` (n, dim)."""
        dist = z.pow(2).sum(1, keepdim=True) - 2 * z @ self.embed.t() + self.embed.pow(2).sum(1)[None]
        return dist.argmin(1)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """``z`` (n, dim) -> (quantised with straight-through grads, code indices, stats)."""
        z = z.float()
        if self.training and not bool(self.initted):
            self.embed.copy_(kmeans(z.detach(), self.codebook_size))
            self.embed_avg.copy_(self.embed)
            self.cluster_size.fill_(1.0)
            self.initted.fill_(True)
        idx = self.codes(z.detach())
        q = self.embed[idx]
        onehot = F.one_hot(idx, self.codebook_size).float()
        if self.training:
            self._ema_update(z.detach(), onehot)
        # Codebook moves by EMA, so only the encoder is pulled toward the codes.
        commit = self.commitment * (z - q.detach()).pow(2).sum(1)
        q = z + (q - z).detach()
        probs = onehot.mean(0)
        perplexity = torch.exp(-(probs * torch.log(probs + 1e-10)).sum())
        usage = (probs > 0).float().mean()
        return q, idx, {"commitment": commit, "perplexity": perplexity, "code_usage": usage}

    @torch.no_grad()
    def _ema_update(self, z: torch.Tensor, onehot: torch.Tensor) -> None:
        d = self.decay
        self.cluster_size.mul_(d).add_(onehot.sum(0), alpha=1 - d)
        self.embed_avg.mul_(d).add_(onehot.t() @ z, alpha=1 - d)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + self.codebook_size * self.eps) * n
        self.embed.copy_(self.embed_avg / smoothed[:, None])
        # Dead-code restart: a code nobody picks is moved onto a random encoder
        # output, so the codebook keeps its capacity instead of collapsing.
        dead = self.cluster_size < self.dead_code_threshold
        n_dead = int(dead.sum())
        if n_dead:
            pick = torch.randint(0, z.shape[0], (n_dead,), device=z.device)
            self.embed[dead] = z[pick]
            self.embed_avg[dead] = z[pick]
            self.cluster_size[dead] = 1.0


def _unconditional(c: torch.Tensor | None) -> None:
    if c is not None:
        raise ValueError("a VQ-VAE is not conditional: pass no condition c")


class VQVAE(nn.Module):
    """Discrete-latent autoencoder: ``n_positions`` codes per row (or one per feature-map cell)."""

    is_quantized: ClassVar[bool] = True  # see models.protocol.VAEModel

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        D = config.code_dim
        self.net = _Backbone(config, config.n_positions * D, config.n_positions * D)
        if self.net.conv:
            # Images: one code per cell of the trunk's feature map.
            ch = self.net.feat_shape[0]
            self.n_positions = self.net.feat_shape[1] * self.net.feat_shape[2]
            self.to_code = nn.Conv2d(ch, D, 1)
            self.from_code = nn.Conv2d(D, ch, 1)
        else:
            self.n_positions = config.n_positions
        self.quantizer = VectorQuantizer(D, config.codebook_size, decay=config.ema_decay,
                                         commitment=config.commitment,
                                         dead_code_threshold=config.dead_code_threshold)
        self.likelihood = make_likelihood(config)
        self.register_buffer("prior_logits", torch.zeros(self.n_positions, config.codebook_size))

    def encode(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Continuous encoder output ``(n, n_positions, code_dim)`` before quantisation."""
        _unconditional(c)
        D = self.config.code_dim
        if self.net.conv:
            h = self.to_code(self.net.trunk(x))
            return h.flatten(2).transpose(1, 2)
        return self.net.features(x, None).view(len(x), self.n_positions, D)

    def encode_codes(self, x: torch.Tensor) -> torch.Tensor:
        """Code indices ``(n, n_positions)``."""
        z = self.encode(x)
        return self.quantizer.codes(z.reshape(-1, z.shape[-1]).float()).view(len(x), -1)

    def decode(self, zq: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Raw decoder output from quantised vectors ``(n, n_positions, code_dim)``."""
        _unconditional(c)
        if self.net.conv:
            _, h, w = self.net.feat_shape
            grid = zq.transpose(1, 2).reshape(len(zq), -1, h, w)
            return self.net.head(self.from_code(grid)).flatten(1)
        h = self.net.dec_fc(zq.reshape(len(zq), -1))
        return self.net.head(h)

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        return self.decode(self.quantizer.embed[codes])

    def quantize(self, x: torch.Tensor, c: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        z = self.encode(x, c)
        n, p, d = z.shape
        q, idx, stats = self.quantizer(z.reshape(n * p, d))
        stats["commitment"] = stats["commitment"].view(n, p).sum(1)
        return q.view(n, p, d), idx.view(n, p), stats

    def loss(self, x: torch.Tensor, c: torch.Tensor | None = None, progress: float = 1.0,
             target: torch.Tensor | None = None, trim: float = 0.0) -> LossOutput:
        from .vae import truncation_mask

        q, _, stats = self.quantize(x, c)
        target = x if target is None else target
        nll_rows = self.likelihood.nll(self.decode(q), target.flatten(1))
        keep = truncation_mask(nll_rows + stats["commitment"], trim)
        nll = nll_rows[keep].mean()
        commit = stats["commitment"][keep].mean()
        loss = nll + commit
        return LossOutput(loss, {"loss": loss.detach(), "nll": nll.detach(), "commitment": commit.detach(),
                                 "perplexity": stats["perplexity"].detach(), "code_usage": stats["code_usage"].detach()})

    @torch.no_grad()
    def fit_prior(self, codes: torch.Tensor, smoothing: float = 0.5) -> None:
        """Empirical per-position code distribution (additive smoothing) from training codes."""
        counts = torch.zeros_like(self.prior_logits)
        for p in range(self.n_positions):
            counts[p] = torch.bincount(codes[:, p].to(counts.device), minlength=self.config.codebook_size).float()
        self.prior_logits.copy_(torch.log((counts + smoothing) / (counts + smoothing).sum(1, keepdim=True)))

    def rate(self, codes: torch.Tensor) -> torch.Tensor:
        """-log p(codes) under the fitted prior, in nats per row: the VQ analogue of the KL term."""
        logp = torch.log_softmax(self.prior_logits, 1)
        return -logp.gather(1, codes.t()).t().sum(1)

    def score_terms(self, x: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """NLL per feature at the quantised code ``(n, F)`` and the code prior's ``-log p(codes)`` ``(n,)``:
        the VQ analogue of the reconstruction and KL terms."""
        q, codes, _ = self.quantize(x, c)
        return self.likelihood.nll_per_feature(self.decode(q), x.flatten(1)), self.rate(codes)

    def reconstruct(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        q, _, _ = self.quantize(x, c)
        return self.likelihood.mean(self.decode(q)).view_as(x)

    @torch.no_grad()
    def sample(self, n: int, c: torch.Tensor | int | None = None, *, generator: torch.Generator | None = None,
               mean: bool = True) -> torch.Tensor:
        _unconditional(c)
        probs = torch.softmax(self.prior_logits, 1)
        codes = torch.multinomial(probs, n, replacement=True, generator=generator).t()
        out = self.decode_codes(codes)
        x = self.likelihood.mean(out) if mean else self.likelihood.sample(out, generator)
        return x.view(n, *self.config.input_shape)
