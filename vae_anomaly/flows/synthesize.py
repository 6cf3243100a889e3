"""synthesize_flow: ingest -> fit CVAE -> generate to the requested balance -> write atomically -> judge and log."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from vae_anomaly.jobs import synthesize as synth_job
from vae_anomaly.jobs.synthesize import SynthJobConfig

from . import _runtime


@_runtime.tracking_task
def connect_tracking() -> str:
    from vae_anomaly import tracking

    return tracking.check_tracking()


@_runtime.data_task
def ingest(config: SynthJobConfig):  # noqa: ANN201
    return synth_job.ingest(config)


@_runtime.data_task
def balance(ds, config: SynthJobConfig) -> synth_job.SynthResult:  # noqa: ANN001
    return synth_job.balance(ds, config)


@_runtime.data_task
def write(result: synth_job.SynthResult, config: SynthJobConfig, ds, output: str) -> str:  # noqa: ANN001
    return synth_job.write_balanced(result, config, ds, output)


@_runtime.data_task
def synthesis_metrics(result: synth_job.SynthResult, config: SynthJobConfig) -> dict[str, float]:
    return synth_job.synthesis_metrics(result, config.random_state)


@_runtime.run_opening_task
def log_run(result: synth_job.SynthResult, metrics: dict[str, float], config: SynthJobConfig, ds,  # noqa: ANN001
            output: str) -> str:
    from vae_anomaly import tracking

    run_id = _runtime.open_run_once(lambda: tracking.start_run(config.experiment, run_name=f"synthesize {ds.source}",
                                                               tags={**_runtime.flow_run_tags(), "job": "synthesize"}))
    tracking.log_params(run_id, {"job": config.model_dump(), "output": output,
                                 "sampling_strategy": {str(k): int(v) for k, v in
                                                       result.oversampler.sampling_strategy_.items()},
                                 "sampling_method": {c: r["method"] for c, r in synth_job.sampling_report(result).items()}})
    tracking.log_dataset(run_id, ds.X, source=ds.source, name=ds.source, fingerprint=ds.fingerprint)
    tracking.log_metrics(run_id, metrics)
    for name, fig in synth_job.figures(result).items():
        tracking.log_figure(run_id, fig, name)
    tracking.end_run(run_id)
    return run_id


@flow(name="vae-anomaly-synthesize", log_prints=True, flow_run_name=_runtime.synthesize_run_name)
def synthesize_flow(config: SynthJobConfig | None = None) -> dict[str, Any]:
    """Balance minority classes with CVAE samples; write the balanced data set; log utility vs SMOTE."""
    _runtime.quiet_user_error_tracebacks()
    config = config or SynthJobConfig()
    connect_tracking()
    ds = ingest(config)
    output = config.output or synth_job.default_output(ds)
    result = balance(ds, config)
    get_run_logger().info("synthetic rows: %s", synth_job.describe_sampling(result))
    # Judged before it is written: a failure anywhere before this point leaves no output behind.
    metrics = synthesis_metrics(result, config)
    path = write(result, config, ds, output)
    run_id = log_run(result, metrics, config, ds, path)
    get_run_logger().info("balanced data: %s; minority F1 real %.3f, SMOTE %s, VAE %.3f", path,
                          metrics.get("real_logreg_f1", float("nan")),
                          f"{metrics['smote_logreg_f1']:.3f}" if "smote_logreg_f1" in metrics else "n/a",
                          metrics.get("vae_logreg_f1", float("nan")))
    return {"output": path, "metrics": metrics, "mlflow_run_id": run_id,
            "counts": {str(k): int(v) for k, v in zip(*__import__("numpy").unique(result.y_res, return_counts=True),
                                                         strict=True)}}
