"""score_flow: load the champion -> score a file in chunks -> write atomically -> log a summary."""

from __future__ import annotations

import contextlib
from typing import Any

from prefect import flow, get_run_logger

from vae_anomaly import jobs
from vae_anomaly.jobs import ScoreJobConfig
from vae_anomaly.jobs.score import LoadedModel

from . import _runtime


@_runtime.tracking_task
def load_model(config: ScoreJobConfig) -> LoadedModel:
    return jobs.score.load_model(config)


@_runtime.data_task
def score(config: ScoreJobConfig, model: LoadedModel) -> jobs.ScoreResult:
    return jobs.score.run(config, model=model, flow_run_id=_runtime.flow_run_tags().get("prefect.flow_run_id"))


@_runtime.run_opening_task
def open_run(config: ScoreJobConfig, uri: str, version: dict[str, Any]) -> str:
    run_id = _runtime.open_run_once(lambda: jobs.score.start_score_run(config, uri, version, _runtime.flow_run_tags()))
    jobs.score.log_score_config(run_id, config)
    return run_id


@_runtime.tracking_task
def log_summary(run_id: str, result: jobs.ScoreResult, config: ScoreJobConfig) -> str:
    jobs.score.log_score_run(run_id, result, config)
    return run_id


# The event a drifted batch emits; flows.yaml's train deployment declares a trigger on it.
DRIFT_EVENT = "vae-anomaly.drift.detected"


def model_resource_id(model_name: str) -> str:
    """The Prefect event resource of a registered model (what a trigger's ``match`` names)."""
    return f"vae-anomaly.model.{model_name}"


@_runtime.data_task
def emit_drift_event(result: jobs.ScoreResult, config: ScoreJobConfig, reasons: list[str], run_id: str) -> str | None:
    from prefect.events import emit_event

    s = result.summary
    name = result.model_version.get("name") or config.model.split("@")[0].split("/")[0]
    event = emit_event(DRIFT_EVENT, resource={"prefect.resource.id": model_resource_id(name),
                                              "prefect.resource.name": name},
                       payload={"reasons": reasons, "drift_psi": s["drift_psi"], "drift_ks": s["drift_ks"],
                                "psi_threshold": config.drift_psi_threshold, "ks_threshold": config.drift_ks_threshold,
                                "input": config.input, "output": s["output"], "rows": s["rows"],
                                "model_uri": result.model_uri, "model_version": result.model_version.get("version"),
                                "mlflow_run_id": run_id})
    get_run_logger().warning("score drift on %s (%s): emitted %s for %s", config.input, "; ".join(reasons), DRIFT_EVENT,
                             name)
    return str(event.id) if event is not None else None


@_runtime.data_task
def publish_artifacts(result: jobs.ScoreResult) -> None:
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    s = result.summary
    create_markdown_artifact(jobs.summary_markdown(result), key="score-summary", description="batch scoring summary")
    create_table_artifact([{"quantile": k, "score": v} for k, v in s["quantiles"].items()], key="score-quantiles")


@flow(name="vae-anomaly-score", log_prints=True, flow_run_name=_runtime.score_run_name)
def score_flow(config: ScoreJobConfig | None = None) -> dict[str, Any]:
    """Score a file with the registered champion model (or a given version); scores land atomically."""
    _runtime.quiet_user_error_tracebacks()
    config = config or ScoreJobConfig()
    from vae_anomaly import tracking

    model = load_model(config)
    uri, version = model.uri, model.version
    run_id = open_run(config, uri, version)
    try:
        result = score(config, model)
        summary = result.summary
        log_summary(run_id, result, config)
    except BaseException:
        with contextlib.suppress(Exception):  # never let a failure to record the failure hide its cause
            tracking.end_run(run_id, "FAILED")
        raise
    tracking.end_run(run_id)
    publish_artifacts(result)
    _runtime.publish_mlflow_link(run_id, "score")
    reasons = jobs.score.drift_exceeded(summary, config)
    drift_event = emit_drift_event(result, config, reasons, run_id) if reasons else None
    get_run_logger().info(jobs.summary_markdown(result))
    return {"output": summary["output"], "summary": summary, "model_uri": uri, "model_version": version,
            "mlflow_run_id": run_id, "drift_event": drift_event}
