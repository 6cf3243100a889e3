"""The steps of the train job as plain functions, with its pydantic config.

``vae_anomaly/flows/train.py`` wraps each step in a Prefect task; a notebook or another
orchestrator can call them directly. Nothing here imports prefect.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from ..data import Dataset, load_dataset
from ..defaults import EXPERIMENT, MODEL_NAME
from ..errors import DataError

# --------------------------------------------------------------------- configs


class TrainJobConfig(BaseModel):
    """What the train job reads, how it trains, and where it registers the model."""

    model_config = ConfigDict(extra="forbid")

    data: str = "data/breast_cancer.csv"
    label_column: str | None = None
    anomaly_label: str | None = Field(None, description="label value meaning 'anomaly' (default: 1 or the minority class)")
    id_column: str | None = None
    labels_path: str | None = Field(None, description="IDX label file paired with an IDX image file")
    train_on: Literal["all", "normal"] = Field(
        "all", description="'all': unsupervised, anomalies included; 'normal': only rows labelled normal")
    validation_fraction: float = Field(0.2, gt=0, lt=0.9)
    # scikit-learn's name, as the estimators' (0.1.0 configs said "seed", still read).
    random_state: int = Field(0, validation_alias=AliasChoices("random_state", "seed"),
                              description="seeds the train/validation split and the detector's random_state")
    detector: dict[str, Any] = Field(default_factory=dict, description="VAEDetector parameters")
    experiment: str = EXPERIMENT
    model_name: str = MODEL_NAME
    promote_metric: Literal["auto", "val_auroc", "val_neg_elbo"] = "auto"
    register_model: bool = True
    resume: bool = Field(True, description="continue from the checkpoint a killed run of the same job left behind")

    @field_validator("detector")
    @classmethod
    def known_detector_options(cls, v: dict[str, Any]) -> dict[str, Any]:
        from ..detector import VAEDetector
        from ..options import check_job_options

        if "model" in v and "kind" not in v:
            # A job config written before the rename (``model`` is also the registry reference of scoring).
            v = {("kind" if k == "model" else k): x for k, x in v.items()}
        return check_job_options(VAEDetector, v)

    def run_key(self, data_sha256: str) -> str:
        """Identity of a training request (options + data): a rerun after a crash has the same key."""
        import hashlib
        import json

        spec = json.dumps({"config": self.model_dump(exclude={"resume"}), "data": data_sha256}, sort_keys=True,
                          default=str)
        return hashlib.sha256(spec.encode()).hexdigest()[:16]

    def checkpoint_dir(self, data_sha256: str) -> Path:
        return Path(".vae_anomaly") / "runs" / f"train-{self.run_key(data_sha256)}" / "checkpoint"


# --------------------------------------------------------------------- training


@dataclass
class TrainingData:
    dataset: Dataset
    X_train: Any
    X_val: Any
    y_val: np.ndarray | None  # 1 = anomaly
    y_train: np.ndarray | None = None

    @property
    def has_labels(self) -> bool:
        return self.y_val is not None and len(np.unique(self.y_val)) == 2


def ingest(config: TrainJobConfig) -> Dataset:
    return load_dataset(config.data, label_column=config.label_column, id_column=config.id_column,
                        labels_path=config.labels_path)


def anomaly_indicator(y: np.ndarray, anomaly_label: str | None, *, source: str, column: str | None) -> np.ndarray:
    """Labels -> 1 for anomalies, 0 for normal rows."""
    values = pd.Series(y).astype(str)
    classes = sorted(values.unique())
    if anomaly_label is not None:
        if str(anomaly_label) not in classes:
            raise DataError(f"anomaly label {anomaly_label!r} not among the labels {classes[:10]}", file=source,
                            column=column)
        return (values == str(anomaly_label)).to_numpy().astype(int)
    if len(classes) != 2:
        raise DataError(f"{len(classes)} label values {classes[:10]}: name the anomaly label", file=source,
                        column=column)
    if set(classes) <= {"0", "1", "0.0", "1.0", "False", "True"}:
        return values.isin(["1", "1.0", "True"]).to_numpy().astype(int)
    minority = values.value_counts().idxmin()
    return (values == minority).to_numpy().astype(int)


def split(ds: Dataset, config: TrainJobConfig) -> TrainingData:
    """Seeded (stratified when labelled) train/validation split; the same data gives the same split."""
    from sklearn.model_selection import train_test_split

    n = len(ds.X)
    if n < 10:
        raise DataError(f"only {n} rows: at least 10 are needed to train and validate", file=ds.source)
    y = None
    if ds.y is not None:
        y = anomaly_indicator(ds.y, config.anomaly_label, source=ds.source, column=config.label_column)
    idx = np.arange(n)
    strat = y if y is not None and np.bincount(y).min() >= 2 else None
    tr, va = train_test_split(idx, test_size=config.validation_fraction, random_state=config.random_state, stratify=strat)
    if config.train_on == "normal":
        if y is None:
            raise DataError("--train-on normal (train_on='normal') needs a label column (--label)", file=ds.source)
        tr = tr[y[tr] == 0]
        if len(tr) < 2:
            raise DataError(f"--train-on normal (train_on='normal'): {'no rows' if not len(tr) else 'one row'} "
                            f"labelled normal in the training split ({int((y == 0).sum())} of {n} rows are normal; "
                            f"the anomaly label is {config.anomaly_label or 'the default'!r}): pass --train-on all "
                            "or the right --anomaly-label", file=ds.source, column=config.label_column)

    def take(rows: np.ndarray) -> Any:
        return ds.X.iloc[rows].reset_index(drop=True) if isinstance(ds.X, pd.DataFrame) else ds.X[rows]

    return TrainingData(ds, take(tr), take(va), None if y is None else y[va], None if y is None else y[tr])


def fit_detector(data: TrainingData, config: TrainJobConfig, callbacks: tuple = (),
                 checkpoint_dir: str | Path | None = None) -> Any:
    """Fit with a checkpoint every epoch under ``checkpoint_dir``; a rerun after a kill resumes from it."""
    from ..detector import VAEDetector

    params = {"random_state": config.random_state, **config.detector}
    det = VAEDetector(**params).fit(data.X_train, callbacks=callbacks, checkpoint_dir=checkpoint_dir,
                                    resume=config.resume)
    # Saved with the model: scoring the training file again keeps the ids and leaves the labels out.
    det.data_columns_ = {"id": [config.id_column] if config.id_column else [],
                         "label": [config.label_column] if config.label_column else []}
    return det


def fit_in_child_run(data: TrainingData, config: TrainJobConfig, parent_run_id: str,
                     checkpoint_dir: str | Path | None = None, callbacks: tuple = ()) -> Any:
    """:func:`fit_detector` inside a child MLflow run named "fit" of ``parent_run_id``: per-epoch metrics, system
    metrics (CPU, memory), the epoch training resumed from, and the throughput. A failed fit ends the child
    run FAILED (and raises); the caller's parent run is its own to end."""
    from .. import tracking

    child = tracking.start_run(config.experiment, run_name="fit", parent_run_id=parent_run_id, tags={"stage": "fit"})
    try:
        with tracking.SystemMetrics(child):
            det = fit_detector(data, config, callbacks=(tracking.EpochLogger(child), *callbacks),
                               checkpoint_dir=checkpoint_dir)
    except BaseException:
        tracking.end_run(child, "FAILED")
        raise
    if det.train_result_.resumed_from_epoch is not None:
        tracking.set_tags(child, {"resumed_from_epoch": det.train_result_.resumed_from_epoch})
    tracking.log_metrics(child, {"samples_per_second": det.train_result_.samples_per_second})
    tracking.end_run(child)
    return det


def negative_elbo_nats(detector: Any, X: Any) -> float:
    """Mean negative ELBO per row in the *original* units of the data.

    Scaled columns change the density by the Jacobian of the scaling, so two
    models with different fitted scalers are compared fairly only after adding
    sum(log scale) of the Gaussian columns back.
    """
    from ..data.transform import TabularTransformer

    value = float(np.mean(detector.decision_function(X, method="neg_elbo")))
    pre = detector.preprocessor_
    if isinstance(pre, TabularTransformer):
        value += float(sum(math.log(p["scale"]) for p in pre.numeric_.values()))
    return value


def validation_metrics(detector: Any, data: TrainingData) -> dict[str, float]:
    """Validation metrics: negative ELBO always; AUROC/AUPRC/precision/recall/F1 with labels."""
    from ..scoring import detection_metrics, flag

    scores = detector.decision_function(data.X_val)
    out = {"val_neg_elbo": negative_elbo_nats(detector, data.X_val), "val_score_mean": float(np.mean(scores)),
           "val_flagged_share": float(np.mean(flag(scores, detector.threshold_))), "threshold": float(detector.threshold_)}
    if data.has_labels:
        out.update({f"val_{k}": v for k, v in detection_metrics(data.y_val, scores, detector.threshold_).items()})
    return out


# --------------------------------------------------------------------- run logging


def training_figures(detector: Any, data: TrainingData) -> dict[str, Any]:
    """The PNG figures of a training run, by file name."""
    from .. import plots

    tc = detector.train_config_  # truncation start in epochs: trim_start is a share of the planned training
    figs = {"training_curves.png": plots.training_curves(detector.history_, trim_fraction=tc.trim_fraction,
                                                         trim_start_epoch=tc.trim_start * tc.epochs)}
    scores = detector.decision_function(data.X_val)
    figs["score_histogram.png"] = plots.score_histogram(scores, detector.threshold_, data.y_val)
    if data.has_labels:
        figs["roc_pr.png"] = plots.roc_pr_curves(data.y_val, scores)
    if data.dataset.kind == "image":
        import torch

        x = detector.preprocessor_.transform(data.X_val[:8])
        with torch.no_grad():
            rec = detector.model_.reconstruct(torch.from_numpy(x)).numpy()
        figs["reconstructions.png"] = plots.reconstructions(x, rec)
    return figs


def log_training_run(parent_run_id: str, detector: Any, data: TrainingData, metrics: dict[str, float],
                     config: TrainJobConfig) -> str:
    """Params, data set, metrics, figures and the pyfunc model; returns the logged model URI."""
    from .. import tracking

    ds = data.dataset
    fp = ds.fingerprint
    tracking.log_params(parent_run_id, {
        "job": config.model_dump(exclude={"detector"}),
        "detector": detector.get_params(),
        "model": detector.model_.config.to_dict() | {"blocks": len(detector.model_.config.blocks)},
        "train": {k: v for k, v in vars(detector.train_config_).items() if k != "checkpoint_dir"},
        "preprocessing": {"type": detector.preprocessor_.to_dict()["type"],
                          "scaling": getattr(detector.preprocessor_, "scaling", "divide")},
        "data": {"sha256": fp["sha256"], "rows": fp["n_rows"], "train_rows": len(data.X_train),
                 "val_rows": len(data.X_val)},
    })
    tracking.log_dataset(parent_run_id, ds.X, source=ds.source, name=Path(ds.source).name, fingerprint=fp)
    tracking.log_metrics(parent_run_id, metrics | {"epochs_run": detector.train_result_.epochs_run,
                                                   "best_epoch": detector.train_result_.best_epoch,
                                                   "train_seconds": detector.train_result_.seconds})
    tracking.log_dict(parent_run_id, detector.preprocessor_.to_dict(), "preprocessing.json")
    for name, fig in training_figures(detector, data).items():
        tracking.log_figure(parent_run_id, fig, name)
    example = data.X_val.iloc[:5] if isinstance(data.X_val, pd.DataFrame) else data.X_val[:5]
    return tracking.log_detector(parent_run_id, detector, example)




def train_summary_markdown(result: dict[str, Any], config: TrainJobConfig) -> str:
    """The train job's report for a person: what was trained on what, its validation metrics, and
    the registry's decision (shown in Prefect as a markdown artifact)."""
    lines = [f"# Training run: {config.model_name}", "",
             f"data `{config.data}` (train on {config.train_on}); MLflow run `{result['run_id']}`", ""]
    if result.get("version") is not None:
        verdict = "**promoted to champion**" if result.get("promoted") else "**not promoted**"
        lines += [f"- registered as version **{result['version']}**: {verdict}",
                  f"- decision: {result.get('reason', '')}",
                  f"- champion now: version {result['version'] if result.get('promoted') else result.get('champion_version')}",
                  ""]
    else:
        lines += ["- not registered (register_model: false)", ""]
    lines += ["| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4g} |" for k, v in sorted(result.get("metrics", {}).items())
              if isinstance(v, int | float)]
    return "\n".join(lines)
