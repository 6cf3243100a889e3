"""Runs say who ran them from which checkout: MLflow's context tags, the caller's git commit (the
working directory's, not the library's), and the library's version."""

from __future__ import annotations

import subprocess

import pytest

from vae_anomaly import __version__
from vae_anomaly.lineage import git_commit


def _git(cwd, *args):
    return subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture()
def caller_repo(tmp_path):
    repo = tmp_path / "caller"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "work")
    (repo / "job.yaml").write_text("model: cancer\n")
    _git(repo, "add", "job.yaml")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "caller's job")
    _git(repo, "remote", "add", "origin", "https://example.com/caller.git")
    return repo


def test_run_records_the_callers_commit_user_source_and_library(caller_repo, monkeypatch):
    from vae_anomaly import tracking

    monkeypatch.chdir(caller_repo)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{caller_repo.parent / 'mlflow.db'}")
    run = tracking.start_run("prov", tags={"job": "train"})
    tags = tracking.client().get_run(run).data.tags
    head = _git(caller_repo, "rev-parse", "HEAD")
    assert tags["mlflow.source.git.commit"] == head != git_commit()
    assert tags["mlflow.source.git.branch"] == "work"
    assert tags["mlflow.source.git.repoURL"] == "https://example.com/caller.git"
    assert tags["mlflow.user"] and tags["mlflow.source.name"] and tags["mlflow.source.type"] == "LOCAL"
    assert tags["vae_anomaly.version"] == __version__ and tags["job"] == "train"
    if git_commit():  # the library runs from a checkout here: its commit is recorded under its own name
        assert tags["vae_anomaly.git_commit"] == git_commit()


def test_outside_a_checkout_no_git_commit_is_claimed(tmp_path, monkeypatch):
    from vae_anomaly import tracking

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # tmp_path is in no checkout
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    tags = tracking.client().get_run(tracking.start_run("prov")).data.tags
    assert "mlflow.source.git.commit" not in tags  # not the library's checkout passed off as the caller's
    assert tags["mlflow.user"] and tags["vae_anomaly.version"] == __version__
