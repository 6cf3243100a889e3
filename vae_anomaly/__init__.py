"""vae-anomaly: variational autoencoders for anomaly detection, synthetic data and generation.

Heavy dependencies (torch, mlflow, prefect) load lazily, so ``import vae_anomaly``
stays fast; the estimators appear on first attribute access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import (
    ConfigError,
    DataError,
    DeviceError,
    ModelError,
    SchemaError,
    TrackingError,
    TrainingError,
    VAEAnomalyError,
)

_LAZY = {
    "NotFittedError": ("vae_anomaly.errors", "NotFittedError"),
    "VAEDetector": ("vae_anomaly.detector", "VAEDetector"),
    "VAEOversampler": ("vae_anomaly.oversampler", "VAEOversampler"),
    "load_dataset": ("vae_anomaly.data.dataset", "load_dataset"),
    "TabularTransformer": ("vae_anomaly.data.transform", "TabularTransformer"),
}

if TYPE_CHECKING:  # pragma: no cover
    from .data.dataset import load_dataset
    from .data.transform import TabularTransformer
    from .detector import VAEDetector
    from .oversampler import VAEOversampler


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'vae_anomaly' has no attribute {name!r}")


__all__ = [
    "ConfigError", "DataError", "DeviceError", "ModelError", "NotFittedError", "SchemaError", "TabularTransformer",
    "TrackingError", "TrainingError", "VAEAnomalyError", "VAEDetector", "VAEOversampler", "__version__",
    "load_dataset",
]
