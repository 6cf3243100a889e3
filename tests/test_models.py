"""The mathematics of the VAE family against closed forms, and learning on real data (digits)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vae_anomaly.models import CVAE, VAE, VQVAE, FeatureBlock, Likelihood, ModelConfig, build_model, gaussian_kl
from vae_anomaly.models.vqvae import VectorQuantizer
from vae_anomaly.trainer import TrainConfig, train


def test_gaussian_kl_closed_form():
    mu = torch.tensor([[0.5, -1.0]])
    logvar = torch.log(torch.tensor([[2.0, 0.25]]))
    # KL(N(m, s^2) || N(0, 1)) = 0.5 (s^2 + m^2 - 1 - ln s^2)
    expected = [0.5 * (2.0 + 0.25 - 1 - math.log(2.0)), 0.5 * (0.25 + 1.0 - 1 - math.log(0.25))]
    assert gaussian_kl(mu, logvar)[0].tolist() == pytest.approx(expected, rel=1e-6)
    assert gaussian_kl(torch.zeros(3, 4), torch.zeros(3, 4)).abs().max() == 0


def test_kl_matches_monte_carlo():
    torch.manual_seed(0)
    mu, logvar = torch.tensor([0.3, -0.7]), torch.tensor([-0.5, 0.4])
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros(2), torch.ones(2))
    z = q.sample((200_000,))
    mc = (q.log_prob(z) - p.log_prob(z)).mean(0)
    assert gaussian_kl(mu, logvar).tolist() == pytest.approx(mc.tolist(), abs=0.01)


def test_likelihood_terms_closed_form():
    blocks = [FeatureBlock("gaussian", 0, 1), FeatureBlock("categorical", 1, 4), FeatureBlock("bernoulli", 4, 5)]
    lik = Likelihood(blocks, 5)
    with torch.no_grad():
        lik.logvar.fill_(math.log(0.5))
    out = torch.tensor([[1.0, 0.0, math.log(2.0), 0.0, 0.0]])
    x = torch.tensor([[2.0, 0.0, 1.0, 0.0, 1.0]])
    nll = lik.nll_per_feature(out, x)[0]
    gauss = 0.5 * (math.log(2 * math.pi) + math.log(0.5) + 1.0 / 0.5)
    cat = -math.log(2.0 / 4.0)  # softmax of logits (0, ln 2, 0) gives 2/4 to the observed category
    bern = math.log(2.0)  # sigmoid(0) = 0.5
    assert nll.tolist() == pytest.approx([gauss, cat, bern], rel=1e-5)
    assert lik.nll(out, x).item() == pytest.approx(gauss + cat + bern, rel=1e-5)


def test_loss_is_summed_over_dimensions_not_averaged():
    torch.manual_seed(0)
    m = VAE(ModelConfig((1, 8, 8)))
    x = torch.rand(16, 1, 8, 8).round()
    out = m.loss(x)
    # 64 Bernoulli pixels at ~p=0.5 cost ~64 ln 2 nats: a per-pixel mean would be ~0.69.
    assert out.metrics["nll"] > 30


def test_beta_capacity_and_warmup_weighting():
    torch.manual_seed(0)
    x = torch.randn(32, 6)
    base = VAE(ModelConfig((6,), beta=4.0))
    torch.manual_seed(1)
    out = base.loss(x)
    nll, kl = out.metrics["nll"], out.metrics["kl"]
    assert out.metrics["loss"] == pytest.approx(nll + 4.0 * kl, rel=1e-5)
    cap = VAE(ModelConfig((6,), beta=4.0, capacity=10.0, capacity_anneal=0.5))
    cap.load_state_dict(base.state_dict())
    torch.manual_seed(1)
    o = cap.loss(x, progress=0.25)  # C = 10 * 0.25 / 0.5 = 5
    assert o.metrics["loss"] == pytest.approx(nll + 4.0 * abs(kl - 5.0), rel=1e-5)
    warm = VAE(ModelConfig((6,), beta=1.0, kl_warmup=0.5))
    warm.load_state_dict(base.state_dict())
    torch.manual_seed(1)
    o = warm.loss(x, progress=0.1)
    assert o.metrics["loss"] == pytest.approx(nll + 0.2 * kl, rel=1e-5)


@pytest.mark.parametrize("kind", ["vae", "cvae", "vqvae"])
def test_loss_falls_on_digits(digits, kind):
    X, y = digits
    cfg = ModelConfig(X.shape[1:], kind=kind, n_conditions=10 if kind == "cvae" else 0)
    torch.manual_seed(0)
    model = build_model(cfg)
    res = train(model, X, y if kind == "cvae" else None, TrainConfig(epochs=4, random_state=0))
    losses = [h["val_loss"] for h in res.history]
    assert losses[-1] < 0.8 * losses[0]


def test_mlp_models_on_table(cancer):
    from vae_anomaly.data import TabularTransformer

    frame, _ = cancer
    Z = TabularTransformer().fit(frame).transform(frame)
    for kind in ("vae", "vqvae"):
        m = build_model(ModelConfig((Z.shape[1],), kind=kind))
        res = train(m, Z, config=TrainConfig(epochs=15))
        assert res.history[-1]["val_loss"] < res.history[0]["val_loss"]


@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 8, 8), (3, 32, 32)])
def test_conv_shapes_roundtrip(shape):
    for kind in ("vae", "vqvae"):
        m = build_model(ModelConfig(shape, kind=kind)).eval()
        x = torch.rand(3, *shape)
        assert m.reconstruct(x).shape == x.shape
        assert m.sample(2).shape == (2, *shape)


def test_cvae_samples_are_classified_as_their_class(digits):
    from sklearn.linear_model import LogisticRegression

    X, y = digits
    torch.manual_seed(0)
    model = CVAE(ModelConfig(X.shape[1:], kind="cvae", n_conditions=10))
    train(model, X, y, TrainConfig(epochs=25, random_state=0))
    clf = LogisticRegression(max_iter=2000).fit(X.reshape(len(X), -1), y)
    gen = torch.Generator().manual_seed(0)
    accs = []
    for label in range(10):
        s = model.sample(50, label, generator=gen).numpy().reshape(50, -1)
        accs.append((clf.predict(s) == label).mean())
    assert np.mean(accs) > 0.6, accs  # chance is 0.1


def test_vqvae_uses_its_codebook_and_samples(digits):
    X, _ = digits
    torch.manual_seed(0)
    model = VQVAE(ModelConfig(X.shape[1:], kind="vqvae", codebook_size=32))
    res = train(model, X, config=TrainConfig(epochs=5))
    assert res.history[-1]["train_code_usage"] > 0.5
    assert res.history[-1]["train_perplexity"] > 8
    codes = model.encode_codes(torch.as_tensor(X[:500]))
    assert len(torch.unique(codes)) >= 16
    # Prior fitted after training: sampling works and follows the code frequencies.
    assert not torch.allclose(model.prior_logits, torch.zeros_like(model.prior_logits))
    s = model.sample(8)
    assert s.shape == (8, 1, 8, 8) and s.std() > 0.05


def test_vector_quantizer_restarts_dead_codes():
    torch.manual_seed(0)
    vq = VectorQuantizer(2, 8, decay=0.5, dead_code_threshold=0.5).train()
    vq(torch.randn(64, 2))
    vq.embed[0] = 100.0  # push one code far from all data: it dies
    for _ in range(10):
        vq(torch.randn(64, 2))
    assert vq.embed[0].abs().max() < 10


@pytest.mark.parametrize("field, value, fragment", [
    ("latent_dim", 5000, r"latent_dim must be an integer in \[1, 4096\]"),
    ("codebook_size", 0, r"codebook_size must be an integer in \[1, 1e\+06\]"),
    ("code_dim", 10**6, r"code_dim must be an integer in \[1, 65536\]"),
    ("n_positions", 2.5, r"n_positions must be an integer in \[1, 65536\]"),
    ("conv_channels", (16, 0), r"conv_channels must be a non-empty list of integers in \[1, 65536\]"),
    ("table_hidden_dims", (), r"table_hidden_dims must be a non-empty list"),
])
def test_model_config_sizes_follow_the_options_table(field, value, fragment):
    """The sizes are checked by the table's rows (the same rule as the estimators'), upper bounds included."""
    from vae_anomaly.errors import ConfigError
    from vae_anomaly.models import ModelConfig

    with pytest.raises(ConfigError, match="ModelConfig: " + fragment):
        ModelConfig(**{field: value})
    assert ModelConfig(input_shape=(4,), codebook_size=8, code_dim=2, n_positions=2).codebook_size == 8
