"""Lineage of a scores file: which model, which training run and data, which input, which code.

Every scores output carries a record: in the Parquet file's key-value metadata (key
``vae_anomaly.lineage``), or in a sidecar ``NAME.lineage.json`` beside a CSV. :func:`trace` reads it
back, looks the chain up live in MLflow (model version -> training run -> training data fingerprint
-> commit) and verifies what can be verified: the weights' hash against the registered artifact and
the input's fingerprint against the input file, if it is still there.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from .errors import DataError
from .provenance import git_commit  # also importable from here, as before

PARQUET_KEY = b"vae_anomaly.lineage"
SCORES_KEY = b"vae_anomaly.scores_sha256"  # Parquet footer: written at close, when the scores are known
SIDECAR_SUFFIX = ".lineage.json"
FORMAT = 2  # 2: the scores themselves are hashed (footer key, sidecar field, or per part in the manifest)


class ScoresHash:
    """SHA-256 of a scores table's ``row``, ``score`` and ``is_anomaly`` columns, fed chunk by chunk.

    Each column has its own running hash, so the result does not depend on where chunks were cut
    (a verifier reads the file back in other batch sizes).
    """

    def __init__(self) -> None:
        import hashlib

        self._h = {name: hashlib.sha256() for name in ("row", "score", "is_anomaly")}

    def update(self, row: Any, score: Any, is_anomaly: Any) -> None:
        import numpy as np

        for name, values, dtype in (("row", row, "<i8"), ("score", score, "<f8"), ("is_anomaly", is_anomaly, "i1")):
            self._h[name].update(np.ascontiguousarray(np.asarray(values), dtype=dtype).tobytes())

    def hexdigest(self) -> str:
        import hashlib

        return hashlib.sha256("".join(h.hexdigest() for h in self._h.values()).encode()).hexdigest()


def parquet_scores_sha256(path: str | Path) -> str:
    """:class:`ScoresHash` of a scores Parquet file as it is now."""
    import pyarrow.parquet as pq

    h = ScoresHash()
    for batch in pq.ParquetFile(path).iter_batches(batch_size=200_000, columns=["row", "score", "is_anomaly"]):
        h.update(*(batch.column(i).to_numpy(zero_copy_only=False) for i in range(3)))
    return h.hexdigest()


def input_fingerprint(path: str | Path) -> str:
    """SHA-256 over the bytes of a file, or of every part of a folder (relative names included), in order."""
    import hashlib

    from .persist import file_sha256

    text = str(path)
    path = Path(path)
    if path.is_file():
        return file_sha256(path)
    if path.is_dir():
        root, parts = path, sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith((".", "_")))
    else:  # a glob of Parquet files
        import glob

        root, parts = Path("/"), sorted(Path(p).absolute() for p in glob.glob(text, recursive=True))
    h = hashlib.sha256()
    for part in parts:
        h.update(str(part.relative_to(root)).encode() + b"\0" + file_sha256(part).encode())
    return h.hexdigest()


def build_record(*, detector: Any, input_path: str | Path, model_ref: str | None = None,
                 version_info: dict[str, Any] | None = None, tracking_uri: str | None = None,
                 flow_run_id: str | None = None) -> dict[str, Any]:
    """The lineage record of one scoring run."""
    from ._version import __version__

    info = version_info or {}
    meta = getattr(detector, "model_meta_", {}) or {}
    alias = model_ref.split("@", 1)[1] if model_ref and "@" in model_ref else None
    return {
        "format": FORMAT,
        "model_uri": model_ref,
        "model_name": info.get("name"),
        "model_version": info.get("version"),
        "model_alias": alias,
        "mlflow_run_id": info.get("run_id"),
        "weights_sha256": meta.get("weights_sha256"),
        "training_data_sha256": (info.get("tags") or {}).get("data_sha256"),
        "input": str(Path(input_path).resolve()),
        "input_sha256": input_fingerprint(input_path),
        "project_version": __version__,
        "git_commit": git_commit(),
        "tracking_uri": tracking_uri,
        "prefect_flow_run_id": flow_run_id,
        "scored_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": os.uname().nodename if hasattr(os, "uname") else None,
    }


def sidecar_path(scores: str | Path) -> Path:
    scores = Path(scores)
    return scores.with_name(scores.name + SIDECAR_SUFFIX)


def read_record(scores: str | Path) -> dict[str, Any]:
    """The lineage record of a scores file (Parquet metadata or CSV sidecar)."""
    scores = Path(scores)
    if not scores.exists():
        raise DataError("no such scores file", file=scores)
    if scores.is_dir():  # a distributed run's folder of parts
        side = scores / "_lineage.json"
        if not side.is_file():
            raise DataError("the folder carries no vae-anomaly lineage (_lineage.json)", file=scores)
        raw = side.read_bytes()
    elif scores.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        try:
            metadata = pq.ParquetFile(scores).schema_arrow.metadata or {}
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a bad file
            raise DataError(f"not a readable Parquet file: {exc}", file=scores) from exc
        raw = metadata.get(PARQUET_KEY)
        if raw is None:
            raise DataError("the file carries no vae-anomaly lineage (written by another tool or an older version)",
                            file=scores)
    else:
        side = sidecar_path(scores)
        if not side.is_file():
            raise DataError(f"no lineage sidecar {side.name} beside the scores", file=scores)
        raw = side.read_bytes()
    try:
        record = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"lineage record is not valid JSON: {exc}", file=scores) from exc
    if not isinstance(record, dict):
        raise DataError("lineage record is not an object", file=scores)
    return record


def store_missing(uri: str) -> str | None:
    """Why the tracking store at ``uri`` cannot be read without creating it, or None when it is there.

    Opening a SQLite URI creates the database (and MLflow its tables); a read-only command must not.
    """
    from urllib.parse import urlparse

    if uri.startswith("sqlite:"):
        path = uri.split("?", 1)[0].removeprefix("sqlite:").removeprefix("///")
        if not path or path == ":memory:" or not Path(path).is_file() or Path(path).stat().st_size == 0:
            return f"no SQLite tracking store at {path or uri}"
        return None
    if uri.startswith("file:") or "://" not in uri:
        path = urlparse(uri).path if uri.startswith("file:") else uri
        return None if Path(path).is_dir() else f"no tracking folder at {path}"
    return None


def trace(scores: str | Path, *, use_recorded_tracking_uri: bool = False) -> dict[str, Any]:
    """The chain from a scores file back to its training data, with every check that could be made.

    Read-only: the registry is looked up in the *configured* tracking store (``MLFLOW_TRACKING_URI``,
    else ``./mlflow.db``), not in the one the file names -- a scores file is data, and a URI in it
    must not make us open (or create) a database somewhere. ``use_recorded_tracking_uri`` opts in to
    the recorded one. A SQLite or folder store that does not exist is never created: its checks are
    reported as skipped.

    Returns ``{"record", "model", "run", "checks": [{"check", "ok", "detail"}], "tracking_uri", "ok"}``.
    """
    from .tracking.connection import tracking_uri as configured_uri

    record = read_record(scores)
    checks: list[dict[str, Any]] = []
    uri = (record.get("tracking_uri") or "") if use_recorded_tracking_uri else configured_uri()
    out: dict[str, Any] = {"scores": str(scores), "record": record, "model": None, "run": None, "checks": checks,
                           "tracking_uri": uri}

    def check(name: str, ok: bool | None, detail: str) -> None:
        checks.append({"check": name, "ok": ok, "detail": detail})

    name, version = record.get("model_name"), record.get("model_version")
    missing = store_missing(uri) if name and version else None
    if name and version and missing:
        check("model version", None, f"{missing} (never created by lineage); the scores record "
                                     f"{record.get('tracking_uri')}: set MLFLOW_TRACKING_URI"
                                     + ("" if use_recorded_tracking_uri else " or pass --use-recorded-tracking-uri"))
    elif name and version:
        saved = os.environ.get("MLFLOW_TRACKING_URI")
        os.environ["MLFLOW_TRACKING_URI"] = uri
        try:
            _trace_registry(record, out, check)
        finally:
            if saved is None:
                os.environ.pop("MLFLOW_TRACKING_URI", None)
            else:
                os.environ["MLFLOW_TRACKING_URI"] = saved
    elif record.get("weights_sha256") and record.get("model_uri") and Path(record["model_uri"]).is_dir():
        from .persist import file_sha256

        actual = file_sha256(Path(record["model_uri"]) / "model.safetensors")
        check("weights", actual == record["weights_sha256"],
              f"local model folder {record['model_uri']}: SHA-256 {actual[:12]}... "
              f"{'matches' if actual == record['weights_sha256'] else 'differs from'} {record['weights_sha256'][:12]}...")
    else:
        check("model", None, "no registered model recorded: the scores were made with a model outside the registry")
    check("scores", *verify_scores(scores, record))
    inp = Path(record.get("input", ""))
    if record.get("input_sha256") and inp.exists():
        actual = input_fingerprint(inp)
        check("input", actual == record["input_sha256"],
              f"{inp}: SHA-256 {actual[:12]}... {'matches' if actual == record['input_sha256'] else 'differs from'} "
              f"the {record['input_sha256'][:12]}... that was scored")
    else:
        check("input", None, f"{inp} is no longer there: its fingerprint cannot be checked")
    out["ok"] = all(c["ok"] is not False for c in checks)
    return out


def verify_scores(scores: str | Path, record: dict[str, Any]) -> tuple[bool | None, str]:
    """Are the scores the ones written? (ok, detail): per part for a folder, the file's bytes for a CSV,
    the row/score/is_anomaly columns for a Parquet file (its footer cannot hold a hash of its own bytes)."""
    import re

    from .persist import file_sha256

    scores = Path(scores)
    old = int(record.get("format") or 1) < 2
    if scores.is_dir():
        recorded = record.get("parts")
        if not isinstance(recorded, dict):
            return (None, "written by an older version: no part hashes") if old else \
                (False, "the manifest lists no parts")
        present = {p.name for p in scores.iterdir() if re.fullmatch(r"part-\d{5}\.parquet", p.name)}
        missing, extra = sorted(set(recorded) - present), sorted(present - set(recorded))
        if missing or extra:
            return False, (f"parts missing: {', '.join(missing)}" if missing else "") + \
                ("; " if missing and extra else "") + (f"parts not written by the run: {', '.join(extra)}" if extra else "")
        changed = [n for n in sorted(recorded) if file_sha256(scores / n) != recorded[n].get("sha256")]
        if changed:
            return False, f"{len(changed)} of {len(recorded)} parts changed since scoring: {', '.join(changed[:5])}"
        return True, f"all {len(recorded)} parts match their SHA-256 in the manifest"
    if scores.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        footer = pq.ParquetFile(scores).metadata.metadata or {}
        recorded = footer.get(SCORES_KEY, b"").decode() or None
        if recorded is None:
            return (None, "written by an older version: no scores hash") if old else \
                (False, "the file's scores hash is gone: the file was rewritten after scoring")
        try:
            actual = parquet_scores_sha256(scores)
        except Exception as exc:  # noqa: BLE001 - a file missing the columns was changed
            return False, f"the scores cannot be read back: {exc}"
    else:
        recorded = record.get("scores_sha256")
        if recorded is None:
            return (None, "written by an older version: no scores hash") if old else \
                (False, "the lineage record holds no scores hash")
        actual = file_sha256(scores)
    same = actual == recorded
    return same, f"SHA-256 of the scores {actual[:12]}... {'matches' if same else 'differs from'} " \
                 f"the {recorded[:12]}... written at scoring"


def _trace_registry(record: dict[str, Any], out: dict[str, Any], check: Any) -> None:
    import tempfile

    from . import tracking
    from .persist import file_sha256

    name, version = record["model_name"], str(record["model_version"])
    info = tracking.model_version_info(f"models:/{name}/{version}")
    out["model"] = info
    run_id = info.get("run_id")
    check("model version", run_id == record.get("mlflow_run_id"),
          f"{name} version {version} was registered from run {run_id}"
          + ("" if run_id == record.get("mlflow_run_id") else f", the scores say {record.get('mlflow_run_id')}"))
    if run_id:
        run = tracking.client().get_run(run_id)
        out["run"] = {"run_id": run_id, "params": dict(run.data.params), "metrics": dict(run.data.metrics),
                      "git_commit": run.data.tags.get("mlflow.source.git.commit"),
                      "data_sha256": run.data.params.get("data.sha256")}
        data_sha = out["run"]["data_sha256"]
        if record.get("training_data_sha256"):
            check("training data", data_sha == record["training_data_sha256"],
                  f"run {run_id} trained on data {str(data_sha)[:16]}...")
    mlflow = tracking.connection.mlflow_module()
    with tempfile.TemporaryDirectory(prefix="vae-anomaly-lineage-") as dst:
        local = Path(tracking.wrap("downloading the registered model", lambda: mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/{version}", dst_path=dst)))
        found = [p for p in (local / "artifacts" / "detector", local / "detector", local)
                 if (p / "model.safetensors").is_file()]
        if not found:
            check("weights", False, f"models:/{name}/{version} holds no model.safetensors")
            return
        actual = file_sha256(found[0] / "model.safetensors")
        meta = json.loads((found[0] / "model.json").read_text())
        same = actual == record.get("weights_sha256") == meta.get("weights_sha256")
        recorded = str(record.get("weights_sha256"))[:12]
        check("weights", same, f"registered artifact SHA-256 {actual[:12]}..., its model.json "
                               f"{str(meta.get('weights_sha256'))[:12]}..., the scores' {recorded}...")


def format_trace(result: dict[str, Any]) -> str:
    r = result["record"]
    lines = [f"scores      {result['scores']}  (scored {r.get('scored_at')}, project {r.get('project_version')}, "
             f"commit {str(r.get('git_commit'))[:12]})",
             f"  <- model  {r.get('model_name')} version {r.get('model_version')}"
             + (f" (alias {r['model_alias']})" if r.get("model_alias") else "")
             + f", weights {str(r.get('weights_sha256'))[:12]}...",
             f"  <- run    {r.get('mlflow_run_id')} (recorded tracking store: {r.get('tracking_uri')})"
             + (f", Prefect flow run {r['prefect_flow_run_id']}" if r.get("prefect_flow_run_id") else "")]
    run = result.get("run")
    if run:
        keys = [k for k in ("val_auroc", "val_auprc", "val_neg_elbo") if k in run["metrics"]]
        lines.append("     metrics " + ", ".join(f"{k} {run['metrics'][k]:.4f}" for k in keys))
        lines.append(f"  <- data   {str(run.get('data_sha256'))[:16]}... (training data fingerprint)")
        lines.append(f"  <- code   commit {run.get('git_commit')}")
    lines.append(f"input       {r.get('input')} ({str(r.get('input_sha256'))[:12]}...)")
    if r.get("model_name"):
        lines.append(f"looked up   in {result.get('tracking_uri')}")
    for c in result["checks"]:
        mark = {True: "ok      ", False: "MISMATCH", None: "skipped "}[c["ok"]]
        lines.append(f"[{mark}] {c['check']}: {c['detail']}")
    return "\n".join(lines)
