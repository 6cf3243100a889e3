"""Generation, denoising, compression, plots and the Fashion-MNIST recipe -- pictures checked for content."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import DATA
from vae_anomaly.codes import pack_codes, unpack_codes
from vae_anomaly.data import write_idx
from vae_anomaly.errors import ConfigError, ModelError
from vae_anomaly.generative import GenerativeModel
from vae_anomaly.image_metrics import as_unit_images, psnr, ssim
from vae_anomaly.trainer import corrupt

BIN = Path(sys.executable).parent


def digits_u8():
    d = np.load(DATA / "digits.npz")
    return d["X"], d["y"]


def assert_real_picture(path: Path, min_size: int = 100):
    img = np.asarray(Image.open(path).convert("L"), dtype=np.float32)
    assert img.shape[0] >= min_size and img.shape[1] >= min_size, img.shape
    assert img.std() > 10, "picture is blank or constant"
    assert len(np.unique(img)) > 20


def test_bit_packing_roundtrip():
    rng = np.random.default_rng(0)
    for bits in (1, 3, 6, 9):
        codes = rng.integers(0, 2**bits, size=(37, 5))
        packed = pack_codes(codes, bits)
        assert packed.nbytes == int(np.ceil(codes.size * bits / 8))
        np.testing.assert_array_equal(unpack_codes(packed, bits, codes.shape), codes)


def test_quality_metrics():
    a = np.random.default_rng(0).random((4, 1, 16, 16))
    assert psnr(a, a) == float("inf") and ssim(a, a) == pytest.approx(1.0)
    noisy = np.clip(a + 0.2 * np.random.default_rng(1).normal(size=a.shape), 0, 1)
    assert 5 < psnr(a, noisy) < 20 and ssim(a, noisy) < 0.9


def test_names_moved_out_of_generative_still_import_from_it():
    """The code-file format, the image metrics and the command reports have their own modules; the old
    import path (``from vae_anomaly.generative import psnr``) gives the same objects."""
    import vae_anomaly.codes as codes
    import vae_anomaly.generative as generative
    import vae_anomaly.generative_reports as reports
    import vae_anomaly.image_metrics as metrics

    for module in (codes, metrics, reports):
        for name, where in generative._MOVED.items():
            if where == module.__name__.rsplit(".", 1)[1]:
                assert getattr(generative, name) is getattr(module, name)
    assert set(generative._MOVED) >= {"save_codes", "load_codes", "psnr", "ssim", "encode_report", "denoise_report"}
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        generative.nothing_here  # noqa: B018


def test_cvae_generates_the_requested_class(tmp_path):
    from sklearn.linear_model import LogisticRegression

    X, y = digits_u8()
    gm = GenerativeModel.fit(X, y, kind="cvae", epochs=25)
    gm.save(tmp_path / "m")
    gm2 = GenerativeModel.load(tmp_path / "m")
    clf = LogisticRegression(max_iter=3000).fit(X.reshape(len(X), -1) / 255, y)
    hits = [(clf.predict(gm2.generate(30, k, seed=1).reshape(30, -1) / 255) == k).mean() for k in range(10)]
    assert np.mean(hits) > 0.6, hits
    s = gm2.generate(5, 3)
    assert s.shape == (5, 1, 8, 8) and s.dtype == np.uint8
    with pytest.raises(ConfigError, match="pass one of"):
        gm2.generate(2)
    with pytest.raises(ConfigError, match="unknown class"):
        gm2.generate(2, 42)


def test_denoising_improves_psnr_and_ssim_on_held_out_digits():
    X, _ = digits_u8()
    gm = GenerativeModel.fit(X[:1500], epochs=60, noise="gaussian", noise_level=0.3)
    clean = as_unit_images(X[1500:], gm.preprocessor)
    noisy = corrupt(torch.from_numpy(clean), "gaussian", 0.3, torch.Generator().manual_seed(0)).numpy()
    den = as_unit_images(gm.reconstruct(noisy), gm.preprocessor)
    assert psnr(clean, den) > psnr(clean, noisy) + 0.5
    assert ssim(clean, den) > ssim(clean, noisy)


@pytest.mark.parametrize("kind", ["vae", "vqvae"])
def test_encode_decode_cli_with_fingerprint_check(tmp_path, kind):
    import json

    def run(*a):
        return subprocess.run([str(BIN / "vae-anomaly"), *map(str, a)], capture_output=True, text=True)

    r = run("fit", DATA / "digits.npz", "--kind", kind, "--epochs", "25", "--out", tmp_path / "m")
    assert r.returncode == 0, r.stderr
    r = run("encode", tmp_path / "m", DATA / "digits.npz", "-o", tmp_path / "codes.npz")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["compression_ratio"] >= (5 if kind == "vqvae" else 2) - 1e-9
    pixels = np.load(DATA / "digits.npz")["X"] / 255.0
    mean_image_mse = float(((pixels - pixels.mean(0)) ** 2).mean())  # predicting the average digit: ~0.073
    assert info["reconstruction_mse"] < 0.7 * mean_image_mse
    r = run("decode", tmp_path / "m", tmp_path / "codes.npz", "-o", tmp_path / "dec.png")
    assert r.returncode == 0, r.stderr
    assert_real_picture(tmp_path / "dec.png")
    r = run("fit", DATA / "digits.npz", "--epochs", "1", "--out", tmp_path / "other")
    r = run("decode", tmp_path / "other", tmp_path / "codes.npz", "-o", tmp_path / "bad.png")
    assert r.returncode == 2 and "not by this model" in r.stderr and not (tmp_path / "bad.png").exists()


def test_generate_and_plot_commands_make_real_pictures(tmp_path):
    run = lambda *a: subprocess.run([str(BIN / "vae-anomaly"), *map(str, a)], capture_output=True, text=True)  # noqa: E731
    assert run("fit", DATA / "digits.npz", "--epochs", "10", "--out", tmp_path / "m").returncode == 0
    r = run("generate", tmp_path / "m", "-n", "16", "-o", tmp_path / "grid.png")
    assert r.returncode == 0, r.stderr
    assert_real_picture(tmp_path / "grid.png")
    r = run("generate", tmp_path / "m", "-n", "7", "-o", tmp_path / "s.npz")
    assert np.load(tmp_path / "s.npz")["X"].shape == (7, 1, 8, 8)
    r = run("plot", tmp_path / "m", DATA / "digits_idx" / "images-idx3-ubyte.gz", "--labels",
            DATA / "digits_idx" / "labels-idx1-ubyte.gz", "--out", tmp_path / "figs")
    assert r.returncode == 0, r.stderr
    names = {p.name for p in (tmp_path / "figs").iterdir()}
    assert {"training_curves.png", "latent_space.png", "reconstructions.png", "samples.png",
            "latent_traversal.png", "score_histogram.png"} <= names
    for p in (tmp_path / "figs").iterdir():
        assert_real_picture(p)
    # Rows from a table model keep the original columns.
    assert run("fit", DATA / "breast_cancer.csv", "--label", "diagnosis", "--id", "patient_id", "--epochs", "5",
               "--out", tmp_path / "t").returncode == 0
    r = run("generate", tmp_path / "t", "-n", "5", "-o", tmp_path / "rows.csv")
    import pandas as pd

    rows = pd.read_csv(tmp_path / "rows.csv")
    assert rows.shape == (5, 30) and rows.columns[0] == "mean_radius"


def test_fashion_mnist_recipe_on_small_idx_files(tmp_path):
    from vae_anomaly.recipes import fashion_mnist, find_idx_pair

    X, y = digits_u8()
    # Fashion-MNIST's file names and format, 28x28 images made from the digits.
    big = np.kron(X[:600], np.ones((1, 3, 3), dtype=np.uint8))
    big = np.pad(big, ((0, 0), (2, 2), (2, 2)))
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", big)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", y[:600].astype(np.uint8))
    assert find_idx_pair(tmp_path)[0].name == "train-images-idx3-ubyte.gz"
    res = fashion_mnist(tmp_path, tmp_path / "out", epochs=3)
    for f in res["files"].values():
        assert_real_picture(Path(f))
    gm = GenerativeModel.load(res["model"])
    assert gm.model.latent_dim == 2 and not gm.model.net.conv  # the tutorial's dense, 2-D model
    assert np.isfinite(res["val_neg_elbo_nats"]) and res["val_neg_elbo_nats"] > 0


def test_fashion_mnist_download_refused_cleanly(tmp_path):
    from vae_anomaly.errors import DataError
    from vae_anomaly.recipes import download_fashion_mnist

    with pytest.raises(DataError, match=r"download from .* failed"):
        download_fashion_mnist(tmp_path, base_url="http://127.0.0.1:9/")
    assert not list(tmp_path.iterdir())


def test_load_rejects_folder_without_model(tmp_path):
    with pytest.raises(ModelError):
        GenerativeModel.load(tmp_path)
