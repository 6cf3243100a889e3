"""The one interface every model of the family meets (VAE, CVAE, VQVAE): what trainers, scorers and
:class:`~vae_anomaly.generative.GenerativeModel` may call, instead of asking ``hasattr`` what a model can do.

A :class:`~vae_anomaly.models.ensemble.ModelEnsemble` is a container of such models (its ``members``),
not one itself: its members are scored one by one and their scores combined.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch

    from .config import ModelConfig
    from .likelihoods import Likelihood
    from .vae import LossOutput


@runtime_checkable
class VAEModel(Protocol):
    """``c`` is the condition of a conditional model (class indices or one-hot rows) and must be None
    for an unconditional one, which refuses a condition rather than ignore it."""

    #: True for a discrete (vector-quantised) latent: ``encode`` gives continuous codes to quantise, the
    #: rate is ``-log p(codes)`` under the fitted code prior, and there is no Gaussian posterior to sample.
    is_quantized: ClassVar[bool]
    config: ModelConfig
    likelihood: Likelihood

    def encode(self, x: torch.Tensor, c: torch.Tensor | None = None) -> Any:
        """Posterior ``(mu, logvar)`` of a Gaussian latent, or the continuous codes of a quantised one."""

    def decode(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Raw decoder output (the likelihood's parameters), flat ``(n, n_outputs)``."""

    def loss(self, x: torch.Tensor, c: torch.Tensor | None = None, progress: float = 1.0,
             target: torch.Tensor | None = None, trim: float = 0.0) -> LossOutput:
        """The training objective of a batch (``progress`` in [0, 1] drives warm-ups)."""

    def score_terms(self, x: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Deterministic anomaly-score terms: NLL per input feature ``(n, F)`` at the posterior mean (or the
        quantised code) and the rate ``(n,)`` -- the KL from the prior, or ``-log p(codes)``."""

    def reconstruct(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """The decoder's mean at the posterior mean (or quantised code), shaped like ``x``."""

    def sample(self, n: int, c: torch.Tensor | int | None = None, *, generator: torch.Generator | None = None,
               mean: bool = True) -> torch.Tensor:
        """``n`` draws from the prior, decoded, shaped ``(n, *input_shape)``."""
