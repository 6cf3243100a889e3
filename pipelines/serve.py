"""Serve the deployments of ``flows.yaml`` with their schedules (needs a real Prefect server)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vae_anomaly.errors import ConfigError
from vae_anomaly.flows_config import DeploymentSpec, load_flows_file


def build_deployment(spec: DeploymentSpec, root: Path) -> Any:
    from prefect.flows import load_flow_from_entrypoint

    file, func = spec.entrypoint.split(":")
    try:
        flow = load_flow_from_entrypoint(f"{root / file}:{func}", use_placeholder_flow=False)
    except Exception as exc:
        raise ConfigError(f"deployment {spec.name!r}, field 'entrypoint': cannot load {spec.entrypoint}: {exc}") from exc
    kwargs: dict[str, Any] = {"name": spec.name, "parameters": spec.parameters, "tags": spec.tags,
                              "description": spec.description, "paused": spec.paused}
    if spec.schedule is not None:
        from prefect.schedules import Cron, Interval

        s = spec.schedule
        sched = Cron(s.cron, timezone=s.timezone) if s.cron else Interval(s.interval, timezone=s.timezone)
        kwargs["schedules"] = [sched]
    return flow.to_deployment(**kwargs)


def serve_flows_file(path: str | Path = "flows.yaml") -> None:
    """Register every deployment (with its schedule) and run them until interrupted."""
    from prefect import serve

    if not os.environ.get("PREFECT_API_URL"):
        raise ConfigError("serving schedules needs a running Prefect server: Prefect's ephemeral mode runs flows "
                          "but never runs schedules. Start one with `prefect server start` and set PREFECT_API_URL, "
                          "or run `vae-anomaly serve --start-server`.")
    path = Path(path).resolve()
    spec = load_flows_file(path)
    deployments = [build_deployment(d, path.parent) for d in spec.deployments]
    serve(*deployments)
