"""Figures as a user sees them: nothing clipped when saved the way MLflow's log_figure saves (no
bbox_inches="tight"), comparable curves with loss truncation marked, every column shown without
overlapping ticks, and grids that say what they show."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vae_anomaly import plots


def _inside(fig, artist) -> bool:
    fig.canvas.draw()
    bb, page = artist.get_window_extent(), fig.bbox
    return bb.x0 >= page.x0 - 0.5 and bb.y0 >= page.y0 - 0.5 and bb.x1 <= page.x1 + 0.5 and bb.y1 <= page.y1 + 0.5


def _history(epochs=20):
    out = []
    for e in range(epochs):
        truncated = e >= 2
        out.append({"epoch": e, "train_loss": 30 - e * 0.3 - (8 if truncated else 0), "val_loss": 40 - e * 0.3,
                    "train_neg_elbo": 31 - e * 0.3 - (8 if truncated else 0), "val_neg_elbo": 41 - e * 0.3})
    return out


def test_logged_figures_keep_their_axis_labels_on_the_page():
    rng = np.random.default_rng(0)
    scores, labels = rng.gamma(3, 5, 400), (rng.random(400) < 0.1).astype(int)
    for fig in (plots.score_histogram(scores, 20.0, labels), plots.training_curves(_history()),
                plots.roc_pr_curves(labels, scores + labels * 5)):
        for ax in fig.axes:
            assert _inside(fig, ax.xaxis.label) and _inside(fig, ax.yaxis.label), ax.get_xlabel()
        plots._plt().close(fig)


def test_training_curves_plot_comparable_terms_and_mark_truncation():
    fig = plots.training_curves(_history(), trim_fraction=0.1, trim_start_epoch=2.0)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    # the unweighted -ELBO of both splits (not the beta/warm-up weighted loss against the final objective)
    assert ax.lines[0].get_ydata()[0] == 31 and ax.lines[1].get_ydata()[0] == 41
    assert any("lowest-loss rows" in t for t in labels) and any("all rows" in t for t in labels)
    assert any("warm-up" in t for t in labels)
    assert [ln.get_xdata()[0] for ln in ax.lines[2:]] == [2.0]  # the truncation start is drawn
    assert "truncation" in ax.get_title()
    plots._plt().close(fig)


def test_real_vs_synthetic_shows_every_column_with_readable_ticks():
    rng = np.random.default_rng(0)
    real = pd.DataFrame(rng.normal(size=(200, 30)) * 1000, columns=[f"feature_{i}" for i in range(30)])
    fig = plots.feature_distributions(real, real * 1.01)
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert len(shown) == 30 and "all 30 columns" in fig._suptitle.get_text()
    fig.canvas.draw()
    for ax in shown:
        boxes = [t.get_window_extent() for t in ax.get_xticklabels() if t.get_text()]
        assert all(a.x1 <= b.x0 for a, b in zip(boxes, boxes[1:], strict=False)), ax.get_title()
    plots._plt().close(fig)


def test_grids_and_traversals_say_what_they_show(digits):
    images, _ = digits
    fig = plots.image_grid(images[:16])
    assert fig._suptitle is not None and "16 images (8x8" in fig._suptitle.get_text()
    plots._plt().close(fig)

    torch = pytest.importorskip("torch")
    from vae_anomaly.models import ModelConfig, build_model

    model = build_model(ModelConfig(input_shape=(1, 8, 8), latent_dim=3))
    torch.manual_seed(0)
    fig = plots.latent_traversal(model, n_steps=5)
    assert "latent traversal" in fig._suptitle.get_text()
    rows = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    cols = [ax.get_title() for ax in fig.axes[:5]]
    assert rows == ["z_0", "z_1", "z_2"] and cols == ["-2.5", "-1.2", "+0", "+1.2", "+2.5"]
    plots._plt().close(fig)


def test_training_curves_when_training_stopped_before_truncation():
    fig = plots.training_curves(_history(10), trim_fraction=0.05, trim_start_epoch=50.0)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert not any("warm-up" in t or "lowest-loss" in t for t in labels) and len(ax.lines) == 2
    assert "stopped before loss truncation" in ax.get_title()
    plots._plt().close(fig)
