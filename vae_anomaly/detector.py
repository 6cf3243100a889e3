"""``VAEDetector``: a scikit-learn estimator with PyOD's attribute names.

    det = VAEDetector(random_state=0).fit(X)
    det.decision_function(X_new)    # higher = more anomalous
    det.predict(X_new)              # 0 normal, 1 anomaly
    det.decision_scores_, det.threshold_, det.labels_
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin

from .errors import ConfigError, DataError, ModelError, NotFittedError, TrainingError
from .inputs import feature_names, model_input
from .options import (
    Architecture,
    BinaryColumns,
    ComplexityMethod,
    DetectorKind,
    ImageLikelihood,
    NoiseKind,
    Scaling,
    ScoreMethod,
    StoppingRule,
    ThresholdMethod,
    check,
    select,
)
from .scoring import flag, threshold_from_contamination, threshold_from_fpr

if TYPE_CHECKING:
    from .fitting import PreprocessConfig
    from .models import ModelConfig
    from .trainer import TrainConfig


class VAEDetector(OutlierMixin, BaseEstimator):
    """Variational-autoencoder anomaly detector for tables and images.

    Parameters
    ----------
    kind : "vae" or "vqvae" (named ``model`` in 0.1.0; saved models with "model" still load).
    latent_dim, hidden_dims : architecture; ``None`` picks sizes from the input shape (a table's hidden layers:
        64 and 32 units whatever its width, which beat widths that grow with the input on both scorecard halves).
    beta, capacity, kl_warmup : beta-VAE objective (see :class:`~vae_anomaly.models.ModelConfig`).
    epochs : an integer, or "auto" for about ``max_steps`` gradient steps (at least 10 epochs): short on
        purpose, a detector trained to convergence learns to reconstruct the anomalies in its training data.
    batch_size : an integer, or "auto" (default): about eight batches an epoch, a power of two from 16 to 128,
        so a 200-row table gets as many gradient steps as a large one (in batches of 128 it stayed under-fitted).
    max_steps : the gradient-step budget of ``epochs="auto"`` (1000); with ``stopping="separation"`` a ceiling.
    stopping : "none" (default: train the whole ``max_steps`` budget and keep the last weights), "validation"
        (keep the lowest validation loss, stop after ``patience`` epochs without improvement; with 10-100
        validation rows that choice is noise) or "separation" (ODIM's label-free rule: keep the weights where a
        two-component mixture of the training rows' losses separates most; stop after ``separation_patience``
        steps without a new peak). Measured on both halves of the scorecard: benchmarks/RESULTS.md.
    binary_columns : "gaussian" (default) or "bernoulli": two-valued numeric columns as 0/1 flags with a
        Bernoulli likelihood (a rare flag then costs -log p(flag) nats instead of dominating the score).
    contamination : expected share of anomalies in the training data (PyOD's meaning).
    noise, noise_level : denoising training ("gaussian", "salt_pepper" or "mask"): the model
        reconstructs the clean input from a corrupted copy.
    score_method : "recon_kl" (default, deterministic), "neg_elbo", "iwae", "recon" or "kl" (named
        ``score`` in 0.1.0, which shadowed :meth:`score`; saved models with "score" still load).
    threshold : "contamination" (quantile of training scores), "fpr" (``target_fpr`` on the
        held-out validation split, or on clean data given to :meth:`calibrate_threshold`), or
        "fixed" (``threshold_value``).
    trim_fraction : loss truncation: after the first 10% of training, each batch's highest-loss share of rows
        is left out of the gradient, so the model does not learn to reconstruct the anomalies hidden in
        its training data. "contamination" uses ``contamination``; 0 turns it off.
    architecture : "auto" (conv for images, MLP for tables), "mlp" or "conv".
    n_estimators, max_samples : an ensemble of ``n_estimators`` short-trained members, each fitted on its own
        ``max_samples`` share of the rows with its own seed; each member's scores are normalised by its
        training scores' median and spread (robust z) and averaged. The ensemble costs about twice one model.
    n_jobs : torch threads while fitting and scoring; None = ``VAE_ANOMALY_THREADS`` or half the cores.
    image_likelihood : p(pixel | z) for image input (tables ignore it): "gaussian" (default: learned, bounded
        per-pixel variance; best on one-class digits, benchmarks/RESULTS.md), "bernoulli" (cross-entropy on
        grey levels; models saved before this option existed load with it) or
        "continuous_bernoulli" (Loaiza-Ganem & Cunningham 2019: the Bernoulli with its normaliser).
    complexity_correction : None, "png" or "zlib" (images only): Serrà et al.'s input-complexity correction;
        the score becomes the score in bits per dimension minus the compressed length of the 8-bit image
        in bits per dimension.
    """

    # Every parameter's accepted values, checked in one place (scikit-learn's convention).
    # Every parameter's accepted values: a selection of the one options table (declared there, once).
    _parameter_constraints: dict[str, list[Any]] = select(
        "kind", "latent_dim", "hidden_dims", "beta", "capacity", "kl_warmup", "epochs", "batch_size", "max_steps",
        "lr", "weight_decay", "dropout", "val_fraction", "patience", "stopping", "separation_patience",
        "contamination", "score_method", "n_samples", "threshold", "target_fpr", "threshold_value", "scaling",
        "binary_columns", "noise", "noise_level", "categorical_columns", "device", "trim_fraction", "architecture",
        "n_estimators", "max_samples", "n_jobs", "image_likelihood", "complexity_correction", "random_state",
        "verbose")

    def __init__(
        self,
        *,
        kind: DetectorKind = "vae",
        latent_dim: int | None = None,
        hidden_dims: tuple[int, ...] | None = None,
        beta: float = 1.0,
        capacity: float | None = None,
        kl_warmup: float = 0.0,
        epochs: int | str = "auto",
        batch_size: int | Literal["auto"] = "auto",
        max_steps: int = 1000,
        lr: float = 1e-3,
        weight_decay: float = 1e-5,
        dropout: float = 0.0,
        val_fraction: float = 0.1,
        patience: int | None = 10,
        stopping: StoppingRule = "none",
        separation_patience: int = 100,
        contamination: float = 0.1,
        score_method: ScoreMethod = "recon_kl",
        n_samples: int = 16,
        threshold: ThresholdMethod = "contamination",
        target_fpr: float = 0.01,
        threshold_value: float | None = None,
        scaling: Scaling = "robust",
        binary_columns: BinaryColumns = "gaussian",
        noise: NoiseKind | None = None,
        noise_level: float = 0.2,
        categorical_columns: list[str] | None = None,
        device: str = "auto",
        trim_fraction: float | Literal["contamination"] = "contamination",
        architecture: Architecture = "auto",
        n_estimators: int = 1,
        max_samples: float = 0.8,
        n_jobs: int | None = None,
        image_likelihood: ImageLikelihood = "gaussian",
        complexity_correction: ComplexityMethod | None = None,
        random_state: int | None = None,
        verbose: bool = False,
    ) -> None:
        self.kind = kind
        self.latent_dim = latent_dim
        self.hidden_dims = hidden_dims
        self.beta = beta
        self.capacity = capacity
        self.kl_warmup = kl_warmup
        self.epochs = epochs
        self.batch_size = batch_size
        self.max_steps = max_steps
        self.lr = lr
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.val_fraction = val_fraction
        self.patience = patience
        self.stopping = stopping
        self.separation_patience = separation_patience
        self.contamination = contamination
        self.score_method = score_method
        self.n_samples = n_samples
        self.threshold = threshold
        self.target_fpr = target_fpr
        self.threshold_value = threshold_value
        self.scaling = scaling
        self.binary_columns = binary_columns
        self.noise = noise
        self.noise_level = noise_level
        self.categorical_columns = categorical_columns
        self.device = device
        self.trim_fraction = trim_fraction
        self.architecture = architecture
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.n_jobs = n_jobs
        self.image_likelihood = image_likelihood
        self.complexity_correction = complexity_correction
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ fit
    def _check_params(self) -> None:
        check(type(self).__name__, self.get_params(), self._parameter_constraints)
        self._check_combinations()

    def _check_combinations(self) -> None:
        """The rules between options (each option alone is the options table's)."""
        if self.kind == "vqvae" and self.score_method == "iwae":
            raise ConfigError("VAEDetector option 'score_method': the IWAE score needs a Gaussian latent; "
                              "use 'recon_kl' with a VQ-VAE")
        if self.threshold == "fixed" and self.threshold_value is None:
            raise ConfigError("VAEDetector option 'threshold_value' is needed with threshold='fixed'")

    def fit(self, X: Any, y: Any = None, *, callbacks: tuple = (), checkpoint_dir: str | Path | None = None,
            resume: bool = False) -> VAEDetector:
        """Fit on ``X`` (labels ``y`` are ignored: the detector is unsupervised).

        ``checkpoint_dir`` keeps a checkpoint after every epoch; with ``resume=True`` a matching
        checkpoint there is continued from (a killed fit picks up where it stopped).
        """
        from . import fitting

        self._check_params()
        if self.complexity_correction is not None and np.ndim(X) not in (3, 4):
            raise ConfigError(f"VAEDetector option 'complexity_correction': it compresses images; this input is "
                              f"not an image array (n, H, W) or (n, C, H, W) (ndim {np.ndim(X)})")
        fitted = fitting.fit_model(X, model_config=self._model_config(), preprocess_config=self._preprocess_config(),
                                   train_config=self._train_config(checkpoint_dir, resume), callbacks=callbacks)
        self.preprocessor_, self.model_ = fitted.preprocessor, fitted.model
        self.train_config_, self.train_result_ = fitted.train_config, fitted.train_result
        data = fitted.data
        self.n_features_in_ = data.shape[1] if data.ndim == 2 else int(np.prod(data.shape[1:]))
        if hasattr(X, "columns"):
            self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
        self.history_ = self.train_result_.history
        self.member_stats_ = self._member_stats(data) if self.n_estimators > 1 else []
        try:
            self.decision_scores_ = self._scores(data)
        except DataError as exc:
            raise TrainingError(f"the trained model gives non-finite scores on its own training data ({exc}); "
                                "check the input scaling or lower the learning rate") from exc
        self._fit_threshold()
        self.labels_ = flag(self.decision_scores_, self.threshold_)
        self._set_score_summary(self.decision_scores_)
        return self

    # The typed configs, built once from the parameters (same names); fit_model binds them to the data.
    def _model_config(self) -> ModelConfig:
        from .fitting import DETECTION_TABLE_HIDDEN
        from .models import ModelConfig

        return ModelConfig(kind=self.kind, latent_dim=self.latent_dim, hidden_dims=self.hidden_dims,
                           table_hidden_dims=DETECTION_TABLE_HIDDEN, beta=self.beta,
                           capacity=self.capacity, kl_warmup=self.kl_warmup, dropout=self.dropout,
                           architecture=self.architecture, image_likelihood=self.image_likelihood)

    def _train_config(self, checkpoint_dir: str | Path | None = None, resume: bool = False) -> TrainConfig:
        from .fitting import DETECTION_MAX_EPOCHS, seed_of
        from .trainer import TrainConfig

        return TrainConfig(
            epochs=self.epochs, batch_size=self.batch_size, max_steps=self.max_steps,
            max_epochs=DETECTION_MAX_EPOCHS, lr=self.lr, weight_decay=self.weight_decay,
            val_fraction=self.val_fraction, patience=self.patience, stopping=self.stopping,
            separation_patience=self.separation_patience, device=self.device, n_jobs=self.n_jobs,
            random_state=seed_of(self.random_state), verbose=self.verbose, noise=self.noise,
            noise_level=self.noise_level, n_estimators=self.n_estimators, max_samples=self.max_samples,
            trim_fraction=self.contamination if self.trim_fraction == "contamination" else float(self.trim_fraction),
            checkpoint_dir=None if checkpoint_dir is None else str(checkpoint_dir), resume=resume)

    def _preprocess_config(self) -> PreprocessConfig:
        from .fitting import PreprocessConfig

        return PreprocessConfig(scaling=self.scaling, binary_columns=self.binary_columns,
                                categorical_columns=self.categorical_columns)

    def _members(self) -> list[Any]:
        return self._members_of(self.model_)

    @staticmethod
    def _members_of(model: Any) -> list[Any]:
        from .models.ensemble import members_of

        return members_of(model)

    def _member_stats(self, data: np.ndarray) -> list[list[float]]:
        """Each member's training-score median and robust spread: the scale that makes members comparable."""
        raw = self._raw_member_scores(data)
        stats = []
        for s in raw:
            q25, q50, q75 = np.percentile(s, [25, 50, 75])
            spread = (q75 - q25) / 1.349 if q75 > q25 else float(np.std(s)) or 1.0
            stats.append([float(q50), float(spread)])
        return stats

    def _raw_member_scores(self, data: np.ndarray, method: str | None = None) -> list[np.ndarray]:
        import torch

        from .batching import chunk_rows, iter_batches, model_row_bytes
        from .device import torch_threads
        from .scoring import score_batch

        out = []
        with torch_threads(self.n_jobs):
            for member in self._members():
                device = next(member.parameters()).device
                size = chunk_rows(model_row_bytes(member.config.n_features))
                chunks = [score_batch(member, torch.from_numpy(np.ascontiguousarray(data[b])).to(device),
                                      method=method or self.score_method, n_samples=self.n_samples).cpu().numpy()
                          for b in iter_batches(len(data), size)]
                raw = np.concatenate(chunks).astype(np.float64)
                if self.complexity_correction is not None and (method or self.score_method) == self.score_method:
                    from .scoring import complexity_corrected

                    raw = complexity_corrected(raw, data, self.complexity_correction)
                out.append(raw)
        return out

    def _set_score_summary(self, scores: np.ndarray) -> None:
        """Quantiles and range of the training scores: what drift checks and predict_proba need after a load."""
        self.train_score_quantiles_ = np.quantile(scores, np.linspace(0, 1, 101))
        self.train_score_min_, self.train_score_max_ = float(np.min(scores)), float(np.max(scores))
        # PyOD's 'unify' probability standardises by the training scores' mean and (population) std;
        # predict_confidence needs their count.
        self.train_score_mean_, self.train_score_std_ = float(np.mean(scores)), float(np.std(scores))
        self.n_train_scores_ = len(scores)

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

    def _scores(self, data: np.ndarray, *, per_feature: bool = False, batch_size: int | None = None,
                method: str | None = None, source: str | Path | None = None, first_row: int = 0):  # noqa: ANN202
        import torch

        from .batching import chunk_rows, iter_batches, model_row_bytes
        from .device import torch_threads
        from .scoring import score_batch

        members = self._members()
        if batch_size is None:  # sized by the bytes a row's scoring takes (a row's score is the same either way)
            batch_size = chunk_rows(model_row_bytes(members[0].config.n_features))
        # Ensemble members are put on one scale (robust z of their own training scores) for the fitted score;
        # another method (the promotion's negative ELBO) is averaged in its own units.
        normalise = len(members) > 1 and (method is None or method == self.score_method)
        # The input-complexity correction is part of the fitted score, like the members' normalisation.
        correct = self.complexity_correction if method is None or method == self.score_method else None
        scores, contribs = [], []
        with torch_threads(self.n_jobs):
            for b in iter_batches(len(data), batch_size):
                total, total_c = 0.0, 0.0
                for k, member in enumerate(members):
                    xb = torch.from_numpy(np.ascontiguousarray(data[b])).to(next(member.parameters()).device)
                    out = score_batch(member, xb, method=method or self.score_method, n_samples=self.n_samples,
                                      per_feature=per_feature)
                    s_k = (out[0] if per_feature else out).double().cpu().numpy()
                    if correct is not None:
                        from .scoring import complexity_corrected

                        s_k = complexity_corrected(s_k, data[b], correct)
                    if normalise:
                        center, spread = self.member_stats_[k]
                        s_k = (s_k - center) / spread
                    total = total + s_k
                    if per_feature:
                        total_c = total_c + out[1].double().cpu().numpy()
                scores.append(total / len(members))
                if per_feature:
                    contribs.append(total_c / len(members))
        s = np.concatenate(scores).astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(s))
        if len(bad):
            # A NaN or infinite score compares false with any threshold: it would be written as
            # "not anomalous" (or flag everything). Refuse, naming the rows.
            rows = ", ".join(str(first_row + int(r)) for r in bad[:5]) + (" ..." if len(bad) > 5 else "")
            raise DataError(f"{len(bad)} row(s) got a non-finite anomaly score (rows {rows}): their values lie "
                            "far outside what the model can represent, or the model is degenerate",
                            file=source, row=first_row + int(bad[0]))
        return (s, np.concatenate(contribs)) if per_feature else s

    def decision_function(self, X: Any, *, source: str | Path | None = None, first_row: int = 0,
                          method: str | None = None) -> np.ndarray:
        """Anomaly score of each sample, higher is more anomalous; memory bounded by batching.

        ``method`` scores with another score method than the fitted ``score_method`` (``threshold_`` belongs to it).
        """
        self._check_fitted()
        if method is not None:
            check(type(self).__name__, {"method": method}, {"method": self._parameter_constraints["score_method"]})
        return self._scores(model_input(self.preprocessor_, X, source=source, first_row=first_row,
                                        owner=type(self).__name__), method=method,
                            source=source, first_row=first_row)

    def score_samples(self, X: Any) -> np.ndarray:
        """scikit-learn's convention: higher is more normal (the negated decision function)."""
        return -self.decision_function(X)

    def score(self, X: Any, y: Any = None) -> float:
        """Mean ``score_samples`` of ``X``: higher = more normal data (``y`` is ignored).

        What scikit-learn's model selection maximises (``GridSearchCV``, ``Pipeline.score``) for an
        unsupervised detector: the held-out rows' mean negated anomaly score.
        """
        return float(np.mean(self.score_samples(X)))

    def predict(self, X: Any, return_confidence: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """1 for anomalies (score above ``threshold_``), 0 for normal samples (PyOD's convention).

        ``return_confidence=True`` also returns :meth:`predict_confidence` (PyOD's signature).
        """
        s = self.decision_function(X)
        labels = flag(s, self.threshold_)
        return (labels, self._confidence(s)) if return_confidence else labels

    def fit_predict(self, X: Any, y: Any = None) -> np.ndarray:
        return self.fit(X).labels_

    def predict_proba(self, X: Any, method: Literal["linear", "unify"] = "linear",
                      return_confidence: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """(n, 2) [P(normal), P(anomaly)] with PyOD's meanings of ``method``.

        "linear": the score min-max scaled by the training scores' range, clipped to [0, 1];
        "unify": ``erf((s - mean) / (std * sqrt 2))`` of the training scores, clipped to [0, 1]
        (Kriegel et al. 2011, "Interpreting and unifying outlier scores").
        ``return_confidence=True`` also returns :meth:`predict_confidence`.
        """
        if method not in ("linear", "unify"):
            raise ConfigError(f"VAEDetector.predict_proba: method must be 'linear' or 'unify', not {method!r}")
        s = self.decision_function(X)
        if method == "linear":
            lo, hi = self.train_score_min_, self.train_score_max_
            p = np.clip((s - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
        else:
            from scipy.special import erf

            mean, std = self._train_score_moments()
            p = np.clip(erf((s - mean) / ((std if std > 0 else 1.0) * np.sqrt(2))), 0, 1)
        proba = np.column_stack([1 - p, p])
        return (proba, self._confidence(s)) if return_confidence else proba

    def predict_confidence(self, X: Any) -> np.ndarray:
        """How surely each row keeps its predicted label under a perturbed training set, in [0, 1].

        PyOD's ExCeeD (Perini et al. 2020): with ``n`` training scores of which ``k`` are <= the row's score,
        ``p = (1 + k) / (2 + n)`` and the confidence in "anomaly" is ``1 - BinomCDF(n - int(n * contamination);
        n, p)`` (its complement for rows predicted normal). After :meth:`load` the training scores are
        represented by their 101 saved quantiles, so ``k`` is interpolated.
        """
        return self._confidence(self.decision_function(X))

    def _train_score_moments(self) -> tuple[float, float]:
        if hasattr(self, "train_score_mean_"):
            return self.train_score_mean_, self.train_score_std_
        # A model saved by 0.1.0 kept only the quantiles: their mean and spread stand in.
        q = self.train_score_quantiles_
        return float(np.mean(q)), float(np.std(q))

    def _confidence(self, s: np.ndarray) -> np.ndarray:
        from scipy.stats import binom

        if getattr(self, "decision_scores_", None) is not None:
            train = np.sort(self.decision_scores_)
            n = len(train)
            k = np.searchsorted(train, s, side="right")  # training scores <= s
        else:
            if not hasattr(self, "n_train_scores_"):
                raise ModelError("predict_confidence needs the number of training scores, which models saved by "
                                 "vae-anomaly 0.1.0 lack; refit the model to get confidences")
            q, n = self.train_score_quantiles_, self.n_train_scores_
            k = np.interp(s, q, np.linspace(0, 1, len(q))) * n
        posterior = (1 + k) / (2 + n)
        confidence = 1 - binom.cdf(n - int(n * self.contamination), n, posterior)
        return np.where(flag(s, self.threshold_) == 1, confidence, 1 - confidence)

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
        if hasattr(self, "decision_scores_"):
            self.labels_ = flag(self.decision_scores_, self.threshold_)
        return self

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> Path:
        """safetensors weights + JSON (params, preprocessing, threshold, training-score quantiles)."""
        from .persist import save_model

        self._check_fitted()
        extra = {
            "owner": "VAEDetector",
            "params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.get_params().items()},
            "threshold": float(self.threshold_),
            "train_score_quantiles": self.train_score_quantiles_.tolist(),
            "train_score_min": self.train_score_min_,
            "train_score_max": self.train_score_max_,
            "train_score_mean": self.train_score_mean_,
            "train_score_std": self.train_score_std_,
            "n_train_scores": int(self.n_train_scores_),
            "n_features_in": int(self.n_features_in_),
            "feature_names_in": [str(c) for c in getattr(self, "feature_names_in_", [])],
            "history": self.history_,
            "member_stats": self.member_stats_,
            # The data file's id and label columns (set by whoever fitted it from a file): scoring that
            # file again carries the ids through and leaves the labels out instead of refusing them.
            "data_columns": {k: list(v) for k, v in getattr(self, "data_columns_", {}).items()},
        }
        return save_model(directory, self.model_, preprocessing=self.preprocessor_.to_dict(), extra=extra)

    @classmethod
    def load(cls, directory: str | Path, device: str = "cpu") -> VAEDetector:
        """Load a saved detector; the weights' hash, the config and the threshold are checked first.

        The training scores themselves are not saved: ``decision_scores_`` and ``labels_`` exist only
        after ``fit``; their quantiles and range are in ``train_score_quantiles_``,
        ``train_score_min_`` and ``train_score_max_``.
        """
        from .data.transform import transformer_from_dict
        from .persist import load_model
        from .saved_model import DetectorEntry, validate

        model, meta = load_model(directory, device=device)
        extra = meta.get("extra", {})
        if extra.get("owner") != "VAEDetector":
            raise ModelError(f"{directory} holds a {extra.get('owner', 'model')}, not a VAEDetector")
        where = f"{Path(directory) / 'model.json'}"
        # Types, finiteness (a NaN threshold would flag nothing, or everything) and shapes, by the schema.
        entry = validate(DetectorEntry, extra, where, "detector entry is missing or malformed: ")
        params = dict(entry.params)
        if "score" in params and "score_method" not in params:
            # Saved before the rename (the ``score`` parameter shadowed scikit-learn's score()).
            params["score_method"] = params.pop("score")
        if "model" in params and "kind" not in params:
            # Saved before the rename (``model`` also named the registry reference of ``score --model``).
            params["kind"] = params.pop("model")
        # Saved before the option existed: those image models were trained with Bernoulli pixels.
        params.setdefault("image_likelihood", "bernoulli")
        if params.get("hidden_dims") is not None:
            params["hidden_dims"] = tuple(params["hidden_dims"])
        try:
            check(cls.__name__, params, cls._parameter_constraints, known=True)  # names and values, once
            det = cls(**params)
            det._check_combinations()
        except ConfigError as exc:
            raise ModelError(f"{where}: {exc}") from exc
        det.model_ = model
        det.preprocessor_ = transformer_from_dict(meta["preprocessing"])
        det.threshold_ = entry.threshold
        det.n_features_in_ = entry.n_features_in
        if entry.feature_names_in:
            det.feature_names_in_ = np.asarray(entry.feature_names_in, dtype=object)
        det.history_ = entry.history
        n_members = len(det._members_of(model))
        if n_members > 1 and len(entry.member_stats) != n_members:
            raise ModelError(f"{where}: member_stats must hold [center, spread > 0] for each of the {n_members} members")
        det.member_stats_ = [list(p) for p in entry.member_stats]
        det.data_columns_ = dict(entry.data_columns)
        det.train_score_quantiles_ = np.asarray(entry.train_score_quantiles, dtype=np.float64)
        det.train_score_min_, det.train_score_max_ = entry.train_score_min, entry.train_score_max
        moments = (entry.train_score_mean, entry.train_score_std, entry.n_train_scores)
        if None not in moments:  # absent in models saved by 0.1.0: predict_proba('unify') then uses the quantiles
            det.train_score_mean_, det.train_score_std_, det.n_train_scores_ = moments
        det.model_meta_ = meta
        return det
