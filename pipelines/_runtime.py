"""Settings every flow module applies before Prefect is imported, and the two kinds of task."""

from __future__ import annotations

import os
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


def retry_server_errors_only(task: Any, task_run: Any, state: Any) -> bool:
    """Retry a tracking task only when the server failed (TrackingError); an unknown model name,
    version or alias (ModelError) or a bad config is the user's to fix: retrying cannot help."""
    from vae_anomaly.errors import TrackingError

    return isinstance(_failure(state), TrackingError)


def data_task(fn):  # noqa: ANN001, ANN201
    """A task that reads or computes: no retries (bad data stays bad), no input hashing (models are big)."""
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    return task(fn, cache_policy=NO_CACHE)


def tracking_task(fn):  # noqa: ANN001, ANN201
    """A task that talks to the tracking server: retried with back-off, on server errors only."""
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    return task(fn, retries=TRACKING_RETRIES, retry_delay_seconds=TRACKING_RETRY_DELAYS, cache_policy=NO_CACHE,
                retry_condition_fn=retry_server_errors_only)


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


def _die_with_parent() -> None:  # runs in the child between fork and exec
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def tie_temporary_servers_to_this_process() -> None:
    """Make Prefect's temporary (ephemeral) API server die with the job that started it.

    Prefect stops it at normal exit, but a killed job (SIGKILL, OOM) orphans it, holding a port and
    memory forever. On Linux the server is started with PR_SET_PDEATHSIG, so the kernel sends it
    SIGTERM when its parent dies. Only needed when no PREFECT_API_URL is set.
    """
    import subprocess
    import sys

    if os.environ.get("PREFECT_API_URL") or not sys.platform.startswith("linux"):
        return
    import prefect.server.api.server as server_module

    if isinstance(server_module.subprocess, _DieWithParentSubprocess):
        return
    server_module.subprocess = _DieWithParentSubprocess(subprocess)


class _DieWithParentSubprocess:
    """The ``subprocess`` module as Prefect's server module sees it, with children tied to their parent."""

    def __init__(self, module: Any) -> None:
        self._module = module

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)

    def Popen(self, *args: Any, **kwargs: Any) -> Any:  # noqa: N802 - mirrors subprocess.Popen
        kwargs.setdefault("preexec_fn", _die_with_parent)
        return self._module.Popen(*args, **kwargs)
