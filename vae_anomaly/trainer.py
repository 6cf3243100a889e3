"""The trainer: one readable loop, top to bottom.

Seeded shuffling, a validation split, AdamW, gradient clipping, bf16 autocast
on CUDA (always: a GPU fit's speed; CPU fits never use it), early stopping on the validation
loss, a checkpoint after every epoch
(safetensors + JSON, never pickle) and exact resume on CPU.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from .batching import chunk_rows, iter_batches, model_row_bytes
from .checkpoint import load_checkpoint, save_checkpoint, unflatten_optimizer
from .device import resolve_device
from .errors import ConfigError, TrainingError
from .options import INT_SEED, NONE, OPTIONS, TRIM_SHARE, NoiseKind, StoppingRule, check, select

EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass
class TrainConfig:
    """How to train; every field has a default that works on a CPU.

    The fields carry the estimators' parameter names (``VAEDetector(trim_fraction=...)`` is
    ``TrainConfig.trim_fraction``). ``epochs`` and ``batch_size`` may be "auto" until
    :func:`~vae_anomaly.fitting.fit_model` resolves them from the data; the loop trains a resolved config.
    """

    epochs: int | Literal["auto"] = 50
    batch_size: int | Literal["auto"] = 128
    # epochs="auto": the gradient-step budget (None: a generator's AUTO_STEPS) and its epoch cap
    # (None: AUTO_EPOCHS' upper bound).
    max_steps: int | None = None
    max_epochs: int | None = None
    lr: float = 1e-3
    weight_decay: float = 1e-5
    val_fraction: float = 0.1
    patience: int | None = 10
    min_delta: float = 1e-4
    grad_clip: float | None = 10.0
    device: str = "auto"
    n_jobs: int | None = None
    random_state: int = 0  # the seed of the weights, the split, the shuffling and the sampling noise
    checkpoint_dir: str | None = None
    resume: bool = False
    # What the checkpoint was made for (fit_model sets it from the data and the configs); resuming a
    # checkpoint of another request is refused.
    checkpoint_key: str | None = None
    verbose: bool = False
    noise: NoiseKind | None = None
    noise_level: float = 0.2
    # Loss truncation: from ``trim_start`` (share of training) on, each batch's ``trim_fraction`` share of
    # highest-loss rows is left out of the gradient; before it the model learns the bulk of the data.
    trim_fraction: float = 0.0
    trim_start: float = 0.1
    # Which weights to keep and when to stop. "validation": the lowest validation loss, ``patience``
    # epochs without improvement. "separation" (ODIM, Kim et al. ICML 2023): a detector's training rows
    # hold inliers and anomalies; a model that has learned the inliers but not yet the anomalies gives
    # per-row losses that split into two groups, and that split peaks before the model memorises the
    # anomalies. After each epoch a two-component Gaussian mixture is fitted to the min-max-scaled
    # per-row losses of the training rows; the weights where the components lie furthest apart are kept
    # and training stops after ``separation_patience`` gradient steps without a new peak. The epoch
    # count becomes a ceiling, and no label is needed.
    # "none": train for all the epochs and keep the last weights (a fixed budget of steps).
    stopping: StoppingRule = "validation"
    separation_patience: int = 100
    # An ensemble (fit_model): ``n_estimators`` members, each on its own ``max_samples`` share of the rows.
    n_estimators: int = 1
    max_samples: float = 0.8

    def __post_init__(self) -> None:
        # Values a user gave were checked at the boundary; these are the loop's own invariants (a
        # TrainConfig built by hand is checked against the same table).
        check("TrainConfig", {n: getattr(self, n) for n in _CONSTRAINTS}, _CONSTRAINTS)

    @property
    def is_resolved(self) -> bool:
        return self.epochs != "auto" and self.batch_size != "auto"


# The table's rows, but for the loop's own forms: trim_fraction is a share (no "contamination"), and
# max_steps may be None (a generator's AUTO_STEPS).
_CONSTRAINTS = {**select("epochs", "batch_size", "lr", "weight_decay", "val_fraction", "patience", "stopping",
                         "separation_patience", "noise", "noise_level", "trim_start", "device", "n_jobs", "verbose",
                         "n_estimators", "max_samples"),
                "trim_fraction": [TRIM_SHARE], "max_steps": [*OPTIONS["max_steps"], NONE], "random_state": [INT_SEED]}


@dataclass
class TrainResult:
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_val_loss: float = math.inf
    epochs_run: int = 0
    stopped_early: bool = False
    device: str = "cpu"
    seconds: float = 0.0
    samples_per_second: float = 0.0
    val_index: list[int] = field(default_factory=list)  # rows held out for validation (never trained on)
    resumed_from_epoch: int | None = None
    member_results: list[TrainResult] = field(default_factory=list)  # an ensemble's other members
    best_separation: float | None = None  # stopping="separation": the kept epoch's loss separation


def corrupt(x: torch.Tensor, kind: NoiseKind, level: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Noisy copy of ``x`` for denoising training: additive Gaussian, salt-and-pepper or masking."""
    if kind == "gaussian":
        noisy = x + level * torch.randn(x.shape, generator=generator, device=x.device)
        return noisy.clamp(0, 1) if x.dim() == 4 else noisy
    u = torch.rand(x.shape, generator=generator, device=x.device)
    if kind == "mask":
        return torch.where(u < level, torch.zeros_like(x), x)
    salt = torch.rand(x.shape, generator=generator, device=x.device) < 0.5
    return torch.where(u < level, salt.to(x.dtype) * (x.max() if x.numel() else 1), x)


@dataclass
class _LoopState:
    """What the loop carries from epoch to epoch (and what a checkpoint restores)."""

    best_state: dict[str, torch.Tensor]
    start_epoch: int = 0
    bad_epochs: int = 0
    seen: int = 0


def _restore(ckpt_dir: Path, key: str | None, model: nn.Module, opt: torch.optim.Optimizer, gen: torch.Generator,
             device: torch.device, state: _LoopState, result: TrainResult) -> None:
    loaded = load_checkpoint(ckpt_dir, key)
    if loaded is None:
        return
    tensors, meta = loaded
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state.best_state = {k[5:]: v.to(device) for k, v in tensors.items() if k.startswith("best.")}
    unflatten_optimizer(opt, tensors, meta["optimizer"])
    torch.set_rng_state(tensors["rng.cpu"])
    gen.set_state(tensors["rng.shuffle"])
    state.start_epoch, state.bad_epochs = meta["epoch"] + 1, meta["bad_epochs"]
    result.history, result.best_epoch = meta["history"], meta["best_epoch"]
    result.best_val_loss = meta["best_val_loss"]
    result.resumed_from_epoch = int(meta["epoch"])


@dataclass
class _TrainRows:
    """The training rows on the device and how an epoch walks them."""

    X: torch.Tensor
    c: torch.Tensor | None
    batch: int
    steps: int


def _run_epoch(model: nn.Module, opt: torch.optim.Optimizer, rows: _TrainRows, order: torch.Tensor, epoch: int,
               cfg: TrainConfig) -> dict[str, float]:
    """One pass over the training rows; returns the mean of each loss term (one device sync per epoch)."""
    model.train()
    sums: dict[str, torch.Tensor] = {}
    batch, steps = rows.batch, rows.steps
    for step in range(steps):
        idx = order[step * batch:(step + 1) * batch]
        xb = rows.X[idx]
        cb = None if rows.c is None else rows.c[idx]
        progress = (epoch * steps + step) / (cfg.epochs * steps)
        inp = corrupt(xb, cfg.noise, cfg.noise_level) if cfg.noise else xb
        trim = cfg.trim_fraction if progress >= cfg.trim_start else 0.0
        with torch.autocast(xb.device.type, dtype=torch.bfloat16, enabled=xb.device.type == "cuda"):
            out = model.loss(inp, cb, progress, target=xb if cfg.noise else None, **({"trim": trim} if trim else {}))
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        if cfg.grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        # The loss that was back-propagated (not a copy of it) decides whether training diverged.
        for k, v in {**out.terms, "loss": out.loss.detach().float()}.items():
            sums[k] = sums[k] + v if k in sums else v.clone()
    return {f"train_{k}": float(v) / steps for k, v in sums.items()}


# ----------------------------------------------------------------- separation (label-free stopping)
def two_component_separation(losses: np.ndarray, iterations: int = 50) -> float:
    """ODIM's separation of per-row losses: fit a 1-D two-component Gaussian mixture to the min-max-scaled
    losses (EM) and return (mean_1 - mean_2)^2 + (var_1 - var_2)^2. Large when the rows fall into a
    well-fitted bulk and a poorly fitted rest."""
    x = np.asarray(losses, dtype=np.float64)
    x = x[np.isfinite(x)]
    if len(x) < 4 or np.ptp(x) <= 0:
        return 0.0
    x = (x - x.min()) / np.ptp(x)
    means = np.quantile(x, [0.25, 0.9])
    var = np.full(2, max(float(x.var()), 1e-6))
    weights = np.array([0.5, 0.5])
    for _ in range(iterations):
        logp = -0.5 * ((x[:, None] - means) ** 2 / var + np.log(2 * np.pi * var)) + np.log(weights)
        logp -= logp.max(1, keepdims=True)
        resp = np.exp(logp)
        resp /= resp.sum(1, keepdims=True)
        nk = resp.sum(0) + 1e-12
        weights = nk / len(x)
        means = (resp * x[:, None]).sum(0) / nk
        var = np.maximum((resp * (x[:, None] - means) ** 2).sum(0) / nk, 1e-6)
    return float((means[0] - means[1]) ** 2 + (var[0] - var[1]) ** 2)


@torch.no_grad()
def row_losses(model: nn.Module, X: torch.Tensor, c: torch.Tensor | None = None,
               batch_size: int | None = None) -> np.ndarray:
    """Each row's reconstruction NLL at the posterior mean plus its KL (the detector's default score)."""
    from .scoring import score_batch

    model.eval()
    out = [score_batch(model, X[b], None if c is None else c[b])
           for b in iter_batches(len(X), batch_size or chunk_rows(model_row_bytes(model.config.n_features)))]
    return torch.cat(out).float().cpu().numpy()


# ----------------------------------------------------------------- the loop
def train(
    model: nn.Module,
    X: np.ndarray | torch.Tensor,
    c: np.ndarray | torch.Tensor | None = None,
    config: TrainConfig | None = None,
    callbacks: Sequence[EpochCallback] = (),
) -> TrainResult:
    """Fit ``model`` on ``X`` (and conditions ``c``); leaves the best-validation weights loaded."""
    cfg = config or TrainConfig()
    if not cfg.is_resolved:
        raise ConfigError("train() needs whole epochs and batch_size; fitting.fit_model resolves 'auto' from the data")
    device = resolve_device(cfg.device)
    # The sampling noise of training comes from the seed alone; the caller's global generator is
    # restored afterwards (a fit never changes what torch.rand gives the user next).
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(cfg.random_state)
        return _train(model, X, c, cfg, device, callbacks)


def _train(model: nn.Module, X: np.ndarray | torch.Tensor, c: np.ndarray | torch.Tensor | None, cfg: TrainConfig,
           device: torch.device, callbacks: Sequence[EpochCallback]) -> TrainResult:
    gen = torch.Generator().manual_seed(cfg.random_state)

    # Split: the same seed gives the same validation rows (the detector's fpr threshold uses them).
    X_all = torch.as_tensor(np.asarray(X, dtype=np.float32) if not torch.is_tensor(X) else X, dtype=torch.float32)
    c_all = None if c is None else torch.as_tensor(np.asarray(c)).long()
    n = len(X_all)
    if n < 2:
        raise TrainingError(f"need at least 2 rows to train, got {n}")
    perm = torch.randperm(n, generator=gen)
    n_val = int(round(n * cfg.val_fraction)) if n >= 20 else 0
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    X_tr, X_val = X_all[train_idx].to(device), X_all[val_idx].to(device)
    c_tr = None if c_all is None else c_all[train_idx].to(device)
    c_val = None if c_all is None else c_all[val_idx].to(device)
    n_tr = len(X_tr)
    batch = min(cfg.batch_size, n_tr)
    steps = math.ceil(n_tr / batch)
    # A last batch of one row breaks BatchNorm and adds noise: drop it.
    if n_tr % batch == 1 and steps > 1:
        steps -= 1

    rows = _TrainRows(X_tr, c_tr, batch, steps)
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    result = TrainResult(device=str(device), val_index=val_idx.tolist())
    state = _LoopState(best_state={k: v.detach().clone() for k, v in model.state_dict().items()})
    ckpt_dir = Path(cfg.checkpoint_dir) if cfg.checkpoint_dir else None
    if ckpt_dir is not None and cfg.resume:
        _restore(ckpt_dir, cfg.checkpoint_key, model, opt, gen, device, state, result)

    if cfg.stopping == "separation":
        # Epochs without a new separation peak before stopping, from a patience counted in gradient steps;
        # the losses are measured on (up to 4096 of) the training rows themselves.
        patience: float = max(2, math.ceil(cfg.separation_patience / steps))
        sep_rows = torch.arange(n_tr)[:4096] if n_tr <= 4096 else torch.randperm(n_tr, generator=gen)[:4096]
        X_sep = X_tr[sep_rows.to(device)]
        c_sep = None if c_tr is None else c_tr[sep_rows.to(device)]
    else:
        patience = (cfg.patience or math.inf) if cfg.stopping == "validation" else math.inf

    from .progress import progress_bar

    t0 = time.perf_counter()
    with progress_bar(total=cfg.epochs, description="training", enabled=cfg.verbose,
                      completed=state.start_epoch) as bar:
        for epoch in range(state.start_epoch, cfg.epochs):
            if state.bad_epochs >= patience:
                break
            order = torch.randperm(n_tr, generator=gen).to(device)
            metrics = _run_epoch(model, opt, rows, order, epoch, cfg)
            state.seen += steps * batch
            if not math.isfinite(metrics["train_loss"]):
                model.load_state_dict(state.best_state)
                raise TrainingError(
                    f"loss became {metrics['train_loss']} in epoch {epoch}; training stopped. "
                    f"The best weights so far (epoch {result.best_epoch}) are loaded"
                    + (f" and the last good checkpoint is in {ckpt_dir}" if ckpt_dir else "")
                    + ". Try a lower learning rate or check the input scaling.")
            val = mean_loss_terms(model, X_val, c_val, batch_size=max(batch, 1024)) if n_val else {}
            metrics.update({f"val_{k}": v for k, v in val.items()})
            metrics["epoch"] = epoch
            if cfg.stopping == "separation":
                # Higher separation is better; the loop keeps the lowest monitor value.
                metrics["separation"] = two_component_separation(row_losses(model, X_sep, c_sep))
                monitor = -metrics["separation"]
            elif cfg.stopping == "none":
                monitor = -float(epoch)  # every epoch is the best so far: the last weights are kept
            else:
                monitor = metrics.get("val_loss", metrics["train_loss"])
            if monitor < result.best_val_loss - cfg.min_delta:
                result.best_val_loss, result.best_epoch, state.bad_epochs = monitor, epoch, 0
                state.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                state.bad_epochs += 1
            result.history.append(metrics)
            if ckpt_dir is not None:
                save_checkpoint(ckpt_dir, model, opt, state.best_state, gen, {
                    "epoch": epoch, "bad_epochs": state.bad_epochs, "history": result.history,
                    "best_epoch": result.best_epoch, "best_val_loss": result.best_val_loss,
                    "train_config": asdict(cfg), "key": cfg.checkpoint_key})
            for cb_fn in callbacks:
                cb_fn(epoch, metrics)
            bar.advance(f"epoch {epoch + 1}/{cfg.epochs} loss {metrics.get('val_loss', metrics['train_loss']):.3f}"
                        + (f" separation {metrics['separation']:.3f}" if "separation" in metrics else ""))
    result.stopped_early = state.bad_epochs >= patience and len(result.history) < cfg.epochs
    if cfg.stopping != "validation" and result.best_epoch >= 0:
        # While training, best_val_loss held the monitored value (minus the separation); report the
        # kept epoch's own validation loss, and its separation beside it.
        kept = result.history[result.best_epoch - result.history[0]["epoch"]]
        result.best_separation = kept.get("separation")
        result.best_val_loss = kept.get("val_loss", kept["train_loss"])
    result.epochs_run = len(result.history)
    result.seconds = time.perf_counter() - t0
    result.samples_per_second = state.seen / result.seconds if result.seconds > 0 else 0.0
    model.load_state_dict(state.best_state)
    model.eval()
    if model.is_quantized:
        model.fit_prior(encode_codes(model, X_all.to(device)))
    return result


@torch.no_grad()
def mean_loss_terms(model: nn.Module, X: torch.Tensor, c: torch.Tensor | None = None,
                    batch_size: int = 1024) -> dict[str, float]:
    """Mean loss terms on held-out rows with the final objective weighting (progress = 1)."""
    model.eval()
    sums: dict[str, float] = {}
    n = len(X)
    # The caller sizes these batches in rows, not bytes: a VQ-VAE's code perplexity is measured per batch,
    # so the validation metrics depend on how the rows are grouped.
    for b in iter_batches(n, batch_size):
        xb = X[b]
        cb = None if c is None else c[b]
        out = model.loss(xb, cb, 1.0)
        for k, v in out.metrics.items():
            sums[k] = sums.get(k, 0.0) + float(v) * len(xb)
    return {k: v / n for k, v in sums.items()}


@torch.no_grad()
def encode_codes(model: nn.Module, X: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """A VQ-VAE's code indices of the rows of ``X`` (to fit its code prior)."""
    model.eval()
    size = batch_size or chunk_rows(model_row_bytes(model.config.n_features))
    return torch.cat([model.encode_codes(X[b]) for b in iter_batches(len(X), size)])
