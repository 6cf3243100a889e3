"""Where the tracking store is, the MLflow client, and how MLflow failures become the project's errors.

The only place the package imports mlflow, and lazily: its first import takes seconds.
Embedded default: a SQLite store ``./mlflow.db`` and artifacts in ``./mlartifacts``;
``MLFLOW_TRACKING_URI`` switches to a server.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ..errors import ModelError, TrackingError

DEFAULT_DB = "mlflow.db"
DEFAULT_ARTIFACTS = "mlartifacts"
T = TypeVar("T")

# MLflow retries each HTTP request 7 times with exponential back-off and waits 120 s per request by
# default: a dead server took 17 minutes to fail. Our flows retry whole tasks (with their own
# back-off), so one request fails in seconds. Users may still override these.
_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                  "MLFLOW_HTTP_REQUEST_TIMEOUT": "15", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
# Errors that mean "what you asked for does not exist / is invalid": retrying cannot help.
_USER_ERROR_CODES = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "RESOURCE_ALREADY_EXISTS",
                     "INVALID_STATE", "BAD_REQUEST"}


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI``, else a SQLite file in the working directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / DEFAULT_DB}"


def is_local(uri: str) -> bool:
    return uri.startswith(("sqlite:", "file:")) or "://" not in uri


def mlflow_module():  # noqa: ANN201 - the mlflow module
    for key, value in _HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    import warnings

    import mlflow

    # MLflow's advice about type hints and integer columns does not apply to a model logged with an
    # explicit signature; keep job output readable.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow(\.|$)")
    warnings.filterwarnings("ignore", message=r".*Add type hints to the `predict` method")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # urllib3 logs every retry of every request at WARNING: one dead server, dozens of lines.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    mlflow.set_tracking_uri(tracking_uri())
    return mlflow


def client():  # noqa: ANN201 - mlflow.MlflowClient
    return mlflow_module().MlflowClient(tracking_uri=tracking_uri())


def is_user_error(exc: BaseException) -> bool:
    return str(getattr(exc, "error_code", "")) in _USER_ERROR_CODES


def _unreachable_reason(exc: BaseException) -> str | None:
    """'connection refused' / 'timed out' / ... when ``exc`` says the server could not be reached at all."""
    text = str(exc)
    for needle, reason in (("Connection refused", "connection refused"), ("timed out", "timed out"),
                           ("Name or service not known", "unknown host"), ("Failed to resolve", "unknown host"),
                           ("Max retries exceeded", "no answer"), ("RemoteDisconnected", "connection closed")):
        if needle in text:
            return reason
    return None


def wrap(what: str, fn: Callable[[], T], *, missing: str | None = None) -> T:
    """Run an MLflow call: "no such model/version/alias" becomes :class:`ModelError` (not retried);
    connection and server failures become :class:`TrackingError` (retried by the flows); one line each.

    ``what`` is the action ("looking up registered model 'x'"); ``missing`` the whole message when the
    store answers that the thing does not exist (one error, never "x does not exist failed against ...").
    """
    try:
        return fn()
    except (TrackingError, ModelError):
        raise
    except Exception as exc:
        from mlflow.exceptions import MlflowException

        if is_user_error(exc):
            first = str(getattr(exc, "message", exc)).splitlines()[0]
            raise ModelError(missing or f"{what}: {first}") from exc
        if isinstance(exc, MlflowException | OSError | ConnectionError) or "Connection" in type(exc).__name__:
            reason = _unreachable_reason(exc)
            if reason is not None:
                raise TrackingError(f"MLflow tracking at {tracking_uri()} is not reachable ({reason}) while {what}: "
                                    "start the server, or unset MLFLOW_TRACKING_URI to use the local SQLite store"
                                    ) from exc
            first = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
            raise TrackingError(f"{what} failed against MLflow tracking at {tracking_uri()}: {first}") from exc
        raise


def check_tracking(timeout: float = 5.0) -> str:
    """Fail fast (before any training) when the tracking store cannot be reached.

    An HTTP server is probed with one short request to its health endpoint first, so a dead or
    wrong address fails in seconds with one line instead of waiting out MLflow's request retries.
    """
    uri = tracking_uri()
    if uri.startswith(("http://", "https://")):
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as r:  # noqa: S310
                r.read(64)
        except urllib.error.HTTPError:
            pass  # the server answers (a proxy may not route /health): let MLflow's own call decide
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TrackingError(f"MLflow tracking at {uri} is not reachable ({reason}): start the server, or unset "
                                "MLFLOW_TRACKING_URI to use the local SQLite store") from exc
    wrap("connecting", lambda: client().search_experiments(max_results=1))
    return uri
