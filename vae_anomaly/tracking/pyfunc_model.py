"""The MLflow pyfunc model, logged as code ("models from code"): loading it runs this file, never a pickle.

``predict`` returns a DataFrame with ``score`` (higher = more anomalous) and ``is_anomaly``. The
``vae_anomaly`` package ships with the model (``code/``, put on ``sys.path`` by MLflow), so this
works where the project is not installed.
"""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd


class VAEAnomalyScorer(mlflow.pyfunc.PythonModel):
    def load_context(self, context: Any) -> None:
        from vae_anomaly.detector import VAEDetector

        self.detector = VAEDetector.load(context.artifacts["detector"])

    # pd.DataFrame in and out: MLflow takes the hints as "no schema from hints" and keeps the logged
    # signature (columns and types) as the schema; without hints it prints its advice on every load.
    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        scores = self.detector.decision_function(model_input)
        return pd.DataFrame({"score": scores, "is_anomaly": (scores > self.detector.threshold_).astype("int64")})


mlflow.models.set_model(VAEAnomalyScorer())
