"""``VAEOversampler``: balance classes with rows (or images) sampled from a conditional VAE.

One CVAE is trained on all classes with the class as its condition; new rows of
class k are decoded from z ~ N(0, I) with c = k and mapped back through the
fitted inverse transform (original columns, dtypes, categories; numeric values
within each column's observed range; integers stay integers). That is a true
conditional model: asking for a rare class costs the same as a common one.

Two optional filters guard quality and privacy: drop generated rows the model
itself scores as anomalous for their class, and drop rows closer to a real row
than real rows usually are to each other (copies of the training data).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
from imblearn.over_sampling.base import BaseOverSampler

from .errors import ConfigError, DataError
from .inputs import is_image_input
from .params import BOOL, EPOCHS, N_JOBS, NONE, SEED, Check, Interval, Options, positive_int_tuple, string_list
from .params import validate_params as _validate


def _check_labels(y: Any) -> None:
    """Missing or infinite labels, named by row (imbalanced-learn would say only "Input contains NaN")."""
    arr = np.asarray(y)
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr)
    elif arr.dtype.kind == "O":
        bad = pd.isna(arr)
    else:
        return
    if bad.any():
        raise DataError("missing or infinite label", column="y", row=int(np.argwhere(bad)[0][0]))


def _py(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


class VAEOversampler(BaseOverSampler):
    """Over-sample minority classes with a conditional VAE (imbalanced-learn's sampler API).

    Parameters
    ----------
    sampling_strategy : "auto", a float ratio, a dict {class: target count} or a callable (imbalanced-learn's).
    filter_anomalous : drop generated rows whose recon+KL score (given their class) exceeds the
        ``anomaly_quantile`` of the real rows' scores of that class, or that the model explains better
        with another class as the condition (rows that drifted into another class's region).
    min_distance : "auto" drops generated rows nearer to a real row than the 1st percentile of the
        real rows' own nearest-neighbour distances (in model space); a float sets the distance; None disables.
    min_class_rows : a class with fewer real rows cannot be learned and is an error.
    latent_sampling : "interpolate" draws z on the segment between the posterior means of a random real row
        of the class and one of its ``k_neighbors`` nearest same-class neighbours in z (SMOTE in the latent
        space, as DeepSMOTE does; decoded rows follow the data's manifold where SMOTE's lines in x cut across).
        "posterior" (default) draws z from the posterior q(z | x, c) of a random real row
        of the class -- the aggregate posterior the decoder was trained on; with few rows of a class the
        prior N(0, I) has regions the decoder never saw for it. "prior" draws z ~ N(0, I).
    sample_noise : add the decoder's own noise to each generated row. Off by default: the noise is
        independent per column and blurs correlations; variety comes from the latent draw.
    """

    _sampling_type = "over-sampling"

    _parameter_constraints: dict[str, list[Any]] = {
        "sampling_strategy": [Options(("auto", "minority", "not minority", "not majority", "all")),
                              Interval(float, 0, 1, closed="right"), Check(lambda v: isinstance(v, dict) or callable(v),
                                                                           "a dict {class: count} or a callable")],
        "random_state": [SEED],
        "latent_dim": [NONE, Interval(int, 1, 4096)],
        "hidden_dims": [NONE, Check(positive_int_tuple, "a non-empty list of integers in [1, 65536]")],
        "beta": [Interval(float, 0, None)],
        "epochs": [EPOCHS],
        "batch_size": [Interval(int, 1, 1_000_000)],
        "lr": [Interval(float, 0, 10, closed="right")],
        "filter_anomalous": [BOOL],
        "anomaly_quantile": [Interval(float, 0, 1, closed="right")],
        "min_distance": [NONE, Options(("auto",)), Interval(float, 0, None)],
        "min_class_rows": [Interval(int, 1, None)],
        "sample_noise": [BOOL],
        "latent_sampling": [Options(("posterior", "prior", "interpolate"))],
        "k_neighbors": [Interval(int, 1, 100)],
        "max_rounds": [Interval(int, 1, 1000)],
        "categorical_columns": [NONE, Check(string_list, "a list of column names")],
        "device": [Check(lambda v: isinstance(v, str) and v.split(":")[0] in ("auto", "cpu", "cuda", "mps"),
                         "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")],
        "n_jobs": [N_JOBS],
        "verbose": [BOOL],
    }

    def __init__(
        self,
        *,
        sampling_strategy: Any = "auto",
        random_state: int | None = None,
        latent_dim: int | None = None,
        hidden_dims: tuple[int, ...] | None = None,
        beta: float = 1.0,
        epochs: int | str = "auto",
        batch_size: int = 128,
        lr: float = 1e-3,
        filter_anomalous: bool = True,
        anomaly_quantile: float = 0.99,
        min_distance: float | str | None = "auto",
        min_class_rows: int = 6,
        sample_noise: bool = False,
        latent_sampling: Literal["posterior", "prior", "interpolate"] = "posterior",
        k_neighbors: int = 5,
        max_rounds: int = 10,
        categorical_columns: list[str] | None = None,
        device: str = "auto",
        n_jobs: int | None = None,
        verbose: bool = False,
    ) -> None:
        super().__init__(sampling_strategy=sampling_strategy)
        self.random_state = random_state
        self.latent_dim = latent_dim
        self.hidden_dims = hidden_dims
        self.beta = beta
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.filter_anomalous = filter_anomalous
        self.anomaly_quantile = anomaly_quantile
        self.min_distance = min_distance
        self.min_class_rows = min_class_rows
        self.sample_noise = sample_noise
        self.latent_sampling = latent_sampling
        self.k_neighbors = k_neighbors
        self.max_rounds = max_rounds
        self.categorical_columns = categorical_columns
        self.device = device
        self.n_jobs = n_jobs
        self.verbose = verbose

    # ------------------------------------------------------------------ API
    def fit_resample(self, X: Any, y: Any, **params: Any) -> tuple[Any, Any]:
        """Fit the CVAE on (X, y) and return the data with generated rows appended after the real ones."""
        from imblearn.utils import check_target_type
        from sklearn.utils.multiclass import check_classification_targets

        _check_labels(y)
        # One-hot (multilabel-indicator) and column-vector targets, as imbalanced-learn accepts them.
        y_checked, binarize = check_target_type(np.asarray(y), indicate_one_vs_all=True)
        X_in, y_arr = self._validate(X, y_checked)
        check_classification_targets(y_arr)
        self.sampling_strategy_ = self._strategy(y_arr)
        self.fit_model(X_in, y_arr)
        parts_X, parts_y = [X_in], [y_arr]
        for cls, n in self.sampling_strategy_.items():
            if n > 0:
                gen = self.sample(int(n), cls)
                parts_X.append(gen)
                parts_y.append(np.full(int(n), cls, dtype=y_arr.dtype))
        if isinstance(X_in, pd.DataFrame):
            X_res = pd.concat(parts_X, ignore_index=True)
        else:
            X_res = np.concatenate([np.asarray(p, dtype=X_in.dtype) for p in parts_X])
        y_res = np.concatenate(parts_y)
        if binarize:
            from sklearn.preprocessing import label_binarize

            return X_res, label_binarize(y_res, classes=self.classes_)
        if isinstance(y, pd.Series):
            y_res = pd.Series(y_res, name=y.name)
        elif isinstance(y, pd.DataFrame):
            y_res = pd.DataFrame(y_res.reshape(len(y_res), -1), columns=y.columns)
        return X_res, y_res

    def fit(self, X: Any, y: Any) -> VAEOversampler:
        """Validate and fit the generator (imbalanced-learn's ``fit``); use :meth:`fit_resample` to resample."""

        _check_labels(y)
        X_in, y_arr = self._validate(X, y)
        self.sampling_strategy_ = self._strategy(y_arr)
        self.fit_model(X_in, y_arr)
        return self

    def _strategy(self, y: np.ndarray) -> dict[Any, int]:
        """imbalanced-learn's reading of ``sampling_strategy``; its ValueErrors become one clear ConfigError."""
        from imblearn.utils import check_sampling_strategy

        try:
            return check_sampling_strategy(self.sampling_strategy, y, self._sampling_type)
        except ValueError as exc:
            raise ConfigError(f"VAEOversampler: sampling_strategy {self.sampling_strategy!r} does not fit the "
                              f"labels: {exc}") from exc

    def _fit_resample(self, X: Any, y: Any) -> tuple[Any, Any]:
        # imbalanced-learn's abstract hook; fit_resample is overridden to keep DataFrames and images intact.
        return self.fit_resample(X, y)

    def _validate(self, X: Any, y: Any) -> tuple[Any, np.ndarray]:
        _validate(type(self).__name__, self.get_params(), self._parameter_constraints)
        if isinstance(X, pd.DataFrame):
            X_in = X.reset_index(drop=True)
        else:
            X_in = np.asarray(X)
            if X_in.ndim not in (2, 3, 4):
                raise DataError(f"expected a table (n, d) or images, got an array shaped {X_in.shape}")
        y_arr = np.asarray(y)
        if y_arr.ndim != 1 or len(y_arr) != len(X_in):
            raise DataError(f"y must be 1-D with one label per row: {len(X_in)} rows, y shaped {y_arr.shape}")
        classes, counts = np.unique(y_arr, return_counts=True)
        if len(classes) < 2:
            raise DataError(f"y has a single class ({_py(classes[0])!r}); over-sampling needs at least two", column="y")
        small = [(c, k) for c, k in zip(classes, counts, strict=True) if k < self.min_class_rows]
        if small:
            c, k = small[0]
            raise DataError(f"class {_py(c)!r} has {k} rows; at least {self.min_class_rows} are needed to learn it",
                            column="y")
        return X_in, y_arr

    # ------------------------------------------------------------------ model
    def fit_model(self, X: Any, y: np.ndarray) -> VAEOversampler:
        import torch

        from .fitting import fit_model
        from .scoring import score_batch

        self.classes_ = np.unique(y)
        self.is_image_ = is_image_input(X)
        codes = np.searchsorted(self.classes_, y)
        fitted = fit_model(
            X, codes, kind="cvae", n_conditions=len(self.classes_), epochs=self.epochs, batch_size=self.batch_size,
            random_state=self.random_state, n_jobs=self.n_jobs, categorical_columns=self.categorical_columns,
            model_options={"latent_dim": self.latent_dim, "hidden_dims": self.hidden_dims, "beta": self.beta},
            train_options={"lr": self.lr, "device": self.device, "progress": self.verbose})
        self.seed_, self.preprocessor_, self.model_ = fitted.seed, fitted.preprocessor, fitted.model
        self.train_result_, data = fitted.train_result, fitted.data
        # Per-class reference statistics for the filters.
        device = next(self.model_.parameters()).device
        self.real_by_class_: dict[int, np.ndarray] = {}
        self.score_limit_: dict[int, float] = {}
        self.posterior_: dict[int, tuple[Any, Any]] = {}
        self.min_distance_: dict[int, float] = {}
        flat = data.reshape(len(data), -1)
        for k in range(len(self.classes_)):
            rows = data[codes == k]
            with torch.no_grad():
                s = score_batch(self.model_, torch.from_numpy(rows).to(device),
                                torch.full((len(rows),), k, device=device)).cpu().numpy()
            self.score_limit_[k] = float(np.quantile(s, self.anomaly_quantile))
            with torch.no_grad():
                mu, logvar = self.model_.encode(torch.from_numpy(rows).to(device),
                                                torch.full((len(rows),), k, device=device))
            self.posterior_[k] = (mu.cpu(), logvar.cpu())
        # One threshold for all classes: a copy of any real row leaks, whatever its class.
        threshold = self._distance_threshold(flat)
        self.min_distance_ = {k: threshold for k in range(len(self.classes_))}
        return self

    def _distance_threshold(self, rows: np.ndarray) -> float:
        """Fit the real-row index the copy filter queries; return the distance below which a row is a copy."""
        self.nn_index_ = None
        if self.min_distance is None:
            return 0.0
        from sklearn.neighbors import NearestNeighbors

        self.nn_index_ = NearestNeighbors(n_neighbors=2).fit(rows)
        if self.min_distance != "auto":
            return float(self.min_distance)
        if len(rows) < 3:
            return 0.0
        d = self.nn_index_.kneighbors(rows)[0][:, 1]  # column 0 is the row itself
        return float(np.percentile(d, 1))

    def interpolated_latents(self, m: int, k: int, gen: Any) -> tuple[Any, Any, Any, Any]:
        """``m`` latent points between class-``k`` rows and their nearest class-``k`` neighbours in z.

        Returns ``(z, base, neighbour, lam)``: ``z = mu[base] + lam * (mu[neighbour] - mu[base])``, lam in [0, 1].
        A class with a single row gets that row's posterior mean.
        """
        import torch

        mu = self.posterior_[k][0].cpu()
        n_rows = len(mu)
        base = torch.randint(0, n_rows, (m,), generator=torch.Generator().manual_seed(int(
            torch.randint(0, 2**31 - 1, (1,), generator=gen, device=gen.device).item())))
        if n_rows < 2:
            return mu[base], base, base, torch.zeros(m)
        kk = min(self.k_neighbors, n_rows - 1)
        d = torch.cdist(mu, mu)
        d.fill_diagonal_(float("inf"))
        neighbours = d.topk(kk, largest=False).indices  # (n_rows, kk)
        cpu = torch.Generator().manual_seed(int(base.sum()) + m)
        pick = torch.randint(0, kk, (m,), generator=cpu)
        other = neighbours[base, pick]
        lam = torch.rand(m, generator=cpu)
        z = mu[base] + lam[:, None] * (mu[other] - mu[base])
        return z, base, other, lam

    def sample(self, n: int, cls: Any) -> Any:
        """``n`` generated rows (DataFrame or array like the input) or images of class ``cls``."""
        import torch

        from .scoring import score_batch

        if not hasattr(self, "model_"):
            from .errors import NotFittedError

            raise NotFittedError("call fit or fit_resample first")
        where = np.flatnonzero(self.classes_ == cls)
        if not len(where):
            raise ConfigError(f"unknown class {cls!r}; known: {list(self.classes_)}")
        k = int(where[0])
        device = next(self.model_.parameters()).device
        gen = torch.Generator(device=device).manual_seed(self.seed_ + 7919 * (k + 1) + n)
        kept: list[np.ndarray] = []
        have, tried, rounds = 0, 0, 0
        nn = self.nn_index_ if self.min_distance_[k] > 0 else None
        self.model_.eval()
        while have < n and rounds < self.max_rounds:
            m = max(16, int(1.5 * (n - have)))
            z = torch.randn(m, self.model_.latent_dim, generator=gen, device=device)
            if self.latent_sampling == "interpolate":
                z = self.interpolated_latents(m, k, gen)[0].to(device)
            elif self.latent_sampling == "posterior":
                mu, logvar = (t.to(device) for t in self.posterior_[k])
                pick = torch.randint(0, len(mu), (m,), generator=gen, device=device)
                z = mu[pick] + torch.exp(0.5 * logvar[pick]) * z
            c = torch.full((m,), k, device=device)
            with torch.no_grad():
                out = self.model_.decode(z, c)
                lik = self.model_.likelihood
                x = lik.sample(out, gen) if self.sample_noise and not self.is_image_ else lik.mean(out)
                x = x.view(m, *self.model_.config.input_shape)
                ok = torch.ones(m, dtype=torch.bool, device=device)
                if self.filter_anomalous:
                    own = score_batch(self.model_, x, c)
                    ok &= own <= self.score_limit_[k]
                    # Class consistency: the row must fit its own class at least as well as any other.
                    for j in range(len(self.classes_)):
                        if j != k:
                            ok &= own <= score_batch(self.model_, x, torch.full((m,), j, device=device))
            arr = x.cpu().numpy()
            ok_np = ok.cpu().numpy()
            if nn is not None:
                d = nn.kneighbors(arr.reshape(m, -1), n_neighbors=1)[0][:, 0]
                ok_np &= d >= self.min_distance_[k]
            kept.append(arr[ok_np])
            have += int(ok_np.sum())
            tried += m
            rounds += 1
        if have < n:
            raise DataError(f"class {_py(cls)!r}: only {have} of {n} requested rows passed the quality and privacy "
                            f"filters in {tried} draws; relax anomaly_quantile / min_distance or request fewer",
                            column="y")
        arr = np.concatenate(kept)[:n]
        self.acceptance_rate_ = have / max(1, tried)
        return self.preprocessor_.inverse_transform(arr)
