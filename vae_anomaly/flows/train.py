"""train_flow: ingest -> validate -> split -> fit (checkpointed) -> evaluate -> log -> register/promote."""

from __future__ import annotations

import contextlib
import shutil
from typing import Any

from prefect import flow, get_run_logger

from vae_anomaly import jobs
from vae_anomaly.jobs import TrainingData, TrainJobConfig
from vae_anomaly.jobs.train import train_summary_markdown

from . import _runtime


@_runtime.tracking_task
def connect_tracking() -> str:
    from vae_anomaly import tracking

    return tracking.check_tracking()


@_runtime.run_opening_task
def open_run(config: TrainJobConfig) -> str:
    from vae_anomaly import tracking

    abandoned = tracking.fail_abandoned_runs(config.experiment)
    if abandoned:
        get_run_logger().warning("marked %d abandoned run(s) FAILED: %s", len(abandoned), ", ".join(abandoned))
    # start_run records the caller's git commit (working directory), user, source and library version.
    run_id = _runtime.open_run_once(lambda: tracking.start_run(
        config.experiment, run_name=f"train {config.model_name}", tags={**_runtime.flow_run_tags(), "job": "train"}))
    # Written before training: an artifact store this process cannot write fails here, not after the fit.
    tracking.log_dict(run_id, config.model_dump(), "job.json")
    return run_id


@_runtime.data_task
def ingest(config: TrainJobConfig):  # noqa: ANN201
    ds = jobs.ingest(config)
    get_run_logger().info("read %s: %s", config.data, ds.summary())
    return ds


@_runtime.data_task
def split(ds, config: TrainJobConfig) -> TrainingData:  # noqa: ANN001
    return jobs.split(ds, config)


@_runtime.data_task
def fit(data: TrainingData, config: TrainJobConfig, parent_run_id: str, checkpoint_dir: str) -> Any:
    det = jobs.train.fit_in_child_run(data, config, parent_run_id, checkpoint_dir,
                                      callbacks=(_runtime.EpochProgress(get_run_logger()),))
    if det.train_result_.resumed_from_epoch is not None:
        get_run_logger().info("resumed training after epoch %d from %s", det.train_result_.resumed_from_epoch,
                              checkpoint_dir)
    r = det.train_result_
    get_run_logger().info("trained %d epochs in %.1f s (%.0f rows/s); kept epoch %d (loss %.4g)%s", r.epochs_run,
                          r.seconds, r.samples_per_second, r.best_epoch + 1, r.best_val_loss,
                          " after early stopping" if r.stopped_early else "")
    return det


@_runtime.data_task
def validation_metrics(detector: Any, data: TrainingData) -> dict[str, float]:
    return jobs.validation_metrics(detector, data)


@_runtime.tracking_task
def log_run(run_id: str, detector: Any, data: TrainingData, metrics: dict[str, float], config: TrainJobConfig) -> str:
    return jobs.log_training_run(run_id, detector, data, metrics, config)


@_runtime.tracking_task
def register_and_promote(model_uri: str, run_id: str, detector: Any, data: TrainingData,
                         config: TrainJobConfig) -> dict[str, Any]:
    from vae_anomaly import tracking

    result = jobs.promote(detector, data, config, model_uri=model_uri, run_id=run_id)
    tracking.set_tags(run_id, {"registered_version": result.version, "promoted": result.promoted,
                               "promotion_reason": result.reason})
    get_run_logger().info("model %s version %s: %s", config.model_name, result.version, result.reason)
    return {"version": result.version, "promoted": result.promoted, "reason": result.reason,
            "champion_version": result.champion_version}


@_runtime.data_task
def publish_artifacts(result: dict[str, Any], config: TrainJobConfig) -> None:
    from prefect.artifacts import create_markdown_artifact

    create_markdown_artifact(train_summary_markdown(result, config), key="train-summary",
                             description="validation metrics and the promotion decision")
    _runtime.publish_mlflow_link(result["run_id"], "train")


@flow(name="vae-anomaly-train", log_prints=True, flow_run_name=_runtime.train_run_name)
def train_flow(config: TrainJobConfig | None = None) -> dict[str, Any]:
    """Train a VAE detector on a data set, log the run to MLflow, register it and promote it if it wins.

    Training keeps a checkpoint every epoch under ``.vae_anomaly/runs/``; rerunning the same job
    after a crash resumes from it (``resume=False`` starts over).
    """
    _runtime.quiet_user_error_tracebacks()
    from vae_anomaly import tracking

    config = config or TrainJobConfig()
    uri = connect_tracking()
    ds = ingest(config)
    data = split(ds, config)
    checkpoint_dir = config.checkpoint_dir(ds.fingerprint["sha256"])
    run_id = open_run(config)
    try:
        detector = fit(data, config, run_id, str(checkpoint_dir))
        metrics = validation_metrics(detector, data)
        model_uri = log_run(run_id, detector, data, metrics, config)
        registry = register_and_promote(model_uri, run_id, detector, data, config) if config.register_model else {}
    except BaseException:
        # Never let a failure to record the failure (tracking down) hide the error that caused it.
        with contextlib.suppress(Exception):
            tracking.end_run(run_id, "FAILED")
        raise
    tracking.end_run(run_id)
    shutil.rmtree(checkpoint_dir.parent, ignore_errors=True)  # the run is complete: nothing left to resume
    result = {"tracking_uri": uri, "run_id": run_id, "model_uri": model_uri, "metrics": metrics, **registry}
    publish_artifacts(result, config)
    return result
