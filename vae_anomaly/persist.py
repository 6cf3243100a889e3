"""Save and load models as safetensors weights plus JSON; loading never unpickles.

A model folder holds ``model.safetensors`` and ``model.json`` (format version,
model config, preprocessing, the weights' SHA-256, and whatever the estimator
that saved it needs; the schema is :class:`vae_anomaly.saved_model.SavedModel`).
The folder is written atomically; every load checks the JSON against the schema
and the hash, so weights that do not belong to their JSON are refused, not scored.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .atomic import atomic_dir
from .errors import ModelError

FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
META = "model.json"


def file_sha256(path: str | Path, *, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB blocks (memory bounded whatever the size)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def is_model_dir(path: str | Path) -> bool:
    path = Path(path)
    return (path / META).is_file() and (path / WEIGHTS).is_file()


def check_save_target(directory: str | Path) -> Path:
    """Refuse a target whose replacement would lose a user's files.

    A model folder is replaced as a whole; an empty folder is reused; anything else -- a file, a
    folder of other files, the working folder or one of its parents -- is an error.
    """
    directory = Path(directory)
    absolute = directory.absolute()
    cwd = Path.cwd().absolute()
    if absolute == cwd or absolute in cwd.parents or str(directory) in ("", ".", ".."):
        raise ModelError(f"{directory}: refusing to save a model over the working folder or one of its parents; "
                         "give a new folder name")
    if directory.exists():
        if not directory.is_dir():
            raise ModelError(f"{directory} exists and is a file; give a folder name for the model")
        if any(directory.iterdir()) and not is_model_dir(directory):
            raise ModelError(f"{directory} is a folder with other files in it (not a saved model); "
                             "refusing to replace it -- give a new or empty folder")
    return directory


def save_model(directory: str | Path, model: Any, *, preprocessing: dict[str, Any] | None = None,
               extra: dict[str, Any] | None = None) -> Path:
    from safetensors.torch import save_file

    from ._version import __version__
    from .models.ensemble import members_of

    directory = check_save_target(directory)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_dir(directory) as tmp:
        save_file(state, str(tmp / WEIGHTS))
        meta = {
            "format_version": FORMAT_VERSION,
            "library_version": __version__,
            "model_class": type(model).__name__,
            "n_members": len(members_of(model)),
            "model_config": model.config.to_dict(),
            "preprocessing": preprocessing,
            "weights_sha256": file_sha256(tmp / WEIGHTS),
            "extra": extra or {},
        }
        (tmp / META).write_text(json.dumps(meta, indent=1, default=_json_default, allow_nan=False))
    return directory


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def read_meta(directory: str | Path) -> dict[str, Any]:
    """``model.json`` as written, once it is checked against :class:`~vae_anomaly.saved_model.SavedModel`."""
    from .saved_model import SavedModel, validate

    directory = Path(directory)
    meta_path = directory / META
    if not is_model_dir(directory):
        raise ModelError(f"{directory} is not a saved model (needs {META} and {WEIGHTS})")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{meta_path} is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict):
        raise ModelError(f"{meta_path}: expected a JSON object")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"{directory}: model format {meta.get('format_version')} is not supported "
                         f"(this version reads {FORMAT_VERSION})")
    validate(SavedModel, meta, str(meta_path))
    return meta


def verify_weights(directory: str | Path, meta: dict[str, Any]) -> None:
    """The weights file must be the one its JSON was written with."""
    directory = Path(directory)
    actual = file_sha256(directory / WEIGHTS)
    if actual != meta["weights_sha256"]:
        raise ModelError(f"{directory / WEIGHTS}: SHA-256 {actual[:12]}... does not match the "
                         f"{meta['weights_sha256'][:12]}... recorded in {META}; the weights were changed or "
                         "belong to another model. Refusing to load them.")


def load_model(directory: str | Path, device: str = "cpu") -> tuple[Any, dict[str, Any]]:
    """Rebuild the model from JSON and load its weights on ``device`` (a GPU-saved model loads on a CPU)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .device import resolve_device
    from .models import ModelConfig, build_model

    directory = Path(directory)
    meta = read_meta(directory)
    verify_weights(directory, meta)
    # Validated (types, ranges, size budget) before a single tensor is allocated.
    from .errors import ConfigError

    try:
        config = ModelConfig.from_dict(meta["model_config"], source=str(directory / META))
    except ConfigError as exc:
        raise ModelError(str(exc)) from exc
    n_members = meta.get("n_members", 1)  # bounded by the schema (read_meta)
    from .models.ensemble import ModelEnsemble

    model = build_model(config) if n_members == 1 else ModelEnsemble([build_model(config) for _ in range(n_members)])
    dev = resolve_device(device)
    try:
        state = load_file(str(directory / WEIGHTS), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise ModelError(f"{directory / WEIGHTS}: corrupt weights file: {exc}") from exc
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelError(f"{directory}: weights do not match the model config: {exc}") from exc
    model.to(dev).eval()
    return model, meta


def model_owner(directory: str | Path) -> str:
    """Which estimator saved the folder ("VAEDetector", "GenerativeModel", ...)."""
    return str(read_meta(directory).get("extra", {}).get("owner", "model"))


__all__ = ["FORMAT_VERSION", "META", "WEIGHTS", "check_save_target", "file_sha256", "is_model_dir", "load_model",
           "model_owner", "read_meta", "save_model", "verify_weights"]
