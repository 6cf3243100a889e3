"""Settings every flow module applies before Prefect is imported."""

from __future__ import annotations

import os

# Tasks that talk to the tracking server retry; tasks that read data do not (bad data stays bad).
TRACKING_RETRIES = int(os.environ.get("VAE_ANOMALY_TRACKING_RETRIES", "3"))
TRACKING_RETRY_DELAYS = [2, 5, 10]


def flow_run_tags() -> dict[str, str]:
    """Prefect flow-run identity, for tagging the MLflow run."""
    from prefect.runtime import flow_run

    rid = flow_run.get_id()
    return {"prefect.flow_run_id": str(rid), "prefect.flow_run_name": str(flow_run.get_name())} if rid else {}


def data_task(fn):  # noqa: ANN001, ANN201
    """A task that reads or computes: no retries (bad data stays bad), no input hashing (models are big)."""
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    return task(fn, cache_policy=NO_CACHE)


def tracking_task(fn):  # noqa: ANN001, ANN201
    """A task that talks to the tracking server: retried with back-off."""
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    return task(fn, retries=TRACKING_RETRIES, retry_delay_seconds=TRACKING_RETRY_DELAYS, cache_policy=NO_CACHE)
