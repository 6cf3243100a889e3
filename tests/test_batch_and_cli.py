"""Batch scoring files (chunks, atomic output, kills), flows.yaml validation and the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import DATA, ROOT
from vae_anomaly import VAEDetector
from vae_anomaly.errors import ConfigError, DataError, SchemaError
from vae_anomaly.file_scoring import score_drift, score_file
from vae_anomaly.flows.deployments import load_flows_file

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def saved_detector(tmp_path_factory):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=2000), "b": rng.normal(size=2000), "k": rng.choice(["x", "y"], 2000)})
    det = VAEDetector(random_state=0, epochs=3).fit(frame)
    path = tmp_path_factory.mktemp("model") / "det"
    det.save(path)
    return det, path, frame


def test_chunked_scores_equal_whole_file_scores(saved_detector, tmp_path):
    det, _, frame = saved_detector
    frame = frame.assign(id=np.arange(len(frame)))
    src = tmp_path / "in.parquet"
    frame.to_parquet(src, row_group_size=300)
    s = score_file(det, src, tmp_path / "out.csv", keep_columns=["id"], chunk_rows=256)
    out = pd.read_csv(tmp_path / "out.csv")
    np.testing.assert_allclose(out["score"], det.decision_function(frame.drop(columns="id")), rtol=1e-5)
    assert out["id"].tolist() == list(range(2000)) and s.rows == 2000
    assert s.flagged == int((out["score"] > det.threshold_).sum())
    assert s.drift_psi < 0.1 and s.drift_ks < 0.1  # same distribution as training


def test_drift_detects_a_shift():
    train_q = np.quantile(np.random.default_rng(0).normal(size=5000), np.linspace(0, 1, 101))
    same = np.random.default_rng(1).normal(size=5000)
    shifted = same + 1.0
    assert score_drift(train_q, same)[0] < 0.05
    psi, ks = score_drift(train_q, shifted)
    assert psi > 0.2 and ks > 0.3


def test_bad_row_late_in_file_leaves_no_output(saved_detector, tmp_path):
    det, _, frame = saved_detector
    bad = frame.copy()
    bad.loc[1500, "k"] = "never-seen"
    bad.to_csv(tmp_path / "in.csv", index=False)
    with pytest.raises(DataError, match="unseen category") as e:
        score_file(det, tmp_path / "in.csv", tmp_path / "out.parquet", chunk_rows=500)
    assert e.value.row == 1500 and e.value.column == "k"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_schema_mismatch_and_bad_output_name(saved_detector, tmp_path):
    det, _, frame = saved_detector
    frame.drop(columns="b").to_csv(tmp_path / "in.csv", index=False)
    with pytest.raises(SchemaError, match="missing") as e:
        score_file(det, tmp_path / "in.csv", tmp_path / "o.parquet")
    assert e.value.column == "b"
    with pytest.raises(DataError, match=r"\.parquet or \.csv"):
        score_file(det, tmp_path / "in.csv", tmp_path / "o.json")


def test_killed_scoring_leaves_no_partial_output(saved_detector, tmp_path):
    _, path, frame = saved_detector
    big = pd.concat([frame] * 150, ignore_index=True)  # 300k rows
    src = tmp_path / "big.csv"
    big.to_csv(src, index=False)
    out = tmp_path / "scores.parquet"
    for sig in (signal.SIGTERM, signal.SIGKILL):
        proc = subprocess.Popen([str(BIN / "vae-anomaly"), "score", str(src), "--model-dir", str(path), "-o", str(out),
                                 "--chunk-rows", "5000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.time() + 60
        while time.time() < deadline and not list(tmp_path.glob(".scores.parquet.*")):
            time.sleep(0.05)
        assert list(tmp_path.glob(".scores.parquet.*")), "scoring never started writing"
        proc.send_signal(sig)
        proc.wait(timeout=30)
        assert not out.exists()
        if sig == signal.SIGTERM:  # a clean cancellation also removes its temporary file
            assert proc.returncode != 0 and not list(tmp_path.glob(".scores.parquet.*"))
    # A completed run writes the file under its final name.
    res = subprocess.run([str(BIN / "vae-anomaly"), "score", str(DATA / "breast_cancer.csv"), "--model-dir", str(path),
                          "-o", str(out)], capture_output=True, text=True)
    assert res.returncode == 2 and "missing" in res.stderr and not out.exists()


def test_flows_yaml_is_valid_and_errors_name_entry_and_field(tmp_path):
    spec = load_flows_file(ROOT / "flows.yaml")
    assert [d.name for d in spec.deployments] == ["nightly-train", "hourly-score", "weekly-synthesize", "nightly-score-dask"]
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "f.py").write_text("")
    cases = {
        "deployments:\n  - name: a\n    entrypoint: pipelines/f.py:flow\n    schedule: {cron: 'not a cron'}\n":
            "deployment #0 ('a'), field 'schedule'",
        "deployments:\n  - name: a\n    entrypoint: nocolon\n": "field 'entrypoint'",
        "deployments:\n  - name: a\n    entrypoint: pipelines/f.py:x\n  - name: b\n    entrypoint: pipelines/f.py:x\n"
        "    schedule: {interval: -5}\n": "deployment #1 ('b'), field 'schedule.interval'",
        "deployments:\n  - name: a\n    entrypoint: pipelines/missing.py:x\n": "missing.py does not exist",
        "deployments:\n  - name: a\n    entrypoint: pipelines/f.py:x\n    shedule: {}\n": "field 'shedule'",
        "deployments: [\n": "not valid YAML",
    }
    for text, expected in cases.items():
        (tmp_path / "flows.yaml").write_text(text)
        with pytest.raises(ConfigError) as e:
            load_flows_file(tmp_path / "flows.yaml")
        assert expected in str(e.value), (text, str(e.value))


def test_cli_help_is_fast_and_lists_commands():
    t = time.perf_counter()
    res = subprocess.run([str(BIN / "vae-anomaly"), "--help"], capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - t
    assert res.returncode == 0
    for cmd in ("train", "score", "synthesize", "serve", "demo", "fit", "info", "generate", "encode", "decode",
                "denoise", "plot"):
        assert cmd in res.stdout, cmd
    assert elapsed < 10  # generous for CI; the import-time guard is the test below


def test_import_does_not_pull_heavy_dependencies():
    code = "import sys, vae_anomaly; print(sorted(m for m in ('torch','mlflow','prefect','sklearn','pandas') if m in sys.modules))"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.stdout.strip() == "[]"
    res = subprocess.run([sys.executable, "-c", "import sys, vae_anomaly.cli; print('torch' in sys.modules, 'mlflow' in "
                          "sys.modules, 'prefect' in sys.modules)"], capture_output=True, text=True, timeout=60)
    assert res.stdout.strip() == "False False False"


def test_cli_fit_and_score_local(tmp_path):
    env = {**os.environ}
    res = subprocess.run([str(BIN / "vae-anomaly"), "fit", str(DATA / "breast_cancer.csv"), "--label", "diagnosis",
                          "--id", "patient_id", "--epochs", "3", "--out", str(tmp_path / "m")], capture_output=True,
                         text=True, env=env)
    assert res.returncode == 0, res.stderr
    res = subprocess.run([str(BIN / "vae-anomaly"), "score", str(DATA / "breast_cancer.csv"), "--model-dir",
                          str(tmp_path / "m"), "--keep", "patient_id", "--keep", "diagnosis", "-o",
                          str(tmp_path / "s.csv")], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr
    assert len(pd.read_csv(tmp_path / "s.csv")) == 569
