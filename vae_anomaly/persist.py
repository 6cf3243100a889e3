"""Save and load models as safetensors weights plus JSON; loading never unpickles.

A model folder holds ``model.safetensors`` and ``model.json`` (format version,
model config, preprocessing, and whatever the owner -- a detector, an
oversampler -- needs). The folder is written atomically.
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


def save_model(directory: str | Path, model: Any, *, preprocessing: dict[str, Any] | None = None,
               extra: dict[str, Any] | None = None) -> Path:
    from safetensors.torch import save_file

    from . import __version__

    directory = Path(directory)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_dir(directory) as tmp:
        save_file(state, str(tmp / WEIGHTS))
        meta = {
            "format_version": FORMAT_VERSION,
            "library_version": __version__,
            "model_class": type(model).__name__,
            "model_config": model.config.to_dict(),
            "preprocessing": preprocessing,
            "weights_sha256": _sha256(tmp / WEIGHTS),
            "extra": extra or {},
        }
        (tmp / META).write_text(json.dumps(meta, indent=1, default=_json_default))
    return directory


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_meta(directory: str | Path) -> dict[str, Any]:
    directory = Path(directory)
    meta_path = directory / META
    if not meta_path.is_file() or not (directory / WEIGHTS).is_file():
        raise ModelError(f"{directory} is not a saved model (needs {META} and {WEIGHTS})")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelError(f"{meta_path} is not valid JSON: {exc}") from exc
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"{directory}: model format {meta.get('format_version')} is not supported "
                         f"(this version reads {FORMAT_VERSION})")
    return meta


def load_model(directory: str | Path, device: str = "cpu") -> tuple[Any, dict[str, Any]]:
    """Rebuild the model from JSON and load its weights on ``device`` (a GPU-saved model loads on a CPU)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .device import resolve_device
    from .models import ModelConfig, build_model

    directory = Path(directory)
    meta = read_meta(directory)
    model = build_model(ModelConfig.from_dict(meta["model_config"]))
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
