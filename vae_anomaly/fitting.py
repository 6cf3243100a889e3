"""The one way an estimator turns inputs and options into a trained model.

``VAEDetector``, ``VAEOversampler`` and ``GenerativeModel`` each build their typed configs once
(:class:`~vae_anomaly.models.ModelConfig`, :class:`~vae_anomaly.trainer.TrainConfig`,
:class:`PreprocessConfig`, fields named as the estimators' parameters) and call :func:`fit_model`: it fits
the preprocessing, binds the model config to the data, builds the model, picks the epochs
("auto" = a fixed budget of gradient steps), initialises the weights from the estimator's own seed
(never reseeding torch's global generator) and trains with the requested threads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from .options import BinaryColumns, Scaling, check, select
from .params import MAX_EPOCHS

if TYPE_CHECKING:
    from .models import ModelConfig
    from .trainer import TrainConfig

# epochs="auto": about this many gradient steps whatever the data size (small tables get more
# epochs, big ones fewer), within these bounds. A generator (oversampler, generative model) should fit
# its data well; a detector trained on contaminated data should not: inliers are learned first, and a
# model trained to convergence learns to reconstruct the anomalies too (ODIM, Kim et al., ICML 2023).
# On the 17 ADBench sets 1 000 steps with loss truncation beat 3 000 (benchmarks/RESULTS.md): a detector's
# budget is its ``max_steps`` option (1 000 by default).
AUTO_STEPS = 3000
# A detector's auto epochs are set by its step budget (``max_steps``) alone: the epoch cap that keeps a
# generator's cost bounded would cut a small table's training to a few hundred steps. The cap is the
# epochs option's own (params.MAX_EPOCHS): one number, so a detector never trains past what `epochs` accepts.
DETECTION_MAX_EPOCHS = MAX_EPOCHS
# A detector's table model has two hidden layers of 64 and 32 units whatever the input width. The
# generators' rule (twice the input width, up to 256) gave a wide table's detector the capacity to
# reconstruct its anomalies, and a 3- to 12-column table's too little room to learn the inliers: mean
# AUROC +0.008 on the choose half and +0.003 on the confirm half, higher at every size on both
# (benchmarks/RESULTS.md, "Detector width").
DETECTION_TABLE_HIDDEN = (64, 32)
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


@dataclass(frozen=True)
class PreprocessConfig:
    """How the input becomes the model's matrix (the estimators' parameters of the same names)."""

    scaling: Scaling = "robust"
    binary_columns: BinaryColumns = "gaussian"
    categorical_columns: list[str] | None = None

    def __post_init__(self) -> None:
        check("PreprocessConfig", vars(self), _PREPROCESS_OPTIONS)


_PREPROCESS_OPTIONS = select("scaling", "binary_columns", "categorical_columns")


@dataclass
class FittedModel:
    preprocessor: Any
    data: np.ndarray  # the model-space training matrix
    model: Any
    train_config: Any  # the resolved TrainConfig (whole epochs and batch size; an ensemble's first member's)
    train_result: Any
    random_state: int  # the seed of the weights (an ensemble's first member's; member i has random_state + i)


def fit_model(X: Any, conditions: np.ndarray | None = None, *, model_config: ModelConfig,
              train_config: TrainConfig, preprocess_config: PreprocessConfig = PreprocessConfig(),
              callbacks: Sequence[Any] = ()) -> FittedModel:
    """Fit preprocessing and a VAE-family model on ``X`` (and class codes 0..k-1 ``conditions`` for a CVAE).

    The estimator built the three configs from its parameters; here they meet the data:
    ``model_config`` is bound to the input's shape and layout (:meth:`ModelConfig.for_input`) and
    ``train_config``'s "auto" epochs and batch size are resolved (:func:`resolve`). With a
    ``checkpoint_dir`` the checkpoint is keyed by the data and the configs, so a checkpoint left by
    another request is refused rather than resumed.

    ``n_estimators > 1`` trains an ensemble: each member on its own ``max_samples`` subsample of the
    rows with its own seed, and -- with epochs="auto" -- a short budget of 2 x ``max_steps`` /
    ``n_estimators`` steps, so the whole ensemble costs about twice one model. Members that stop early
    learn the bulk of the data (inliers are fitted first) and disagree on the rest.
    """
    from .device import torch_threads
    from .inputs import fit_preprocessor, likelihood_layout, model_input, model_input_shape
    from .trainer import train

    random_state = train_config.random_state
    with torch_threads(train_config.n_jobs):
        pre = fit_preprocessor(X, categorical_columns=preprocess_config.categorical_columns,
                               scaling=preprocess_config.scaling, binary_columns=preprocess_config.binary_columns)
        data = model_input(pre, X)
        if len(data) < 2:
            from .errors import DataError

            source = X.attrs.get("source") if hasattr(X, "attrs") else None  # the file load_dataset read
            raise DataError(f"only {len(data)} row to train on: training needs at least 2 samples "
                            f"(n_samples = {len(data)})", file=source)
        config = model_config.for_input(model_input_shape(pre), likelihood_layout(pre),
                                        _condition_count(conditions, model_config.n_conditions, len(data)))
        key = request_key(data, conditions, config, train_config, preprocess_config) \
            if train_config.checkpoint_dir is not None else None
        if train_config.n_estimators == 1:
            resolved = resolve(train_config, len(data), checkpoint_key=key)
            model = build_seeded(config, random_state)
            result = train(model, data, conditions, config=resolved, callbacks=callbacks)
            return FittedModel(pre, data, model, resolved, result, random_state)
        return _fit_ensemble(pre, data, conditions, config, train_config, key, callbacks)


def _condition_count(conditions: np.ndarray | None, declared: int, n_rows: int) -> int:
    """The number of classes of a CVAE: the estimator's (``ModelConfig.n_conditions``, from its labels), or
    one more than the largest code. Codes are integers in [0, n): a code outside would index past the one-hot."""
    if conditions is None:
        return declared
    from .errors import DataError

    codes = np.asarray(conditions)
    if codes.ndim != 1 or len(codes) != n_rows or codes.dtype.kind not in "iu":
        raise DataError(f"class codes must be one integer per row ({n_rows} rows); got {codes.dtype} "
                        f"shaped {codes.shape}", column="y")
    n = declared or int(codes.max()) + 1
    if codes.min() < 0 or codes.max() >= n:
        raise DataError(f"class codes must lie in [0, {n}); got {int(codes.min())}..{int(codes.max())}", column="y")
    return n


def resolve(config: TrainConfig, n_rows: int, *, batch_rows: int | None = None, budget: float | None = None,
            **changes: Any) -> TrainConfig:
    """``config`` with "auto" epochs and batch size made whole for ``n_rows`` training rows (the batch
    sized from ``batch_rows``, default ``n_rows``; the epochs from ``budget`` gradient steps, default
    ``max_steps``), and ``changes`` applied."""
    batch = auto_batch_size(batch_rows or n_rows, config.val_fraction) if config.batch_size == "auto" \
        else config.batch_size
    epochs = auto_epochs(n_rows, batch, config.val_fraction, budget or config.max_steps, config.max_epochs) \
        if config.epochs == "auto" else config.epochs
    return replace(config, epochs=epochs, batch_size=batch, **changes)


def request_key(data: np.ndarray, conditions: np.ndarray | None, model_config: ModelConfig,
                train_config: TrainConfig, preprocess_config: PreprocessConfig) -> str:
    """What makes a training request: the model-space data and every option that changes the training
    (not where the checkpoint lives, whether to resume, the progress bar or the threads)."""
    import hashlib
    import json

    h = hashlib.sha256()
    h.update(np.ascontiguousarray(data).tobytes())
    if conditions is not None:
        h.update(np.ascontiguousarray(conditions).tobytes())
    train_options = {k: v for k, v in asdict(train_config).items()
                     if k not in ("checkpoint_dir", "resume", "checkpoint_key", "verbose", "n_jobs")}
    h.update(json.dumps([model_config.to_dict(), train_options, asdict(preprocess_config)], sort_keys=True,
                        default=str).encode())
    return h.hexdigest()[:32]


def _fit_ensemble(pre: Any, data: np.ndarray, conditions: np.ndarray | None, config: ModelConfig,
                  train_config: TrainConfig, key: str | None, callbacks: Sequence[Any]) -> FittedModel:
    from .models.ensemble import ModelEnsemble
    from .trainer import train

    random_state, n_estimators = train_config.random_state, train_config.n_estimators
    rng = np.random.default_rng(random_state)
    size = max(2, int(round(train_config.max_samples * len(data))))
    # Each member trains on ``size`` rows in batches sized for the whole data, for 2 x max_steps / n steps.
    resolved = resolve(train_config, size, batch_rows=len(data),
                       budget=2 * (train_config.max_steps or AUTO_STEPS) / n_estimators)
    checkpoint_dir = train_config.checkpoint_dir
    members, results, first_config = [], [], None
    for i in range(n_estimators):
        rows = np.sort(rng.choice(len(data), size=size, replace=False))
        member_config = replace(resolved, random_state=random_state + i,
                                checkpoint_dir=None if checkpoint_dir is None else f"{checkpoint_dir}/member-{i}",
                                checkpoint_key=None if key is None else f"{key}-member-{i}")
        model = build_seeded(config, random_state + i)
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
    return FittedModel(pre, data, ModelEnsemble(members), first_config, primary, random_state)
