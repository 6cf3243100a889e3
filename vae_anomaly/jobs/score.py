"""The score job: which model scores which file, the scoring itself (one file, or Parquet parts on Dask), with
its lineage record, and what came out. ``run`` is the whole job; the score flow wraps its steps in tasks."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..defaults import CHUNK_ROWS, EXPERIMENT, MODEL_NAME


class ScoreJobConfig(BaseModel):
    """Which model scores which file, and where the scores go."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(MODEL_NAME, description="NAME (its champion), NAME@alias, NAME/version or a models:/ URI")
    model_dir: str | None = Field(None, description="score with a saved detector folder instead of `model` (no "
                                                    "registry lookup; the lineage names the folder)")
    input: str = "data/breast_cancer.csv"
    output: str | None = Field(None, description=".parquet or .csv; default outputs/scores-<model>-<time>.parquet")
    keep_columns: list[str] = Field(default_factory=list, description="columns copied to the output, not scored")
    chunk_rows: int = Field(CHUNK_ROWS, gt=0)
    overwrite: bool = Field(False, description="replace an existing output file (refused otherwise)")
    dask: str | None = Field(None, description="score on Dask: 'local', 'local:N' (N worker processes) or "
                                               "'tcp://host:8786'; the input is a Parquet file, folder or glob and "
                                               "the output a folder of parts")
    experiment: str = EXPERIMENT
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


@dataclass
class LoadedModel:
    """A detector and where it came from: the resolved URI (or folder), its registry version (empty for a
    folder) and the tracking store it was read from (None for a folder) -- what the lineage records."""

    detector: Any
    uri: str
    version: dict[str, Any] = field(default_factory=dict)
    tracking_uri: str | None = None


def load_model(config: ScoreJobConfig) -> LoadedModel:
    """The config's model: a saved folder (``model_dir``: no MLflow import) or a registry/run reference whose
    weights are checked against the hash recorded at registration (``tracking.load_detector``)."""
    if config.model_dir is not None:
        from ..detector import VAEDetector

        return LoadedModel(VAEDetector.load(config.model_dir), str(Path(config.model_dir).resolve()))
    from .. import tracking

    detector, uri = tracking.load_detector(config.model)
    return LoadedModel(detector, uri, tracking.model_version_info(uri), tracking.tracking_uri())


def output_path(config: ScoreJobConfig) -> str:
    """Where the scores go: the config's ``output``, else a new file under ``outputs/`` named for the model."""
    if config.output:
        return config.output
    return default_output(Path(config.model_dir).name if config.model_dir is not None else config.model)


def run(config: ScoreJobConfig, *, model: LoadedModel | None = None, flow_run_id: str | None = None,
        verbose: bool = False) -> ScoreResult:
    """The whole score job: load the model (unless given), build the lineage record, score the input in chunks
    -- one file in this process, or Parquet parts on Dask when ``config.dask`` is set -- and write the scores
    atomically. Nothing here needs Prefect or, for a ``model_dir``, MLflow."""
    model = model or load_model(config)
    from ..lineage import build_record

    output = output_path(config)
    record = build_record(detector=model.detector, input_path=config.input, model_ref=model.uri,
                          version_info=model.version, tracking_uri=model.tracking_uri, flow_run_id=flow_run_id)
    if config.dask:
        from ..dask_scoring import score_with_cluster

        summary = score_with_cluster(model.detector, config.dask, config.input, output,
                                     keep_columns=config.keep_columns, overwrite=config.overwrite,
                                     chunk_rows=config.chunk_rows, lineage=record)
    else:
        from ..file_scoring import score_file

        summary = score_file(model.detector, config.input, output, keep_columns=config.keep_columns,
                             chunk_rows=config.chunk_rows, verbose=verbose, overwrite=config.overwrite,
                             lineage=record).to_dict()
    return ScoreResult(summary, model.uri, model.version)


def start_score_run(config: ScoreJobConfig, uri: str, version: dict[str, Any], tags: dict[str, str]) -> str:
    """The score job's MLflow run (only started: a retried task reuses the id it recorded)."""
    from .. import tracking

    return tracking.start_run(config.experiment, run_name=f"score {uri}",
                              tags={**tags, "job": "score", "model_uri": uri, "model_version": version.get("version", "")})


def log_score_config(run_id: str, config: ScoreJobConfig) -> None:
    """The config, logged before any scoring: an artifact store this process cannot write fails here, once,
    not after the work."""
    from .. import tracking

    tracking.log_dict(run_id, config.model_dump(), "score_config.json")


def log_score_run(run_id: str, result: ScoreResult, config: ScoreJobConfig) -> None:
    """Params, metrics (counts, flagged share, drift, throughput, score quantiles) and the summary JSON."""
    from .. import tracking

    s = result.summary
    tracking.log_params(run_id, {"input": config.input, "output": s["output"], "model_uri": result.model_uri,
                                 "chunk_rows": config.chunk_rows})
    tracking.log_metrics(run_id, {"rows": s["rows"], "flagged": s["flagged"], "flagged_share": s["flagged_share"],
                                  "drift_psi": s["drift_psi"], "drift_ks": s["drift_ks"],
                                  "rows_per_second": s["rows_per_second"],
                                  **{f"score_{k}": v for k, v in s["quantiles"].items()}})
    tracking.log_dict(run_id, s, "score_summary.json")


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
