"""Steps of the synthesize job: balance a labelled data set with CVAE samples, write it, judge it against SMOTE."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from ..data import Dataset, load_dataset
from ..defaults import SYNTH_EXPERIMENT
from ..errors import DataError


class SynthJobConfig(BaseModel):
    """What to balance, how, where the balanced data goes, and how it is judged."""

    model_config = ConfigDict(extra="forbid")

    data: str = "data/breast_cancer.csv"
    label_column: str | None = "diagnosis"
    id_column: str | None = None
    labels_path: str | None = None
    sampling_strategy: str | float | dict[str, int] = "auto"
    holdout_fraction: float = Field(0.3, gt=0, lt=0.9, description="real rows kept aside to judge utility")
    output: str | None = Field(None, description=".parquet/.csv for tables, .npz for images; default outputs/")
    mark_synthetic: bool = True
    # scikit-learn's name, as the estimators' (0.1.0 configs said "seed", still read).
    random_state: int = Field(0, validation_alias=AliasChoices("random_state", "seed"),
                              description="seeds the train/holdout split, the oversampler's and SMOTE's random_state")
    oversampler: dict[str, Any] = Field(default_factory=dict, description="VAEOversampler parameters")
    experiment: str = SYNTH_EXPERIMENT

    @field_validator("oversampler")
    @classmethod
    def known_oversampler_options(cls, v: dict[str, Any]) -> dict[str, Any]:
        from ..options import check_job_options
        from ..oversampler import VAEOversampler

        return check_job_options(VAEOversampler, v)


@dataclass
class SynthResult:
    train_X: Any
    train_y: np.ndarray
    holdout_X: Any
    holdout_y: np.ndarray
    X_res: Any
    y_res: np.ndarray
    n_real: int
    oversampler: Any


def ingest(config: SynthJobConfig) -> Dataset:
    return load_dataset(config.data, label_column=config.label_column, id_column=config.id_column,
                        labels_path=config.labels_path, require_classes=True)


def _strategy(config: SynthJobConfig, y: np.ndarray) -> Any:
    s = config.sampling_strategy
    if isinstance(s, dict):
        labels = {str(v): v for v in np.unique(y)}
        unknown = [k for k in s if str(k) not in labels]
        if unknown:
            raise DataError(f"sampling_strategy names unknown class {unknown[0]!r} (classes: {list(labels)})",
                            column=config.label_column)
        return {labels[str(k)]: int(v) for k, v in s.items()}
    return s


def balance(ds: Dataset, config: SynthJobConfig) -> SynthResult:
    from sklearn.model_selection import train_test_split

    from ..oversampler import VAEOversampler

    y = np.asarray(ds.y)
    idx = np.arange(len(y))
    classes, counts = np.unique(y, return_counts=True)
    if counts.min() < 2:  # the stratified hold-out needs a row of every class on each side
        c = classes[counts.argmin()]
        raise DataError(f"class {str(c)!r} has 1 row: the hold-out split (holdout_fraction "
                        f"{config.holdout_fraction}) needs at least 2 rows of every class; add rows or drop the class",
                        file=ds.source, column=config.label_column)
    tr, ho = train_test_split(idx, test_size=config.holdout_fraction, random_state=config.random_state, stratify=y)

    def take(rows: np.ndarray) -> Any:
        return ds.X.iloc[rows].reset_index(drop=True) if isinstance(ds.X, pd.DataFrame) else ds.X[rows]

    Xtr, ytr = take(tr), y[tr]
    sampler = VAEOversampler(random_state=config.random_state, sampling_strategy=_strategy(config, ytr),
                             **config.oversampler)
    try:
        X_res, y_res = sampler.fit_resample(Xtr, ytr)
    except DataError as exc:
        if exc.file is not None or exc.column not in (None, "y"):
            raise
        # The oversampler sees arrays: name the file, the label column and the option that decides.
        option = "; VAEOversampler option min_class_rows, --set min_class_rows=N" \
            if "needed to learn it" in exc.message else ""
        raise DataError(f"{exc.message} (in the {len(ytr)}-row training split{option})", file=ds.source,
                        column=config.label_column, row=exc.row, index=exc.index) from exc
    return SynthResult(Xtr, ytr, take(ho), y[ho], X_res, np.asarray(y_res), len(ytr), sampler)


def default_output(ds: Dataset) -> str:
    import time

    ext = ".npz" if ds.kind == "image" else ".parquet"
    return str(Path("outputs") / f"balanced-{Path(ds.source).stem}-{time.strftime('%Y%m%d-%H%M%S')}{ext}")


def write_balanced(result: SynthResult, config: SynthJobConfig, ds: Dataset, output: str) -> str:
    """Real training rows then synthetic ones, with the label (and an is_synthetic flag), written atomically."""
    from ..outputs import write_arrays, write_table

    out = Path(output)
    flag = np.r_[np.zeros(result.n_real, bool), np.ones(len(result.y_res) - result.n_real, bool)]
    if ds.kind == "image" or out.suffix.lower() == ".npz":
        return str(write_arrays(out, X=np.asarray(result.X_res), y=result.y_res, is_synthetic=flag))
    frame = pd.DataFrame(result.X_res).copy()
    frame[config.label_column or "label"] = result.y_res
    if config.mark_synthetic:
        frame["is_synthetic"] = flag
    return str(write_table(frame, out))


def synthesis_metrics(result: SynthResult, seed: int = 0) -> dict[str, float]:
    """Utility against SMOTE and real-only (minority F1 on the real hold-out), fidelity and privacy."""
    from imblearn.over_sampling import SMOTE

    from ..synthetic_quality import column_similarity, correlation_difference, privacy_dcr, utility

    def flat(X: Any) -> Any:
        return X if isinstance(X, pd.DataFrame) else np.asarray(X, dtype=np.float32).reshape(len(X), -1)

    ytr = result.train_y
    classes, counts = np.unique(ytr, return_counts=True)
    minority = classes[counts.argmin()]
    k = int(max(1, min(5, counts.min() - 1)))
    Xtr = flat(result.train_X)
    numeric_only = not isinstance(Xtr, pd.DataFrame) or all(pd.api.types.is_numeric_dtype(Xtr[c]) for c in Xtr.columns)
    sets = {"real": (Xtr, ytr), "vae": (flat(result.X_res), result.y_res)}
    if numeric_only:
        sets["smote"] = SMOTE(random_state=seed, k_neighbors=k).fit_resample(Xtr, ytr)
    metrics: dict[str, float] = {}
    for name, (X, y) in sets.items():
        for clf in ("logreg", "gbt"):
            for m, v in utility(X, y, flat(result.holdout_X), result.holdout_y, minority, clf, seed).items():
                metrics[f"{name}_{clf}_{m}"] = v
    syn = result.X_res.iloc[result.n_real:] if isinstance(result.X_res, pd.DataFrame) \
        else flat(result.X_res)[result.n_real:]
    if len(syn):
        pre = result.oversampler.preprocessor_
        if isinstance(syn, pd.DataFrame):
            real_min = result.train_X[ytr == minority]
            syn_min = syn[result.y_res[result.n_real:] == minority]
            sims = column_similarity(real_min, syn_min)
            metrics["fidelity_column_similarity"] = float(np.mean(list(sims.values())))
            metrics["fidelity_corr_diff"] = correlation_difference(real_min, syn_min)
            metrics.update({f"privacy_{k}": v for k, v in privacy_dcr(pre.transform(result.train_X), pre.transform(syn),
                                                                          pre.transform(result.holdout_X)).items()})
        else:
            tr = pre.transform(result.train_X).reshape(len(ytr), -1)
            sy = pre.transform(np.asarray(result.X_res)[result.n_real:]).reshape(len(syn), -1)
            ho = pre.transform(result.holdout_X).reshape(len(result.holdout_y), -1)
            metrics.update({f"privacy_{k}": v for k, v in privacy_dcr(tr, sy, ho).items()})
    metrics["synthetic_rows"] = float(len(result.y_res) - result.n_real)
    metrics["acceptance_rate"] = float(getattr(result.oversampler, "acceptance_rate_", 1.0))
    for cls, rep in sampling_report(result).items():
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", cls)  # MLflow metric names take few characters
        metrics[f"acceptance_rate_{name}"] = float(rep["acceptance_rate"])
        metrics[f"relaxed_rows_{name}"] = float(rep["relaxed"])
    return metrics


def sampling_report(result: SynthResult) -> dict[str, dict[str, Any]]:
    """Per generated class: which method made its rows, how many were asked for, accepted by the filters,
    topped up when the filters relaxed, and the acceptance rate (VAEOversampler.sampling_report_)."""
    return {str(cls): dict(rep) for cls, rep in getattr(result.oversampler, "sampling_report_", {}).items()
            if rep["requested"] > 0}


def describe_sampling(result: SynthResult) -> str:
    """One line per generated class for the run's log: method, rows and acceptance rate."""
    parts = [f"class {cls!r}: {rep['requested']} rows by {rep['method']} (acceptance rate {rep['acceptance_rate']:.2f}"
             + (f", {rep['relaxed']} topped up after the filters relaxed" if rep["relaxed"] else "") + ")"
             for cls, rep in sampling_report(result).items()]
    return "; ".join(parts) or "no rows generated"


def figures(result: SynthResult) -> dict[str, Any]:
    from .. import plots

    if isinstance(result.X_res, pd.DataFrame):
        syn = result.X_res.iloc[result.n_real:]
        classes, counts = np.unique(result.train_y, return_counts=True)
        minority = classes[counts.argmin()]
        real = result.train_X[result.train_y == minority]
        return {"real_vs_synthetic.png": plots.feature_distributions(real, syn[result.y_res[result.n_real:] == minority])}
    syn = np.asarray(result.X_res)[result.n_real:][:32]
    return {"synthetic_samples.png": plots.image_grid(syn, titles=[str(v) for v in result.y_res[result.n_real:][:32]],
                                                      suptitle=f"{len(syn)} synthetic images (title: class)")}
