"""Matplotlib figures (Agg backend, PNG): what a model learned and how its scores look.

Each function returns a ``Figure``; :func:`save_png` writes it atomically. The
flows log the same figures to MLflow.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

LATENT_METHODS = ("pca", "tsne")


def _plt():  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_png(fig: Any, path: str | Path, dpi: int = 110) -> Path:
    from .atomic import atomic_path

    with atomic_path(path, suffix=".tmp.png") as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    _plt().close(fig)
    return Path(path)


def _to_display(images: np.ndarray) -> np.ndarray:
    """(n, C, H, W) or (n, H, W) in [0, 1] or bytes -> (n, H, W[, 3]) floats for imshow."""
    arr = np.asarray(images, dtype=np.float32)
    if arr.max() > 1.0:
        arr = arr / (65535.0 if np.asarray(images).dtype == np.uint16 else 255.0)
    if arr.ndim == 4:
        arr = arr[:, 0] if arr.shape[1] == 1 else np.moveaxis(arr, 1, -1)
    return np.clip(arr, 0, 1)


def image_grid(images: np.ndarray, ncols: int | None = None, titles: Sequence[str] | None = None,
               suptitle: str | None = None, row_labels: Sequence[str] | None = None,
               col_labels: Sequence[str] | None = None) -> Any:
    """Images in a grid, always with a title (``suptitle``, or how many images of which size) and
    optional per-image ``titles`` and per-row / per-column labels (e.g. a latent dimension and its value)."""
    plt = _plt()
    arr = _to_display(images)
    n = len(arr)
    ncols = ncols or int(np.ceil(np.sqrt(n)))
    nrows = int(np.ceil(n / ncols))
    if suptitle is None:
        size = "x".join(map(str, arr.shape[1:3])) if n else "0"
        suptitle = f"{n} image{'s' if n != 1 else ''} ({size} pixels)"
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.3 * ncols + (0.5 if row_labels else 0),
                                                    1.3 * nrows + 0.5 + (0.2 if col_labels else 0)),
                             squeeze=False, layout="constrained")
    for i, ax in enumerate(axes.ravel()):
        # Ticks and frame off (not axis("off")): the row and column labels stay visible.
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        if i < n:
            ax.imshow(arr[i], cmap="gray" if arr[i].ndim == 2 else None, vmin=0, vmax=1)
            if titles is not None:
                ax.set_title(titles[i], fontsize=7)
    for r, label in enumerate((row_labels or [])[:nrows]):
        axes[r, 0].set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center")
    for c, label in enumerate((col_labels or [])[:ncols]):
        axes[0, c].set_title(label, fontsize=7)
    fig.suptitle(suptitle, fontsize=10)
    return fig


def reconstructions(originals: np.ndarray, reconstructed: np.ndarray, n: int = 8) -> Any:
    """Originals on the top row, reconstructions below."""
    n = min(n, len(originals))
    both = np.concatenate([_to_display(originals[:n]), _to_display(reconstructed[:n])])
    return image_grid(both, ncols=n, suptitle="inputs (top) and reconstructions (bottom)")


def training_curves(history: list[dict[str, float]], *, trim_fraction: float = 0.0,
                    trim_start_epoch: float | None = None) -> Any:
    """Training and validation negative ELBO per epoch (the unweighted objective: no beta, no KL warm-up,
    so the two curves measure the same thing), with loss truncation marked.

    With ``trim_fraction`` > 0 the training curve averages only the rows each batch keeps from
    ``trim_start_epoch`` on (the highest-loss ``trim_fraction`` share is left out), so it drops below the
    validation curve there by design: the warm-up is shaded and the start of truncation drawn.
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 3.8), layout="constrained")
    epochs = [h["epoch"] + 1 for h in history]  # 1-based: "after epoch k"
    first = history[0] if history else {}
    # The negative ELBO when logged (comparable between train and validation); the weighted loss otherwise.
    term = "neg_elbo" if "train_neg_elbo" in first and "val_neg_elbo" in first else "loss"
    name = "-ELBO" if term == "neg_elbo" else "loss"
    planned = trim_fraction > 0 and trim_start_epoch is not None
    # Early stopping can end training before the truncation's start: then every epoch used every row.
    truncated = planned and bool(epochs) and trim_start_epoch < epochs[-1]
    train_label = f"train {name}" + (f" (after warm-up: mean of the {1 - trim_fraction:.0%} lowest-loss rows per batch)"
                                     if truncated else "")
    if f"train_{term}" in first:
        ax.plot(epochs, [h[f"train_{term}"] for h in history], marker=".", label=train_label)
    if f"val_{term}" in first:
        ax.plot(epochs, [h[f"val_{term}"] for h in history], marker=".", label=f"validation {name} (all rows)")
    if truncated:
        ax.axvspan(0, trim_start_epoch, color="0.9", zorder=0, label="warm-up: every row in the loss")
        ax.axvline(trim_start_epoch, color="0.4", ls="--", lw=1)
    ax.set_xlim(left=0)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{name} (nats per row)")
    ax.legend(fontsize=7)
    note = ""
    if truncated:
        note = f"\nloss truncation ({trim_fraction:.0%} of each batch) from epoch {trim_start_epoch:.3g}"
    elif planned:
        note = f"\nstopped before loss truncation (planned from epoch {trim_start_epoch:.3g}): all rows throughout"
    ax.set_title("training curves" + note, fontsize=9)
    return fig


def score_histogram(scores: np.ndarray, threshold: float | None = None, labels: np.ndarray | None = None) -> Any:
    plt = _plt()
    # Constrained layout: MLflow's log_figure saves without bbox_inches="tight", which clipped the x label.
    fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
    scores = np.asarray(scores)
    lo, hi = np.percentile(scores, [0, 99.5])
    bins = np.linspace(lo, hi if hi > lo else lo + 1, 60)
    if labels is None:
        ax.hist(np.clip(scores, lo, hi), bins=bins, alpha=0.8, label="scores")
    else:
        labels = np.asarray(labels).astype(int)
        ax.hist(np.clip(scores[labels == 0], lo, hi), bins=bins, alpha=0.6, label="normal", density=True)
        ax.hist(np.clip(scores[labels == 1], lo, hi), bins=bins, alpha=0.6, label="anomaly", density=True)
    if threshold is not None:
        ax.axvline(threshold, color="k", ls="--", label=f"threshold {threshold:.3g}")
    ax.set_xlabel("anomaly score (higher = more anomalous)")
    ax.set_ylabel("rows" if labels is None else "density")
    ax.set_title(f"anomaly scores of {len(scores):,} rows (top 0.5% drawn in the last bin)", fontsize=10)
    ax.legend(fontsize=8)
    return fig


def roc_pr_curves(labels: np.ndarray, scores: np.ndarray) -> Any:
    from sklearn.metrics import auc, precision_recall_curve, roc_curve

    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.8), layout="constrained")
    fpr, tpr, _ = roc_curve(labels, scores)
    a.plot(fpr, tpr)
    a.plot([0, 1], [0, 1], "k:", lw=0.8)
    a.set(xlabel="false-positive rate", ylabel="true-positive rate", title=f"ROC (AUC {auc(fpr, tpr):.3f})")
    p, r, _ = precision_recall_curve(labels, scores)
    b.plot(r, p)
    b.set(xlabel="recall", ylabel="precision", title=f"precision-recall (AUC {auc(r, p):.3f})")
    return fig


def latent_scatter(latents: np.ndarray, labels: np.ndarray | None = None, method: str = "pca") -> Any:
    """2-D latent space; PCA (or t-SNE) when the latent has more dimensions."""
    if method not in LATENT_METHODS:
        from .errors import ConfigError

        raise ConfigError(f"latent projection must be one of {', '.join(LATENT_METHODS)}, not {method!r}")
    plt = _plt()
    z = np.asarray(latents, dtype=np.float64)
    how = "latent"
    if z.shape[1] > 2:
        if method == "tsne":
            from sklearn.manifold import TSNE

            z = TSNE(2, init="pca", random_state=0).fit_transform(z)
        else:
            from sklearn.decomposition import PCA

            z = PCA(2).fit_transform(z)
        how = method.upper()
    elif z.shape[1] == 1:
        z = np.column_stack([z[:, 0], np.zeros(len(z))])
    fig, ax = plt.subplots(figsize=(5.5, 4.5), layout="constrained")
    if labels is None:
        ax.scatter(z[:, 0], z[:, 1], s=6, alpha=0.8)
    else:
        names, codes = np.unique(np.asarray(labels).astype(str), return_inverse=True)
        cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
        for i, name in enumerate(names[:20]):
            sel = codes == i
            ax.scatter(z[sel, 0], z[sel, 1], s=6, alpha=0.8, color=cmap(i % cmap.N), label=name)
        ax.legend(markerscale=3, fontsize=7, loc="best")
    ax.set(xlabel=f"{how} 1", ylabel=f"{how} 2", title="latent space (posterior means)")
    return fig


def feature_distributions(real: Any, synthetic: Any, columns: Sequence[str] | None = None, max_cols: int = 36,
                          per_row: int = 6) -> Any:
    """Histograms of real versus synthetic values, one panel per column (up to ``max_cols``, ``per_row`` a row)."""
    import pandas as pd
    from matplotlib.ticker import MaxNLocator

    plt = _plt()
    real, synthetic = pd.DataFrame(real), pd.DataFrame(synthetic)
    every = list(columns or real.columns)
    cols = every[:max_cols]
    ncols = min(per_row, len(cols))
    nrows = int(np.ceil(len(cols) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.3 * ncols, 1.9 * nrows + 0.6), squeeze=False,
                             layout="constrained")
    for ax in axes.ravel()[len(cols):]:
        ax.set_visible(False)
    for ax, col in zip(axes.ravel(), cols, strict=False):
        # Few, small ticks: 30 panels of raw values otherwise print labels over each other.
        ax.xaxis.set_major_locator(MaxNLocator(3))
        ax.yaxis.set_major_locator(MaxNLocator(3))
        ax.tick_params(labelsize=6)
        if pd.api.types.is_numeric_dtype(real[col]):
            bins = np.histogram_bin_edges(real[col], 20)
            ax.hist(real[col], bins=bins, alpha=0.6, density=True, label="real")
            ax.hist(synthetic[col], bins=bins, alpha=0.6, density=True, label="synthetic")
        else:
            cats = sorted(set(map(str, real[col])))
            rv = real[col].astype(str).value_counts(normalize=True).reindex(cats, fill_value=0)
            sv = synthetic[col].astype(str).value_counts(normalize=True).reindex(cats, fill_value=0)
            x = np.arange(len(cats))
            ax.bar(x - 0.2, rv, 0.4, label="real")
            ax.bar(x + 0.2, sv, 0.4, label="synthetic")
            ax.set_xticks(x, cats, rotation=45, fontsize=6)
        ax.set_title(str(col), fontsize=7)
    axes[0, 0].legend(fontsize=6)
    shown = f"{len(cols)} of {len(every)} columns" if len(cols) < len(every) else f"all {len(cols)} columns"
    fig.suptitle(f"real vs synthetic rows ({len(real):,} real, {len(synthetic):,} synthetic): {shown}, "
                 "density per column", fontsize=10)
    return fig


def latent_traversal(model: Any, n_steps: int = 7, span: float = 2.5, dims: Sequence[int] | None = None) -> Any:
    """Decode z = 0 with one latent dimension swept over [-span, span] per row (β-VAE disentanglement)."""
    import torch

    latent = model.latent_dim
    dims = list(dims if dims is not None else range(min(latent, 8)))
    device = next(model.parameters()).device
    rows = []
    with torch.no_grad():
        for d in dims:
            z = torch.zeros(n_steps, latent, device=device)
            z[:, d] = torch.linspace(-span, span, n_steps, device=device)
            rows.append(model.likelihood.mean(model.decode(z)).view(n_steps, *model.config.input_shape).cpu().numpy())
    values = np.linspace(-span, span, n_steps)
    return image_grid(np.concatenate(rows), ncols=n_steps,
                      suptitle=f"latent traversal: z_d swept from {-span:g} to {span:g} (other dimensions 0)",
                      row_labels=[f"z_{d}" for d in dims], col_labels=[f"{v:+.2g}" for v in values])


def model_figures(gm: Any, X: Any, y: Any, out: str | Path, method: str = "pca", max_rows: int = 2000) -> list[Path]:
    """Every figure that fits a saved model (curves, latent space, reconstructions, samples, traversal,
    and for a detector the score histogram and ROC/PR) as PNGs in ``out``.

    All figures are drawn into a staging folder first and moved into ``out`` only when every one of
    them succeeded: a failure leaves no partial set behind.
    """
    import shutil
    import tempfile

    from .errors import ConfigError, DataError

    out = Path(out)
    if method not in LATENT_METHODS:
        raise ConfigError(f"--method must be one of {', '.join(LATENT_METHODS)}, not {method!r}")
    if out.exists() and not out.is_dir():
        raise DataError("--out names a file; give a folder for the figures", file=out)
    if len(X) < 2:
        raise DataError(f"plotting needs at least 2 rows, the data has {len(X)}")
    n = min(len(X), max_rows)
    X = X.iloc[:n] if hasattr(X, "iloc") else X[:n]
    y = None if y is None else np.asarray(y)[:n]
    cond = gm.model.config.n_conditions > 0
    figs: dict[str, Any] = {}
    hist = gm.meta.get("extra", {}).get("history") or gm.meta.get("history")
    if hist:
        figs["training_curves.png"] = lambda: training_curves(hist)
    if not cond:
        figs["latent_space.png"] = lambda: latent_scatter(gm.latents(X), y, method)
    if gm.is_image:
        figs["reconstructions.png"] = lambda: reconstructions(X[:8], gm.reconstruct(X[:8], y[:8] if cond else None))
        figs["samples.png"] = lambda: image_grid(
            gm.generate(16, gm.classes[0] if cond else None),
            suptitle="16 samples from the prior" + (f" (class {gm.classes[0]})" if cond else ""))
        if not gm.is_vq and not cond:
            figs["latent_traversal.png"] = lambda: latent_traversal(gm.model)
    if gm.meta.get("extra", {}).get("owner") == "VAEDetector":
        from .detector import VAEDetector

        det = VAEDetector.load(gm.directory) if getattr(gm, "directory", None) else None
        if det is not None:
            scores = det.decision_function(X)
            yb = None
            if y is not None and len(set(map(str, y))) == 2:
                vals = sorted(set(map(str, y)))
                yb = (np.asarray(list(map(str, y))) == vals[1]).astype(int)
            figs["score_histogram.png"] = lambda: score_histogram(scores, det.threshold_, yb)
            if yb is not None:
                figs["roc_pr.png"] = lambda: roc_pr_curves(yb, scores)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.figures-", dir=out.parent))
    try:
        for name, draw in figs.items():
            save_png(draw(), stage / name)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name in figs:
            (stage / name).replace(out / name)
            written.append(out / name)
        return written
    finally:
        shutil.rmtree(stage, ignore_errors=True)
