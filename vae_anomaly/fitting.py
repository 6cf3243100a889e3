"""The one way an estimator turns inputs and options into a trained model.

``VAEDetector``, ``VAEOversampler`` and ``GenerativeModel`` all call :func:`fit_model`: it fits the
preprocessing, builds the model from a :class:`~vae_anomaly.models.ModelConfig`, picks the epochs
("auto" = a fixed budget of gradient steps), initialises the weights from the estimator's own seed
(never reseeding torch's global generator) and trains with the requested threads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# epochs="auto": about this many gradient steps whatever the data size (small tables get more
# epochs, big ones fewer), within these bounds.
AUTO_STEPS = 3000
AUTO_EPOCHS = (10, 200)


def auto_epochs(n_rows: int, batch_size: int, val_fraction: float = 0.1) -> int:
    n_train = max(1, int(n_rows * (1 - val_fraction)))
    steps = math.ceil(n_train / min(batch_size, n_train))
    low, high = AUTO_EPOCHS
    return int(min(high, max(low, math.ceil(AUTO_STEPS / steps))))


def seed_of(random_state: Any) -> int:
    """An int seed from scikit-learn's ``random_state`` (None, an int or a RandomState)."""
    if random_state is None:
        return 0
    if isinstance(random_state, int | np.integer):
        return int(random_state)
    from sklearn.utils import check_random_state

    return int(check_random_state(random_state).randint(2**31))


def build_seeded(config: Any, seed: int) -> Any:
    """The model of ``config`` with weights drawn from ``seed``; torch's global generator is left as it was."""
    import torch

    from .models import build_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(config)


@dataclass
class FittedModel:
    preprocessor: Any
    data: np.ndarray  # the model-space training matrix
    model: Any
    train_config: Any
    train_result: Any
    seed: int


def fit_model(X: Any, conditions: np.ndarray | None = None, *, kind: str = "vae",
              model_options: dict[str, Any] | None = None, train_options: dict[str, Any] | None = None,
              epochs: int | str = "auto", batch_size: int = 128, val_fraction: float = 0.1,
              random_state: Any = None, n_jobs: int | None = None, scaling: str = "robust",
              categorical_columns: list[str] | None = None, n_conditions: int = 0,
              callbacks: Sequence[Any] = ()) -> FittedModel:
    """Fit preprocessing and a VAE-family model on ``X`` (and class codes ``conditions`` for a CVAE)."""
    from .device import torch_threads
    from .inputs import fit_preprocessor, likelihood_layout, model_input, model_input_shape
    from .models import ModelConfig
    from .trainer import TrainConfig, train

    seed = seed_of(random_state)
    with torch_threads(n_jobs):
        pre = fit_preprocessor(X, categorical_columns=categorical_columns, scaling=scaling)
        data = model_input(pre, X)
        if len(data) < 2:
            from .errors import DataError

            raise DataError(f"got {len(data)} sample; training needs at least 2 samples (n_samples = {len(data)})")
        config = ModelConfig(model_input_shape(pre), kind=kind, blocks=likelihood_layout(pre),
                             n_conditions=n_conditions, **(model_options or {}))
        model = build_seeded(config, seed)
        n_epochs = auto_epochs(len(data), batch_size, val_fraction) if epochs == "auto" else int(epochs)
        train_config = TrainConfig(epochs=n_epochs, batch_size=batch_size, val_fraction=val_fraction, seed=seed,
                                   **(train_options or {}))
        result = train(model, data, conditions, config=train_config, callbacks=callbacks)
    return FittedModel(pre, data, model, train_config, result, seed)
