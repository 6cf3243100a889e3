"""Issue #13: oversampling by interpolation in the latent space (DeepSMOTE-style)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from vae_anomaly import VAEOversampler


@pytest.fixture(scope="module")
def mixed():
    rng = np.random.default_rng(0)
    n = 600
    y = np.r_[np.zeros(540, int), np.ones(60, int)]
    frame = pd.DataFrame({"a": rng.normal(size=n) + 2 * y, "b": rng.normal(size=n) - y,
                          "count": rng.integers(0, 20, size=n) + 5 * y,
                          "colour": np.where(y == 1, rng.choice(["red", "blue"], n), rng.choice(["green", "blue"], n))})
    return frame, y


@pytest.fixture(scope="module")
def fitted(mixed):
    frame, y = mixed
    return VAEOversampler(generation="latent", latent_sampling="interpolate", epochs=20, random_state=0).fit(frame, y)


def test_interpolated_latents_lie_between_a_row_and_one_of_its_neighbours(fitted):
    z, base, other, lam = fitted.interpolated_latents(500, 1, torch.Generator().manual_seed(0))
    mu = fitted.posterior_[1][0]
    np.testing.assert_allclose(z, mu[base] + lam[:, None] * (mu[other] - mu[base]), rtol=1e-5, atol=1e-6)
    assert ((lam >= 0) & (lam <= 1)).all() and (base != other).all()
    d = torch.cdist(mu, mu)
    d.fill_diagonal_(float("inf"))
    nearest = d.topk(fitted.k_neighbors, largest=False).indices
    assert all(int(o) in nearest[int(b)].tolist() for b, o in zip(base, other))
    # On the segment: the distance to both ends adds up to the segment's length.
    seg = (mu[other] - mu[base]).norm(dim=1)
    np.testing.assert_allclose((z - mu[base]).norm(dim=1) + (mu[other] - z).norm(dim=1), seg, rtol=1e-4, atol=1e-5)


def test_interpolated_rows_keep_categorical_and_integer_columns_valid(mixed, fitted):
    frame, _ = mixed
    rows = fitted.sample(200, 1)
    assert list(rows.columns) == list(frame.columns) and rows.dtypes.equals(frame.dtypes)
    assert set(rows["colour"]) <= set(frame["colour"])
    assert (rows["count"] == np.rint(rows["count"])).all()
    assert rows["count"].between(frame["count"].min(), frame["count"].max()).all()


def test_the_sampling_option_changes_the_output(mixed):
    frame, y = mixed
    a = VAEOversampler(generation="latent", latent_sampling="interpolate", epochs=20, random_state=0).fit_resample(frame, y)[0]
    b = VAEOversampler(generation="latent", latent_sampling="posterior", epochs=20, random_state=0).fit_resample(frame, y)[0]
    assert not a.iloc[600:].reset_index(drop=True).equals(b.iloc[600:].reset_index(drop=True))
    c = VAEOversampler(generation="latent", latent_sampling="interpolate", k_neighbors=1, epochs=20,
                       random_state=0).fit_resample(frame, y)[0]
    assert not a.iloc[600:].reset_index(drop=True).equals(c.iloc[600:].reset_index(drop=True))
