"""The hash of a logged model folder: every file's SHA-256 in a manifest, and the check against it.

Shared by logging (:mod:`.model`) and loading (:mod:`.registry`, :func:`.model.load_pyfunc`); a leaf of the
``tracking`` package (no MLflow, no other tracking module), so those two import it and never each other
both ways.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..errors import ModelError

MANIFEST_TAG = "vae_anomaly.model_sha256"  # run tag and model version tag: SHA-256 of the manifest
MANIFEST_FILE = "vae_anomaly_model_manifest.json"  # run artifact: the manifest itself (to name what differs)
# Written by MLflow when a registered model is downloaded (name and version), not at logging.
_NOT_HASHED = {"registered_model_meta"}


def file_manifest(model_dir: str | Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file in a model folder (sorted, POSIX paths)."""
    from ..persist import file_sha256

    root = Path(model_dir)
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_symlink():
            raise ModelError(f"{p}: model folders hold no symbolic links")
        if p.is_file() and p.relative_to(root).as_posix() not in _NOT_HASHED:
            out[p.relative_to(root).as_posix()] = file_sha256(p)
    return out


def manifest_sha256(manifest: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def verify_model_dir(model_dir: str | Path, expected_sha256: str, manifest: dict[str, str] | None = None,
                     what: str = "model") -> None:
    """Refuse a model folder whose files are not exactly those hashed when it was logged.

    ``manifest`` (the logged one, when its own hash matches) lets the error name the files that differ.
    """
    actual = file_manifest(model_dir)
    if manifest_sha256(actual) == expected_sha256:
        return
    if manifest is not None and manifest_sha256(manifest) == expected_sha256:
        changed = sorted(k for k in actual.keys() & manifest.keys() if actual[k] != manifest[k])
        added = sorted(actual.keys() - manifest.keys())
        missing = sorted(manifest.keys() - actual.keys())
        parts = [f"{label}: {', '.join(v[:5])}{' ...' if len(v) > 5 else ''}"
                 for label, v in (("changed", changed), ("added", added), ("missing", missing)) if v]
        detail = "; ".join(parts)
    else:
        detail = "the files' hashes do not match"
    raise ModelError(f"{what}: refusing to load: its files differ from those recorded when it was logged "
                     f"({MANIFEST_TAG} {expected_sha256[:12]}...; {detail}); the artifact store was changed")
