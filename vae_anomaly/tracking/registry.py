"""The model registry: model URIs, idempotent registration, the ``champion`` alias, loading a registered detector.

A model reference is ``NAME`` (its champion), ``NAME@alias``, ``NAME/version``, a ``models:/`` or
``runs:/`` URI, or a local model folder -- nothing else: a ``file://`` or cloud URI would let a
job copy any readable folder. A registered model is downloaded into a temporary folder that is
removed as soon as the detector is in memory.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ModelError
from .connection import client, is_local, mlflow_module, tracking_uri, wrap
from .manifest import MANIFEST_FILE, MANIFEST_TAG, verify_model_dir

CHAMPION = "champion"
RUN_TAG = "vae_anomaly.run_id"  # on a model version: the training run it was registered for
_NAME = re.compile(r"^[\w.\- ]+$")


def resolve_model_uri(model: str) -> str:
    """``NAME`` -> ``models:/NAME@champion``; ``NAME@alias``, ``NAME/3`` -> registry URIs; ``models:/``,
    ``runs:/`` and existing local model folders pass; anything else is a :class:`ConfigError`."""
    from ..persist import is_model_dir

    model = model.strip()
    if model.startswith(("models:/", "runs:/")):
        return model
    if Path(model).is_dir():
        if is_model_dir(model):
            return model
        raise ConfigError(f"{model} is a folder but not a saved model (no model.json and model.safetensors)")
    if "://" in model or re.match(r"^[A-Za-z][\w+.-]*:", model):
        raise ConfigError(f"model {model!r}: only models:/NAME@alias, models:/NAME/VERSION, runs:/RUN_ID/PATH "
                          "or a local model folder are accepted")
    if "@" in model:
        name, alias = model.split("@", 1)
        if not name or not alias:
            raise ConfigError(f"model {model!r}: expected NAME@alias")
        return f"models:/{model}"
    if "/" in model:
        name, version = model.rsplit("/", 1)
        if not version.isdigit():
            raise ConfigError(f"model {model!r}: expected NAME/VERSION with a numeric version, or a model folder "
                              "that exists")
        return f"models:/{name}/{version}"
    if not _NAME.match(model):
        raise ConfigError(f"model {model!r} is not a valid registered model name")
    return f"models:/{model}@{CHAMPION}"


def model_version_info(model_uri: str) -> dict[str, Any]:
    """Name, version and run id of a ``models:/`` URI; an unknown name, version or alias is a
    :class:`ModelError` naming it (a user error: never retried)."""
    if not model_uri.startswith("models:/"):
        return {}
    ref = model_uri[len("models:/"):]
    c = client()
    if "@" in ref:
        name, alias = ref.split("@", 1)
        _require_model(name)
        mv = wrap(f"looking up {name}@{alias}", lambda: c.get_model_version_by_alias(name, alias),
                  missing=f"model {name!r} has no version with alias {alias!r}")
    elif "/" in ref:
        name, version = ref.rsplit("/", 1)
        _require_model(name)
        mv = wrap(f"looking up {name}/{version}", lambda: c.get_model_version(name, version),
                  missing=f"model {name!r} has no version {version}")
    else:
        return {}
    return {"name": mv.name, "version": str(mv.version), "run_id": mv.run_id, "source": mv.source,
            "tags": dict(mv.tags or {})}


def expected_manifest(model_uri: str, version_info: dict[str, Any] | None = None) -> tuple[str, dict | None]:
    """The recorded hash of a ``models:/`` (its version's tag) or ``runs:/`` (its run's tag) URI, and
    the logged manifest when it can be read. No recorded hash is a :class:`ModelError`.

    ``version_info`` is :func:`model_version_info`'s answer, if already read.
    """
    if model_uri.startswith("models:/"):
        info = version_info or model_version_info(model_uri)
        digest, run_id = info.get("tags", {}).get(MANIFEST_TAG), info.get("run_id")
        where = "model version"
    elif model_uri.startswith("runs:/"):
        run_id = model_uri[len("runs:/"):].split("/", 1)[0]
        digest = wrap(f"reading run {run_id}", lambda: client().get_run(run_id)).data.tags.get(MANIFEST_TAG)
        where = "run"
    else:
        raise ModelError(f"{model_uri}: only models:/ and runs:/ URIs have a recorded hash")
    if not digest:
        raise ModelError(f"{model_uri}: the {where} has no {MANIFEST_TAG} tag (logged by vae-anomaly 0.1.0, or "
                         "not by vae-anomaly): its code cannot be verified; log and register it again")
    manifest = None
    if run_id:
        try:
            manifest = mlflow_module().artifacts.load_dict(f"runs:/{run_id}/{MANIFEST_FILE}")
        except Exception:  # noqa: BLE001 - only used to name the differing files
            manifest = None
    return digest, manifest


def _require_model(name: str) -> None:
    wrap(f"looking up registered model {name!r}", lambda: client().get_registered_model(name),
         missing=f"registered model {name!r} does not exist")


def load_detector(model: str, device: str = "cpu") -> tuple[Any, str]:
    """Load a registered (or logged, or local) detector -- no pickles, no copies left behind.

    Returns the detector and the resolved URI (or folder).
    """
    from ..detector import VAEDetector

    uri = resolve_model_uri(model)
    if not uri.startswith(("models:/", "runs:/")):
        return VAEDetector.load(uri, device=device), str(Path(uri).resolve())
    info = model_version_info(uri)  # precise one-line errors for an unknown name, version or alias
    mlflow = mlflow_module()
    with tempfile.TemporaryDirectory(prefix="vae-anomaly-model-") as dst:
        local = Path(wrap(f"downloading {uri}",
                          lambda: mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=dst)))
        # Only JSON and safetensors are read here (no code runs), but a recorded hash is still checked:
        # weights swapped in the artifact store together with their JSON would pass the weights hash.
        # A version or run logged before the hash existed has nothing to compare with.
        if uri.startswith("runs:/") or info.get("tags", {}).get(MANIFEST_TAG):
            try:
                digest, manifest = expected_manifest(uri, info or None)
            except ModelError:
                digest, manifest = None, None
            if digest:
                verify_model_dir(local, digest, manifest, what=uri)
        candidates = [local / "artifacts" / "detector", local / "detector", local]
        for c in candidates:
            if (c / "model.json").is_file():
                return VAEDetector.load(c, device=device), uri
    raise ModelError(f"{uri} holds no vae-anomaly detector")


def _escape(value: str) -> str:
    return value.replace("'", "\\'")


def register(model_uri: str, name: str, run_id: str, tags: dict[str, str] | None = None) -> str:
    """Register the run's model as a new version -- once: a retried call returns the version already made."""
    mlflow = mlflow_module()

    def existing() -> str | None:
        try:
            found = client().search_model_versions(f"name='{_escape(name)}' and run_id='{_escape(run_id)}'")
        except Exception as exc:  # noqa: BLE001 - no such model yet: nothing registered
            if "RESOURCE_DOES_NOT_EXIST" in str(getattr(exc, "error_code", "")):
                return None
            raise
        mine = [mv for mv in found if (mv.tags or {}).get(RUN_TAG) == run_id]
        return str(min(int(mv.version) for mv in mine)) if mine else None

    def go() -> str:
        already = existing()
        if already is not None:
            return already
        # The logged model's hash moves into the registry with the version: what load_pyfunc checks.
        digest = client().get_run(run_id).data.tags.get(MANIFEST_TAG)
        extra = {MANIFEST_TAG: digest} if digest else {}
        return str(mlflow.register_model(model_uri, name, tags={**(tags or {}), **extra, RUN_TAG: run_id}).version)

    return wrap(f"registering {name}", go)


def champion_version(name: str) -> str | None:
    """The version that holds the ``champion`` alias, or None."""
    from mlflow.exceptions import MlflowException

    from ..errors import TrackingError

    try:
        return str(client().get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException as exc:
        if "RESOURCE_DOES_NOT_EXIST" in str(getattr(exc, "error_code", "")) or "not found" in str(exc).lower() \
                or "does not exist" in str(exc).lower():
            return None
        raise TrackingError(f"reading the champion of {name!r} failed: {str(exc).splitlines()[0]}") from exc


def set_champion(name: str, version: str, reason: str) -> None:
    def go() -> None:
        c = client()
        c.set_registered_model_alias(name, CHAMPION, str(version))
        c.set_model_version_tag(name, str(version), "champion_reason", reason)

    wrap("moving the champion alias", go)


def tag_version(name: str, version: str, tags: dict[str, Any]) -> None:
    def go() -> None:
        c = client()
        for k, v in tags.items():
            c.set_model_version_tag(name, str(version), k, str(v))

    wrap("tagging a model version", go)


def _lock_path(name: str) -> Path:
    uri = tracking_uri()
    safe = re.sub(r"[^\w.-]", "_", name)
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):]).parent / ".vae-anomaly-locks" / f"promote-{safe}.lock"
    key = hashlib.sha256(uri.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "vae-anomaly-locks" / f"{key}-promote-{safe}.lock"


@contextmanager
def promotion_lock(name: str) -> Iterator[None]:
    """Serialise register -> decide -> move-alias for one model name among the jobs of this machine
    (and of every machine sharing a local store's folder). Jobs on other machines against a server
    are kept honest by the re-check of the alias in :func:`vae_anomaly.jobs.promotion.promote`."""
    from ..atomic import exclusive_lock

    with exclusive_lock(_lock_path(name), what=f"the champion of {name!r}", wait=True):
        yield


__all__ = ["CHAMPION", "RUN_TAG", "champion_version", "is_local", "load_detector", "model_version_info",
           "promotion_lock", "register", "resolve_model_uri", "set_champion", "tag_version"]
