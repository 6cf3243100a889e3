"""MLflow: runs, the pyfunc model, the registry and the ``champion`` alias.

The only library code that imports mlflow, and lazily. Split by job:
``connection`` (store, client, errors), ``runs`` (run logging), ``model`` (the pyfunc
model logged as code), ``registry`` (versions, aliases, loading registered detectors), ``manifest``
(a logged model folder's hash and its check, which ``model`` and ``registry`` share).
"""

from __future__ import annotations

from .connection import DEFAULT_ARTIFACTS, DEFAULT_DB, check_tracking, client, is_local, tracking_uri, wrap
from .model import load_pyfunc, log_detector, verify_model_dir
from .registry import (
    CHAMPION,
    champion_version,
    load_detector,
    model_version_info,
    promotion_lock,
    register,
    resolve_model_uri,
    set_champion,
    tag_version,
)
from .runs import (
    EpochLogger,
    SystemMetrics,
    end_run,
    experiment_id,
    fail_abandoned_runs,
    log_dataset,
    log_dict,
    log_figure,
    log_metrics,
    log_params,
    provenance_tags,
    set_tags,
    start_run,
)

__all__ = [
    "CHAMPION", "DEFAULT_ARTIFACTS", "DEFAULT_DB", "EpochLogger", "SystemMetrics", "champion_version", "check_tracking",
    "client", "end_run", "experiment_id", "fail_abandoned_runs", "is_local", "load_detector", "load_pyfunc", "log_dataset",
    "log_detector", "log_dict", "log_figure", "log_metrics", "log_params", "model_version_info", "promotion_lock",
    "provenance_tags",
    "register", "resolve_model_uri", "set_champion", "set_tags", "start_run", "tag_version", "tracking_uri",
    "verify_model_dir", "wrap",
]
