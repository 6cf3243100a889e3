"""The jobs behind the flows, as plain functions with one pydantic config each.

``train`` (ingest -> split -> fit -> validation metrics -> log), ``promotion`` (register and move the
champion alias), ``score`` (batch scoring with a registered model), ``synthesize`` (balance classes).
``vae_anomaly.flows`` wraps each step in a Prefect task; nothing here imports prefect.
"""

from __future__ import annotations

from .promotion import PromotionDecision, PromotionResult, decide_promotion, metric_of, promote, promotion_metric
from .score import ScoreJobConfig, ScoreResult, default_output, summary_markdown
from .train import (
    TrainingData,
    TrainJobConfig,
    anomaly_indicator,
    fit_detector,
    ingest,
    log_training_run,
    negative_elbo_nats,
    split,
    training_figures,
    validation_metrics,
)

__all__ = [
    "PromotionDecision", "PromotionResult", "ScoreJobConfig", "ScoreResult", "TrainJobConfig", "TrainingData",
    "anomaly_indicator", "decide_promotion", "default_output", "fit_detector", "ingest",
    "log_training_run", "metric_of", "negative_elbo_nats", "promote", "promotion_metric", "split",
    "summary_markdown", "training_figures", "validation_metrics",
]
