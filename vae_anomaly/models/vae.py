"""The Gaussian VAE, its beta/capacity variants and the conditional VAE.

Objective (per row, in nats, summed over dimensions, averaged over the batch):

    loss = -E_q[log p(x|z)] + w * KL(q(z|x) || N(0, I))

with ``w = beta`` (beta-VAE), ramped from 0 during ``kl_warmup``, or replaced by
``beta * |KL - C|`` with the capacity ``C`` annealed from 0 (Burgess et al. 2018).
Summing -- not averaging -- over pixels keeps the KL weight independent of the
input size: averaging silently multiplies beta by 1/n_pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .likelihoods import IMAGE_LOGVAR_INIT, Likelihood, blocks_for_image, blocks_for_table
from .networks import ConvHead, ConvTrunk, conv_channels_for, mlp

LATENT_LOGVAR_MIN, LATENT_LOGVAR_MAX = -12.0, 8.0


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) per latent dimension, shape like ``mu``."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def gaussian_log_prob(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag exp(logvar)) summed over the last dimension."""
    return -0.5 * (math.log(2 * math.pi) + logvar + (z - mu).pow(2) * torch.exp(-logvar)).sum(-1)


def truncation_mask(row_loss: torch.Tensor, trim: float) -> torch.Tensor:
    """Rows to keep: all but the ``trim`` share with the highest loss (at least one row is kept).

    Contaminated training data holds the anomalies the model should *not* learn; they are the rows it
    fits worst, so leaving the worst share of each batch out of the gradient keeps the model from
    learning to reconstruct them (loss truncation, as in ALTBI, Cho et al. 2024).
    """
    n = len(row_loss)
    drop = min(n - 1, int(math.floor(trim * n))) if trim > 0 else 0
    if drop <= 0:
        return torch.ones(n, dtype=torch.bool, device=row_loss.device)
    cutoff = torch.kthvalue(row_loss.detach().float(), n - drop).values
    return row_loss.detach() <= cutoff


@dataclass
class LossOutput:
    """The training loss and its parts (batch means, in nats)."""

    loss: torch.Tensor
    # Detached 0-d tensors: the trainer sums them on the device and syncs once per epoch
    # (a .item() per term per step would force a device sync at every step).
    terms: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.terms.items()}


def make_likelihood(config: ModelConfig) -> Likelihood:
    if config.is_image:
        kind = config.image_likelihood
        return Likelihood(blocks_for_image(config.n_features, kind), config.n_features,
                          logvar_init=IMAGE_LOGVAR_INIT if kind == "gaussian" else 0.0)
    return Likelihood(blocks_for_table(config.blocks), config.n_features)


class _Backbone(nn.Module):
    """Encoder trunk and decoder head shared by the Gaussian and the VQ models."""

    def __init__(self, config: ModelConfig, enc_out: int, dec_in: int) -> None:
        super().__init__()
        self.config = config
        c = config.n_conditions
        use_conv = config.is_image and config.architecture != "mlp"
        if use_conv and conv_channels_for(config.input_shape, config.conv_channels):
            ch, h, w = config.input_shape
            chans = conv_channels_for(config.input_shape, config.conv_channels)
            levels = len(chans)
            self.feat_shape = (chans[-1], h >> levels, w >> levels)
            feat = math.prod(self.feat_shape)
            self.trunk = ConvTrunk(ch, chans)
            self.enc_fc = nn.Sequential(nn.Linear(feat + c, config.hidden_dims[0]), nn.LeakyReLU(0.1),
                                        nn.Linear(config.hidden_dims[0], enc_out))
            self.dec_fc = nn.Sequential(nn.Linear(dec_in + c, config.hidden_dims[0]), nn.LeakyReLU(0.1),
                                        nn.Linear(config.hidden_dims[0], feat), nn.LeakyReLU(0.1))
            self.head = ConvHead(ch, chans)
            self.conv = True
        else:
            dims = list(config.hidden_dims or (256,))
            self.trunk = mlp([config.n_features + c, *dims], dropout=config.dropout)
            self.enc_fc = nn.Linear(dims[-1], enc_out)
            self.dec_fc = mlp([dec_in + c, *reversed(dims)], dropout=config.dropout)
            self.head = nn.Linear(dims[0], config.n_features)
            self.conv = False

    def features(self, x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        if self.conv:
            h = self.trunk(x).flatten(1)
            return self.enc_fc(h if c is None else torch.cat([h, c], 1))
        x = x.flatten(1)
        return self.enc_fc(self.trunk(x if c is None else torch.cat([x, c], 1)))

    def output(self, z: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        h = self.dec_fc(z if c is None else torch.cat([z, c], 1))
        if self.conv:
            return self.head(h.view(-1, *self.feat_shape)).flatten(1)
        return self.head(h)


class VAE(nn.Module):
    """Gaussian-latent VAE (beta, capacity and warm-up set in :class:`ModelConfig`)."""

    is_quantized: ClassVar[bool] = False  # see models.protocol.VAEModel

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        latent = int(config.latent_dim or 16)
        self.latent_dim = latent
        self.net = _Backbone(config, 2 * latent, latent)
        self.likelihood = make_likelihood(config)

    # ------------------------------------------------------------- interface
    def _cond(self, c: torch.Tensor | None, n: int) -> torch.Tensor | None:
        k = self.config.n_conditions
        if k == 0:
            if c is not None:
                raise ValueError("this model is not conditional: pass no condition c")
            return None
        if c is None:
            raise ValueError("this model is conditional: pass a condition c")
        if c.dtype in (torch.int64, torch.int32) and c.dim() == 1:
            c = F.one_hot(c.long(), k)
        return c.to(dtype=torch.float32).view(n, k)

    def encode(self, x: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior parameters ``(mu, logvar)`` of q(z|x[, c])."""
        h = self.net.features(x, self._cond(c, len(x)))
        mu, logvar = h.float().chunk(2, dim=1)
        return mu, logvar.clamp(LATENT_LOGVAR_MIN, LATENT_LOGVAR_MAX)

    def decode(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Raw decoder output (likelihood parameters), flat ``(n, n_features)``."""
        return self.net.output(z, self._cond(c, len(z)))

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps

    def loss(self, x: torch.Tensor, c: torch.Tensor | None = None, progress: float = 1.0,
             target: torch.Tensor | None = None, trim: float = 0.0) -> LossOutput:
        """Negative ELBO with the beta / capacity / warm-up weighting; ``progress`` in [0, 1].

        ``target`` (denoising) is the clean input the decoder must reproduce from a corrupted ``x``.
        ``trim`` leaves the batch's highest-loss share of rows out of the mean (loss truncation).
        """
        mu, logvar = self.encode(x, c)
        z = self.reparameterize(mu, logvar)
        target = x if target is None else target
        nll_rows = self.likelihood.nll(self.decode(z, c), target.flatten(1))
        kl_rows = gaussian_kl(mu, logvar).sum(1)
        keep = truncation_mask(nll_rows + kl_rows, trim)
        nll, kl = nll_rows[keep].mean(), kl_rows[keep].mean()
        cfg = self.config
        if cfg.capacity is not None:
            cap = cfg.capacity * min(1.0, progress / cfg.capacity_anneal)
            reg = cfg.beta * (kl - cap).abs()
        else:
            warm = min(1.0, progress / cfg.kl_warmup) if cfg.kl_warmup > 0 else 1.0
            reg = cfg.beta * warm * kl
        loss = nll + reg
        return LossOutput(loss, {"loss": loss.detach(), "nll": nll.detach(), "kl": kl.detach(),
                                 "neg_elbo": (nll + kl).detach()})

    def score_terms(self, x: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """NLL per feature at the posterior mean ``(n, F)`` and the KL from the prior ``(n,)``."""
        mu, logvar = self.encode(x, c)
        return self.likelihood.nll_per_feature(self.decode(mu, c), x.flatten(1)), gaussian_kl(mu, logvar).sum(1)

    def reconstruct(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Mean of p(x | z = posterior mean), shaped like ``x``."""
        mu, _ = self.encode(x, c)
        return self.likelihood.mean(self.decode(mu, c)).view_as(x)

    @torch.no_grad()
    def sample(self, n: int, c: torch.Tensor | int | None = None, *, generator: torch.Generator | None = None,
               mean: bool = True) -> torch.Tensor:
        """Draw ``n`` samples from the prior; ``c`` is a class index or one-hot rows for a CVAE.

        ``mean=True`` returns the decoder's mean (smooth images), otherwise a draw of p(x|z).
        """
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator, device=device)
        cond = None
        if self.config.n_conditions:
            if c is None:
                raise ValueError("a CVAE samples a chosen class: pass c")
            cond = torch.full((n,), int(c), device=device) if isinstance(c, int) else c.to(device)
        elif c is not None:
            raise ValueError("this model is not conditional: pass no condition c")
        out = self.decode(z, cond)
        x = self.likelihood.mean(out) if mean else self.likelihood.sample(out, generator)
        return x.view(n, *self.config.input_shape)


class CVAE(VAE):
    """Conditional VAE: encoder and decoder both see a one-hot condition (Sohn et al. 2015)."""

    def __init__(self, config: ModelConfig) -> None:
        if config.n_conditions < 1:
            raise ValueError("CVAE needs config.n_conditions >= 1")
        super().__init__(config)
