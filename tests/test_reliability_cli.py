"""The command line: bad options, unwritable outputs, full disks and failed plots leave nothing behind.

Split from test_reliability.py (issue #10's reliability tests): each failed on the code before its fix.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import BIN, DATA, cli, user_error


@pytest.fixture(scope="module")
def cli_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("climodel")
    r = cli("fit", DATA / "digits.npz", "--out", root / "m", "--epochs", "2")
    assert r.returncode == 0, r.stderr
    return root / "m"


def test_cli_fit_refuses_bad_options_and_foreign_folders(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    user_error(cli("fit", DATA / "breast_cancer.csv", "--out", tmp_path, "--epochs", "1"), "other files")
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    user_error(cli("fit", DATA / "breast_cancer.csv", "--out", ".", cwd=tmp_path), "working folder")
    user_error(cli("fit", DATA / "breast_cancer.csv", "--out", tmp_path / "m", "--epochs", "ten"), "--epochs")
    user_error(cli("fit", DATA / "breast_cancer.csv", "--out", tmp_path / "m", "--set", "foo=1"), "'foo'")
    user_error(cli("fit", DATA / "breast_cancer.csv", "--out", tmp_path / "m", "--set", "latent_dim=0"), "latent_dim")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_cli_fit_cvae_checks_its_options_before_reading_the_data(tmp_path):
    """``fit --kind cvae --set`` is checked against the table's rules before the data file is opened (a
    missing file is not what the error names), and names the option (it used to surface as a TypeError)."""
    missing = tmp_path / "not-there.csv"
    for option, name in (("epochs=0", "epochs"), ("latent_dim=0", "latent_dim"), ("foo=1", "'foo'")):
        r = cli("fit", missing, "--kind", "cvae", "--label", "y", "--out", tmp_path / "m", "--set", option)
        user_error(r, name)
        assert "not-there" not in r.stderr, r.stderr
    assert not (tmp_path / "m").exists()
    # Good options reach the fit (--set epochs overrides --epochs).
    r = cli("fit", DATA / "breast_cancer.csv", "--kind", "cvae", "--label", "diagnosis", "--id", "patient_id",
            "--out", tmp_path / "m", "--epochs", "40", "--set", "epochs=2", "--set", "latent_dim=3")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["classes"] == ["benign", "malignant"]
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["model_config"]["latent_dim"] == 3 and len(meta["extra"]["history"]) == 2


def test_cli_train_and_synthesize_refuse_bad_options_before_any_work(tmp_path):
    # One check, in the job config's words: exit 2 naming the option, no store, no server, no output.
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"}
    data = DATA / "breast_cancer.csv"
    for args, said in ((("--set", "latent_dim=0"), "latent_dim"), (("--set", "foo=1"), "'foo'"),
                       (("--kind", "gan"), "kind"), (("--contamination", "0.9"), "contamination")):
        user_error(cli("train", data, "--label", "diagnosis", *args, cwd=tmp_path, env=env), said)
    user_error(cli("synthesize", data, "--label", "diagnosis", "--set", "few_rows=-1", cwd=tmp_path, env=env),
               "few_rows")
    user_error(cli("synthesize", data, "--label", "diagnosis", "--set", "epoch=3", cwd=tmp_path, env=env),
               "'epoch'", "epochs")
    assert list(tmp_path.iterdir()) == []


def test_cli_outputs_that_cannot_be_written(cli_model, tmp_path):
    (tmp_path / "afile").write_text("x")
    user_error(cli("generate", cli_model, "-n", 4, "-o", tmp_path / "afile" / "s.npz"), "cannot write the output")
    user_error(cli("generate", cli_model, "-n", 100_000_000, "-o", tmp_path / "s.npz"), "GiB")
    user_error(cli("encode", cli_model, DATA / "digits.npz", "-o", tmp_path / "codes.csv"), "use .npz")
    user_error(cli("denoise", cli_model, DATA / "digits.npz", "--evaluate", "pink", "-o", tmp_path / "d.npz"),
               "--evaluate")
    user_error(cli("denoise", cli_model, DATA / "digits.npz", "--evaluate", "gaussian", "--level", "-5",
                   "-o", tmp_path / "d.npz"), "--level")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_cli_disk_full_cleans_up_and_says_one_line(cli_model, tmp_path):
    import resource

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit then fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    r = cli("generate", cli_model, "-n", 2000, "-o", tmp_path / "s.npz", preexec_fn=small_files)
    user_error(r, "cannot write the output")
    assert len(r.stderr.strip().splitlines()) == 1 and list(tmp_path.iterdir()) == []


def test_cli_plot_failures_leave_nothing(cli_model, tmp_path):
    one = tmp_path / "one.npz"
    with np.load(DATA / "digits.npz") as npz:
        np.savez(one, X=npz["X"][:1])
    user_error(cli("plot", cli_model, one, "--out", tmp_path / "figs"), "at least 2 rows")
    (tmp_path / "f.png").write_text("x")
    user_error(cli("plot", cli_model, DATA / "digits.npz", "--out", tmp_path / "f.png"), "names a file")
    user_error(cli("plot", cli_model, DATA / "digits.npz", "--out", tmp_path / "figs", "--method", "umap"), "umap")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png", "one.npz"]


def test_cli_serve_check_and_start_server_refusals(tmp_path):
    import socket

    import yaml

    spec = yaml.safe_load((Path(__file__).resolve().parents[1] / "flows.yaml").read_text())
    bad = json.loads(json.dumps(spec))
    bad["deployments"][0]["parameters"]["config"]["not_a_field"] = 1
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(bad))
    root = Path(__file__).resolve().parents[1]
    user_error(cli("serve", "--check", "--file", tmp_path / "a.yaml", cwd=tmp_path), "not_a_field")
    bad = json.loads(json.dumps(spec))
    bad["deployments"][0]["schedule"]["timezone"] = "Mars/Olympus"
    # flows.yaml's entrypoints are module paths (vae_anomaly.flows.*): the copy under tmp_path needs no flow files.
    (tmp_path / "tz.yaml").write_text(yaml.safe_dump(bad))
    user_error(cli("serve", "--check", "--file", tmp_path / "tz.yaml", cwd=tmp_path), "Mars/Olympus")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        user_error(cli("serve", "--start-server", "--port", port, "--file", root / "flows.yaml", cwd=tmp_path),
                   "already in use")


@pytest.mark.slow
def test_cli_flow_data_error_is_one_line_not_a_traceback(tmp_path):
    bad = pd.read_csv(DATA / "breast_cancer.csv")
    bad["mean_radius"] = bad["mean_radius"].astype(object)
    bad.loc[3, "mean_radius"] = "abc"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    r = subprocess.run([str(BIN / "vae-anomaly"), "train", str(tmp_path / "bad.csv"), "--label", "diagnosis"],
                       capture_output=True, text=True, cwd=tmp_path, env=env)
    assert r.returncode == 2 and "error: file" in r.stderr and "column 'mean_radius', row 3" in r.stderr
    # Prefect's own run log lines stay; no frame of a traceback through our code reaches the console.
    assert "vae_anomaly/" not in r.stderr and "raise DataError" not in r.stderr, r.stderr


def test_cli_cvae_seed_and_denoise_level_are_refused_in_one_line(tmp_path):
    # GenerativeModel.fit takes an integer seed: None passed the table's estimator row and then crashed.
    user_error(cli("fit", DATA / "breast_cancer.csv", "--kind", "cvae", "--label", "diagnosis", "--out",
                   tmp_path / "m", "--set", "random_state=null"), "random_state")
    assert list(tmp_path.iterdir()) == []
