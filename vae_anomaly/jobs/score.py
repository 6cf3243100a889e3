"""The score job's config and its report: which model scores which file, and what came out."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ScoreJobConfig(BaseModel):
    """Which model scores which file, and where the scores go."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field("vae-anomaly", description="NAME (its champion), NAME@alias, NAME/version or a models:/ URI")
    input: str = "data/breast_cancer.csv"
    output: str | None = Field(None, description=".parquet or .csv; default outputs/scores-<model>-<time>.parquet")
    keep_columns: list[str] = Field(default_factory=list, description="columns copied to the output, not scored")
    chunk_rows: int = Field(100_000, gt=0)
    overwrite: bool = Field(False, description="replace an existing output file (refused otherwise)")
    dask: str | None = Field(None, description="score on Dask: 'local', 'local:N' (N worker processes) or "
                                               "'tcp://host:8786'; the input is a Parquet file, folder or glob and "
                                               "the output a folder of parts")
    experiment: str = "vae-anomaly"
    drift_psi_threshold: float | None = Field(0.2, gt=0, description="a score PSI against the training scores above "
                                              "this emits a drift event (a trigger may retrain on it); null: never")
    drift_ks_threshold: float | None = Field(None, gt=0, le=1, description="the same for the KS statistic")


def drift_exceeded(summary: dict[str, Any], config: ScoreJobConfig) -> list[str]:
    """Which drift measures crossed their thresholds, as words ("PSI 0.41 > 0.2"); empty when none did."""
    out = []
    for key, name, limit in (("drift_psi", "PSI", config.drift_psi_threshold), ("drift_ks", "KS", config.drift_ks_threshold)):
        value = summary.get(key)
        if limit is not None and value is not None and value > limit:
            out.append(f"{name} {value:.4g} > {limit:g}")
    return out


def default_output(model: str) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in model)
    if len(safe) > 100:  # a file name holds 255 bytes: keep the start, and a hash to tell long names apart
        import hashlib

        safe = f"{safe[:80]}-{hashlib.sha256(model.encode()).hexdigest()[:12]}"
    return str(Path("outputs") / f"scores-{safe}-{time.strftime('%Y%m%d-%H%M%S')}.parquet")


@dataclass
class ScoreResult:
    summary: dict[str, Any]
    model_uri: str
    model_version: dict[str, Any] = field(default_factory=dict)


def summary_markdown(result: ScoreResult) -> str:
    s = result.summary
    q = s["quantiles"]
    lines = [f"# Batch scores: {s['input']}", "",
             f"model `{result.model_uri}` (version {result.model_version.get('version', '?')})", "",
             f"- rows scored: **{s['rows']:,}**; flagged: **{s['flagged']:,}** ({100 * s['flagged_share']:.2f}%)",
             f"- threshold: {s['threshold']:.4g}; output: `{s['output']}`",
             "- score quantiles: " + ", ".join(f"{k} {v:.4g}" for k, v in q.items()),
             f"- drift against training scores: PSI {s['drift_psi']:.4f}, KS {s['drift_ks']:.4f}"
             + ("  (PSI > 0.2: the score distribution has shifted)" if (s["drift_psi"] or 0) > 0.2 else "")]
    return "\n".join(lines)
