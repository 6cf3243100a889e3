"""The classic Fashion-MNIST VAE, done properly.

The well-known tutorial trains a dense VAE with a 2-D latent for 10 epochs but
adds a KL *averaged over latent dimensions* to a *per-pixel mean* squared error:
the reconstruction term is divided by 784 and the KL by 2, so the KL weighs
~392 times too much relative to the ELBO, and MSE is the wrong likelihood for
pixel intensities in [0, 1]. Here the same small model is trained on the
negative ELBO: Bernoulli log-likelihood summed over pixels plus the KL summed
over latent dimensions.
"""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError

FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
# MD5 sums published in the Fashion-MNIST repository's README.
FASHION_FILES = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}


def md5(path: Path) -> str:
    from .persist import file_sha256

    return file_sha256(path, algorithm="md5")  # a published checksum, not security


def download_fashion_mnist(data_dir: str | Path, base_url: str = FASHION_URL) -> None:
    """Fetch the four IDX files (only when the user asks) and verify their MD5 sums."""
    from .atomic import atomic_path

    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    for name, expected in FASHION_FILES.items():
        target = data_dir / name
        if target.exists() and md5(target) == expected:
            continue
        try:
            with atomic_path(target) as tmp, urllib.request.urlopen(base_url + name, timeout=60) as r:
                tmp.write_bytes(r.read())
                if md5(tmp) != expected:
                    raise DataError(f"checksum mismatch: got {md5(tmp)}, expected {expected}", file=target)
        except OSError as exc:
            raise DataError(f"download from {base_url + name} failed ({exc}); place the files there by hand",
                            file=target) from exc


def find_idx_pair(data_dir: Path, split: str = "train") -> tuple[Path, Path]:
    for img_name, lbl_name in ((f"{split}-images-idx3-ubyte", f"{split}-labels-idx1-ubyte"),
                               ("images-idx3-ubyte", "labels-idx1-ubyte")):
        for suffix in (".gz", ""):
            img, lbl = data_dir / (img_name + suffix), data_dir / (lbl_name + suffix)
            if img.exists() and lbl.exists():
                return img, lbl
    raise DataError(f"no {split}-images-idx3-ubyte[.gz] / {split}-labels-idx1-ubyte[.gz] pair "
                    "(pass --download to fetch Fashion-MNIST)", file=data_dir)


def fashion_mnist(data_dir: str | Path, out_dir: str | Path, *, download: bool = False, epochs: int = 10,
                  latent_dim: int = 2, limit: int | None = None, random_state: int = 0, verbose: bool = False
                  ) -> dict[str, Any]:
    """Train the dense 2-D-latent VAE on the IDX files in ``data_dir``; write the three pictures."""
    from . import plots
    from .data import read_idx
    from .generative import GenerativeModel

    data_dir, out_dir = Path(data_dir), Path(out_dir)
    if download:
        download_fashion_mnist(data_dir)
    img_path, lbl_path = find_idx_pair(data_dir)
    images, labels = read_idx(img_path), read_idx(lbl_path).astype(np.int64)
    if len(images) != len(labels):
        raise DataError(f"{len(images)} images but {len(labels)} labels", file=lbl_path)
    if limit:
        images, labels = images[:limit], labels[:limit]
    gm = GenerativeModel.fit(images, kind="vae", epochs=epochs, latent_dim=latent_dim, hidden_dims=(512, 256),
                             architecture="mlp", random_state=random_state, verbose=verbose)
    out_dir.mkdir(parents=True, exist_ok=True)
    samples = gm.generate(16, seed=random_state)
    recon = gm.reconstruct(images[:8])
    z = gm.latents(images[: min(len(images), 5000)])
    files = {
        "samples": plots.save_png(plots.image_grid(samples, ncols=4, suptitle="16 samples from the prior"),
                                  out_dir / "samples.png"),
        "reconstructions": plots.save_png(plots.reconstructions(images[:8], recon), out_dir / "reconstructions.png"),
        "latent": plots.save_png(plots.latent_scatter(z, labels[: len(z)]), out_dir / "latent_space.png"),
    }
    gm.save(out_dir / "model")
    hist = gm.meta["history"]
    return {"files": {k: str(v) for k, v in files.items()}, "model": str(out_dir / "model"),
            "val_neg_elbo_nats": hist[-1].get("val_neg_elbo"), "epochs": len(hist), "train_rows": int(len(images))}
