"""Declarative parameter constraints, checked in one place per estimator.

Modelled on scikit-learn's ``_parameter_constraints``: each estimator lists, per
parameter, the values it accepts; :func:`validate_params` names the estimator,
the parameter and what it accepts when a value is wrong. Options given by name
(the CLI's ``--set``, a flow's config) are checked for unknown names first.
A leaf: :mod:`vae_anomaly.options` (the table, ``check`` and the ``--set`` parser) builds on it.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError


@dataclass(frozen=True)
class Interval:
    """A number in [low, high] (``closed`` says which ends belong); ``kind`` int or float."""

    kind: type
    low: float | None = None
    high: float | None = None
    closed: str = "both"  # "both", "left", "right", "neither"

    def accepts(self, v: Any) -> bool:
        if isinstance(v, bool):
            return False
        if self.kind is int:
            if not isinstance(v, int) and not (hasattr(v, "dtype") and getattr(v.dtype, "kind", "") in "iu"):
                return False
        elif not isinstance(v, int | float) and not (hasattr(v, "dtype") and getattr(v.dtype, "kind", "") in "iuf"):
            return False
        v = float(v)
        if not math.isfinite(v):
            return False
        if self.low is not None and (v < self.low or (v == self.low and self.closed in ("right", "neither"))):
            return False
        return not (self.high is not None and (v > self.high or (v == self.high and self.closed in ("left", "neither"))))

    def __str__(self) -> str:
        kind = "an integer" if self.kind is int else "a number"
        lo = "(" if self.closed in ("right", "neither") else "["
        hi = ")" if self.closed in ("left", "neither") else "]"
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "inf" if self.high is None else f"{self.high:g}"
        return f"{kind} in {lo}{low}, {high}{hi}"


@dataclass(frozen=True)
class Options:
    """One of a fixed set of values."""

    values: tuple[Any, ...]

    def accepts(self, v: Any) -> bool:
        return isinstance(v, str | bool | int | float | type(None)) and any(
            v == o and type(v) is type(o) for o in self.values)

    def __str__(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)


@dataclass(frozen=True)
class Check:
    """Any other rule: a predicate and how to describe what it accepts."""

    test: Callable[[Any], bool]
    description: str

    def accepts(self, v: Any) -> bool:
        try:
            return bool(self.test(v))
        except Exception:  # noqa: BLE001 - a predicate that cannot judge the value rejects it
            return False

    def __str__(self) -> str:
        return self.description


def positive_int_tuple(v: Any) -> bool:
    return (isinstance(v, list | tuple) and len(v) > 0
            and all(isinstance(h, int) and not isinstance(h, bool) and 1 <= h <= 65536 for h in v))


def string_list(v: Any) -> bool:
    return isinstance(v, list | tuple) and all(isinstance(c, str) for c in v)


NONE = Options((None,))
BOOL = Options((True, False))
SEED = Check(lambda v: v is None or (Interval(int).accepts(v) and v >= 0)
             or hasattr(v, "randint"), "None, a non-negative integer or a numpy RandomState")
N_JOBS = Check(lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and (v >= 1 or v == -1)),
               "None (automatic), a positive integer or -1 (every core)")
# The most epochs any model trains for; fitting.DETECTION_MAX_EPOCHS (a detector's auto-epoch cap) is this.
MAX_EPOCHS = 100_000
EPOCHS = Check(lambda v: v == "auto" or (Interval(int).accepts(v) and 1 <= v <= MAX_EPOCHS),
               f"'auto' or an integer in [1, {MAX_EPOCHS}]")


def validate_params(owner: str, params: Mapping[str, Any], constraints: Mapping[str, Sequence[Any]]) -> None:
    """Raise :class:`ConfigError` naming the first parameter whose value no constraint accepts."""
    for name, allowed in constraints.items():
        if name not in params:
            continue
        value = params[name]
        if any(c.accepts(value) for c in allowed):
            continue
        what = " or ".join(str(c) if not (isinstance(c, Options) and c.values == (None,)) else "None" for c in allowed)
        raise ConfigError(f"{owner}: {name} must be {what}; got {value!r}")


def check_option_names(owner: str, options: Mapping[str, Any], known: Sequence[str]) -> None:
    """Unknown option names are an error listing the close matches (a typo must not be ignored)."""
    for name in options:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=3)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else \
                f"; known options: {', '.join(sorted(known))}"
            raise ConfigError(f"{owner} has no option {name!r}{hint}")
