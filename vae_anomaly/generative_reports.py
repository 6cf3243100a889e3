"""What ``vae-anomaly encode`` and ``denoise`` compute and report, behind the CLI's argument parsing."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .codes import load_codes, save_codes
from .errors import ConfigError
from .image_metrics import as_unit_images, psnr, ssim
from .options import OPTIONS, check  # the noise rows, declared once in the options table
from .params import Interval

if TYPE_CHECKING:  # hints only: generative re-exports this module's names lazily, so it imports this one
    from .generative import GenerativeModel


def encode_report(gm: GenerativeModel, X: Any, output: str | Path) -> dict[str, Any]:
    """Encode ``X`` to a code file and measure it: size, compression ratio, reconstruction error.

    The error is measured on what was written (decoded from the file), not on codes kept in memory.
    """
    from .outputs import check_output

    check_output(output, "codes")
    codes = gm.encode(X)
    header = save_codes(output, gm, codes)
    recon = gm.decode(load_codes(output, gm))
    raw_bytes = int(X.memory_usage(index=False).sum()) if hasattr(X, "memory_usage") else int(np.asarray(X).nbytes)
    x = gm.preprocessor.transform(X)
    r = gm.preprocessor.transform(recon)
    return {"output": str(output), "rows": int(len(codes)), "code_kind": header["kind"],
            "bits_per_row": header.get("bits", 16) * int(np.prod(codes.shape[1:])),
            "raw_bytes": raw_bytes, "code_bytes": header["payload_bytes"],
            "compression_ratio": raw_bytes / max(1, header["payload_bytes"]),
            "reconstruction_mse": float(np.mean((x - r) ** 2))}


def denoise_report(gm: GenerativeModel, images: Any, *, evaluate: str | None = None, level: float = 0.3
                   ) -> tuple[np.ndarray, dict[str, Any]]:
    """Denoised images (unit scale) and, with ``evaluate``, PSNR/SSIM of noisy vs denoised against ``images``."""
    import torch

    from .trainer import corrupt

    if not gm.is_image:
        raise ConfigError("denoise works on images with an image model")
    # An evaluation corrupts the images: a level of 0 would compare clean with clean (PSNR infinite).
    check("denoise", {"--evaluate": evaluate, "--level": level},
          {"--evaluate": OPTIONS["noise"], "--level": [Interval(float, 0, 1, closed="right")]})
    clean = as_unit_images(images, gm.preprocessor)
    inp = clean
    if evaluate:
        inp = corrupt(torch.from_numpy(clean), evaluate, level, torch.Generator().manual_seed(0)).numpy()
    den = as_unit_images(gm.reconstruct(inp), gm.preprocessor)
    report: dict[str, Any] = {}
    if evaluate:
        report = {"noise": evaluate, "level": level, "psnr_noisy": psnr(clean, inp), "psnr_denoised": psnr(clean, den),
                  "ssim_noisy": ssim(clean, inp), "ssim_denoised": ssim(clean, den)}
    return den, report
