"""The VAE as generator, denoiser and compressor.

:class:`GenerativeModel` wraps a trained model with its preprocessing (and class
names for a CVAE). It loads any saved model folder -- a VAEDetector's too --
and offers ``generate``, ``reconstruct``/``denoise``, ``encode``/``decode``.

Code files (``encode``) are ``.npz`` with a format version and the model's
weights hash: decoding with another model is refused instead of returning noise.
VQ-VAE code indices are bit-packed to ceil(log2(codebook size)) bits each.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_path
from .data.transform import ImageScaler, TabularTransformer, transformer_from_dict
from .errors import ConfigError, DataError, ModelError

CODES_FORMAT = 1
NOISE_KINDS = ("gaussian", "salt_pepper", "mask")
# Generated samples held in memory at once; past this a request is refused, not attempted.
GENERATE_BUDGET_BYTES = 1 << 30


@dataclass
class GenerativeModel:
    model: Any
    preprocessor: TabularTransformer | ImageScaler
    classes: list[Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    directory: Path | None = None  # the folder it was loaded from, if any

    # ------------------------------------------------------------ building
    @classmethod
    def fit(cls, X: Any, y: Any = None, *, kind: str = "vae", epochs: int = 30, latent_dim: int | None = None,
            hidden_dims: tuple[int, ...] | None = None, architecture: str = "auto", beta: float = 1.0,
            capacity: float | None = None, noise: str | None = None, noise_level: float = 0.2,
            batch_size: int = 128, lr: float = 1e-3, seed: int = 0, device: str = "auto", progress: bool = False,
            callbacks: tuple = ()) -> GenerativeModel:
        """Train a VAE, CVAE (``y`` given) or VQ-VAE on tables or images."""
        from .fitting import fit_model

        classes, codes = None, None
        if kind == "cvae":
            if y is None:
                raise DataError("a CVAE needs labels")
            classes_arr, codes = np.unique(np.asarray(y), return_inverse=True)
            if len(classes_arr) < 2:
                raise DataError(f"labels have a single class ({classes_arr[0]!r})")
            classes = [c.item() if hasattr(c, "item") else c for c in classes_arr]
        fitted = fit_model(
            X, codes, kind=kind, n_conditions=len(classes) if classes else 0, epochs=epochs, batch_size=batch_size,
            random_state=seed, callbacks=callbacks,
            model_options={"latent_dim": latent_dim, "hidden_dims": hidden_dims, "architecture": architecture,
                           "beta": beta, "capacity": capacity},
            train_options={"lr": lr, "device": device, "progress": progress, "noise": noise, "noise_level": noise_level})
        return cls(fitted.model, fitted.preprocessor, classes, {"history": fitted.train_result.history})

    def save(self, directory: str | Path) -> Path:
        from .persist import save_model

        return save_model(directory, self.model, preprocessing=self.preprocessor.to_dict(),
                          extra={"owner": "GenerativeModel", "classes": self.classes,
                                 "history": self.meta.get("history", [])})

    @classmethod
    def load(cls, directory: str | Path, device: str = "cpu") -> GenerativeModel:
        from .models.ensemble import members_of
        from .persist import load_model

        model, meta = load_model(directory, device=device)
        model = members_of(model)[0]  # of a detector ensemble, the first member generates
        if not meta.get("preprocessing"):
            raise ModelError(f"{directory}: the model has no preprocessing saved with it")
        extra = meta.get("extra", {})
        gm = cls(model, transformer_from_dict(meta["preprocessing"]), extra.get("classes"), meta)
        gm.directory = Path(directory)
        return gm

    # ------------------------------------------------------------ properties
    @property
    def is_vq(self) -> bool:
        return self.model.is_quantized

    @property
    def is_image(self) -> bool:
        return isinstance(self.preprocessor, ImageScaler)

    @property
    def fingerprint(self) -> str:
        """Hash of the weights themselves (not of a file), so it survives save and load."""
        import hashlib

        h = hashlib.sha256()
        for k, v in sorted(self.model.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    def _device(self):  # noqa: ANN202
        return next(self.model.parameters()).device

    def _out(self, x: np.ndarray) -> Any:
        """Model-space array -> user space: uint8 images or a DataFrame with the original columns."""
        return self.preprocessor.inverse_transform(x)

    def class_index(self, cls: Any) -> int:
        if not self.classes:
            raise ConfigError("this model is not conditional: generate without a class")
        for i, c in enumerate(self.classes):
            if str(c) == str(cls):
                return i
        raise ConfigError(f"unknown class {cls!r}; known: {self.classes}")

    # ------------------------------------------------------------ uses
    def generate(self, n: int, cls: Any = None, seed: int = 0) -> Any:
        """``n`` samples from the prior (per class for a CVAE, from the code prior for a VQ-VAE)."""
        import torch

        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            raise ConfigError(f"n must be a positive integer, got {n!r}")
        need = int(n) * self.model.config.n_features * 4
        if need > GENERATE_BUDGET_BYTES:
            raise ConfigError(f"{n:,} samples would take {need / 2**30:.1f} GiB of memory (budget "
                              f"{GENERATE_BUDGET_BYTES / 2**30:.0f} GiB): generate fewer, in several calls")
        gen = torch.Generator(device=self._device()).manual_seed(seed)
        c = None
        if self.model.config.n_conditions:
            if cls is None:
                raise ConfigError(f"a CVAE generates a chosen class: pass one of {self.classes}")
            c = self.class_index(cls)
        elif cls is not None:
            self.class_index(cls)
        with torch.no_grad():
            x = self.model.sample(n, c, generator=gen).cpu().numpy()
        return self._out(x)

    def _model_input(self, X: Any) -> np.ndarray:
        from .inputs import model_input

        return model_input(self.preprocessor, X)

    def reconstruct(self, X: Any, y: Any = None, batch_size: int = 1024) -> Any:
        """Decoder mean at the posterior mean: the denoised / reconstructed data, in user space."""
        import torch

        data = self._model_input(X)
        out = []
        with torch.no_grad():
            for i in range(0, len(data), batch_size):
                xb = torch.from_numpy(data[i:i + batch_size]).to(self._device())
                cb = None
                if self.model.config.n_conditions:
                    if y is None:
                        raise ConfigError("a CVAE reconstructs with the rows' labels: pass y")
                    cb = torch.as_tensor([self.class_index(v) for v in np.asarray(y)[i:i + batch_size]],
                                         device=self._device())
                out.append(self.model.reconstruct(xb, cb).cpu().numpy())
        return self._out(np.concatenate(out))

    def encode(self, X: Any, batch_size: int = 4096) -> np.ndarray:
        """Latent codes: posterior means (float32) or VQ code indices (int64)."""
        import torch

        if self.model.config.n_conditions:
            raise ConfigError("encode/decode is for unconditional models (VAE, VQ-VAE)")
        data = self._model_input(X)
        out = []
        with torch.no_grad():
            for i in range(0, len(data), batch_size):
                xb = torch.from_numpy(data[i:i + batch_size]).to(self._device())
                out.append(self.model.encode_codes(xb) if self.is_vq else self.model.encode(xb)[0])
        return torch.cat(out).cpu().numpy()

    def decode(self, codes: np.ndarray, batch_size: int = 4096) -> Any:
        import torch

        out = []
        with torch.no_grad():
            for i in range(0, len(codes), batch_size):
                cb = torch.as_tensor(codes[i:i + batch_size], device=self._device())
                try:
                    raw = self.model.decode_codes(cb) if self.is_vq else self.model.decode(cb.float())
                    x = self.model.likelihood.mean(raw).view(len(cb), *self.model.config.input_shape)
                except (RuntimeError, IndexError) as exc:
                    raise DataError(f"codes shaped {tuple(codes.shape)} do not fit this model: "
                                    f"{str(exc).splitlines()[0]}") from exc
                out.append(x.cpu().numpy())
        if not out:
            raise DataError("no codes to decode")
        return self._out(np.concatenate(out))

    def latents(self, X: Any) -> np.ndarray:
        """Posterior means (Gaussian models) or the mean quantised vector per row (VQ-VAE), for plots."""
        import torch

        if self.is_vq:
            with torch.no_grad():
                z = self.model.encode(torch.from_numpy(self._model_input(X)).to(self._device()))
            return z.flatten(1).cpu().numpy()
        return self.encode(X)


# ------------------------------------------------------------ code files
def bits_for(codebook_size: int) -> int:
    return max(1, math.ceil(math.log2(codebook_size)))


def pack_codes(codes: np.ndarray, bits: int) -> np.ndarray:
    flat = codes.astype(np.uint64).ravel()
    bitmat = ((flat[:, None] >> np.arange(bits, dtype=np.uint64)) & 1).astype(np.uint8)
    return np.packbits(bitmat.ravel())


def unpack_codes(packed: np.ndarray, bits: int, shape: tuple[int, ...]) -> np.ndarray:
    count = int(np.prod(shape)) * bits
    bitmat = np.unpackbits(packed, count=count).reshape(-1, bits).astype(np.int64)
    return (bitmat << np.arange(bits)).sum(1).reshape(shape)


def save_codes(path: str | Path, gm: GenerativeModel, codes: np.ndarray) -> dict[str, Any]:
    """Write a code file atomically; returns its header (sizes included)."""
    header: dict[str, Any] = {"format": CODES_FORMAT, "model_sha256": gm.fingerprint, "n": int(len(codes)),
                              "shape": list(codes.shape)}
    if gm.is_vq:
        bits = bits_for(gm.model.config.codebook_size)
        payload = pack_codes(codes, bits)
        header.update(kind="vq", bits=bits)
    else:
        payload = codes.astype(np.float16)
        header.update(kind="gaussian", dtype="float16")
    with atomic_path(path, suffix=".tmp.npz") as tmp:
        np.savez(tmp, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8), payload=payload)
    header["payload_bytes"] = int(payload.nbytes)
    return header


def load_codes(path: str | Path, gm: GenerativeModel) -> np.ndarray:
    """Read a code file, checking every header field against the payload before decoding anything."""
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as npz:
            header = json.loads(bytes(npz["header"]).decode())
            payload = npz["payload"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise DataError(f"not a readable vae-anomaly code file (truncated or another format): {exc}", file=path) from exc
    if not isinstance(header, dict):
        raise DataError("code file header is not an object", file=path)
    if header.get("format") != CODES_FORMAT:
        raise DataError(f"code file format {header.get('format')} is not supported (expected {CODES_FORMAT})", file=path)
    if header.get("model_sha256") != gm.fingerprint:
        raise ModelError(f"{path} was encoded by model {str(header.get('model_sha256'))[:12]}..., not by this model "
                         f"({gm.fingerprint[:12]}...): decode with the model that encoded it")
    shape = header.get("shape")
    if not (isinstance(shape, list) and shape and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                                       for s in shape)):
        raise DataError(f"code file header: shape {shape!r} is not a list of sizes", file=path)
    if header.get("n") != shape[0]:
        raise DataError(f"code file header: n={header.get('n')!r} but the codes hold {shape[0]} rows", file=path)
    count = math.prod(shape)
    if header.get("kind") == "vq":
        bits = header.get("bits")
        if bits != bits_for(gm.model.config.codebook_size):
            raise DataError(f"code file header: {bits!r} bits per code, but this model's codebook needs "
                            f"{bits_for(gm.model.config.codebook_size)}", file=path)
        if payload.dtype != np.uint8 or payload.ndim != 1 or len(payload) != math.ceil(count * bits / 8):
            raise DataError(f"code file payload holds {payload.size} bytes; the header's shape {shape} needs "
                            f"{math.ceil(count * bits / 8)}", file=path)
        codes = unpack_codes(payload, bits, tuple(shape))
        if codes.max(initial=0) >= gm.model.config.codebook_size:
            raise DataError("code file holds code indices beyond this model's codebook", file=path)
        return codes
    if header.get("kind") != "gaussian":
        raise DataError(f"code file header: unknown kind {header.get('kind')!r}", file=path)
    if tuple(shape[1:]) != (gm.model.latent_dim,) or payload.shape != tuple(shape):
        raise DataError(f"code file: payload shaped {payload.shape}, header says {shape}, this model's latent "
                        f"has {gm.model.latent_dim} dimensions", file=path)
    return payload.astype(np.float32)


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
    if evaluate is not None and evaluate not in NOISE_KINDS:
        raise ConfigError(f"--evaluate must be one of {', '.join(NOISE_KINDS)}, not {evaluate!r}")
    if not 0 < level <= 1:
        raise ConfigError(f"--level must lie in (0, 1], got {level}")
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


# ------------------------------------------------------------ image quality
def psnr(clean: np.ndarray, other: np.ndarray, data_range: float = 1.0) -> float:
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
    return pre.transform(np.asarray(images)).astype(np.float32)

