"""``vae-anomaly fit``: train a model from a data file and save it to a folder, surviving a kill.

The target folder is checked before any training (a folder of someone's files is never replaced).
A checkpoint is kept after every epoch in a hidden folder beside the target, keyed by the data's
fingerprint and the options: rerunning the same command after a crash resumes from it; another
command (other data, other options) starts fresh. The checkpoint is removed once the model is saved.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any


def checkpoint_dir_for(out: Path, request: dict[str, Any]) -> Path:
    key = hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return out.absolute().parent / f".{out.name}.checkpoint-{key}"


def fit_and_save(data: str | Path, out: str | Path, *, label: str | None = None, id_column: str | None = None,
                 kind: str = "vae", epochs: int | str = "auto", noise: str | None = None,
                 options: list[str] | dict[str, Any] | None = None, resume: bool = True,
                 verbose: bool = False) -> dict[str, Any]:
    from .data import load_dataset
    from .detector import VAEDetector
    from .options import MODEL_KINDS, Options, check
    from .persist import check_save_target

    out = check_save_target(out)
    check("fit", {"--kind": kind}, {"--kind": [Options(MODEL_KINDS)]})
    if kind == "cvae":
        return _fit_cvae(data, out, label=label, id_column=id_column, epochs=epochs, options=options,
                         verbose=verbose)
    from .options import parse_set_options

    opts = options if isinstance(options, dict) else parse_set_options(options, VAEDetector)
    params = {"kind": kind, "epochs": epochs, "verbose": verbose, **({"noise": noise} if noise else {}), **opts}
    det = VAEDetector(**params)
    det._check_params()  # refuse bad options before reading a large file
    ds = load_dataset(data, label_column=label, id_column=id_column)
    request = {"data": ds.fingerprint["sha256"], "params": {k: v for k, v in params.items() if k != "verbose"}}
    ckpt = checkpoint_dir_for(out, request)
    resumed_from = None
    if not resume:
        shutil.rmtree(ckpt, ignore_errors=True)
    det.fit(ds.X, checkpoint_dir=ckpt, resume=resume)
    resumed_from = det.train_result_.resumed_from_epoch
    # Remembered with the model: scoring this file again carries the ids through and leaves the labels out.
    det.data_columns_ = {"id": [id_column] if id_column else [], "label": [label] if label else []}
    det.save(out)
    shutil.rmtree(ckpt, ignore_errors=True)
    return {"saved": str(out), "epochs_run": det.train_result_.epochs_run, "threshold": det.threshold_,
            "resumed_from_epoch": resumed_from}


def _fit_cvae(data: str | Path, out: Path, *, label: str | None, id_column: str | None, epochs: int | str,
              options: list[str] | dict[str, Any] | None, verbose: bool) -> dict[str, Any]:
    from .data import load_dataset
    from .errors import ConfigError
    from .generative import FIT_OPTIONS, GenerativeModel
    from .options import INT_SEED, check, parse_set_options, select

    if label is None:
        raise ConfigError("--kind cvae needs --label (the condition)")
    opts = options if isinstance(options, dict) else parse_set_options(options)
    # --set may override --epochs; "auto" goes through (TrainConfig resolves it from the data).
    params = {"epochs": epochs, "verbose": verbose, **opts}
    # before a large file is read; GenerativeModel.fit takes an int seed (no None or RandomState)
    check("fit --kind cvae", params, {**select(*FIT_OPTIONS), "random_state": [INT_SEED]}, known=True)
    ds = load_dataset(data, label_column=label, id_column=id_column)
    gm = GenerativeModel.fit(ds.X, ds.y, kind="cvae", **params)
    gm.save(out)
    return {"saved": str(out), "classes": gm.classes}
