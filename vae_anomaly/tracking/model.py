"""The detector as an MLflow pyfunc model that carries everything it needs, and a hash of all of it.

Logged *as code* ("models from code": loading runs ``pyfunc_model.py``, never an unpickled object),
with the ``vae_anomaly`` package itself shipped beside it (MLflow's ``code_paths``: the model folder's
``code/`` is put on ``sys.path`` when it loads), and pip requirements pinned to the versions this
process runs, all of which resolve from PyPI. So ``mlflow.pyfunc.load_model`` and ``mlflow models
serve`` work where the project is not installed.

Trust: loading a pyfunc executes the Python files inside the model folder, which live in the artifact
store. At logging, every file of the logged model folder is hashed into a manifest whose SHA-256 is
written into the *tracking* store (run tag, then the registered version's tag at registration);
:func:`verify_model_dir` (used by :func:`load_pyfunc` and the project's own loaders) refuses a
folder whose files differ from the manifest before anything in it is imported.
"""

from __future__ import annotations

import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

from ..errors import ModelError
from .connection import client, mlflow_module, wrap
from .manifest import MANIFEST_FILE, MANIFEST_TAG, file_manifest, manifest_sha256, verify_model_dir
from .registry import expected_manifest, resolve_model_uri

# Distributions the pyfunc imports while loading and predicting (checked by the tests in a process
# without the project): pinned to what this process runs, so the serving environment scores alike.
_REQUIREMENTS = ("mlflow", "torch", "numpy", "pandas", "scipy", "scikit-learn", "safetensors", "pyarrow")
_PYFUNC_FILE = "pyfunc_model.py"


def pip_requirements() -> list[str]:
    """``name==version`` for each runtime dependency of the pyfunc, as installed here (local build
    tags such as torch's ``+cpu`` dropped: PyPI's wheels carry none)."""
    return [f"{name}=={metadata.version(name).split('+')[0]}" for name in _REQUIREMENTS]


def _ship_package(dst: Path) -> Path:
    """A clean copy of the ``vae_anomaly`` package (no caches or compiled files) for ``code_paths``."""
    src = Path(__file__).resolve().parents[1]
    target = dst / "vae_anomaly"
    shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", "*.so", ".*"))
    return target


def log_detector(run_id: str, detector: Any, input_example: Any, name: str = "model") -> str:
    """Log the detector as a self-contained pyfunc returning scores and flags; returns its URI.

    Afterwards the logged folder is hashed (see the module's docstring) and the hash is tagged on the run.
    """
    import pandas as pd

    from ..scoring import flag

    mlflow = mlflow_module()
    from mlflow.models import ModelSignature, infer_signature

    example = input_example
    scores = detector.decision_function(example)
    output = pd.DataFrame({"score": scores, "is_anomaly": flag(scores, detector.threshold_)})
    # Outputs only: with an input schema MLflow drops unknown columns (with a warning) before predict
    # sees them, where the score flow refuses them. The pyfunc applies the score flow's column rule
    # itself (file_scoring.column_plan); the expected columns are in the model's metadata.
    signature = ModelSignature(inputs=None, outputs=infer_signature(example, output).outputs)
    columns = getattr(detector, "data_columns_", None) or {}
    meta = {"features": [str(c) for c in getattr(detector.preprocessor_, "columns_", [])],
            "id_columns": list(columns.get("id", [])), "label_columns": list(columns.get("label", []))}
    with tempfile.TemporaryDirectory() as tmp:
        detector.save(Path(tmp) / "detector")
        code = _ship_package(Path(tmp) / "code")

        def go() -> str:
            with mlflow.start_run(run_id=run_id):
                info = mlflow.pyfunc.log_model(
                    name=name, python_model=str(Path(__file__).with_name(_PYFUNC_FILE)),
                    artifacts={"detector": str(Path(tmp) / "detector")}, code_paths=[str(code)],
                    signature=signature, input_example=example if isinstance(example, pd.DataFrame) else None,
                    pip_requirements=pip_requirements(), metadata={"vae_anomaly": meta})
            return info.model_uri

        uri = wrap("logging the model", go)
    record_manifest(run_id, uri)
    return uri


def record_manifest(run_id: str, model_uri: str) -> str:
    """Hash the logged model folder as stored; the manifest's SHA-256 becomes the run's tag."""
    mlflow = mlflow_module()
    with tempfile.TemporaryDirectory(prefix="vae-anomaly-hash-") as dst:
        local = wrap(f"reading back {model_uri}",
                     lambda: mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=dst))
        manifest = file_manifest(local)
    digest = manifest_sha256(manifest)
    c = client()
    wrap("recording the model's hash", lambda: c.log_dict(run_id, manifest, MANIFEST_FILE))
    wrap("recording the model's hash", lambda: c.set_tag(run_id, MANIFEST_TAG, digest))
    return digest


def load_pyfunc(model: str, *, dst: str | Path | None = None) -> Any:
    """``mlflow.pyfunc.load_model`` after checking every file of the model against its recorded hash.

    ``model`` is a registered name (its champion), ``NAME@alias``, ``NAME/version``, or a ``models:/``
    or ``runs:/`` URI. The folder is downloaded (into ``dst`` or a temporary folder), verified, and only
    then loaded -- the shipped code is imported from that verified copy.
    """
    uri = resolve_model_uri(model)
    if not uri.startswith(("models:/", "runs:/")):
        raise ModelError(f"{model}: load_pyfunc loads logged or registered models; use VAEDetector.load for a "
                         "model folder")
    digest, manifest = expected_manifest(uri)
    mlflow = mlflow_module()
    folder = Path(dst) if dst is not None else Path(tempfile.mkdtemp(prefix="vae-anomaly-pyfunc-"))
    local = wrap(f"downloading {uri}", lambda: mlflow.artifacts.download_artifacts(artifact_uri=uri,
                                                                                   dst_path=str(folder)))
    verify_model_dir(local, digest, manifest, what=uri)
    _check_loader(Path(local), uri)
    return wrap(f"loading {uri}", lambda: mlflow.pyfunc.load_model(local))


def _check_loader(local: Path, uri: str) -> None:
    """The MLmodel file is hashed too; this also refuses a folder that would unpickle (defence in depth)."""
    import yaml

    conf = yaml.safe_load((local / "MLmodel").read_text()).get("flavors", {}).get("python_function", {})
    if conf.get("loader_module") != "mlflow.pyfunc.loaders.code_model" or "python_model" in conf:
        raise ModelError(f"{uri}: not a models-from-code pyfunc (loader {conf.get('loader_module')!r}); refusing "
                         "a model that would unpickle code")


__all__ = ["MANIFEST_FILE", "MANIFEST_TAG", "expected_manifest", "file_manifest", "load_pyfunc", "log_detector",
           "manifest_sha256", "pip_requirements", "record_manifest", "verify_model_dir"]
