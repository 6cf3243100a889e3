"""Image likelihoods (Gaussian, continuous Bernoulli) and Serrà et al.'s input-complexity correction."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad

from vae_anomaly import VAEDetector
from vae_anomaly.errors import ConfigError, ModelError
from vae_anomaly.models import ModelConfig, build_model
from vae_anomaly.models.likelihoods import IMAGE_LOGVAR_INIT, LOGVAR_MIN, cb_icdf, cb_log_norm, cb_mean
from vae_anomaly.scoring import complexity_bits, complexity_corrected


def _cb_density(x: float, lam: float) -> float:
    """The continuous Bernoulli's density from the paper's closed form (float64)."""
    c = 2.0 if lam == 0.5 else 2 * math.atanh(1 - 2 * lam) / (1 - 2 * lam)
    return c * lam ** x * (1 - lam) ** (1 - x)


def _model(kind: str):
    return build_model(ModelConfig((1, 8, 8), image_likelihood=kind))


# ------------------------------------------------------------------ continuous Bernoulli
@pytest.mark.parametrize("lam", [0.02, 0.3, 0.4999, 0.5, 0.5003, 0.7, 0.99])
def test_cb_closed_form_normaliser_mean_and_density(lam):
    logit = torch.tensor([math.log(lam / (1 - lam))], dtype=torch.float32)
    # The density integrates to 1 and its mean is E[x] (numerically, in float64).
    assert quad(lambda x: _cb_density(x, lam), 0, 1)[0] == pytest.approx(1.0, abs=1e-9)
    mean = quad(lambda x: x * _cb_density(x, lam), 0, 1)[0]
    assert float(cb_mean(logit)) == pytest.approx(mean, abs=1e-5)
    assert float(cb_log_norm(logit)) == pytest.approx(math.log(_cb_density(0.0, lam) / (1 - lam)), abs=1e-5)
    # Inverse CDF: F(F^-1(u)) = u.
    for u in (0.1, 0.5, 0.9):
        x = float(cb_icdf(logit, torch.tensor([u])))
        assert quad(lambda t: _cb_density(t, lam), 0, x)[0] == pytest.approx(u, abs=1e-4)


def test_cb_model_pixel_nll_is_the_closed_form():
    """A model built with image_likelihood='continuous_bernoulli' scores a pixel by -log CB(x | lambda)."""
    lik = _model("continuous_bernoulli").likelihood
    logits = torch.linspace(-6, 6, 64).view(1, 64)
    x = torch.rand(1, 64, generator=torch.Generator().manual_seed(0))
    nll = lik.nll_per_feature(logits, x)[0]
    lams = torch.sigmoid(logits[0]).double().tolist()
    expected = [-math.log(_cb_density(float(xi), lam)) for xi, lam in zip(x[0].tolist(), lams, strict=True)]
    np.testing.assert_allclose(nll.double().numpy(), expected, rtol=1e-4, atol=1e-4)
    # Not the plain Bernoulli cross-entropy (what the model would use if the option were dropped).
    bern = _model("bernoulli").likelihood.nll_per_feature(logits, x)[0]
    assert (bern - nll).abs().max() > 0.5
    # mean() and sample() follow the same distribution; the gradient is finite at logit 0 and far out.
    assert torch.allclose(lik.mean(logits)[0], cb_mean(logits[0]))
    draws = lik.sample(torch.zeros(4000, 64) + 2.0, torch.Generator().manual_seed(1))
    assert 0 <= float(draws.min()) and float(draws.max()) <= 1
    assert float(draws.mean()) == pytest.approx(float(cb_mean(torch.tensor(2.0))), abs=0.01)
    z = torch.tensor([0.0, 1e-4, 50.0, -50.0], requires_grad=True)
    cb_log_norm(z).sum().backward()
    assert torch.isfinite(z.grad).all()


# ------------------------------------------------------------------ Gaussian
def test_gaussian_pixels_learned_bounded_variance():
    lik = _model("gaussian").likelihood
    assert lik.logvar.shape == (64,)
    assert torch.allclose(lik.logvar, torch.full((64,), IMAGE_LOGVAR_INIT))
    mu = torch.full((1, 64), 0.25)
    x = torch.full((1, 64), 0.75)
    nll = lik.nll_per_feature(mu, x)[0, 0].detach()
    assert float(nll) == pytest.approx(0.5 * (math.log(2 * math.pi) + IMAGE_LOGVAR_INIT
                                              + 0.25 / math.exp(IMAGE_LOGVAR_INIT)), rel=1e-5)
    with torch.no_grad():
        lik.logvar.fill_(-100.0)  # a pixel that is always 0 must not reach an NLL of -inf
    assert float(lik.nll_per_feature(x, x)[0, 0].detach()) == pytest.approx(0.5 * (math.log(2 * math.pi) + LOGVAR_MIN))
    assert torch.equal(lik.mean(mu), mu)


def test_model_config_validates_and_keeps_image_likelihood():
    with pytest.raises(ConfigError, match="image_likelihood"):
        ModelConfig((1, 8, 8), image_likelihood="poisson")
    cfg = ModelConfig((1, 8, 8), image_likelihood="gaussian")
    assert ModelConfig.from_dict(cfg.to_dict()).image_likelihood == "gaussian"
    old = cfg.to_dict()
    del old["image_likelihood"]  # a model saved before the option: Bernoulli pixels, as then
    assert ModelConfig.from_dict(old).image_likelihood == "bernoulli"


# ------------------------------------------------------------------ complexity correction
def _flat_and_noisy(n: int = 4) -> np.ndarray:
    rng = np.random.default_rng(0)
    flat = np.full((n, 1, 8, 8), 0.5, np.float32)
    noisy = rng.random((n, 1, 8, 8)).astype(np.float32)
    return np.concatenate([flat, noisy])


@pytest.mark.parametrize("method", ["png", "zlib"])
def test_complexity_corrected_ranking(method):
    images = _flat_and_noisy()
    bits = complexity_bits(images, method)
    assert bits[4:].min() > bits[:4].max() + 8 * 20  # noise compresses far worse than a flat image
    # The model's NLL ranks the noisy images as more anomalous, but by less than their extra complexity:
    # once corrected, the flat images are the surprising ones (Serrà et al.'s case for OOD detection).
    nll_nats = np.concatenate([np.full(4, 50.0), np.full(4, 50.0 + 0.5 * (bits[4:].min() - bits[:4].max()) * math.log(2))])
    corrected = complexity_corrected(nll_nats, images, method)
    assert nll_nats[4:].min() > nll_nats[:4].max()
    assert corrected[:4].min() > corrected[4:].max()
    np.testing.assert_allclose(corrected, (nll_nats / math.log(2) - bits) / 64)


def test_complexity_refuses_what_it_cannot_compress():
    with pytest.raises(ConfigError, match="images"):
        complexity_bits(np.zeros((3, 64)), "zlib")
    with pytest.raises(ConfigError, match="channels"):
        complexity_bits(np.zeros((3, 2, 8, 8)), "png")
    with pytest.raises(ConfigError, match="complexity_correction"):
        VAEDetector(complexity_correction="zlib", epochs=5).fit(np.random.default_rng(0).random((30, 4)))


# ------------------------------------------------------------------ detector wiring and persistence
@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0).astype(np.float32), d.target


@pytest.mark.parametrize(("lik", "correction"), [("continuous_bernoulli", "png"), ("gaussian", "zlib")])
def test_detector_options_are_applied_and_survive_save_load(digits, tmp_path, lik, correction):
    X, y = digits
    det = VAEDetector(image_likelihood=lik, complexity_correction=correction, epochs=60, random_state=0,
                      device="cpu").fit(X[y == 0][:80])
    assert det.model_.config.image_likelihood == lik
    assert {b.kind for b in det.model_.likelihood.blocks} == {lik}
    test = X[:40, None]
    s = det.decision_function(test)
    # The correction is really applied: it equals the uncorrected score in bits/dim minus the PNG/zlib bits/dim.
    raw = det.set_params(complexity_correction=None).decision_function(test)
    det.set_params(complexity_correction=correction)
    np.testing.assert_allclose(s, (raw / math.log(2) - complexity_bits(test, correction)) / 64, rtol=1e-6)
    assert not np.allclose(s, raw)
    assert np.isfinite(det.decision_scores_).all()

    det.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["extra"]["params"]["image_likelihood"] == lik
    assert meta["extra"]["params"]["complexity_correction"] == correction
    back = VAEDetector.load(tmp_path / "m")
    assert back.image_likelihood == lik and back.complexity_correction == correction
    assert back.model_.config.image_likelihood == lik
    np.testing.assert_allclose(back.decision_function(test), s, rtol=1e-5)
    if lik == "gaussian":  # the learned per-pixel variance is part of the weights
        assert torch.equal(back.model_.likelihood.logvar, det.model_.likelihood.logvar)


def test_detector_refuses_unknown_image_options():
    with pytest.raises(ConfigError, match="image_likelihood"):
        VAEDetector(image_likelihood="poisson").fit(np.zeros((10, 8, 8), np.float32))
    with pytest.raises(ConfigError, match="complexity_correction"):
        VAEDetector(complexity_correction="gzip").fit(np.zeros((10, 8, 8), np.float32))


def test_load_refuses_a_tampered_image_likelihood(digits, tmp_path):
    X, y = digits
    VAEDetector(epochs=5, random_state=0, device="cpu").fit(X[y == 1][:40]).save(tmp_path / "m")
    path = tmp_path / "m" / "model.json"
    meta = json.loads(path.read_text())
    meta["extra"]["params"]["image_likelihood"] = "poisson"
    path.write_text(json.dumps(meta))
    with pytest.raises((ModelError, ConfigError), match="image_likelihood"):
        VAEDetector.load(tmp_path / "m")


def test_images_default_to_gaussian_pixels_and_old_models_load_as_bernoulli(digits, tmp_path):
    """The image default is Gaussian pixels; a model saved before the option (no image_likelihood in its
    JSON) was trained with Bernoulli pixels and loads as one."""
    X, y = digits
    det = VAEDetector(epochs=5, random_state=0, device="cpu").fit(X[y == 2][:40])
    assert det.image_likelihood == "gaussian" and det.model_.config.image_likelihood == "gaussian"
    old = VAEDetector(image_likelihood="bernoulli", epochs=5, random_state=0, device="cpu").fit(X[y == 2][:40])
    old.save(tmp_path / "old")
    path = tmp_path / "old" / "model.json"
    meta = json.loads(path.read_text())
    del meta["extra"]["params"]["image_likelihood"], meta["model_config"]["image_likelihood"]
    path.write_text(json.dumps(meta))
    back = VAEDetector.load(tmp_path / "old")
    assert back.image_likelihood == "bernoulli" and back.model_.config.image_likelihood == "bernoulli"
    np.testing.assert_allclose(back.decision_function(X[:20, None]), old.decision_function(X[:20, None]), rtol=1e-5)
