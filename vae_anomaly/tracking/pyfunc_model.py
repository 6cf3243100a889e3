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

    # pd.DataFrame in and out: MLflow reads these hints as "no schema from hints" (without hints it
    # prints its advice on every load); the logged signature describes the outputs.
    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        if isinstance(model_input, pd.DataFrame) and hasattr(self.detector.preprocessor_, "columns_"):
            # The score flow's rule: features scored, the fitted id/label columns accepted and not
            # scored, any other column refused (a SchemaError naming it).
            from vae_anomaly.file_scoring import check_columns, column_plan

            keep, drop = column_plan(self.detector, [str(c) for c in model_input.columns])
            check_columns(model_input, self.detector, keep, drop)
            model_input = model_input.drop(columns=keep + drop)
        from vae_anomaly.scoring import flag

        scores = self.detector.decision_function(model_input)
        return pd.DataFrame({"score": scores, "is_anomaly": flag(scores, self.detector.threshold_)})


mlflow.models.set_model(VAEAnomalyScorer())
