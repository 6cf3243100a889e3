"""Defaults the user meets in more than one place (CLI options, job configs, library signatures), declared once."""

from __future__ import annotations

# The MLflow experiment and the registered model a job uses when none is named.
EXPERIMENT = "vae-anomaly"
MODEL_NAME = "vae-anomaly"
# The synthesize job's experiment, and the scratch experiment `vae-anomaly demo` runs its jobs in.
SYNTH_EXPERIMENT = "vae-anomaly-synth"
DEMO_EXPERIMENT = "vae-anomaly-demo"
# Rows read, scored and written per step by file and Dask scoring: memory stays bounded whatever the input size.
CHUNK_ROWS = 100_000
