"""train_flow: ingest -> validate -> split -> fit -> evaluate -> log -> register/promote."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from pipelines import _runtime
from vae_anomaly import jobs
from vae_anomaly.jobs import TrainingData, TrainJobConfig


@_runtime.tracking_task
def connect_tracking() -> str:
    from vae_anomaly import tracking

    return tracking.check_tracking()


@_runtime.tracking_task
def open_run(config: TrainJobConfig) -> str:
    from vae_anomaly import tracking

    return tracking.start_run(config.experiment, run_name=f"train {config.model_name}",
                              tags={**_runtime.flow_run_tags(), "job": "train"})


@_runtime.data_task
def ingest(config: TrainJobConfig):  # noqa: ANN201
    ds = jobs.ingest(config)
    get_run_logger().info("read %s: %s", config.data, ds.summary())
    return ds


@_runtime.data_task
def split(ds, config: TrainJobConfig) -> TrainingData:  # noqa: ANN001
    return jobs.split(ds, config)


@_runtime.data_task
def fit(data: TrainingData, config: TrainJobConfig, parent_run_id: str) -> Any:
    from vae_anomaly import tracking

    child = tracking.start_run(config.experiment, run_name="fit", parent_run_id=parent_run_id,
                               tags={"stage": "fit"})
    try:
        with tracking.SystemMetrics(child):
            det = jobs.fit_detector(data, config, callbacks=(tracking.EpochLogger(child),))
    except BaseException:
        tracking.end_run(child, "FAILED")
        raise
    tracking.log_metrics(child, {"samples_per_second": det.train_result_.samples_per_second})
    tracking.end_run(child)
    return det


@_runtime.data_task
def evaluate(detector: Any, data: TrainingData) -> dict[str, float]:
    return jobs.evaluate(detector, data)


@_runtime.tracking_task
def log_run(run_id: str, detector: Any, data: TrainingData, metrics: dict[str, float], config: TrainJobConfig) -> str:
    return jobs.log_training_run(run_id, detector, data, metrics, config)


@_runtime.tracking_task
def register_and_promote(model_uri: str, run_id: str, detector: Any, data: TrainingData,
                         config: TrainJobConfig) -> dict[str, Any]:
    from vae_anomaly import tracking

    version = tracking.register(model_uri, config.model_name, tags={"data_sha256": data.dataset.fingerprint["sha256"]})
    current = tracking.champion_version(config.model_name)
    champion = None
    if current is not None:
        champion, _ = tracking.load_detector(f"models:/{config.model_name}/{current}")
    decision = jobs.decide_promotion(detector, champion, current, data, config)
    tracking.tag_version(config.model_name, version, {"promotion_metric": decision.metric,
                                                       "promotion_value": decision.new_value,
                                                       "promotion_decision": decision.reason})
    if decision.promoted:
        tracking.set_champion(config.model_name, version, decision.reason)
    tracking.set_tags(run_id, {"registered_version": version, "promoted": decision.promoted,
                               "promotion_reason": decision.reason})
    get_run_logger().info("model %s version %s: %s", config.model_name, version, decision.reason)
    return {"version": version, "promoted": decision.promoted, "reason": decision.reason,
            "champion_version": version if decision.promoted else current}


@flow(name="vae-anomaly-train", log_prints=True)
def train_flow(config: TrainJobConfig | None = None) -> dict[str, Any]:
    """Train a VAE detector on a data set, log the run to MLflow, register it and promote it if it wins."""
    from vae_anomaly import tracking

    config = config or TrainJobConfig()
    uri = connect_tracking()
    ds = ingest(config)
    data = split(ds, config)
    run_id = open_run(config)
    try:
        detector = fit(data, config, run_id)
        metrics = evaluate(detector, data)
        model_uri = log_run(run_id, detector, data, metrics, config)
        registry = register_and_promote(model_uri, run_id, detector, data, config) if config.register_model else {}
    except BaseException:
        tracking.end_run(run_id, "FAILED")
        raise
    tracking.end_run(run_id)
    return {"tracking_uri": uri, "run_id": run_id, "model_uri": model_uri, "metrics": metrics, **registry}
