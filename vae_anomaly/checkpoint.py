"""The training checkpoint format: one folder per epoch plus a manifest written last.

A checkpoint is a folder per epoch (weights + state JSON, both carrying one token) and a manifest
written last that names the folder and the files' hashes. A kill at any moment leaves the manifest
pointing at a complete, consistent epoch; files that disagree (mixed epochs, an edit) are refused.
The weights file holds the model, the best weights so far, the optimizer's tensors and the two
random generators' states; everything else (epoch, history, optimizer scalars) is JSON -- never pickle.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import TrainingError

MANIFEST = "manifest.json"


def flatten_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The optimizer's state as safetensors-ready tensors plus JSON-ready scalars and parameter groups."""
    sd = opt.state_dict()
    tensors = {}
    scalars: dict[str, Any] = {}
    for pid, state in sd["state"].items():
        for k, v in state.items():
            if torch.is_tensor(v):
                tensors[f"optim.{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def unflatten_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Load into ``opt`` the state that :func:`flatten_optimizer` split into ``tensors`` and ``meta``."""
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = v
    for key, v in meta["scalars"].items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(directory: Path, model: nn.Module, opt: torch.optim.Optimizer, best_state: dict[str, torch.Tensor],
                    gen: torch.Generator, meta: dict[str, Any]) -> None:
    """Write epoch ``meta["epoch"]``'s checkpoint into ``directory``, then the manifest, then drop older epochs."""
    import shutil
    import uuid

    from safetensors.torch import save_file

    from .atomic import write_text_atomic
    from .persist import file_sha256

    directory.mkdir(parents=True, exist_ok=True)
    epoch = int(meta["epoch"])
    token = f"{epoch}-{uuid.uuid4().hex}"
    folder = directory / f"epoch-{epoch:06d}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors.update({f"best.{k}": v.detach().cpu().contiguous() for k, v in best_state.items()})
    opt_tensors, opt_meta = flatten_optimizer(opt)
    tensors.update(opt_tensors)
    tensors["rng.cpu"] = torch.get_rng_state()
    tensors["rng.shuffle"] = gen.get_state()
    save_file(tensors, str(folder / "checkpoint.safetensors"), metadata={"token": token})
    (folder / "checkpoint.json").write_text(json.dumps({**meta, "token": token, "optimizer": opt_meta}, default=float))
    write_text_atomic(directory / MANIFEST, json.dumps({
        "epoch": epoch, "folder": folder.name, "token": token, "key": meta.get("key"),
        "weights_sha256": file_sha256(folder / "checkpoint.safetensors"),
        "state_sha256": file_sha256(folder / "checkpoint.json")}))
    for old in directory.glob("epoch-*"):
        if old.name != folder.name:
            shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(directory: Path, key: str | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """The last complete checkpoint in ``directory``, or None when there is none.

    Files that do not match their manifest (hash or token), or a checkpoint made for another
    training request (``key``), are a :class:`TrainingError`, never a silent mix.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    from .persist import file_sha256

    manifest_path = directory / MANIFEST
    if not manifest_path.exists():
        return None
    try:
        manifest = json.loads(manifest_path.read_text())
        folder = directory / manifest["folder"]
        weights, state = folder / "checkpoint.safetensors", folder / "checkpoint.json"
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise TrainingError(f"{manifest_path}: unreadable checkpoint manifest ({exc}); delete {directory} "
                            "to start over") from exc
    if key is not None and manifest.get("key") != key:
        raise TrainingError(f"{directory} holds a checkpoint of another training request (other data or options); "
                            "delete it or start without resuming")
    for path, field_name in ((weights, "weights_sha256"), (state, "state_sha256")):
        if not path.is_file() or file_sha256(path) != manifest.get(field_name):
            raise TrainingError(f"{path}: checkpoint file is missing or does not match {manifest_path} "
                                "(written by another epoch, or changed); refusing to resume from it")
    meta = json.loads(state.read_text())
    with safe_open(str(weights), framework="pt") as fh:
        weights_token = (fh.metadata() or {}).get("token")
    if not (weights_token == meta.get("token") == manifest.get("token")):
        raise TrainingError(f"{folder}: weights and state come from different epochs; refusing to resume")
    return load_file(str(weights)), meta
