"""One dataclass configures every model of the family; sizes default from the input shape."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..errors import ConfigError
from ..options import MODEL_KINDS, OPTIONS, Architecture, ImageLikelihood, ModelKind, Options, check, select

# About 2 GB of float32 weights: far beyond any model this toolkit builds on purpose.
MAX_PARAMETERS = 500_000_000
# The chosen words, weights and sizes, checked against the options table (their one declaration); the
# layer widths of any list follow hidden_dims' rule. The data-dependent fields (input_shape, blocks,
# n_conditions) are checked against the data, and the parameter estimate refuses absurd totals.
CHOSEN = ("architecture", "dropout", "image_likelihood", "beta", "capacity", "capacity_anneal", "kl_warmup",
          "commitment", "ema_decay", "dead_code_threshold", "latent_dim", "hidden_dims", "codebook_size",
          "code_dim", "n_positions")
_WIDTHS = ("conv_channels", "table_hidden_dims")
_CONSTRAINTS = {**select(*CHOSEN, **{n: OPTIONS["hidden_dims"] for n in _WIDTHS}), "kind": [Options(MODEL_KINDS)]}
_FLOATS = ("dropout", "beta", "capacity_anneal", "kl_warmup", "commitment", "ema_decay", "dead_code_threshold")


def _int(name: str, value: Any, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise ConfigError(f"{name} must be an integer, not {value!r}")
    if value < low:
        raise ConfigError(f"{name} must be >= {low}, got {value}")
    return int(value)


@dataclass
class ModelConfig:
    """Architecture and objective of a VAE-family model.

    ``input_shape`` is ``(d,)`` for tables (after preprocessing) or ``(C, H, W)``
    for images; ``blocks`` is the likelihood layout as ``(kind, start, end)``
    with kind ``numeric``/``categorical`` (tables); images use ``image_likelihood`` for every pixel.
    An estimator builds its config before it has seen data (``input_shape=()``); ``fit_model`` binds
    it with :meth:`for_input`, which also derives the sizes left as None from the input shape.
    """

    input_shape: tuple[int, ...] = ()
    kind: ModelKind = "vae"
    blocks: list[tuple[str, int, int]] = field(default_factory=list)
    latent_dim: int | None = None
    hidden_dims: tuple[int, ...] | None = None
    # The hidden layers of a table model whose hidden_dims is None; None: twice the input width, a power
    # of two in [32, 256] (generators). A detector uses a fixed width (fitting.DETECTION_TABLE_HIDDEN).
    table_hidden_dims: tuple[int, ...] | None = None
    conv_channels: tuple[int, ...] | None = None
    architecture: Architecture = "auto"
    n_conditions: int = 0
    dropout: float = 0.0
    # p(pixel | z) of an image model (tables ignore it): "bernoulli" (cross-entropy on grey levels, not a
    # density), "gaussian" (learned per-pixel variance) or "continuous_bernoulli" (a density on [0, 1]).
    image_likelihood: ImageLikelihood = "bernoulli"
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
        check("ModelConfig", {n: getattr(self, n) for n in (*CHOSEN, *_WIDTHS, "kind")}, _CONSTRAINTS)
        for name in _FLOATS:
            setattr(self, name, float(getattr(self, name)))
        if self.capacity is not None:
            self.capacity = float(self.capacity)
        for name in ("hidden_dims", *_WIDTHS):
            if getattr(self, name) is not None:
                setattr(self, name, tuple(int(h) for h in getattr(self, name)))
        for name in ("codebook_size", "code_dim", "n_positions"):
            setattr(self, name, int(getattr(self, name)))
        if self.latent_dim is not None:
            self.latent_dim = int(self.latent_dim)
        self.input_shape = tuple(_int("input_shape", s, low=1) for s in self.input_shape)
        self.n_conditions = _int("n_conditions", self.n_conditions, low=0)
        if not self.input_shape:
            return  # not bound to data yet: the data-dependent checks and sizes wait for for_input
        if len(self.input_shape) not in (1, 3):
            raise ConfigError(f"input_shape must be (d,) or (C, H, W), not {self.input_shape}")
        if self.kind == "cvae" and self.n_conditions < 1:
            raise ConfigError("a CVAE needs n_conditions >= 1")
        if self.architecture == "conv" and not self.is_image:
            raise ConfigError("a conv architecture needs image input (C, H, W)")
        if not self.blocks and self.is_table:
            self.blocks = [("numeric", i, i + 1) for i in range(self.input_shape[0])]
        try:
            self.blocks = [(str(k), int(s), int(e)) for k, s, e in self.blocks]
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"blocks must be [kind, start, end] triples: {exc}") from exc
        if self.is_table and self.blocks:
            if self.blocks[0][1] != 0 or self.blocks[-1][2] != self.input_shape[0] or any(
                    a[2] != b[1] for a, b in zip(self.blocks, self.blocks[1:])) or any(
                    k not in ("numeric", "binary", "categorical") or e <= s for k, s, e in self.blocks):
                raise ConfigError(f"blocks do not tile the {self.input_shape[0]} input features")
        if self.latent_dim is None:
            self.latent_dim = 16 if self.is_image else int(min(16, max(2, math.ceil(self.n_features / 4))))
        if self.hidden_dims is None:
            if self.is_image and self.architecture != "mlp":
                self.hidden_dims = (256,)
            elif self.is_table and self.table_hidden_dims is not None:
                self.hidden_dims = tuple(self.table_hidden_dims)
            else:
                width = int(min(256, max(32, 2 ** math.ceil(math.log2(2 * self.n_features)))))
                self.hidden_dims = (width, width // 2)
        # Refuse absurd sizes (a tampered JSON, a typo) before torch tries to allocate them.
        estimate = self.parameter_estimate()
        if estimate > MAX_PARAMETERS:
            raise ConfigError(f"the model would have about {estimate:,.0f} parameters (limit {MAX_PARAMETERS:,}): "
                              f"check latent_dim={self.latent_dim}, hidden_dims={self.hidden_dims}, "
                              f"input_shape={self.input_shape}")

    def for_input(self, input_shape: tuple[int, ...], blocks: list[tuple[str, int, int]] | None = None,
                  n_conditions: int = 0) -> ModelConfig:
        """This config bound to the data: its shape, likelihood layout and number of classes."""
        return replace(self, input_shape=tuple(input_shape), blocks=list(blocks or []), n_conditions=n_conditions)

    @property
    def is_bound(self) -> bool:
        """Whether :meth:`for_input` gave this config its data's shape (a model can be built only then)."""
        return bool(self.input_shape)

    def parameter_estimate(self) -> float:
        """Rough count of the dense layers' weights (an upper bound's order of magnitude, for the size check)."""
        widths = [self.n_features + self.n_conditions, *self.hidden_dims]
        enc = sum(a * b for a, b in zip(widths, widths[1:]))
        head = self.hidden_dims[-1] * max(self.latent_dim, self.code_dim * self.n_positions) * 2
        dec = enc + head
        codebook = self.codebook_size * self.code_dim if self.kind == "vqvae" else 0
        return float(2 * enc + head + dec + codebook + 2 * self.n_features * self.hidden_dims[0])

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
    def from_dict(cls, d: dict[str, Any], *, source: str | None = None) -> ModelConfig:
        """Rebuild from JSON; a missing key, a wrong type or an absurd size is a :class:`ConfigError`."""
        where = f"{source}: " if source else ""
        try:
            d = dict(d)
            d["input_shape"] = tuple(d["input_shape"])
            if not d["input_shape"]:  # a saved model is always bound to its data
                raise ConfigError("input_shape must be (d,) or (C, H, W), not ()")
            d["blocks"] = [tuple(b) for b in d.get("blocks", [])]
            for k in ("hidden_dims", "conv_channels"):
                if d.get(k) is not None:
                    d[k] = tuple(d[k])
            known = set(cls.__dataclass_fields__)
            return cls(**{k: v for k, v in d.items() if k in known})
        except ConfigError as exc:
            raise ConfigError(f"{where}model_config: {exc}") from exc
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{where}model_config is malformed ({type(exc).__name__}: {exc})") from exc
