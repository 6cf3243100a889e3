"""MLflow runs by id: create, log params/metrics/tags/figures/data sets, end, and sweep abandoned ones.

Every call takes the run id explicitly: MLflow's "active run" is per thread, and Prefect runs tasks in
worker threads.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

from ..atomic import pid_alive
from ..provenance import git_commit, git_output
from .connection import DEFAULT_ARTIFACTS, client, is_local, mlflow_module, tracking_uri, wrap

OWNER_HOST = "vae_anomaly.host"
OWNER_PID = "vae_anomaly.pid"


def experiment_id(name: str) -> str:
    def go() -> str:
        c = client()
        exp = c.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        location = None
        if is_local(tracking_uri()):
            location = (Path.cwd() / DEFAULT_ARTIFACTS).resolve().as_uri()
        return c.create_experiment(name, artifact_location=location)

    return wrap(f"creating experiment {name!r}", go)


def provenance_tags(cwd: str | Path | None = None) -> dict[str, str]:
    """Who ran what from where: MLflow's run context providers (``mlflow.user``, ``mlflow.source.name``
    and ``.type``, ...), the *caller's* git checkout (the working directory's, not this library's),
    and the library's version and commit.

    MLflow's git provider looks at the checkout of the entry-point script -- for ``vae-anomaly`` or a
    Prefect worker that is the virtual environment's ``bin/``, i.e. this library. Its git tags are
    replaced by those of ``cwd``'s checkout, or left out when ``cwd`` is not in one.
    """
    mlflow_module()
    from mlflow.tracking.context.registry import resolve_tags
    from mlflow.utils.mlflow_tags import MLFLOW_GIT_BRANCH, MLFLOW_GIT_COMMIT, MLFLOW_GIT_REPO_URL

    from .._version import __version__

    tags = {k: str(v) for k, v in resolve_tags({}).items() if not k.startswith("mlflow.source.git.")}
    where = Path(cwd) if cwd is not None else Path.cwd()
    commit = git_output(where, "rev-parse", "HEAD")
    if commit:
        tags[MLFLOW_GIT_COMMIT] = commit
        for key, args in ((MLFLOW_GIT_BRANCH, ("rev-parse", "--abbrev-ref", "HEAD")),
                          (MLFLOW_GIT_REPO_URL, ("config", "--get", "remote.origin.url"))):
            value = git_output(where, *args)
            if value:
                tags[key] = value
    tags["vae_anomaly.version"] = __version__
    library = git_commit()
    if library:
        tags["vae_anomaly.git_commit"] = library
    return tags


def start_run(experiment: str, run_name: str | None = None, tags: dict[str, str] | None = None,
              parent_run_id: str | None = None) -> str:
    """Create a run, tagged with this process's host and pid so an abandoned run can be told later,
    and with :func:`provenance_tags` (``tags`` given here win)."""
    def go() -> str:
        t = {**provenance_tags(), OWNER_HOST: socket.gethostname(), OWNER_PID: str(os.getpid()), **(tags or {})}
        if parent_run_id:
            t["mlflow.parentRunId"] = parent_run_id
        return client().create_run(experiment_id(experiment), run_name=run_name, tags=t).info.run_id

    return wrap("starting a run", go)


def end_run(run_id: str, status: str = "FINISHED") -> None:
    wrap("ending a run", lambda: client().set_terminated(run_id, status))


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, f"{key}."))
        else:
            out[key] = str(v)[:6000]
    return out


def log_params(run_id: str, params: dict[str, Any]) -> None:
    from mlflow.entities import Param

    flat = _flatten(params)
    wrap("logging params", lambda: client().log_batch(run_id, params=[Param(k, v) for k, v in flat.items()]))


def log_metrics(run_id: str, metrics: dict[str, float], step: int | None = None) -> None:
    from mlflow.entities import Metric

    ts = int(time.time() * 1000)
    ms = [Metric(k, float(v), ts, step or 0) for k, v in metrics.items() if v is not None]
    wrap("logging metrics", lambda: client().log_batch(run_id, metrics=ms))


def set_tags(run_id: str, tags: dict[str, Any]) -> None:
    from mlflow.entities import RunTag

    wrap("tagging a run", lambda: client().log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()]))


class SystemMetrics:
    """Context manager: MLflow's system metrics (CPU, memory, GPU when present) for a run, by id.

    Does nothing when psutil is missing; sampling every few seconds costs nothing measurable.
    """

    def __init__(self, run_id: str, interval: float = 2.0) -> None:
        self.run_id, self.interval, self.monitor = run_id, interval, None

    def __enter__(self) -> SystemMetrics:
        try:
            import psutil  # noqa: F401

            mlflow_module()
            from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

            self.monitor = SystemMetricsMonitor(self.run_id, sampling_interval=self.interval,
                                                tracking_uri=tracking_uri())
            self.monitor.start()
        except Exception:  # noqa: BLE001 - system metrics are a nicety, never a reason to fail a run
            self.monitor = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.monitor is not None:
            try:
                self.monitor.finish()
                # One closing sample, so a run shorter than the sampling interval still has one.
                self.monitor.collect_metrics()
                self.monitor.publish_metrics(self.monitor.aggregate_metrics())
                self.monitor.mlflow_logger.flush()
            except Exception:  # noqa: BLE001
                pass


class EpochLogger:
    """Trainer callback: per-epoch metrics to a run, by id (safe from any thread)."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    def __call__(self, epoch: int, metrics: dict[str, float]) -> None:
        log_metrics(self.run_id, {k: v for k, v in metrics.items() if k != "epoch"}, step=epoch)


def log_figure(run_id: str, fig: Any, name: str) -> None:
    from ..plots import _plt

    wrap(f"logging figure {name}", lambda: client().log_figure(run_id, fig, f"figures/{name}"))
    _plt().close(fig)


def log_dict(run_id: str, obj: Any, name: str) -> None:
    wrap(f"logging {name}", lambda: client().log_dict(run_id, obj, name))


def log_dataset(run_id: str, data: Any, *, source: str, name: str, fingerprint: dict[str, Any],
                context: str = "training") -> None:
    """``mlflow.log_input`` by run id: the data set's name, source, digest and schema."""
    import numpy as np
    import pandas as pd

    mlflow = mlflow_module()
    from mlflow.entities import DatasetInput, InputTag

    if isinstance(data, pd.DataFrame):
        ds = mlflow.data.from_pandas(data, source=source, name=name, digest=fingerprint["sha256"][:16])
    else:
        arr = np.asarray(data)
        ds = mlflow.data.from_numpy(arr[: min(len(arr), 1000)], source=source, name=name,
                                    digest=fingerprint["sha256"][:16])
    inp = DatasetInput(ds._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", context)])
    wrap("logging the data set", lambda: client().log_inputs(run_id, datasets=[inp]))
    log_dict(run_id, fingerprint, "dataset_fingerprint.json")


def fail_abandoned_runs(experiment: str) -> list[str]:
    """Mark FAILED the runs of ``experiment`` still RUNNING whose process (on this host) is gone.

    A killed job cannot end its own run; without this sweep its runs stay RUNNING forever in the UI.
    Runs of other hosts are left alone: their processes cannot be checked from here.
    """
    def go() -> list[str]:
        c = client()
        exp = c.get_experiment_by_name(experiment)
        if exp is None:
            return []
        host = socket.gethostname()
        runs = c.search_runs([exp.experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=500)
        failed = []
        for run in runs:
            tags = run.data.tags
            pid = tags.get(OWNER_PID)
            if tags.get(OWNER_HOST) == host and pid and pid.isdigit() and int(pid) != os.getpid() \
                    and not pid_alive(int(pid)):
                c.set_tag(run.info.run_id, "vae_anomaly.abandoned", "process gone; marked FAILED by a later job")
                c.set_terminated(run.info.run_id, "FAILED")
                failed.append(run.info.run_id)
        return failed

    return wrap("marking abandoned runs", go)
