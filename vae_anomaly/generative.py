"""The VAE as generator, denoiser and compressor.

:class:`GenerativeModel` wraps a trained model with its preprocessing (and class
names for a CVAE). It loads any saved model folder -- a VAEDetector's too --
and offers ``generate``, ``reconstruct``/``denoise``, ``encode``/``decode``.

The code-file format lives in :mod:`vae_anomaly.codes`, PSNR/SSIM in
:mod:`vae_anomaly.image_metrics`, and what the ``encode``/``denoise`` commands
report in :mod:`vae_anomaly.generative_reports`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .data.transform import ImageScaler, TabularTransformer, transformer_from_dict
from .errors import ConfigError, DataError, ModelError

# Generated samples held in memory at once; past this a request is refused, not attempted.
GENERATE_BUDGET_BYTES = 1 << 30
# The options GenerativeModel.fit takes (beside the data, kind and callbacks), as the table's rows: what
# `fit --kind cvae --set` may give, checked before the data is read.
FIT_OPTIONS = ("epochs", "latent_dim", "hidden_dims", "architecture", "beta", "capacity", "noise", "noise_level",
               "batch_size", "lr", "random_state", "device", "verbose")


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
            batch_size: int = 128, lr: float = 1e-3, random_state: int = 0, device: str = "auto",
            verbose: bool = False, callbacks: tuple = ()) -> GenerativeModel:
        """Train a VAE, CVAE (``y`` given) or VQ-VAE on tables or images (options named as the estimators')."""
        from .fitting import fit_model
        from .models import ModelConfig
        from .trainer import TrainConfig

        classes, codes = None, None
        if kind == "cvae":
            if y is None:
                raise DataError("a CVAE needs labels")
            classes_arr, codes = np.unique(np.asarray(y), return_inverse=True)
            if len(classes_arr) < 2:
                raise DataError(f"labels have a single class ({classes_arr[0]!r})")
            classes = [c.item() if hasattr(c, "item") else c for c in classes_arr]
        # The typed configs check the options against the one options table as they are built.
        fitted = fit_model(
            X, codes, callbacks=callbacks,
            model_config=ModelConfig(kind=kind, n_conditions=len(classes or []), latent_dim=latent_dim,
                                     hidden_dims=hidden_dims,
                                     architecture=architecture, beta=beta, capacity=capacity),
            train_config=TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, device=device, verbose=verbose,
                                     noise=noise, noise_level=noise_level, random_state=random_state))
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
        classes = None
        if extra.get("owner") == "GenerativeModel":  # a detector's folder has no classes
            from .saved_model import GenerativeEntry, validate

            classes = validate(GenerativeEntry, extra, str(Path(directory) / "model.json"),
                               "GenerativeModel entry is malformed: ").classes
        gm = cls(model, transformer_from_dict(meta["preprocessing"]), classes, meta)
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

    def _batches(self, n: int, batch_size: int | None, max_rows: int = 4096) -> Iterator[slice]:
        """The row slices of ``n`` rows: ``batch_size`` rows each, or (None) as many as the memory budget holds,
        at most ``max_rows`` (each method's former fixed size: another grouping can move a float's last bit)."""
        from .batching import chunk_rows, iter_batches, model_row_bytes

        size = batch_size if batch_size is not None else chunk_rows(model_row_bytes(self.model.config.n_features),
                                                                    max_rows=max_rows)
        return iter_batches(n, size)

    def reconstruct(self, X: Any, y: Any = None, batch_size: int | None = None) -> Any:
        """Decoder mean at the posterior mean: the denoised / reconstructed data, in user space."""
        import torch

        data = self._model_input(X)
        out = []
        with torch.no_grad():
            for b in self._batches(len(data), batch_size, max_rows=1024):
                xb = torch.from_numpy(data[b]).to(self._device())
                cb = None
                if self.model.config.n_conditions:
                    if y is None:
                        raise ConfigError("a CVAE reconstructs with the rows' labels: pass y")
                    cb = torch.as_tensor([self.class_index(v) for v in np.asarray(y)[b]], device=self._device())
                out.append(self.model.reconstruct(xb, cb).cpu().numpy())
        return self._out(np.concatenate(out))

    def encode(self, X: Any, batch_size: int | None = None) -> np.ndarray:
        """Latent codes: posterior means (float32) or VQ code indices (int64)."""
        import torch

        if self.model.config.n_conditions:
            raise ConfigError("encode/decode is for unconditional models (VAE, VQ-VAE)")
        data = self._model_input(X)
        out = []
        with torch.no_grad():
            for b in self._batches(len(data), batch_size):
                xb = torch.from_numpy(data[b]).to(self._device())
                out.append(self.model.encode_codes(xb) if self.is_vq else self.model.encode(xb)[0])
        return torch.cat(out).cpu().numpy()

    def decode(self, codes: np.ndarray, batch_size: int | None = None) -> Any:
        """Data (user space) decoded from latent codes or VQ code indices, as :meth:`encode` made them."""
        import torch

        out = []
        with torch.no_grad():
            for b in self._batches(len(codes), batch_size):
                cb = torch.as_tensor(codes[b], device=self._device())
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


# Names that lived here before the code-file format, the image metrics and the command reports got their
# own modules; ``from vae_anomaly.generative import psnr`` keeps working (imported on first use, since
# those modules import this one).
_MOVED = {"CODES_FORMAT": "codes", "bits_for": "codes", "pack_codes": "codes", "unpack_codes": "codes",
          "save_codes": "codes", "load_codes": "codes", "psnr": "image_metrics", "ssim": "image_metrics",
          "as_unit_images": "image_metrics", "encode_report": "generative_reports",
          "denoise_report": "generative_reports", "NOISE_KINDS": "options"}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(f".{_MOVED[name]}", __package__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
