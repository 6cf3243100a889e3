"""``VAEOversampler``: balance classes with rows (or images) chosen and checked by a conditional VAE.

One CVAE is trained on all classes with the class as its condition. By default
(``generation="data"``) new rows of class k are made as SMOTE makes them -- on the
segment between a real row and one of its nearest same-class neighbours, in data
space -- but the CVAE decides which rows may seed them and which candidates are kept:
a candidate the model finds likelier under another class than under k (its class
log-likelihood ratio, from the ELBO under each label) is dropped. That is the finding
of Hong et al. 2024 (SMOTE-CLS, arXiv 2405.19757): deep generative oversamplers lose to
SMOTE on small tables, and a VAE earns its place by choosing where to interpolate, not
by decoding. ``generation="latent"`` decodes rows from z instead (``latent_sampling``).

Rows map back through the fitted inverse transform (original columns, dtypes and
categories; numeric values within each column's observed range; integers stay integers).
A class with fewer than ``few_rows`` real rows is too small to learn: it gets plain SMOTE
interpolation (one row: copies), and ``sampling_method_`` says so. Filters never make
``fit_resample`` fail where SMOTE would not: a shortfall is topped up with the best
rejected candidates and reported (``sampling_report_``, ``acceptance_rate_``).
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
from imblearn.over_sampling.base import BaseOverSampler

from .errors import ConfigError, DataError
from .inputs import is_image_input
from .options import check, select
from .params import BOOL, NONE, Check, Interval, Options

# seed_selection="density": this share of a class's rows, lowest latent density first, never seeds (SMOTE-CLS).
SEED_DENSITY_QUANTILE = 0.1


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


# This sampler's own word sets, spelled once: the type hints and the constraints below use these.
Generation = Literal["data", "latent"]
SeedSelection = Literal["class", "density", "boundary", "uniform"]
NeighbourSpace = Literal["x", "z"]
OnShortfall = Literal["relax", "raise"]
LatentSampling = Literal["posterior", "prior", "interpolate"]

class VAEOversampler(BaseOverSampler):
    """Over-sample minority classes with a conditional VAE (imbalanced-learn's sampler API).

    Parameters
    ----------
    sampling_strategy : "auto", a float ratio, a dict {class: target count} or a callable (imbalanced-learn's).
    generation : "data" (default): interpolate between real rows in data space, seeds and candidates
        chosen by the CVAE (see ``seed_selection``, ``class_filter``). "latent": decode z drawn per
        ``latent_sampling``.
    seed_selection : which real rows seed the interpolation ("data" generation): "class" (rows the CVAE
        assigns to their own class), "density" (all but the lowest-latent-density 10%), "boundary" (rows
        near the model's class boundary weighted up) or "uniform" (every row, as SMOTE).
    neighbour_space : "x" finds the interpolation partner among the nearest rows in data space, "z" in
        the latent space (posterior means).
    class_filter : drop candidates whose class log-likelihood ratio log p(x|k) - max_j log p(x|j)
        (negative ELBOs under each label) is below ``llr_margin``: the model puts them in another class.
    filter_anomalous : drop candidates whose recon+KL score (given their class) exceeds the
        ``anomaly_quantile`` of the real rows' scores of that class.
    min_distance : "auto" drops generated rows nearer to a real row than the 1st percentile of the
        real rows' own nearest-neighbour distances (in model space); a float sets the distance; None disables.
    on_shortfall : "relax" (default) tops a shortfall up with the best rejected candidates and reports it in
        ``sampling_report_``; "raise" makes it a DataError.
    few_rows : a class with fewer real rows gets plain SMOTE interpolation (no model guidance or filters; a
        single row gets copies): below SMOTE's own 5 neighbours + 1 there is no neighbourhood to guide. The
        guidance still helped at 7-20 rows on the scorecard (the class log-likelihood ratio leans on the
        majority's model, which is well fitted), hence 6 rather than ~20 (benchmarks/RESULTS.md).
    min_class_rows : a class with fewer real rows is an error.
    latent_sampling : ("latent" generation) "interpolate" draws z on the segment between the posterior means of a random real row
        of the class and one of its ``k_neighbors`` nearest same-class neighbours in z (SMOTE in the latent
        space, as DeepSMOTE does; decoded rows follow the data's manifold where SMOTE's lines in x cut across).
        "posterior" (default) draws z from the posterior q(z | x, c) of a random real row
        of the class -- the aggregate posterior the decoder was trained on; with few rows of a class the
        prior N(0, I) has regions the decoder never saw for it. "prior" draws z ~ N(0, I).
    sample_noise : add the decoder's own noise to each generated row. Off by default: the noise is
        independent per column and blurs correlations; variety comes from the latent draw.
    """

    _sampling_type = "over-sampling"

    # The shared options come from the one options table (declared there, once); the rest are this sampler's own.
    _parameter_constraints: dict[str, list[Any]] = select(
        "random_state", "latent_dim", "hidden_dims", "beta", "epochs", "batch_size", "lr", "categorical_columns",
        "device", "n_jobs", "verbose",
        sampling_strategy=[Options(("auto", "minority", "not minority", "not majority", "all")),
                           Interval(float, 0, 1, closed="right"),
                           Check(lambda v: isinstance(v, dict) or callable(v), "a dict {class: count} or a callable")],
        generation=[Options(get_args(Generation))],
        seed_selection=[Options(get_args(SeedSelection))],
        neighbour_space=[Options(get_args(NeighbourSpace))],
        class_filter=[BOOL],
        llr_margin=[Interval(float, None, None)],
        on_shortfall=[Options(get_args(OnShortfall))],
        few_rows=[Interval(int, 0, None)],
        filter_anomalous=[BOOL],
        anomaly_quantile=[Interval(float, 0, 1, closed="right")],
        min_distance=[NONE, Options(("auto",)), Interval(float, 0, None)],
        min_class_rows=[Interval(int, 1, None)],
        sample_noise=[BOOL],
        latent_sampling=[Options(get_args(LatentSampling))],
        k_neighbors=[Interval(int, 1, 100)],
        max_rounds=[Interval(int, 1, 1000)],
    )

    def __init__(
        self,
        *,
        sampling_strategy: Any = "auto",
        random_state: int | None = None,
        latent_dim: int | None = None,
        hidden_dims: tuple[int, ...] | None = None,
        beta: float = 1.0,
        epochs: int | str = "auto",
        batch_size: int | Literal["auto"] = 128,
        lr: float = 1e-3,
        generation: Generation = "data",
        seed_selection: SeedSelection = "class",
        neighbour_space: NeighbourSpace = "x",
        class_filter: bool = True,
        llr_margin: float = 0.0,
        on_shortfall: OnShortfall = "relax",
        few_rows: int = 6,
        filter_anomalous: bool = True,
        anomaly_quantile: float = 0.99,
        min_distance: float | str | None = "auto",
        min_class_rows: int = 1,
        sample_noise: bool = False,
        latent_sampling: LatentSampling = "posterior",
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
        self.generation = generation
        self.seed_selection = seed_selection
        self.neighbour_space = neighbour_space
        self.class_filter = class_filter
        self.llr_margin = llr_margin
        self.on_shortfall = on_shortfall
        self.few_rows = few_rows
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
        check(type(self).__name__, self.get_params(), self._parameter_constraints)
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

        from .fitting import PreprocessConfig, fit_model, seed_of
        from .models import ModelConfig
        from .trainer import TrainConfig

        self.classes_ = np.unique(y)
        self.is_image_ = is_image_input(X)
        codes = np.searchsorted(self.classes_, y)
        # The typed configs, built once from the parameters (same names); fit_model binds them to the data.
        fitted = fit_model(
            X, codes,
            model_config=ModelConfig(kind="cvae", n_conditions=len(self.classes_), latent_dim=self.latent_dim,
                                     hidden_dims=self.hidden_dims, beta=self.beta),
            train_config=TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, device=self.device,
                                     n_jobs=self.n_jobs, random_state=seed_of(self.random_state),
                                     verbose=self.verbose),
            preprocess_config=PreprocessConfig(categorical_columns=self.categorical_columns))
        self.seed_, self.preprocessor_, self.model_ = fitted.random_state, fitted.preprocessor, fitted.model
        self.train_result_, data = fitted.train_result, fitted.data
        # Per-class reference statistics for seeds and filters.
        device = next(self.model_.parameters()).device
        self.real_by_class_: dict[int, np.ndarray] = {}
        self.row_llr_: dict[int, np.ndarray] = {}
        self.score_limit_: dict[int, float] = {}
        self.posterior_: dict[int, tuple[Any, Any]] = {}
        self.min_distance_: dict[int, float] = {}
        self.sampling_report_: dict[Any, dict[str, Any]] = {}
        self.sampling_method_: dict[Any, str] = {}
        self.acceptance_rate_ = 1.0
        flat = data.reshape(len(data), -1)
        for k in range(len(self.classes_)):
            rows = data[codes == k]
            self.real_by_class_[k] = rows
            s = self._scores(rows.reshape(len(rows), -1), k)
            others = [self._scores(rows.reshape(len(rows), -1), j) for j in range(len(self.classes_)) if j != k]
            self.row_llr_[k] = np.min(others, axis=0) - s
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

    # ------------------------------------------------------------ generation
    def method_for(self, cls: Any) -> str:
        """Which method produces rows of class ``cls`` (decided by its number of real rows)."""
        k = self._code(cls)
        n_rows = len(self.real_by_class_[k])
        if n_rows < 2:
            return "copies"  # nothing to interpolate with, nothing to learn from
        if n_rows < self.few_rows:
            return "smote"  # too few rows for the CVAE to learn the class: plain interpolation between real rows
        return "vae-guided interpolation" if self.generation == "data" else f"cvae {self.latent_sampling}"

    def seed_weights(self, k: int) -> np.ndarray:
        """Selection probability of each real class-``k`` row as an interpolation seed (``seed_selection``).

        "class": rows the CVAE assigns to their own class (class log-likelihood ratio >= 0), uniformly --
        rows deep in another class's region are label noise or outliers whose segments cut into that class.
        "density": rows outside the lowest-``SEED_DENSITY_QUANTILE`` latent density of the class (SMOTE-CLS,
        Hong et al. 2024: low-density points in the CVAE's latent space are noise), uniformly.
        "boundary": weight sigmoid(-|llr|) -- rows near the class boundary first (Borderline-SMOTE's idea with
        the model's boundary). "uniform": every row, as SMOTE. Falls back to uniform when fewer than 2 remain.
        """
        n_rows = len(self.real_by_class_[k])
        w = np.ones(n_rows)
        llr = self.row_llr_[k]
        if self.seed_selection == "class":
            w = (llr >= 0).astype(float)
        elif self.seed_selection == "density":
            mu = self.posterior_[k][0].numpy()
            kk = min(self.k_neighbors, n_rows - 1)
            d = np.sort(np.linalg.norm(mu[:, None] - mu[None], axis=2), axis=1)[:, 1:kk + 1].mean(1)
            w = (d <= np.quantile(d, 1 - SEED_DENSITY_QUANTILE)).astype(float)
        elif self.seed_selection == "boundary":
            w = 1.0 / (1.0 + np.exp(np.clip(np.abs(llr), 0, 50)))
        if (w > 0).sum() < 2:
            w = np.ones(n_rows)
        return w / w.sum()

    def _scores(self, x: np.ndarray, k: int) -> np.ndarray:
        """recon + KL of model-space rows ``x`` under condition ``k`` (higher = less likely), in chunks."""
        import torch

        from .batching import chunk_rows, iter_batches, model_row_bytes
        from .scoring import score_batch

        device = next(self.model_.parameters()).device
        shape = self.model_.config.input_shape
        out = []
        for b in iter_batches(len(x), chunk_rows(model_row_bytes(self.model_.config.n_features))):
            part = torch.from_numpy(np.ascontiguousarray(x[b], dtype=np.float32)).to(device)
            part = part.view(len(part), *shape)
            with torch.no_grad():
                out.append(score_batch(self.model_, part, torch.full((len(part),), k, device=device)).cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def class_llr(self, x: np.ndarray, k: int) -> np.ndarray:
        """The model's class log-likelihood ratio of model-space rows: min over other classes j of
        score(x | j) - score(x | k) (scores are negative ELBOs, so this is log p(x|k) - max_j log p(x|j))."""
        own = self._scores(x, k)
        others = [self._scores(x, j) for j in range(len(self.classes_)) if j != k]
        return np.min(others, axis=0) - own

    def _candidates_data(self, m: int, k: int, rng: np.random.Generator, guided: bool) -> np.ndarray:
        """``m`` rows on segments between class-``k`` seeds and one of their ``k_neighbors`` nearest neighbours."""
        rows = self.real_by_class_[k]
        flat = rows.reshape(len(rows), -1)
        w = self.seed_weights(k) if guided else np.full(len(rows), 1.0 / len(rows))
        eligible = np.flatnonzero(w > 0)
        space = self.posterior_[k][0].numpy() if guided and self.neighbour_space == "z" else flat
        kk = min(self.k_neighbors, len(eligible) - 1)
        from sklearn.neighbors import NearestNeighbors

        nn = NearestNeighbors(n_neighbors=kk + 1).fit(space[eligible])
        neighbours = eligible[nn.kneighbors(space[eligible], return_distance=False)[:, 1:]]
        pos = rng.choice(len(eligible), size=m, p=w[eligible] / w[eligible].sum())
        base = eligible[pos]
        other = neighbours[pos, rng.integers(0, kk, size=m)]
        lam = rng.random(m)[:, None]
        x = flat[base] + lam * (flat[other] - flat[base])
        # A categorical column is copied from the nearer end (SMOTE-NC takes a category of the neighbourhood;
        # a blend of one-hot codes is no category at all).
        for block in getattr(self.preprocessor_, "blocks", []):
            if block.kind == "categorical":
                sl = slice(block.start, block.end)
                x[:, sl] = np.where(lam < 0.5, flat[base][:, sl], flat[other][:, sl])
        return x.astype(np.float32).reshape(m, *rows.shape[1:])

    def _candidates_latent(self, m: int, k: int, gen: Any) -> np.ndarray:
        import torch

        device = next(self.model_.parameters()).device
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
        return x.view(m, *self.model_.config.input_shape).cpu().numpy()

    def generate(self, n: int, cls: Any) -> np.ndarray:
        """``n`` model-space rows of class ``cls`` and a report of how they were made (``sampling_report_``).

        Candidates are drawn in rounds and filtered: class consistency (``class_filter``), anomaly
        (``filter_anomalous``) and copies (``min_distance``). When ``max_rounds`` leave a shortfall,
        ``on_shortfall="relax"`` tops up with the best rejected candidates (highest class log-likelihood
        ratio, non-copies first) and says so in the report; "raise" is a DataError.
        """
        import torch

        k = self._code(cls)
        method = self.method_for(cls)
        rows = self.real_by_class_[k]
        rng = np.random.default_rng([self.seed_, k, n])
        # passed: candidates that passed every filter (the last round may draw more than needed);
        # accepted: rows kept from them; relaxed: rows topped up from rejected candidates.
        report = {"method": method, "requested": int(n), "accepted": 0, "relaxed": 0, "drawn": 0, "passed": 0}
        if n <= 0:
            self._report(cls, report)
            return rows[:0]
        if method == "copies":
            report.update(accepted=int(n), drawn=int(n), passed=int(n))
            self._report(cls, report)
            return rows[rng.integers(0, len(rows), size=n)]
        model_filters = method != "smote"
        nn = self.nn_index_ if self.min_distance_[k] > 0 and model_filters else None
        gen = torch.Generator(device=next(self.model_.parameters()).device).manual_seed(self.seed_ + 7919 * (k + 1) + n)
        kept: list[np.ndarray] = []
        pool: list[tuple[np.ndarray, np.ndarray]] = []  # rejected candidates and their rank for relaxing
        have = rounds = 0
        self.model_.eval()
        while have < n and rounds < self.max_rounds:
            m = max(16, int(1.5 * (n - have)))
            x = (self._candidates_latent(m, k, gen) if method.startswith("cvae")
                 else self._candidates_data(m, k, rng, guided=model_filters))
            ok = np.ones(m, bool)
            rank = np.zeros(m)
            if model_filters and (self.class_filter or self.filter_anomalous):
                own = self._scores(x.reshape(m, -1), k)
                if self.class_filter:
                    others = [self._scores(x.reshape(m, -1), j) for j in range(len(self.classes_)) if j != k]
                    rank = np.min(others, axis=0) - own if others else rank
                    ok &= rank >= self.llr_margin
                if self.filter_anomalous:
                    ok &= own <= self.score_limit_[k]
            if nn is not None:
                d = nn.kneighbors(x.reshape(m, -1), n_neighbors=1)[0][:, 0]
                far = d >= self.min_distance_[k]
                rank = rank + np.where(far, 1e9, 0.0)  # when relaxing, non-copies before copies
                ok &= far
            kept.append(x[ok])
            pool.append((x[~ok], rank[~ok]))
            have += int(ok.sum())
            report["drawn"] += m
            rounds += 1
        report["accepted"], report["passed"] = int(min(have, n)), int(have)
        out = np.concatenate(kept)[:n]
        if have < n:
            if self.on_shortfall == "raise":
                raise DataError(f"class {_py(cls)!r}: only {have} of {n} requested rows passed the quality and "
                                f"privacy filters in {report['drawn']} draws; relax anomaly_quantile / min_distance "
                                "or request fewer", column="y")
            rejected = np.concatenate([p[0] for p in pool])
            order = np.argsort(-np.concatenate([p[1] for p in pool]), kind="stable")[:n - have]
            out = np.concatenate([out, rejected[order]])
            report["relaxed"] = int(len(order))
            if len(out) < n:  # every round's rejects are too few (only with a tiny max_rounds): copies of rows
                report["relaxed"] += n - len(out)
                out = np.concatenate([out, rows[rng.integers(0, len(rows), size=n - len(out))]])
        self._report(cls, report)
        return out

    def _report(self, cls: Any, report: dict[str, Any]) -> None:
        report["acceptance_rate"] = report["passed"] / max(1, report["drawn"])
        self.sampling_report_[_py(cls)] = report
        self.sampling_method_[_py(cls)] = report["method"]
        drawn = sum(r["drawn"] for r in self.sampling_report_.values())
        self.acceptance_rate_ = sum(r["passed"] for r in self.sampling_report_.values()) / max(1, drawn) if drawn else 1.0

    def _code(self, cls: Any) -> int:
        if not hasattr(self, "model_"):
            from .errors import NotFittedError

            raise NotFittedError("call fit or fit_resample first")
        where = np.flatnonzero(self.classes_ == cls)
        if not len(where):
            raise ConfigError(f"unknown class {cls!r}; known: {list(self.classes_)}")
        return int(where[0])

    def sample(self, n: int, cls: Any) -> Any:
        """``n`` generated rows (DataFrame or array like the input) or images of class ``cls``."""
        return self.preprocessor_.inverse_transform(self.generate(n, cls))
