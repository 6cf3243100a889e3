"""The VAE family behind one interface, :class:`VAEModel`: ``encode``, ``decode``, ``loss``, ``score_terms``,
``reconstruct``, ``sample`` and ``is_quantized``; :class:`ModelEnsemble` holds several such models."""

from __future__ import annotations

from torch import nn

from .config import ModelConfig
from .ensemble import ModelEnsemble, members_of
from .likelihoods import FeatureBlock, Likelihood
from .protocol import VAEModel
from .vae import CVAE, VAE, LossOutput, gaussian_kl, gaussian_log_prob
from .vqvae import VQVAE, VectorQuantizer


def build_model(config: ModelConfig) -> nn.Module:
    """The model class named by ``config.kind``, for a config bound to its data (:meth:`ModelConfig.for_input`)."""
    if not config.is_bound:
        from ..errors import ConfigError

        raise ConfigError("a model needs its input shape: bind the config with ModelConfig.for_input first")
    if config.kind == "vqvae":
        return VQVAE(config)
    if config.kind == "cvae":
        return CVAE(config)
    return VAE(config)


__all__ = ["CVAE", "VAE", "VQVAE", "FeatureBlock", "Likelihood", "LossOutput", "ModelConfig", "ModelEnsemble",
           "VAEModel", "VectorQuantizer", "build_model", "gaussian_kl", "gaussian_log_prob", "members_of"]
