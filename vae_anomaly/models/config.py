"""One dataclass configures every model of the family; sizes default from the input shape."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ..errors import ConfigError

ModelKind = Literal["vae", "cvae", "vqvae"]


@dataclass
class ModelConfig:
    """Architecture and objective of a VAE-family model.

    ``input_shape`` is ``(d,)`` for tables (after preprocessing) or ``(C, H, W)``
    for images; ``blocks`` is the likelihood layout as ``(kind, start, end)``
    with kind ``numeric``/``categorical`` (tables) -- images are Bernoulli.
    """

    input_shape: tuple[int, ...]
    kind: ModelKind = "vae"
    blocks: list[tuple[str, int, int]] = field(default_factory=list)
    latent_dim: int | None = None
    hidden_dims: tuple[int, ...] | None = None
    conv_channels: tuple[int, ...] | None = None
    architecture: Literal["auto", "mlp", "conv"] = "auto"
    n_conditions: int = 0
    dropout: float = 0.0
    # beta-VAE (Higgins et al. 2017) and capacity annealing (Burgess et al. 2018)
    beta: float = 1.0
    capacity: float | None = None
    capacity_anneal: float = 0.8
    kl_warmup: float = 0.0
    # VQ-VAE (van den Oord et al. 2017) with EMA codebook updates
    codebook_size: int = 64
    code_dim: int = 16
    n_positions: int = 4
    commitment: float = 0.25
    ema_decay: float = 0.99
    dead_code_threshold: float = 0.5

    def __post_init__(self) -> None:
        self.input_shape = tuple(int(s) for s in self.input_shape)
        if self.kind not in ("vae", "cvae", "vqvae"):
            raise ConfigError(f"model kind must be 'vae', 'cvae' or 'vqvae', not {self.kind!r}")
        if len(self.input_shape) not in (1, 3):
            raise ConfigError(f"input_shape must be (d,) or (C, H, W), not {self.input_shape}")
        if self.kind == "cvae" and self.n_conditions < 1:
            raise ConfigError("a CVAE needs n_conditions >= 1")
        if self.architecture not in ("auto", "mlp", "conv"):
            raise ConfigError(f"architecture must be 'auto', 'mlp' or 'conv', not {self.architecture!r}")
        if self.architecture == "conv" and not self.is_image:
            raise ConfigError("a conv architecture needs image input (C, H, W)")
        if self.beta < 0:
            raise ConfigError(f"beta must be >= 0, got {self.beta}")
        if self.capacity is not None and self.capacity < 0:
            raise ConfigError(f"capacity must be >= 0, got {self.capacity}")
        if not 0 <= self.kl_warmup <= 1 or not 0 < self.capacity_anneal <= 1:
            raise ConfigError("kl_warmup must lie in [0, 1] and capacity_anneal in (0, 1]")
        if self.hidden_dims is not None:
            self.hidden_dims = tuple(int(h) for h in self.hidden_dims)
        if self.conv_channels is not None:
            self.conv_channels = tuple(int(h) for h in self.conv_channels)
        if not self.blocks and self.is_table:
            self.blocks = [("numeric", i, i + 1) for i in range(self.input_shape[0])]
        self.blocks = [(str(k), int(s), int(e)) for k, s, e in self.blocks]
        if self.latent_dim is None:
            self.latent_dim = 16 if self.is_image else int(min(16, max(2, math.ceil(self.n_features / 4))))
        if self.hidden_dims is None:
            if self.is_image and self.architecture != "mlp":
                self.hidden_dims = (256,)
            else:
                width = int(min(256, max(32, 2 ** math.ceil(math.log2(2 * self.n_features)))))
                self.hidden_dims = (width, width // 2)

    @property
    def is_image(self) -> bool:
        return len(self.input_shape) == 3

    @property
    def is_table(self) -> bool:
        return len(self.input_shape) == 1

    @property
    def n_features(self) -> int:
        return int(math.prod(self.input_shape))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        d["blocks"] = [list(b) for b in self.blocks]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        d = dict(d)
        d["input_shape"] = tuple(d["input_shape"])
        d["blocks"] = [tuple(b) for b in d.get("blocks", [])]
        for k in ("hidden_dims", "conv_channels"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})
