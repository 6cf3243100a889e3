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
# epochs, big ones fewer), within these bounds. A generator (oversampler, generative model) should fit
# its data well; a detector trained on contaminated data should not: inliers are learned first, and a
# model trained to convergence learns to reconstruct the anomalies too (ODIM, Kim et al., ICML 2023).
# On the 17 ADBench sets 1 000 steps with loss truncation beat 3 000 (benchmarks/RESULTS.md): a detector's
# budget is its ``max_steps`` option (1 000 by default).
AUTO_STEPS = 3000
# A detector's auto epochs are set by its step budget (``max_steps``) alone: the epoch cap that keeps a
# generator's cost bounded would cut a small table's training to a few hundred steps.
DETECTION_MAX_EPOCHS = 100_000
AUTO_EPOCHS = (10, 200)
# batch_size="auto": about eight batches an epoch, a power of two between these bounds. A 140-row table
# trained in batches of 128 gets two gradient steps an epoch and stays under-fitted within any sensible
# epoch count; in batches of 16 it gets eight, at the same cost per epoch.
AUTO_BATCH = (16, 128)


def auto_batch_size(n_rows: int, val_fraction: float = 0.1) -> int:
    """The batch size for ``batch_size="auto"``: about n_train / 8, a power of two within ``AUTO_BATCH``."""
    n_train = max(1, int(n_rows * (1 - val_fraction)))
    low, high = AUTO_BATCH
    return int(min(high, max(low, 2 ** round(math.log2(max(n_train / 8, 1))))))


def auto_epochs(n_rows: int, batch_size: int, val_fraction: float = 0.1, budget: float | None = None,
                max_epochs: int | None = None) -> int:
    """Epochs that give about ``budget`` (default ``AUTO_STEPS``) gradient steps, within ``AUTO_EPOCHS``
    (``max_epochs`` replaces the upper bound)."""
    n_train = max(1, int(n_rows * (1 - val_fraction)))
    steps = math.ceil(n_train / min(batch_size, n_train))
    low, high = AUTO_EPOCHS
    return int(min(max_epochs or high, max(low, math.ceil((budget or AUTO_STEPS) / steps))))


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
              epochs: int | str = "auto", batch_size: int | str = 128, val_fraction: float = 0.1,
              random_state: Any = None, n_jobs: int | None = None, scaling: str = "robust", binary_columns: str = "gaussian",
              categorical_columns: list[str] | None = None, n_conditions: int = 0,
              callbacks: Sequence[Any] = (), n_members: int = 1, member_fraction: float = 0.8,
              step_budget: int | None = None, max_epochs: int | None = None) -> FittedModel:
    """Fit preprocessing and a VAE-family model on ``X`` (and class codes ``conditions`` for a CVAE).

    ``n_members > 1`` trains an ensemble: each member on its own ``member_fraction`` subsample of the
    rows with its own seed, and -- with epochs="auto" -- a short budget of 2 x ``AUTO_STEPS`` /
    ``n_members`` steps, so the whole ensemble costs about twice one model. Members that stop early
    learn the bulk of the data (inliers are fitted first) and disagree on the rest.
    ``step_budget`` replaces ``AUTO_STEPS`` for epochs="auto" and ``max_epochs`` its epoch cap;
    ``batch_size="auto"`` sizes the batch from the rows (:func:`auto_batch_size`).
    """
    from .device import torch_threads
    from .inputs import fit_preprocessor, likelihood_layout, model_input, model_input_shape
    from .models import ModelConfig
    from .trainer import TrainConfig, train

    seed = seed_of(random_state)
    with torch_threads(n_jobs):
        pre = fit_preprocessor(X, categorical_columns=categorical_columns, scaling=scaling, binary_columns=binary_columns)
        data = model_input(pre, X)
        if len(data) < 2:
            from .errors import DataError

            source = X.attrs.get("source") if hasattr(X, "attrs") else None  # the file load_dataset read
            raise DataError(f"only {len(data)} row to train on: training needs at least 2 samples "
                            f"(n_samples = {len(data)})", file=source)
        if batch_size == "auto":
            batch_size = auto_batch_size(len(data), val_fraction)
        config = ModelConfig(model_input_shape(pre), kind=kind, blocks=likelihood_layout(pre),
                             n_conditions=n_conditions, **(model_options or {}))
        if n_members == 1:
            model = build_seeded(config, seed)
            n_epochs = auto_epochs(len(data), batch_size, val_fraction, step_budget, max_epochs) if epochs == "auto" \
                else int(epochs)
            train_config = TrainConfig(epochs=n_epochs, batch_size=batch_size, val_fraction=val_fraction, seed=seed,
                                       **(train_options or {}))
            result = train(model, data, conditions, config=train_config, callbacks=callbacks)
            return FittedModel(pre, data, model, train_config, result, seed)
        return _fit_ensemble(pre, data, conditions, config, seed, epochs, batch_size, val_fraction,
                             dict(train_options or {}), callbacks, n_members, member_fraction,
                             step_budget or AUTO_STEPS, max_epochs)


def _fit_ensemble(pre: Any, data: np.ndarray, conditions: np.ndarray | None, config: Any, seed: int,
                  epochs: int | str, batch_size: int, val_fraction: float, train_options: dict[str, Any],
                  callbacks: Sequence[Any], n_members: int, member_fraction: float, step_budget: int,
                  max_epochs: int | None = None) -> FittedModel:
    from .models.ensemble import ModelEnsemble
    from .trainer import TrainConfig, train

    rng = np.random.default_rng(seed)
    size = max(2, int(round(member_fraction * len(data))))
    checkpoint_dir = train_options.pop("checkpoint_dir", None)
    n_epochs = auto_epochs(size, batch_size, val_fraction, budget=2 * step_budget / n_members, max_epochs=max_epochs) \
        if epochs == "auto" else int(epochs)
    members, results, first_config = [], [], None
    for i in range(n_members):
        rows = np.sort(rng.choice(len(data), size=size, replace=False))
        member_config = TrainConfig(epochs=n_epochs, batch_size=batch_size, val_fraction=val_fraction, seed=seed + i,
                                    checkpoint_dir=None if checkpoint_dir is None else f"{checkpoint_dir}/member-{i}",
                                    **train_options)
        model = build_seeded(config, seed + i)
        result = train(model, data[rows], None if conditions is None else conditions[rows], config=member_config,
                       callbacks=callbacks if i == 0 else ())
        # Rows this member never saw (outside its subsample, or in its validation split): held out for it.
        seen = np.zeros(len(data), bool)
        seen[rows] = True
        seen[rows[result.val_index]] = False
        result.val_index = np.flatnonzero(~seen).tolist()
        members.append(model)
        results.append(result)
        first_config = first_config or member_config
    primary = results[0]
    primary.member_results = results
    primary.seconds = sum(r.seconds for r in results)
    return FittedModel(pre, data, ModelEnsemble(members), first_config, primary, seed)
