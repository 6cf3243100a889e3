"""Several models of one configuration trained on different row subsamples, saved and loaded as one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

MAX_MEMBERS = 64


def _from_first_member(name: str) -> property:
    return property(lambda self: getattr(self.members[0], name), doc=f"The members' ``{name}`` (the first one's).")


class ModelEnsemble(nn.Module):
    """A list of same-config members; ``config``, ``is_quantized``, ``likelihood`` and ``latent_dim`` are
    the first member's (they are equal across members), so code that reads them works on an ensemble
    unchanged. Not a :class:`~vae_anomaly.models.protocol.VAEModel` itself: its members are."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if not 1 <= len(members) <= MAX_MEMBERS:
            raise ValueError(f"an ensemble has 1 to {MAX_MEMBERS} members, got {len(members)}")
        self.members = nn.ModuleList(members)

    config = _from_first_member("config")
    is_quantized = _from_first_member("is_quantized")
    likelihood = _from_first_member("likelihood")
    latent_dim = _from_first_member("latent_dim")

    def reconstruct(self, x: Any, c: Any = None) -> Any:
        return self.members[0].reconstruct(x, c)


def members_of(model: nn.Module) -> list[nn.Module]:
    """The models that score: an ensemble's members, or the model itself."""
    return list(model.members) if isinstance(model, ModelEnsemble) else [model]
