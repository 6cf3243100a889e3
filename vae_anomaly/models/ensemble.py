"""Several models of one configuration trained on different row subsamples, saved and loaded as one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

MAX_MEMBERS = 64


class ModelEnsemble(nn.Module):
    """A list of same-config members; ``config``, ``likelihood`` and ``latent_dim`` are the first member's
    (they are equal across members), so code that reads them works on an ensemble unchanged."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if not 1 <= len(members) <= MAX_MEMBERS:
            raise ValueError(f"an ensemble has 1 to {MAX_MEMBERS} members, got {len(members)}")
        self.members = nn.ModuleList(members)

    @property
    def config(self) -> Any:
        return self.members[0].config

    @property
    def is_quantized(self) -> bool:
        return self.members[0].is_quantized

    @property
    def likelihood(self) -> Any:
        return self.members[0].likelihood

    @property
    def latent_dim(self) -> int:
        return self.members[0].latent_dim

    def reconstruct(self, x: Any, c: Any = None) -> Any:
        return self.members[0].reconstruct(x, c)


def members_of(model: nn.Module) -> list[nn.Module]:
    """The models that score: an ensemble's members, or the model itself."""
    return list(model.members) if isinstance(model, ModelEnsemble) else [model]
