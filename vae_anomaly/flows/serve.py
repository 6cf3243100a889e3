"""Serve the deployments of ``flows.yaml`` with their schedules (needs a real Prefect server)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vae_anomaly.errors import ConfigError

from .deployments import DeploymentSpec, check_entrypoint, is_module_entrypoint, load_flows_file


def build_deployment(spec: DeploymentSpec, root: Path) -> Any:
    from prefect.flows import load_flow_from_entrypoint

    # Checked again here (load_flows_file did it): nothing outside the project, nothing but a flow, is imported.
    target = check_entrypoint(spec, root)
    module_path = is_module_entrypoint(spec.entrypoint)
    # A module path is imported as the installed package (a wheel needs no checkout); a file path as that file.
    load_from = spec.entrypoint if module_path else f"{target}:{spec.entrypoint.rsplit(':', 1)[1]}"
    try:
        flow = load_flow_from_entrypoint(load_from, use_placeholder_flow=False)
    except Exception as exc:
        raise ConfigError(f"deployment {spec.name!r}, field 'entrypoint': cannot load {spec.entrypoint}: {exc}") from exc
    kwargs: dict[str, Any] = {"name": spec.name, "parameters": spec.parameters, "tags": spec.tags,
                              "description": spec.description, "paused": spec.paused}
    if module_path:
        from prefect.deployments.runner import EntrypointType

        # The served runs import vae_anomaly.flows.<module> too, not a file path relative to the working directory.
        kwargs["entrypoint_type"] = EntrypointType.MODULE_PATH
    if spec.schedule is not None:
        from prefect.schedules import Cron, Interval

        s = spec.schedule
        sched = Cron(s.cron, timezone=s.timezone) if s.cron else Interval(s.interval, timezone=s.timezone)
        kwargs["schedules"] = [sched]
    if spec.triggers:
        from prefect.events import DeploymentEventTrigger

        kwargs["triggers"] = [DeploymentEventTrigger(**t.model_dump(exclude_none=True)) for t in spec.triggers]
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


def start_prefect_server(port: int, timeout: float = 120.0):  # noqa: ANN201 - (Popen, api url)
    """Start `prefect server start` on 127.0.0.1:``port`` and wait for its health endpoint.

    A port already in use is refused (attaching to whatever listens there would serve deployments to
    a server this command does not own); the server dies with this process (Linux PR_SET_PDEATHSIG).
    """
    import socket
    import subprocess
    import sys
    import tempfile
    import time
    import urllib.request

    from ._runtime import _die_with_parent

    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise ConfigError(f"port {port} on 127.0.0.1 is already in use (a Prefect server already running?): "
                              f"point PREFECT_API_URL at it and run `vae-anomaly serve` without --start-server, "
                              "or choose another --port") from exc
    log = open(Path(tempfile.gettempdir()) / f"prefect-server-{port}.log", "w")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                             "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
                            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise ConfigError(f"prefect server exited with code {proc.returncode}; see {log.name}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:  # noqa: S310
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(1)
    proc.terminate()
    raise ConfigError(f"prefect server did not answer on {url} within {timeout:.0f} s; see {log.name}")
