"""The detector as an MLflow pyfunc model, logged *as code*: loading it runs a reviewed source file,
never an unpickled ``PythonModel`` instance."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from .connection import mlflow_module, wrap


def log_detector(run_id: str, detector: Any, input_example: Any, name: str = "model") -> str:
    """Log the detector as a pyfunc ("models from code": no pickle) returning scores and flags.

    Returns the logged model's URI.
    """
    import pandas as pd
    import torch

    from .._version import __version__

    mlflow = mlflow_module()
    from mlflow.models import infer_signature

    example = input_example
    scores = detector.decision_function(example)
    output = pd.DataFrame({"score": scores, "is_anomaly": (scores > detector.threshold_).astype("int64")})
    signature = infer_signature(example, output)
    reqs = [f"vae-anomaly=={__version__}", f"torch=={torch.__version__.split('+')[0]}", f"mlflow=={mlflow.__version__}",
            "safetensors", "numpy", "pandas", "scikit-learn"]
    with tempfile.TemporaryDirectory() as tmp:
        detector.save(Path(tmp) / "detector")

        def go() -> str:
            with mlflow.start_run(run_id=run_id):
                info = mlflow.pyfunc.log_model(
                    name=name, python_model=str(Path(__file__).with_name("pyfunc_model.py")),
                    artifacts={"detector": str(Path(tmp) / "detector")}, signature=signature,
                    input_example=example if isinstance(example, pd.DataFrame) else None,
                    pip_requirements=reqs)
            return info.model_uri

        return wrap("logging the model", go)
