"""The MLflow pyfunc model, logged as code ("models from code"): loading it runs this file, never a pickle.

``predict`` returns a DataFrame with ``score`` (higher = more anomalous) and ``is_anomaly``.
"""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd


class VAEAnomalyScorer(mlflow.pyfunc.PythonModel):
    def load_context(self, context: Any) -> None:
        from vae_anomaly.detector import VAEDetector

        self.detector = VAEDetector.load(context.artifacts["detector"])

    # No type hints here: MLflow would read them as a schema and warn; the logged signature is the schema.
    def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201
        scores = self.detector.decision_function(model_input)
        return pd.DataFrame({"score": scores, "is_anomaly": (scores > self.detector.threshold_).astype("int64")})


mlflow.models.set_model(VAEAnomalyScorer())
