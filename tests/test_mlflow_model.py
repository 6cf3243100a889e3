"""The registered pyfunc is self-contained (loads and predicts where the project is not importable),
its requirements name only what PyPI has, and its files are checked against the hash recorded at
registration before any of them is imported."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import DATA
from vae_anomaly import VAEDetector
from vae_anomaly.errors import ModelError

CANCER = DATA / "breast_cancer.csv"


@pytest.fixture()
def champion(mlflow_store):
    """A detector logged, registered as version 1 of 'cancer' and made champion, in a real SQLite store."""
    from vae_anomaly import tracking

    frame = pd.read_csv(CANCER).drop(columns=["patient_id", "diagnosis"])
    det = VAEDetector(epochs=3, random_state=0, n_jobs=1, device="cpu").fit(frame.iloc[:300])
    run = tracking.start_run("test")
    uri = tracking.log_detector(run, det, frame.iloc[:5])
    version = tracking.register(uri, "cancer", run)
    tracking.set_champion("cancer", version, "test")
    tracking.end_run(run)
    return det, frame, run, version


# Runs with `python -I -S`: no site processing (so no editable-install finder), no PYTHONPATH, no
# script or working directory on sys.path; only the standard library and site-packages are added.
ISOLATED = textwrap.dedent("""
    import json, sys, warnings
    sys.path.append(SITE)
    try:
        import vae_anomaly  # noqa: F401
    except ModuleNotFoundError:
        pass
    else:
        raise SystemExit("vae_anomaly is importable: the test would prove nothing")
    # As in a fresh environment built from the model's requirements: a top-level module that is neither
    # the standard library nor part of a required distribution cannot be imported (optional imports
    # then take their fallback, and a missing requirement fails the load).
    import importlib.abc, importlib.machinery
    class OnlyRequired(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            top = name.split(".")[0]
            if top in ALLOWED or top == "vae_anomaly" or "." in name:
                return None
            if importlib.machinery.PathFinder.find_spec(top, [SITE]) is None:
                return None  # the standard library (or nowhere): not ours to block
            raise ModuleNotFoundError(f"No module named {name!r} (not in the model's requirements)", name=name)
    sys.meta_path.insert(0, OnlyRequired())
    import logging, io
    buf = io.StringIO()
    logging.basicConfig(stream=buf, level=logging.WARNING)
    warnings.simplefilter("always")
    with warnings.catch_warnings(record=True) as caught:
        import mlflow
        import pandas as pd
        mlflow.set_tracking_uri(URI)
        model = mlflow.pyfunc.load_model("models:/cancer@champion")
        pred = model.predict(pd.read_json(sys.stdin, orient="split"))
    print(json.dumps({"pred": pred.to_dict(orient="list"),
                      "from": sys.modules["vae_anomaly"].__file__,
                      "messages": [str(w.message) for w in caught] + buf.getvalue().splitlines()}))
""")


def _requirement_closure(reqs: list[str]) -> set[str]:
    """Distribution names reachable from ``reqs`` through installed metadata (what pip would install)."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen: set[str] = set()
    todo = [Requirement(r).name for r in reqs]
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for r in requires:
            req = Requirement(r)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def test_champion_loads_and_predicts_where_the_project_is_not_importable(champion, mlflow_store):
    from importlib import metadata

    from packaging.utils import canonicalize_name

    det, frame, _, _ = champion
    batch = frame.iloc[:7]
    from vae_anomaly.tracking.model import pip_requirements

    reqs = pip_requirements()
    closure = _requirement_closure(reqs)
    allowed = sorted({top for top, dists in metadata.packages_distributions().items()
                      if any(canonicalize_name(d) in closure for d in dists)})
    assert "torch" in allowed and "vae_anomaly" not in allowed
    site = sysconfig.get_paths()["purelib"]
    uri = f"sqlite:///{mlflow_store / 'mlflow.db'}"
    script = f"SITE = {site!r}\nURI = {uri!r}\nALLOWED = set({allowed!r})\n" + ISOLATED
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", script], input=batch.to_json(orient="split"),
                          capture_output=True, text=True, timeout=300, cwd="/")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # The package came from the model's own code/ folder, not from the checkout.
    assert "/code/vae_anomaly/" in out["from"] and not out["from"].startswith(str(Path(__file__).parents[1]))
    np.testing.assert_allclose(out["pred"]["score"], det.decision_function(batch), rtol=1e-6)
    assert out["pred"]["is_anomaly"] == (det.decision_function(batch) > det.threshold_).astype(int).tolist()
    # MLflow's advice about type hints is gone (it was printed on every load).
    assert not [m for m in out["messages"] if "type hint" in m.lower()], out["messages"]
    for r in reqs:  # pinned to what runs here
        name, version = r.split("==")
        assert metadata.version(name).split("+")[0] == version


def test_requirements_are_pinned_pypi_packages_and_the_code_ships(champion):
    import mlflow

    local = Path(mlflow.artifacts.download_artifacts("models:/cancer@champion"))
    reqs = (local / "requirements.txt").read_text().split()
    assert not [r for r in reqs if r.startswith(("vae-anomaly", "vae_anomaly", "-e", "."))], reqs
    assert {r.split("==")[0] for r in reqs} >= {"mlflow", "torch", "numpy", "pandas", "safetensors", "scikit-learn"}
    assert all("==" in r and "+" not in r for r in reqs), reqs  # pinned, no local build tags (+cpu)
    assert (local / "code" / "vae_anomaly" / "detector.py").is_file()
    assert not list((local / "code").rglob("__pycache__"))


def test_verified_load_and_tampering_is_refused(champion, mlflow_store):
    import mlflow

    from vae_anomaly import tracking
    from vae_anomaly.tracking.model import MANIFEST_TAG, load_pyfunc

    det, frame, run, version = champion
    c = mlflow.MlflowClient()
    digest = c.get_model_version("cancer", version).tags[MANIFEST_TAG]
    assert digest == c.get_run(run).data.tags[MANIFEST_TAG] and len(digest) == 64
    model = load_pyfunc("cancer")
    np.testing.assert_allclose(model.predict(frame.iloc[:4])["score"], det.decision_function(frame.iloc[:4]),
                               rtol=1e-6)

    # Someone with write access to the artifact store changes the shipped code.
    stored = [p for p in (mlflow_store / "mlartifacts").rglob("code/vae_anomaly/detector.py")]
    assert len(stored) == 1
    original = stored[0].read_text()
    marker = mlflow_store / "pwned"
    stored[0].write_text(f"open({str(marker)!r}, 'w').close()\n" + original)
    with pytest.raises(ModelError, match=r"refusing to load.*changed: code/vae_anomaly/detector\.py"):
        load_pyfunc("models:/cancer@champion")
    assert not marker.exists()  # refused before anything was imported
    # The project's own loader checks the same hash (weights-only load, but the folder is not what was logged).
    with pytest.raises(ModelError, match="refusing to load"):
        tracking.load_detector("cancer")
    stored[0].write_text(original)

    # An added file (e.g. a .pth or module dropped beside the code) is refused too.
    extra = stored[0].parent / "sitecustomize.py"
    extra.write_text(f"open({str(marker)!r}, 'w').close()\n")
    with pytest.raises(ModelError, match=r"added: code/vae_anomaly/sitecustomize\.py"):
        load_pyfunc("cancer")
    extra.unlink()
    assert load_pyfunc("cancer") is not None and not marker.exists()


def test_a_version_without_a_recorded_hash_is_refused(champion):
    import mlflow

    from vae_anomaly.tracking.model import MANIFEST_TAG, load_pyfunc

    mlflow.MlflowClient().delete_model_version_tag("cancer", champion[3], MANIFEST_TAG)
    with pytest.raises(ModelError, match=f"no {MANIFEST_TAG} tag"):
        load_pyfunc("cancer")
