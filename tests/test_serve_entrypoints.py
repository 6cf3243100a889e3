"""`serve` and `serve --check` run no code from outside the project, and none from a file that is not a flow."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port
from vae_anomaly.errors import ConfigError
from vae_anomaly.flows.deployments import defines_flow, load_flows_file

BIN = Path(sys.executable).parent
# A module that announces it ran: importing it writes a file beside it.
LOUD = "from pathlib import Path\nPath(__file__).with_name('{marker}').write_text('imported')\n"
FLOW = LOUD + "from prefect import flow\n\n@flow\ndef job():\n    return 1\n"
NOT_A_FLOW = LOUD + "def job():\n    return 1\n"


def project_with(tmp_path: Path, entrypoint: str) -> Path:
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    (project / "flows.yaml").write_text(f"deployments:\n  - name: d\n    entrypoint: '{entrypoint}'\n")
    return project / "flows.yaml"


def serve_cli(flows: Path, *extra: str) -> subprocess.CompletedProcess:
    # A PREFECT_API_URL where nothing listens: serve must refuse before it would talk to a server.
    env = {**os.environ, "PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api"}
    return subprocess.run([str(BIN / "vae-anomaly"), "serve", "--file", str(flows), *extra], capture_output=True,
                          text=True, env=env, cwd=flows.parent, timeout=120)


@pytest.mark.parametrize("check", [True, False], ids=["check", "serve"])
def test_entrypoint_outside_the_project_is_refused_without_running_it(tmp_path, check):
    outside = tmp_path / "outside.py"
    outside.write_text(FLOW.format(marker="ran-outside"))
    for entrypoint in ("../outside.py:job", f"{outside}:job"):
        flows = project_with(tmp_path, entrypoint)
        res = serve_cli(flows, *(["--check"] if check else []))
        assert res.returncode == 2, res.stderr
        assert "outside the project folder" in res.stderr and "'entrypoint'" in res.stderr
        assert not (tmp_path / "ran-outside").exists(), "the module outside the project was imported"


@pytest.mark.parametrize("check", [True, False], ids=["check", "serve"])
def test_a_module_entrypoint_other_than_the_projects_flows_is_refused_without_importing_it(tmp_path, check):
    """Module paths (Prefect's no-colon form) name only ``vae_anomaly.flows.<module>.<flow>``: a module importable
    from the working directory (or anywhere on sys.path) is outside the project, and is never imported."""
    flows = project_with(tmp_path, "loud.job")
    (flows.parent / "loud.py").write_text(FLOW.format(marker="ran"))
    for entrypoint in ("loud.job", "vae_anomaly.flows_evil.train.train_flow", "vae_anomaly.flows.sub.loud.job"):
        flows = project_with(tmp_path, entrypoint)
        res = serve_cli(flows, *(["--check"] if check else []))
        assert res.returncode == 2, res.stderr
        assert "is outside the project" in res.stderr and "'entrypoint'" in res.stderr, res.stderr
        assert not (flows.parent / "ran").exists(), "serve imported a module outside the project's flows"


def test_a_module_entrypoint_in_the_flows_package_must_be_a_flow(tmp_path):
    with pytest.raises(ConfigError, match="defines no flow 'data_task'"):
        load_flows_file(project_with(tmp_path, "vae_anomaly.flows._runtime.data_task"))
    with pytest.raises(ConfigError, match=r"nothing\.py does not exist"):
        load_flows_file(project_with(tmp_path, "vae_anomaly.flows.nothing.train_flow"))
    spec = load_flows_file(project_with(tmp_path, "vae_anomaly.flows.train.train_flow"))
    assert spec.deployments[0].entrypoint == "vae_anomaly.flows.train.train_flow"


def test_a_symlink_out_of_the_project_is_outside_too(tmp_path):
    (tmp_path / "outside.py").write_text(FLOW.format(marker="ran-outside"))
    flows = project_with(tmp_path, "inside.py:job")
    (flows.parent / "inside.py").symlink_to(tmp_path / "outside.py")
    with pytest.raises(ConfigError, match="outside the project folder"):
        load_flows_file(flows)


@pytest.mark.parametrize("check", [True, False], ids=["check", "serve"])
def test_a_target_that_is_not_a_flow_is_refused_without_importing_it(tmp_path, check):
    flows = project_with(tmp_path, "job.py:job")
    (flows.parent / "job.py").write_text(NOT_A_FLOW.format(marker="ran"))
    res = serve_cli(flows, *(["--check"] if check else []))
    assert res.returncode == 2, res.stderr
    assert "defines no flow 'job'" in res.stderr
    assert not (flows.parent / "ran").exists(), "serve imported a module that is not a flow"


def test_check_accepts_a_flow_without_importing_it(tmp_path):
    flows = project_with(tmp_path, "job.py:job")
    (flows.parent / "job.py").write_text(FLOW.format(marker="ran"))
    res = serve_cli(flows, "--check")
    assert res.returncode == 0, res.stderr
    assert not (flows.parent / "ran").exists()


def test_what_counts_as_a_flow():
    yes = [
        "from prefect import flow\n@flow\ndef f(): ...",
        "from prefect import flow\n@flow(name='x', log_prints=True)\nasync def f(): ...",
        "from prefect import flow as F\n@F(name='x')\ndef f(): ...",
        "import prefect\n@prefect.flow\ndef f(): ...",
        "import prefect as p\n@p.flow()\ndef f(): ...",
        "from prefect import flow\ndef g(): ...\nf = flow(g)",
        "from prefect import flow\ndef g(): ...\nf = flow(name='x')(g)",
    ]
    no = [
        "def f(): ...",
        "from prefect import task\n@task\ndef f(): ...",
        "from mylib import flow\n@flow\ndef f(): ...",  # some other 'flow'
        "from prefect import flow\n@flow\ndef g(): ...",  # the flow has another name
        "from prefect import flow\n@flow\ndef f(): ...\ndef f(): ...",  # rebound to a plain function
        "from prefect import flow\nif True:\n    @flow\n    def f(): ...",  # not at top level
        "from vae_anomaly.flows.train import train_flow as f",  # a re-export: its module would have to run
    ]
    for src in yes:
        assert defines_flow(ast.parse(src), "f"), src
    for src in no:
        assert not defines_flow(ast.parse(src), "f"), src


def test_the_shipped_flows_yaml_passes():
    from tests.conftest import ROOT

    spec = load_flows_file(ROOT / "flows.yaml")
    assert len(spec.deployments) == 4
    # Module paths: an installed wheel serves and deploys them without a checkout of the flow files.
    assert all(d.entrypoint.startswith("vae_anomaly.flows.") and ":" not in d.entrypoint for d in spec.deployments)


def test_the_shipped_entrypoints_load_with_prefects_from_source_outside_a_checkout(tmp_path):
    """Prefect's own loader takes flows.yaml's module paths from an empty folder: the installed package is the code."""
    from prefect import Flow

    from tests.conftest import ROOT

    for d in load_flows_file(ROOT / "flows.yaml").deployments:
        flow = Flow.from_source(source=str(tmp_path), entrypoint=d.entrypoint)
        assert isinstance(flow, Flow) and f"{flow.fn.__module__}.{flow.fn.__name__}" == d.entrypoint
    assert list(tmp_path.iterdir()) == []
