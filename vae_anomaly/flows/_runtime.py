"""Settings every flow module applies before Prefect is imported, and the two kinds of task."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from typing import Any

# Tasks that talk to the tracking server retry; tasks that read data do not (bad data stays bad).
TRACKING_RETRIES = int(os.environ.get("VAE_ANOMALY_TRACKING_RETRIES", "3"))
TRACKING_RETRY_DELAYS = [1, 3, 6]


def flow_run_tags() -> dict[str, str]:
    """Prefect flow-run identity, for tagging the MLflow run."""
    from prefect.runtime import flow_run

    rid = flow_run.get_id()
    return {"prefect.flow_run_id": str(rid), "prefect.flow_run_name": str(flow_run.get_name())} if rid else {}


def _failure(state: Any) -> BaseException | None:
    data = getattr(state, "data", None)
    if isinstance(data, BaseException):
        return data
    try:
        result = state.result(raise_on_failure=False)
    except Exception:  # noqa: BLE001 - an unreadable state is not a reason to retry
        return None
    return result if isinstance(result, BaseException) else None


# Local file-system failures a retry seconds later cannot fix: the artifact location is not writable,
# not a folder, on a read-only or full disk. (Connection errors are OSErrors too, and are transient.)
_PERMANENT_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT, errno.ENOTDIR, errno.EISDIR,
                     errno.EEXIST, errno.ENOSPC, errno.EDQUOT, errno.ENAMETOOLONG}
# MLflow error codes that say "you may not" or "this request is wrong", never "try again later".
_PERMANENT_MLFLOW_CODES = {"PERMISSION_DENIED", "UNAUTHENTICATED", "CUSTOMER_UNAUTHORIZED", "INVALID_PARAMETER_VALUE",
                           "RESOURCE_DOES_NOT_EXIST", "RESOURCE_ALREADY_EXISTS", "INVALID_STATE", "BAD_REQUEST",
                           "MALFORMED_REQUEST", "NOT_IMPLEMENTED", "FEATURE_DISABLED"}


def _causes(exc: BaseException) -> list[BaseException]:
    chain, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    return chain


def is_transient(exc: BaseException | None) -> bool:
    """The one classification of failures for retries: True only for a tracking-server failure that may
    pass (connection refused or reset, timeout, a 5xx). Bad data, a bad config, an unknown model and an
    artifact location this process cannot write are permanent: retrying them repeats the work and leaves
    one FAILED MLflow run per attempt."""
    from vae_anomaly.errors import TrackingError

    if not isinstance(exc, TrackingError):
        return False
    for cause in _causes(exc)[1:]:
        if isinstance(cause, ConnectionError | TimeoutError):
            return True
        if type(cause).__name__ in {"ConnectionError", "ConnectTimeout", "ReadTimeout", "Timeout", "ChunkedEncodingError"}:
            return True  # requests' and urllib3's network errors
        if isinstance(cause, OSError) and cause.errno in _PERMANENT_ERRNOS:
            return False
        if str(getattr(cause, "error_code", "")) in _PERMANENT_MLFLOW_CODES:
            return False
    return True


def retry_server_errors_only(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry a tracking task only on a transient server failure
    (:func:`is_transient`); an unknown model, a bad config or an unwritable artifact store is the user's to fix."""
    return is_transient(_failure(state))


# MLflow runs opened by a task run, by Prefect task-run id: a retry of the same task run reuses its run.
_RUNS_OPENED: dict[str, str] = {}


def open_run_once(open_run: Callable[[], str]) -> str:
    """Open an MLflow run at most once per Prefect task run (a retried task never opens a second run)."""
    from prefect.runtime import task_run

    key = str(task_run.get_id() or "")
    if key and key in _RUNS_OPENED:
        return _RUNS_OPENED[key]
    run_id = open_run()
    if key:
        _RUNS_OPENED[key] = run_id
    return run_id


def data_task(fn):  # noqa: ANN001, ANN201
    """A task that reads or computes: no retries (bad data stays bad), no input hashing (models are big)."""
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    return task(fn, cache_policy=NO_CACHE)


def tracking_task(fn):  # noqa: ANN001, ANN201
    """A task that talks to the tracking server: retried with back-off, on transient server errors only."""
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    return task(fn, retries=TRACKING_RETRIES, retry_delay_seconds=TRACKING_RETRY_DELAYS, cache_policy=NO_CACHE,
                retry_condition_fn=retry_server_errors_only)


def run_opening_task(fn):  # noqa: ANN001, ANN201
    """A tracking task that opens an MLflow run through :func:`open_run_once`: its retries reuse that run,
    and when the task finally fails (permanent error, or retries spent) the run is ended FAILED."""
    return tracking_task(fn).with_options(on_failure=[_fail_run_opened_by], on_completion=[_forget_run_opened_by])


def _forget_run_opened_by(task: Any, task_run: Any, state: Any) -> None:
    _RUNS_OPENED.pop(str(task_run.id), None)


def _fail_run_opened_by(task: Any, task_run: Any, state: Any) -> None:
    import contextlib

    run_id = _RUNS_OPENED.pop(str(task_run.id), None)
    if run_id:
        from vae_anomaly import tracking

        with contextlib.suppress(Exception):  # the tracking store may be the thing that is down
            tracking.end_run(run_id, "FAILED")


class _OneLineUserErrors:
    """Console filter: a user error (bad data, unknown model) shows as one line, not 80 lines of
    traceback. The API log handler runs first (it sits on Prefect's run loggers; the console handler on
    the root), so the full traceback stays in the flow run's log in the Prefect UI."""

    def filter(self, record: Any) -> bool:
        from vae_anomaly.errors import VAEAnomalyError

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, VAEAnomalyError):
            text = record.getMessage().rstrip(":")
            record.msg, record.args = f"{text}: {type(exc).__name__}: {exc}", ()
            record.exc_info, record.exc_text = None, None
        return True


def quiet_user_error_tracebacks() -> None:
    """Attach :class:`_OneLineUserErrors` to the console handlers (idempotent; call at flow start,
    after Prefect has configured logging)."""
    import logging

    for handler in logging.getLogger().handlers + logging.getLogger("prefect").handlers:
        if type(handler).__name__ == "PrefectConsoleHandler" and not any(
                isinstance(f, _OneLineUserErrors) for f in handler.filters):
            handler.addFilter(_OneLineUserErrors())


def _die_with_parent() -> None:  # runs in the child between fork and exec (a subprocess this project starts)
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


# The watchdog of a temporary server: it holds the read end of a pipe whose write end only the job holds. The
# kernel closes that end however the job ends (exit, SIGKILL, OOM kill), the read returns, and the watchdog stops
# the server -- unless it is already gone (psutil compares start times, so a reused pid is left alone).
_WATCHDOG = """
import signal, sys
import psutil
signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the job's to handle; its exit then wakes us
server = psutil.Process(int(sys.argv[1]))
sys.stdin.buffer.read()
if server.is_running():
    server.terminate()
    try:
        server.wait(10)
    except psutil.TimeoutExpired:
        server.kill()
"""
_watchdogs: dict[int, Any] = {}  # server pid -> the watchdog's Popen (its stdin is the pipe's write end)


def tie_temporary_servers_to_this_process() -> None:
    """Make Prefect's temporary (ephemeral) API server die with the job that started it.

    Prefect stops it at normal exit, but a killed job (SIGKILL, OOM) orphans it, holding a port and memory
    forever. With no Prefect API configured, this starts the temporary server now through Prefect's own
    ``SubprocessASGIServer`` (one instance per process: the one Prefect's client then uses) and gives it a
    watchdog process owned by this job (see ``_WATCHDOG``), which stops the server when the job ends in any way.
    Nothing of Prefect's is patched. A no-op when ``PREFECT_API_URL`` is set (env, profile or test harness).
    """
    import subprocess
    import sys

    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start()
    pid = server.server_process.pid
    if pid in _watchdogs and _watchdogs[pid].poll() is None:
        return
    _watchdogs[pid] = subprocess.Popen([sys.executable, "-c", _WATCHDOG, str(pid)], stdin=subprocess.PIPE,
                                       start_new_session=True)


# ----------------------------------------------------------------- what a Prefect UI user sees

PROGRESS_SECONDS = float(os.environ.get("VAE_ANOMALY_PROGRESS_SECONDS", "5"))


class EpochProgress:
    """Trainer callback: the first epoch, then one line every ``every`` seconds, in the task run's log
    (epoch and losses), so the Prefect UI shows a training run moving and not only "Finished in state"."""

    def __init__(self, logger: Any, every: float | None = None) -> None:
        import time

        self.logger, self._clock = logger, time.monotonic
        self.every = PROGRESS_SECONDS if every is None else every
        self._last: float | None = None

    def __call__(self, epoch: int, metrics: dict[str, float]) -> None:
        now = self._clock()
        if self._last is not None and now - self._last < self.every:
            return
        self._last = now
        losses = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k != "epoch" and isinstance(v, int | float))
        self.logger.info("epoch %d: %s", epoch + 1, losses)


def _job_config(config_class: type) -> Any:
    """The running flow's ``config`` parameter as its pydantic class (a deployment passes a dict)."""
    from prefect.runtime import flow_run

    raw = (flow_run.parameters or {}).get("config")
    return raw if isinstance(raw, config_class) else config_class.model_validate(raw or {})


def _base(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1] or path


def train_run_name() -> str:
    """``flow_run_name`` of the train flow: "train MODEL on FILE"."""
    from vae_anomaly.jobs import TrainJobConfig

    try:
        c = _job_config(TrainJobConfig)
    except Exception:  # noqa: BLE001 - a bad config fails in the flow with its own message, not in naming
        return "train"
    return f"train {c.model_name} on {_base(c.data)}"


def score_run_name() -> str:
    """``flow_run_name`` of the score flow: "score FILE with MODEL"."""
    from vae_anomaly.jobs import ScoreJobConfig

    try:
        c = _job_config(ScoreJobConfig)
    except Exception:  # noqa: BLE001
        return "score"
    return f"score {_base(c.input)} with {c.model}" + (f" on dask {c.dask}" if c.dask else "")


def synthesize_run_name() -> str:
    """``flow_run_name`` of the synthesize flow: "synthesize FILE"."""
    from vae_anomaly.jobs.synthesize import SynthJobConfig

    try:
        c = _job_config(SynthJobConfig)
    except Exception:  # noqa: BLE001
        return "synthesize"
    return f"synthesize {_base(c.data)}"


def mlflow_run_url(run_id: str) -> str:
    """Where a person opens this MLflow run: the UI page on a tracking server, else the run's artifact folder."""
    from vae_anomaly import tracking

    info = tracking.client().get_run(run_id).info
    uri = tracking.tracking_uri()
    if uri.startswith(("http://", "https://")):
        return f"{uri.rstrip('/')}/#/experiments/{info.experiment_id}/runs/{run_id}"
    return info.artifact_uri


def publish_mlflow_link(run_id: str, what: str) -> None:
    """A Prefect link artifact to the MLflow run (best effort: a tracking hiccup never fails a finished job)."""
    import contextlib

    from prefect.artifacts import create_link_artifact

    with contextlib.suppress(Exception):
        from vae_anomaly import tracking

        url = mlflow_run_url(run_id)
        local = "" if url.startswith("http") else f" (local store: mlflow ui --backend-store-uri {tracking.tracking_uri()})"
        create_link_artifact(url, link_text=f"MLflow {what} run {run_id}", key=f"mlflow-{what}-run",
                             description=f"the MLflow run of this {what} job{local}")
