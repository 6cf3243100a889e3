"""The project's own exception types.

Every failure a user can cause (bad data, a wrong model, a bad config) raises a
subclass of :class:`VAEAnomalyError`, so callers and the CLI can tell "your
input is wrong" from "our code is broken" with one ``except``.
"""

from __future__ import annotations

from typing import Any


class VAEAnomalyError(Exception):
    """Base class of every error this toolkit raises on purpose."""


class DataError(VAEAnomalyError, ValueError):
    """Input data is unusable; names the file and the column, row or index at fault."""

    def __init__(
        self,
        message: str,
        *,
        file: Any = None,
        column: Any = None,
        row: int | None = None,
        index: Any = None,
    ) -> None:
        self.file = None if file is None else str(file)
        self.column = column
        self.row = row
        self.index = index
        where = []
        if self.file is not None:
            where.append(f"file {self.file}")
        if column is not None:
            where.append(f"column {column!r}")
        if row is not None:
            where.append(f"row {row}")
        if index is not None:
            where.append(f"index {index}")
        self.message = message
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class DataTypeError(DataError, TypeError):
    """Values of a type that cannot be numbers (a dict in a numeric array)."""


class SchemaError(DataError):
    """Data whose columns, types or shape differ from what a fitted model expects."""


class ConfigError(VAEAnomalyError, ValueError):
    """An invalid option, parameter or configuration file entry."""


class DeviceError(VAEAnomalyError, RuntimeError):
    """A requested compute device is not available."""


class ModelError(VAEAnomalyError):
    """A saved model is missing, corrupt or incompatible."""


class TrainingError(VAEAnomalyError, RuntimeError):
    """Training cannot continue (for example a NaN or infinite loss)."""


class TrackingError(VAEAnomalyError, RuntimeError):
    """The MLflow tracking server or registry could not be used."""


class PromotionConflictError(TrackingError):
    """Concurrent jobs kept moving a model's ``champion`` alias while this one decided; the version
    is registered, and rerunning the promotion decides again (so the flows' retry rule may retry it)."""


def __getattr__(name: str):
    # NotFittedError subclasses scikit-learn's, whose import costs a second:
    # build it on first use so ``import vae_anomaly`` stays fast.
    if name == "NotFittedError":
        from sklearn.exceptions import NotFittedError as _SkNotFitted

        global NotFittedError
        NotFittedError = type("NotFittedError", (_SkNotFitted, VAEAnomalyError),  # type: ignore[name-defined]
                              {"__doc__": "Raised before fit; also a scikit-learn NotFittedError.",
                               "__module__": __name__})
        return NotFittedError
    raise AttributeError(name)


def config_error(exc: Exception, owner: str) -> ConfigError:
    """A pydantic ``ValidationError`` of a job config as one :class:`ConfigError` naming the field.

    The options table's own message (raised inside a validator) is kept as it is; pydantic's wrapper
    ("1 validation error for ...", "Value error, ...") is left out.
    """
    errors = exc.errors() if hasattr(exc, "errors") else []
    if not errors:
        return ConfigError(f"{owner}: {exc}")
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    message = str(first.get("msg", exc)).removeprefix("Value error, ")
    return ConfigError(f"{owner} {where}: {message}" if where else f"{owner}: {message}")
