"""Re-create the README's pictures from the digits sample (the real Fashion-MNIST is not shipped).

    .venv/bin/python benchmarks/make_figures.py
    .venv/bin/vae-anomaly fashion-mnist --data-dir data/digits_idx --out /tmp/fm --epochs 60  # recipe_*.png
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from vae_anomaly import plots
from vae_anomaly.generative import GenerativeModel
from vae_anomaly.image_metrics import as_unit_images, psnr, ssim
from vae_anomaly.trainer import corrupt

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "figures"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    d = np.load(ROOT / "data" / "digits.npz")
    X, y = d["X"], d["y"]
    cvae = GenerativeModel.fit(X, y, kind="cvae", epochs=80, random_state=0)
    grid = np.concatenate([cvae.generate(8, k, seed=k) for k in range(10)])
    plots.save_png(plots.image_grid(grid, ncols=8, suptitle="CVAE: one row per requested digit 0-9"),
                   OUT / "cvae_per_class.png")
    den = GenerativeModel.fit(X[:1500], epochs=80, noise="gaussian", noise_level=0.3, random_state=0)
    clean = as_unit_images(X[1500:1508], den.preprocessor)
    noisy = corrupt(torch.from_numpy(clean), "gaussian", 0.3, torch.Generator().manual_seed(0)).numpy()
    out = as_unit_images(den.reconstruct(noisy), den.preprocessor)
    plots.save_png(plots.image_grid(np.concatenate([noisy, out, clean]), ncols=8,
                                    suptitle="held-out digits: noisy (top), denoised (middle), clean (bottom)"),
                   OUT / "denoising.png")
    held = as_unit_images(X[1500:], den.preprocessor)
    noisy_all = corrupt(torch.from_numpy(held), "gaussian", 0.3, torch.Generator().manual_seed(0)).numpy()
    den_all = as_unit_images(den.reconstruct(noisy_all), den.preprocessor)
    print(json.dumps({"psnr_noisy": psnr(held, noisy_all), "psnr_denoised": psnr(held, den_all),
                      "ssim_noisy": ssim(held, noisy_all), "ssim_denoised": ssim(held, den_all)}, indent=1))


if __name__ == "__main__":
    main()
