"""MLflow: tracking runs, logging the model as a pyfunc, the registry and the ``champion`` alias.

The only library code that imports mlflow, and lazily (its first import takes
seconds). Every call takes the run id explicitly: MLflow's "active run" is
per thread, and Prefect runs tasks in worker threads.

Embedded default: a SQLite store ``./mlflow.db`` and artifacts in ``./mlartifacts``;
``MLFLOW_TRACKING_URI`` switches to a server.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ..errors import ModelError, TrackingError

DEFAULT_DB = "mlflow.db"
DEFAULT_ARTIFACTS = "mlartifacts"
CHAMPION = "champion"
T = TypeVar("T")


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI``, else a SQLite file in the working directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / DEFAULT_DB}"


def is_local(uri: str) -> bool:
    return uri.startswith(("sqlite:", "file:")) or "://" not in uri


def _mlflow():  # noqa: ANN202
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import warnings

    import mlflow

    # MLflow's advice about type hints and integer columns does not apply to a model logged with an
    # explicit signature; keep job output readable.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow(\.|$)")
    warnings.filterwarnings("ignore", message=r".*Add type hints to the `predict` method")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    mlflow.set_tracking_uri(tracking_uri())
    return mlflow


def client():  # noqa: ANN201 - mlflow.MlflowClient
    mlflow = _mlflow()
    return mlflow.MlflowClient(tracking_uri=tracking_uri())


def _wrap(what: str, fn: Callable[[], T]) -> T:
    """Run an MLflow call; connection and server failures become :class:`TrackingError`."""
    try:
        return fn()
    except (TrackingError, ModelError):
        raise
    except Exception as exc:
        from mlflow.exceptions import MlflowException, RestException

        if isinstance(exc, RestException) and getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
            raise ModelError(f"{what}: {exc}") from exc
        if isinstance(exc, MlflowException | OSError | ConnectionError) or "Connection" in type(exc).__name__:
            raise TrackingError(f"{what} failed against MLflow tracking at {tracking_uri()}: {exc}") from exc
        raise


def check_tracking() -> str:
    """Fail fast (before any training) when the tracking store cannot be reached."""
    _wrap("connecting", lambda: client().search_experiments(max_results=1))
    return tracking_uri()


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

    return _wrap(f"creating experiment {name!r}", go)


def start_run(experiment: str, run_name: str | None = None, tags: dict[str, str] | None = None,
              parent_run_id: str | None = None) -> str:
    def go() -> str:
        t = dict(tags or {})
        if parent_run_id:
            t["mlflow.parentRunId"] = parent_run_id
        return client().create_run(experiment_id(experiment), run_name=run_name, tags=t).info.run_id

    return _wrap("starting a run", go)


def end_run(run_id: str, status: str = "FINISHED") -> None:
    _wrap("ending a run", lambda: client().set_terminated(run_id, status))


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
    _wrap("logging params", lambda: client().log_batch(run_id, params=[Param(k, v) for k, v in flat.items()]))


def log_metrics(run_id: str, metrics: dict[str, float], step: int | None = None) -> None:
    from mlflow.entities import Metric

    ts = int(time.time() * 1000)
    ms = [Metric(k, float(v), ts, step or 0) for k, v in metrics.items() if v is not None]
    _wrap("logging metrics", lambda: client().log_batch(run_id, metrics=ms))


def set_tags(run_id: str, tags: dict[str, Any]) -> None:
    from mlflow.entities import RunTag

    _wrap("tagging a run", lambda: client().log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()]))


class SystemMetrics:
    """Context manager: MLflow's system metrics (CPU, memory, GPU when present) for a run, by id.

    Does nothing when psutil is missing; sampling every few seconds costs nothing measurable.
    """

    def __init__(self, run_id: str, interval: float = 2.0) -> None:
        self.run_id, self.interval, self.monitor = run_id, interval, None

    def __enter__(self) -> SystemMetrics:
        try:
            import psutil  # noqa: F401

            _mlflow()
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

    _wrap(f"logging figure {name}", lambda: client().log_figure(run_id, fig, f"figures/{name}"))
    _plt().close(fig)


def log_dict(run_id: str, obj: Any, name: str) -> None:
    _wrap(f"logging {name}", lambda: client().log_dict(run_id, obj, name))


def log_dataset(run_id: str, data: Any, *, source: str, name: str, fingerprint: dict[str, Any],
                context: str = "training") -> None:
    """``mlflow.log_input`` by run id: the data set's name, source, digest and schema."""
    import numpy as np
    import pandas as pd

    mlflow = _mlflow()
    from mlflow.entities import DatasetInput, InputTag

    if isinstance(data, pd.DataFrame):
        ds = mlflow.data.from_pandas(data, source=source, name=name, digest=fingerprint["sha256"][:16])
    else:
        arr = np.asarray(data)
        ds = mlflow.data.from_numpy(arr[: min(len(arr), 1000)], source=source, name=name,
                                    digest=fingerprint["sha256"][:16])
    inp = DatasetInput(ds._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", context)])
    _wrap("logging the data set", lambda: client().log_inputs(run_id, datasets=[inp]))
    log_dict(run_id, fingerprint, "dataset_fingerprint.json")


# ----------------------------------------------------------------- models
def log_detector(run_id: str, detector: Any, input_example: Any, name: str = "model") -> str:
    """Log the detector as a pyfunc ("models from code": no pickle) returning scores and flags.

    Returns the logged model's URI.
    """
    import pandas as pd
    import torch

    from .._version import __version__

    mlflow = _mlflow()
    from mlflow.models import infer_signature

    example = input_example
    scores = detector.decision_function(example)
    output = pd.DataFrame({"score": scores, "is_anomaly": (scores > detector.threshold_).astype("int64")})
    signature = infer_signature(example, output)
    reqs = [f"vae-anomaly=={__version__}", f"torch=={torch.__version__.split('+')[0]}", f"mlflow=={mlflow.__version__}",
            "safetensors", "numpy", "pandas", "scikit-learn"]
    with tempfile.TemporaryDirectory() as tmp:
        detector.save(Path(tmp) / "detector")

        def go() -> str:
            with mlflow.start_run(run_id=run_id):
                info = mlflow.pyfunc.log_model(
                    name=name, python_model=str(Path(__file__).with_name("pyfunc_model.py")),
                    artifacts={"detector": str(Path(tmp) / "detector")}, signature=signature,
                    input_example=example if isinstance(example, pd.DataFrame) else None,
                    pip_requirements=reqs)
            return info.model_uri

        return _wrap("logging the model", go)


def register(model_uri: str, name: str, tags: dict[str, str] | None = None) -> str:
    mlflow = _mlflow()

    def go() -> str:
        return mlflow.register_model(model_uri, name, tags=tags).version

    return str(_wrap(f"registering {name}", go))


def champion_version(name: str) -> str | None:
    """The version that holds the ``champion`` alias, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client().get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException as exc:
        if "RESOURCE_DOES_NOT_EXIST" in str(getattr(exc, "error_code", "")) or "not found" in str(exc).lower() \
                or "does not exist" in str(exc).lower():
            return None
        raise TrackingError(f"reading the champion of {name!r} failed: {exc}") from exc


def set_champion(name: str, version: str, reason: str) -> None:
    def go() -> None:
        c = client()
        c.set_registered_model_alias(name, CHAMPION, str(version))
        c.set_model_version_tag(name, str(version), "champion_reason", reason)

    _wrap("moving the champion alias", go)


def tag_version(name: str, version: str, tags: dict[str, Any]) -> None:
    def go() -> None:
        c = client()
        for k, v in tags.items():
            c.set_model_version_tag(name, str(version), k, str(v))

    _wrap("tagging a model version", go)


def resolve_model_uri(model: str) -> str:
    """``NAME`` -> ``models:/NAME@champion``; ``NAME@alias`` and ``NAME/3`` -> registry URIs; URIs pass."""
    if ":" in model.split("@")[0].split("/")[0] or model.startswith("models:/"):
        return model
    if "@" in model:
        return f"models:/{model}"
    if "/" in model:
        name, version = model.rsplit("/", 1)
        return f"models:/{name}/{version}"
    return f"models:/{model}@{CHAMPION}"


def load_detector(model: str, dst: str | Path | None = None, device: str = "cpu") -> tuple[Any, str]:
    """Download a registered (or logged) model's detector folder and load it -- no pickles, no training code.

    Returns the detector and the resolved URI.
    """
    from ..detector import VAEDetector

    uri = resolve_model_uri(model)
    mlflow = _mlflow()
    dst = Path(dst or tempfile.mkdtemp(prefix="vae-anomaly-model-"))
    local = Path(_wrap(f"downloading {uri}", lambda: mlflow.artifacts.download_artifacts(artifact_uri=uri,
                                                                                            dst_path=str(dst))))
    candidates = [local / "artifacts" / "detector", local / "detector", local]
    for c in candidates:
        if (c / "model.json").is_file():
            return VAEDetector.load(c, device=device), uri
    raise ModelError(f"{uri} holds no vae-anomaly detector (looked in {[str(c) for c in candidates]})")


def model_version_info(model_uri: str) -> dict[str, Any]:
    """Name, version and run id of a ``models:/`` URI, when it names a registry entry."""
    if not model_uri.startswith("models:/"):
        return {}
    ref = model_uri[len("models:/"):]
    c = client()
    if "@" in ref:
        name, alias = ref.split("@", 1)
        mv = _wrap("reading the registry", lambda: c.get_model_version_by_alias(name, alias))
    elif "/" in ref:
        name, version = ref.rsplit("/", 1)
        mv = _wrap("reading the registry", lambda: c.get_model_version(name, version))
    else:
        return {}
    return {"name": mv.name, "version": str(mv.version), "run_id": mv.run_id}

