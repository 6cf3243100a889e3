"""The steps of the train and score jobs as plain functions, with one pydantic config per job.

``pipelines/`` wraps each step in a Prefect task; a notebook or another
orchestrator can call them directly. Nothing here imports prefect.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from .data import Dataset, load_dataset
from .errors import DataError

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
    seed: int = 0
    detector: dict[str, Any] = Field(default_factory=dict, description="VAEDetector parameters")
    experiment: str = "vae-anomaly"
    model_name: str = "vae-anomaly"
    promote_metric: Literal["auto", "val_auroc", "val_neg_elbo"] = "auto"
    register_model: bool = True


class ScoreJobConfig(BaseModel):
    """Which model scores which file, and where the scores go."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field("vae-anomaly", description="NAME (its champion), NAME@alias, NAME/version or a models:/ URI")
    input: str = "data/breast_cancer.csv"
    output: str | None = Field(None, description=".parquet or .csv; default outputs/scores-<model>-<time>.parquet")
    keep_columns: list[str] = Field(default_factory=list, description="columns copied to the output, not scored")
    chunk_rows: int = Field(100_000, gt=0)
    experiment: str = "vae-anomaly"


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
    tr, va = train_test_split(idx, test_size=config.validation_fraction, random_state=config.seed, stratify=strat)
    if config.train_on == "normal":
        if y is None:
            raise DataError("train_on='normal' needs a label column", file=ds.source)
        tr = tr[y[tr] == 0]

    def take(rows: np.ndarray) -> Any:
        return ds.X.iloc[rows].reset_index(drop=True) if isinstance(ds.X, pd.DataFrame) else ds.X[rows]

    return TrainingData(ds, take(tr), take(va), None if y is None else y[va], None if y is None else y[tr])


def fit_detector(data: TrainingData, config: TrainJobConfig, callbacks: tuple = ()) -> Any:
    from .detector import VAEDetector

    params = {"random_state": config.seed, **config.detector}
    return VAEDetector(**params).fit(data.X_train, callbacks=callbacks)


def negative_elbo_nats(detector: Any, X: Any) -> float:
    """Mean negative ELBO per row in the *original* units of the data.

    Scaled columns change the density by the Jacobian of the scaling, so two
    models with different fitted scalers are compared fairly only after adding
    sum(log scale) of the Gaussian columns back.
    """
    from .data.transform import TabularTransformer

    value = float(np.mean(detector.decision_function(X, method="neg_elbo")))
    pre = detector.preprocessor_
    if isinstance(pre, TabularTransformer):
        value += float(sum(math.log(p["scale"]) for p in pre.numeric_.values()))
    return value


def evaluate(detector: Any, data: TrainingData) -> dict[str, float]:
    """Validation metrics: negative ELBO always; AUROC/AUPRC/precision/recall/F1 with labels."""
    from .scoring import detection_metrics

    scores = detector.decision_function(data.X_val)
    out = {"val_neg_elbo": negative_elbo_nats(detector, data.X_val), "val_score_mean": float(np.mean(scores)),
           "val_flagged_share": float(np.mean(scores > detector.threshold_)), "threshold": float(detector.threshold_)}
    if data.has_labels:
        out.update({f"val_{k}": v for k, v in detection_metrics(data.y_val, scores, detector.threshold_).items()})
    return out


def promotion_metric(config: TrainJobConfig, data: TrainingData) -> tuple[str, bool]:
    """(metric name, higher is better)."""
    name = config.promote_metric
    if name == "auto":
        name = "val_auroc" if data.has_labels else "val_neg_elbo"
    if name == "val_auroc" and not data.has_labels:
        raise DataError("promote_metric='val_auroc' needs labels with both classes in the validation split",
                        file=data.dataset.source)
    return name, name == "val_auroc"


def metric_of(detector: Any, data: TrainingData, metric: str) -> float:
    if metric == "val_auroc":
        from sklearn.metrics import roc_auc_score

        return float(roc_auc_score(data.y_val, detector.decision_function(data.X_val)))
    return negative_elbo_nats(detector, data.X_val)


@dataclass
class PromotionDecision:
    promoted: bool
    reason: str
    metric: str
    new_value: float
    champion_version: str | None = None
    champion_value: float | None = None


def decide_promotion(new_detector: Any, champion: Any | None, champion_version: str | None, data: TrainingData,
                     config: TrainJobConfig) -> PromotionDecision:
    """Promote when there is no champion or the new model beats it on *this* validation data."""
    from .errors import SchemaError

    metric, higher = promotion_metric(config, data)
    new = metric_of(new_detector, data, metric)
    if champion is None:
        return PromotionDecision(True, f"first model: no champion yet ({metric} = {new:.4f})", metric, new)
    try:
        old = metric_of(champion, data, metric)
    except (SchemaError, DataError) as exc:
        return PromotionDecision(False, f"champion v{champion_version} cannot score this data ({exc}); "
                                 "not promoted: promote by hand if the schema change is intended",
                                 metric, new, champion_version)
    better = new > old if higher else new < old
    word = "beats" if better else "does not beat"
    return PromotionDecision(better, f"{metric} {new:.4f} {word} champion v{champion_version} ({old:.4f}) "
                             "on the same validation data", metric, new, champion_version, old)


# --------------------------------------------------------------------- run logging


def training_figures(detector: Any, data: TrainingData) -> dict[str, Any]:
    """The PNG figures of a training run, by file name."""
    from . import plots

    figs = {"training_curves.png": plots.training_curves(detector.history_)}
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
    from . import tracking

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


# --------------------------------------------------------------------- scoring


def default_output(model: str) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in model)
    return str(Path("outputs") / f"scores-{safe}-{time.strftime('%Y%m%d-%H%M%S')}.parquet")


@dataclass
class ScoreResult:
    summary: dict[str, Any]
    model_uri: str
    model_version: dict[str, Any] = field(default_factory=dict)


def summary_markdown(result: ScoreResult) -> str:
    s = result.summary
    q = s["quantiles"]
    lines = [f"# Batch scores: {s['input']}", "",
             f"model `{result.model_uri}` (version {result.model_version.get('version', '?')})", "",
             f"- rows scored: **{s['rows']:,}**; flagged: **{s['flagged']:,}** ({100 * s['flagged_share']:.2f}%)",
             f"- threshold: {s['threshold']:.4g}; output: `{s['output']}`",
             "- score quantiles: " + ", ".join(f"{k} {v:.4g}" for k, v in q.items()),
             f"- drift against training scores: PSI {s['drift_psi']:.4f}, KS {s['drift_ks']:.4f}"
             + ("  (PSI > 0.2: the score distribution has shifted)" if (s["drift_psi"] or 0) > 0.2 else "")]
    return "\n".join(lines)
