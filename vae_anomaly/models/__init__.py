"""The VAE family behind one interface: ``loss``, ``encode``, ``decode``, ``sample``."""

from __future__ import annotations

from torch import nn

from .config import ModelConfig
from .likelihoods import FeatureBlock, Likelihood
from .vae import CVAE, VAE, LossOutput, gaussian_kl, gaussian_log_prob
from .vqvae import VQVAE, VectorQuantizer


def build_model(config: ModelConfig) -> nn.Module:
    """The model class named by ``config.kind``."""
    if config.kind == "vqvae":
        return VQVAE(config)
    if config.kind == "cvae":
        return CVAE(config)
    return VAE(config)


__all__ = ["CVAE", "VAE", "VQVAE", "FeatureBlock", "Likelihood", "LossOutput", "ModelConfig", "VectorQuantizer",
           "build_model", "gaussian_kl", "gaussian_log_prob"]
