"""Encoder trunks and decoder heads: an MLP for tables, a conv stack for images.

The conv stack halves the spatial size with stride-2 4x4 convolutions while the
size stays even and above 4 (28 -> 14 -> 7, 8 -> 4, 32 -> 16 -> 8 -> 4), so the
transposed stack restores the exact input size with no cropping.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

DEFAULT_CONV_CHANNELS = (32, 64, 128)


def mlp(dims: Sequence[int], *, dropout: float = 0.0, last_activation: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2 or last_activation:
            layers.append(nn.LeakyReLU(0.1))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def conv_levels(height: int, width: int, max_levels: int = 3) -> int:
    """How many stride-2 halvings keep both sides even integers, stopping at 4."""
    levels = 0
    while levels < max_levels and height % 2 == 0 and width % 2 == 0 and min(height, width) > 4:
        height, width, levels = height // 2, width // 2, levels + 1
    if levels == 0 and height % 2 == 0 and width % 2 == 0 and min(height, width) >= 4:
        levels = 1
    return levels


class ConvTrunk(nn.Module):
    """(n, C, H, W) -> (n, C', H', W')."""

    def __init__(self, in_channels: int, channels: Sequence[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_channels
        for ch in channels:
            layers += [nn.Conv2d(prev, ch, 4, 2, 1), nn.BatchNorm2d(ch), nn.LeakyReLU(0.1)]
            prev = ch
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class ConvHead(nn.Module):
    """(n, C', H', W') -> (n, C, H, W) logits; mirrors :class:`ConvTrunk`."""

    def __init__(self, out_channels: int, channels: Sequence[int]) -> None:
        super().__init__()
        rev = list(reversed(channels))
        layers: list[nn.Module] = []
        for a, b in zip(rev[:-1], rev[1:], strict=True):
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1), nn.BatchNorm2d(b), nn.LeakyReLU(0.1)]
        layers += [nn.ConvTranspose2d(rev[-1], rev[-1], 4, 2, 1), nn.LeakyReLU(0.1),
                   nn.Conv2d(rev[-1], out_channels, 3, 1, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


def conv_channels_for(shape: Sequence[int], channels: Sequence[int] | None) -> tuple[int, ...]:
    """The channel list actually used for an image shape: one entry per halving level."""
    _, h, w = shape
    levels = conv_levels(h, w)
    base = tuple(channels) if channels else DEFAULT_CONV_CHANNELS
    if levels == 0:
        return ()
    return tuple(base[i] if i < len(base) else base[-1] for i in range(levels))
