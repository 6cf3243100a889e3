"""``VAEDetector``: a scikit-learn estimator with PyOD's attribute names.

    det = VAEDetector(random_state=0).fit(X)
    det.decision_function(X_new)    # higher = more anomalous
    det.predict(X_new)              # 0 normal, 1 anomaly
    det.decision_scores_, det.threshold_, det.labels_
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin

from .errors import ConfigError, NotFittedError
from .inputs import feature_names, fit_preprocessor, likelihood_layout, model_input, model_input_shape
from .scoring import check_method, threshold_from_contamination, threshold_from_fpr

THRESHOLD_METHODS = ("contamination", "fpr", "fixed")
# Optimisation budget when epochs="auto": about this many gradient steps,
# whatever the data size (small tables get more epochs, big ones fewer).
AUTO_STEPS = 3000


class VAEDetector(OutlierMixin, BaseEstimator):
    """Variational-autoencoder anomaly detector for tables and images.

    Parameters
    ----------
    model : "vae" or "vqvae".
    latent_dim, hidden_dims : architecture; ``None`` picks sizes from the input shape.
    beta, capacity, kl_warmup : beta-VAE objective (see :class:`~vae_anomaly.models.ModelConfig`).
    epochs : an integer, or "auto" for a fixed budget of about 3000 gradient steps (10 to 200 epochs).
    contamination : expected share of anomalies in the training data (PyOD's meaning).
    noise, noise_level : denoising training ("gaussian", "salt_pepper" or "mask"): the model
        reconstructs the clean input from a corrupted copy.
    score : "recon_kl" (default, deterministic), "neg_elbo", "iwae", "recon" or "kl".
    threshold : "contamination" (quantile of training scores), "fpr" (``target_fpr`` on the
        held-out validation split, or on clean data given to :meth:`calibrate_threshold`), or
        "fixed" (``threshold_value``).
    """

    def __init__(
        self,
        *,
        model: str = "vae",
        latent_dim: int | None = None,
        hidden_dims: tuple[int, ...] | None = None,
        beta: float = 1.0,
        capacity: float | None = None,
        kl_warmup: float = 0.0,
        epochs: int | str = "auto",
        batch_size: int = 128,
        lr: float = 1e-3,
        weight_decay: float = 1e-5,
        dropout: float = 0.0,
        val_fraction: float = 0.1,
        patience: int | None = 10,
        contamination: float = 0.1,
        score: str = "recon_kl",
        n_samples: int = 16,
        threshold: str = "contamination",
        target_fpr: float = 0.01,
        threshold_value: float | None = None,
        scaling: str = "robust",
        noise: str | None = None,
        noise_level: float = 0.2,
        categorical_columns: list[str] | None = None,
        device: str = "auto",
        random_state: int | None = None,
        verbose: bool = False,
    ) -> None:
        self.model = model
        self.latent_dim = latent_dim
        self.hidden_dims = hidden_dims
        self.beta = beta
        self.capacity = capacity
        self.kl_warmup = kl_warmup
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.val_fraction = val_fraction
        self.patience = patience
        self.contamination = contamination
        self.score = score
        self.n_samples = n_samples
        self.threshold = threshold
        self.target_fpr = target_fpr
        self.threshold_value = threshold_value
        self.scaling = scaling
        self.noise = noise
        self.noise_level = noise_level
        self.categorical_columns = categorical_columns
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ fit
    def _check_params(self) -> None:
        if self.model not in ("vae", "vqvae"):
            raise ConfigError(f"model must be 'vae' or 'vqvae', not {self.model!r}")
        check_method(self.score)
        if self.model == "vqvae" and self.score == "iwae":
            raise ConfigError("the IWAE score needs a Gaussian latent; use 'recon_kl' with a VQ-VAE")
        if self.threshold not in THRESHOLD_METHODS:
            raise ConfigError(f"threshold must be one of {THRESHOLD_METHODS}, not {self.threshold!r}")
        if self.threshold == "fixed" and self.threshold_value is None:
            raise ConfigError("threshold='fixed' needs threshold_value")
        if not 0 < self.contamination < 0.5:
            raise ConfigError(f"contamination must lie in (0, 0.5), got {self.contamination}")
        if not (self.epochs == "auto" or (isinstance(self.epochs, int | np.integer) and self.epochs >= 1)):
            raise ConfigError(f"epochs must be a positive integer or 'auto', not {self.epochs!r}")

    def _epochs_for(self, n_rows: int) -> int:
        if self.epochs != "auto":
            return int(self.epochs)
        n_train = max(1, int(n_rows * (1 - self.val_fraction)))
        steps = math.ceil(n_train / min(self.batch_size, n_train))
        return int(min(200, max(10, math.ceil(AUTO_STEPS / steps))))

    def fit(self, X: Any, y: Any = None, *, callbacks: tuple = ()) -> VAEDetector:
        """Fit on ``X`` (labels ``y`` are ignored: the detector is unsupervised)."""
        import torch

        from .models import ModelConfig, build_model
        from .train import TrainConfig, train

        self._check_params()
        self.preprocessor_ = fit_preprocessor(X, categorical_columns=self.categorical_columns, scaling=self.scaling)
        data = model_input(self.preprocessor_, X)
        self.n_features_in_ = data.shape[1] if data.ndim == 2 else int(np.prod(data.shape[1:]))
        if hasattr(X, "columns"):
            self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
        seed = 0 if self.random_state is None else int(self.random_state)
        cfg = ModelConfig(
            input_shape=model_input_shape(self.preprocessor_), kind=self.model,
            blocks=likelihood_layout(self.preprocessor_), latent_dim=self.latent_dim,
            hidden_dims=self.hidden_dims, beta=self.beta, capacity=self.capacity, kl_warmup=self.kl_warmup,
            dropout=self.dropout)
        torch.manual_seed(seed)
        self.model_ = build_model(cfg)
        self.train_config_ = TrainConfig(
            epochs=self._epochs_for(len(data)), batch_size=self.batch_size, lr=self.lr,
            weight_decay=self.weight_decay, val_fraction=self.val_fraction, patience=self.patience,
            device=self.device, seed=seed, progress=self.verbose, noise=self.noise, noise_level=self.noise_level)
        self.train_result_ = train(self.model_, data, config=self.train_config_, callbacks=callbacks)
        self.history_ = self.train_result_.history
        self.decision_scores_ = self._scores(data)
        self._fit_threshold()
        self.labels_ = (self.decision_scores_ > self.threshold_).astype(int)
        return self

    def _fit_threshold(self) -> None:
        if self.threshold == "fixed":
            self.threshold_ = float(self.threshold_value)  # type: ignore[arg-type]
        elif self.threshold == "fpr":
            # The trainer's validation rows were never trained on: they stand in for clean held-out data.
            val = self.train_result_.val_index
            held = self.decision_scores_[val] if len(val) >= 10 else self.decision_scores_
            self.threshold_ = threshold_from_fpr(held, self.target_fpr)
        else:
            self.threshold_ = threshold_from_contamination(self.decision_scores_, self.contamination)

    # ------------------------------------------------------------------ scores
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError("This VAEDetector is not fitted yet; call fit(X) first.")

    def _scores(self, data: np.ndarray, *, per_feature: bool = False, batch_size: int = 4096,
                method: str | None = None):  # noqa: ANN202
        import torch

        from .scoring import score_batch

        device = next(self.model_.parameters()).device
        scores, contribs = [], []
        for i in range(0, len(data), batch_size):
            xb = torch.from_numpy(np.ascontiguousarray(data[i:i + batch_size])).to(device)
            out = score_batch(self.model_, xb, method=method or self.score, n_samples=self.n_samples,
                              seed=i, per_feature=per_feature)
            if per_feature:
                scores.append(out[0].cpu().numpy())
                contribs.append(out[1].cpu().numpy())
            else:
                scores.append(out.cpu().numpy())
        s = np.concatenate(scores).astype(np.float64)
        return (s, np.concatenate(contribs)) if per_feature else s

    def decision_function(self, X: Any, *, source: str | Path | None = None, first_row: int = 0,
                          method: str | None = None) -> np.ndarray:
        """Anomaly score of each sample, higher is more anomalous; memory bounded by batching.

        ``method`` scores with another score method than the fitted ``score`` (``threshold_`` belongs to ``score``).
        """
        self._check_fitted()
        if method is not None:
            check_method(method)
        return self._scores(model_input(self.preprocessor_, X, source=source, first_row=first_row), method=method)

    def score_samples(self, X: Any) -> np.ndarray:
        """scikit-learn's convention: higher is more normal (the negated decision function)."""
        return -self.decision_function(X)

    def predict(self, X: Any) -> np.ndarray:
        """1 for anomalies (score above ``threshold_``), 0 for normal samples (PyOD's convention)."""
        return (self.decision_function(X) > self.threshold_).astype(int)

    def fit_predict(self, X: Any, y: Any = None) -> np.ndarray:
        return self.fit(X).labels_

    def predict_proba(self, X: Any) -> np.ndarray:
        """(n, 2) [P(normal), P(anomaly)]: scores scaled linearly by the training score range (PyOD's 'linear')."""
        s = self.decision_function(X)
        lo, hi = float(np.min(self.decision_scores_)), float(np.max(self.decision_scores_))
        p = np.clip((s - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
        return np.column_stack([1 - p, p])

    def feature_contributions(self, X: Any) -> tuple[np.ndarray, list[str]]:
        """Per-column (tables) or per-pixel (images) reconstruction NLL at the posterior mean.

        Each row's contributions sum to its reconstruction error (the score minus the KL).
        """
        self._check_fitted()
        _, contrib = self._scores(model_input(self.preprocessor_, X), per_feature=True)
        return contrib, feature_names(self.preprocessor_)

    def explain(self, X: Any, top: int = 3) -> list[list[tuple[str, float]]]:
        """The ``top`` features that contribute most to each row's score."""
        contrib, names = self.feature_contributions(X)
        order = np.argsort(-contrib, axis=1)[:, :top]
        return [[(names[j], float(contrib[i, j])) for j in row] for i, row in enumerate(order)]

    def calibrate_threshold(self, X_clean: Any, target_fpr: float | None = None) -> VAEDetector:
        """Set ``threshold_`` for a target false-positive rate on clean validation data."""
        fpr = self.target_fpr if target_fpr is None else target_fpr
        self.threshold_ = threshold_from_fpr(self.decision_function(X_clean), fpr)
        self.labels_ = (self.decision_scores_ > self.threshold_).astype(int)
        return self

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> Path:
        """safetensors weights + JSON (params, preprocessing, threshold, training-score quantiles)."""
        from .persist import save_model

        self._check_fitted()
        qs = np.quantile(self.decision_scores_, np.linspace(0, 1, 101)).tolist()
        extra = {
            "owner": "VAEDetector",
            "params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.get_params().items()},
            "threshold": float(self.threshold_),
            "train_score_quantiles": qs,
            "train_score_min": float(np.min(self.decision_scores_)),
            "train_score_max": float(np.max(self.decision_scores_)),
            "n_features_in": int(self.n_features_in_),
            "feature_names_in": [str(c) for c in getattr(self, "feature_names_in_", [])],
            "history": self.history_,
        }
        return save_model(directory, self.model_, preprocessing=self.preprocessor_.to_dict(), extra=extra)

    @classmethod
    def load(cls, directory: str | Path, device: str = "cpu") -> VAEDetector:
        from .data.transform import transformer_from_dict
        from .errors import ModelError
        from .persist import load_model

        model, meta = load_model(directory, device=device)
        extra = meta.get("extra", {})
        if extra.get("owner") != "VAEDetector":
            raise ModelError(f"{directory} holds a {extra.get('owner', 'model')}, not a VAEDetector")
        params = dict(extra["params"])
        if params.get("hidden_dims") is not None:
            params["hidden_dims"] = tuple(params["hidden_dims"])
        det = cls(**params)
        det.model_ = model
        det.preprocessor_ = transformer_from_dict(meta["preprocessing"])
        det.threshold_ = float(extra["threshold"])
        det.n_features_in_ = int(extra["n_features_in"])
        if extra.get("feature_names_in"):
            det.feature_names_in_ = np.asarray(extra["feature_names_in"], dtype=object)
        det.history_ = extra.get("history", [])
        det.train_score_quantiles_ = np.asarray(extra["train_score_quantiles"])
        # The full training scores are not stored; their quantiles stand in for them.
        det.decision_scores_ = det.train_score_quantiles_
        det.labels_ = (det.decision_scores_ > det.threshold_).astype(int)
        det.model_meta_ = meta
        return det
