"""Prefect flows: the only code that imports prefect. Each task is a thin call into the library (``jobs``).

Nothing outside this package imports it at module level: ``import vae_anomaly`` and ``vae-anomaly --help``
stay free of prefect (the CLI imports a flow module inside the command that runs it).
"""

import os

# Set before any flow module imports prefect.
# The ephemeral server takes 12-25 s to start on small machines, over Prefect's 20 s default.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
# No telemetry calls from a machine that may have no network.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
