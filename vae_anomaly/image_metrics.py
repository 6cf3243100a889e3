"""Image quality measures for denoising reports: PSNR and SSIM on images scaled to [0, 1]."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .data.transform import ImageScaler


def psnr(clean: np.ndarray, other: np.ndarray, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB over all pixels (inf for identical images)."""
    mse = float(np.mean((np.asarray(clean, np.float64) - np.asarray(other, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(data_range**2 / mse)


def ssim(clean: np.ndarray, other: np.ndarray, data_range: float = 1.0) -> float:
    """Mean SSIM over images (n, C, H, W) with a 7x7 uniform window (Wang et al. 2004 constants)."""
    from scipy.ndimage import uniform_filter

    a = np.asarray(clean, np.float64)
    b = np.asarray(other, np.float64)
    size = (1, 1, 7, 7) if a.ndim == 4 else 7
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_a, mu_b = uniform_filter(a, size), uniform_filter(b, size)
    va = uniform_filter(a * a, size) - mu_a**2
    vb = uniform_filter(b * b, size) - mu_b**2
    cov = uniform_filter(a * b, size) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (va + vb + c2))
    return float(s.mean())


def as_unit_images(images: Any, pre: ImageScaler) -> np.ndarray:
    """Images on the [0, 1] scale the model works in (and PSNR/SSIM compare at), as float32."""
    return pre.transform(np.asarray(images)).astype(np.float32)
