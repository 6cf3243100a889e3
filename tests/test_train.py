"""Trainer behaviour: determinism, resume, checkpoints, NaN handling, devices, save/load."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vae_anomaly.device import resolve_device
from vae_anomaly.errors import DeviceError, ModelError, TrainingError
from vae_anomaly.models import ModelConfig, build_model
from vae_anomaly.persist import load_model, save_model
from vae_anomaly.trainer import TrainConfig, train


def _fit(X, **kw):
    torch.manual_seed(0)
    m = build_model(ModelConfig(X.shape[1:]))
    res = train(m, X, config=TrainConfig(random_state=0, **kw))
    return m, res


def test_seeded_training_is_reproducible(digits):
    X, _ = digits
    a, _ = _fit(X[:400], epochs=3)
    b, _ = _fit(X[:400], epochs=3)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k


def test_resume_gives_the_same_weights_as_one_run(digits, tmp_path):
    X, _ = digits
    X = X[:400]
    full, _ = _fit(X, epochs=6, patience=None)
    torch.manual_seed(0)
    part = build_model(ModelConfig(X.shape[1:]))
    cfg = TrainConfig(random_state=0, epochs=6, patience=None, checkpoint_dir=str(tmp_path))

    class Stop(Exception):
        pass

    def interrupt(epoch, _metrics):
        if epoch == 2:
            raise Stop

    with pytest.raises(Stop):
        train(part, X, config=cfg, callbacks=[interrupt])
    assert json.loads((tmp_path / "manifest.json").read_text())["epoch"] == 2
    torch.manual_seed(123)  # a new process would have another RNG state: the checkpoint restores it
    resumed = build_model(ModelConfig(X.shape[1:]))
    res = train(resumed, X, config=TrainConfig(random_state=0, epochs=6, patience=None, checkpoint_dir=str(tmp_path),
                                               resume=True))
    assert [h["epoch"] for h in res.history] == list(range(6))
    for (k, va), vb in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(va, vb, atol=1e-6), k


def test_early_stopping_stops_and_restores_best(digits):
    X, _ = digits
    _, res = _fit(X[:300], epochs=200, patience=2, lr=3e-2)
    assert res.stopped_early and res.epochs_run < 200
    assert res.best_val_loss == min(h["val_loss"] for h in res.history)


def test_nan_loss_is_a_clear_error_and_keeps_last_checkpoint(digits, tmp_path):
    X, _ = digits
    m = build_model(ModelConfig(X.shape[1:]))
    calls = {"n": 0}
    orig = m.loss

    def poisoned(x, c=None, progress=1.0, target=None):
        out = orig(x, c, progress, target)
        calls["n"] += 1
        if calls["n"] > 10 and m.training:
            out.loss = out.loss * float("nan")
        return out

    m.loss = poisoned
    with pytest.raises(TrainingError, match="loss became nan"):
        train(m, X[:600], config=TrainConfig(epochs=5, checkpoint_dir=str(tmp_path)))
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert (tmp_path / manifest["folder"] / "checkpoint.safetensors").exists()
    assert manifest["epoch"] >= 0


def test_device_selection():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(DeviceError, match="unknown device"):
        resolve_device("tpu")


@pytest.mark.parametrize("kind", ["vae", "vqvae", "cvae"])
def test_save_load_gives_identical_outputs(digits, tmp_path, kind):
    X, y = digits
    cfg = ModelConfig(X.shape[1:], kind=kind, n_conditions=10 if kind == "cvae" else 0)
    m = build_model(cfg)
    train(m, X[:300], y[:300] if kind == "cvae" else None, TrainConfig(epochs=2))
    save_model(tmp_path / "m", m, preprocessing={"type": "image"})
    m2, meta = load_model(tmp_path / "m")
    x = torch.as_tensor(X[:20])
    c = torch.as_tensor(y[:20]) if kind == "cvae" else None
    assert torch.equal(m.eval().reconstruct(x, c), m2.reconstruct(x, c))
    assert meta["model_config"]["kind"] == kind
    # Nothing pickled: the folder is exactly JSON + safetensors.
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["model.json", "model.safetensors"]


def test_load_rejects_corrupt_or_missing(tmp_path):
    with pytest.raises(ModelError, match="not a saved model"):
        load_model(tmp_path)
    m = build_model(ModelConfig((4,)))
    save_model(tmp_path / "m", m)
    (tmp_path / "m" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelError, match="corrupt"):
        load_model(tmp_path / "m")


def test_denoising_training_reduces_noise(digits):
    from vae_anomaly.trainer import corrupt

    X, _ = digits
    torch.manual_seed(0)
    m = build_model(ModelConfig(X.shape[1:]))
    train(m, X[:-200], config=TrainConfig(epochs=30, noise="gaussian", noise_level=0.5))
    x = torch.as_tensor(X[-200:])  # held out
    noisy = corrupt(x, "gaussian", 0.5, torch.Generator().manual_seed(1))
    with torch.no_grad():
        clean = m.reconstruct(noisy)
    assert float(((clean - x) ** 2).mean()) < 0.7 * float(((noisy - x) ** 2).mean())
    assert np.isfinite(clean.numpy()).all()


@pytest.mark.parametrize("field, value, fragment", [
    ("trim_fraction", 0.6, r"trim_fraction must be a number in \[0, 0.5\)"),
    ("trim_fraction", "contamination", r"trim_fraction must be a number in \[0, 0.5\)"),  # the estimator resolves it
    ("max_steps", 0, r"max_steps must be an integer in \[1, 1e\+07\] or None"),
    ("random_state", -1, r"random_state must be an integer in \[0, inf\]"),
])
def test_train_config_checks_each_field_against_the_table(field, value, fragment):
    """trim_fraction, max_steps and random_state follow the table's rows like the other fields."""
    from vae_anomaly.errors import ConfigError

    with pytest.raises(ConfigError, match="TrainConfig: " + fragment):
        TrainConfig(**{field: value})
    assert TrainConfig(trim_fraction=0.25, max_steps=None, random_state=3).trim_fraction == 0.25
