"""``flows.yaml``: the deployments to serve, validated with clear errors naming the entry and field.

No prefect import here: ``vae-anomaly serve --check`` validates a file in a second.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from vae_anomaly.errors import ConfigError

ENTRYPOINT = re.compile(r"^[\w./-]+\.py:[A-Za-z_]\w*$")
# Prefect's module-path form (no colon): the flows of this package, importable wherever the wheel is installed.
MODULE_ENTRYPOINT = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")
FLOWS_PACKAGE = __name__.rsplit(".", 1)[0]  # vae_anomaly.flows
FLOWS_DIR = Path(__file__).resolve().parent


def is_module_entrypoint(entrypoint: str) -> bool:
    """``vae_anomaly.flows.train.train_flow`` (Prefect imports the module) rather than ``path/file.py:flow``."""
    return bool(MODULE_ENTRYPOINT.match(entrypoint))


class ScheduleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cron: str | None = None
    interval: float | None = Field(None, gt=0, description="seconds")
    timezone: str | None = None

    @model_validator(mode="after")
    def one_kind(self) -> ScheduleSpec:
        if (self.cron is None) == (self.interval is None):
            raise ValueError("give exactly one of 'cron' or 'interval'")
        if self.timezone is not None:
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            try:
                ZoneInfo(self.timezone)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"unknown time zone {self.timezone!r} (use an IANA name such as 'UTC' or "
                                 "'Europe/Paris')") from exc
        if self.cron is not None:
            from cronsim import CronSim, CronSimError

            try:
                CronSim(self.cron, __import__("datetime").datetime(2026, 1, 1))
            except CronSimError as exc:
                raise ValueError(f"invalid cron expression {self.cron!r}: {exc}") from exc
        return self


class WorkPoolSpec(BaseModel):
    """Where `prefect deploy` sends the runs (a worker polls the pool); `vae-anomaly serve` runs them itself."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    work_queue_name: str | None = None
    job_variables: dict[str, Any] = Field(default_factory=dict)


class TriggerSpec(BaseModel):
    """An event trigger that runs the deployment (Prefect's ``DeploymentEventTrigger``, as ``prefect.yaml``
    writes it): e.g. ``expect: [vae-anomaly.drift.detected]`` + ``match: {prefect.resource.id: ...}``."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["event"] = "event"
    name: str | None = None
    description: str | None = None
    enabled: bool = True
    match: dict[str, str | list[str]] = Field(default_factory=dict)
    match_related: dict[str, str | list[str]] | list[dict[str, str | list[str]]] | None = None
    after: list[str] = Field(default_factory=list)
    expect: list[str] = Field(min_length=1)
    for_each: list[str] = Field(default_factory=list)
    posture: Literal["Reactive", "Proactive"] = "Reactive"
    threshold: int = Field(1, ge=1)
    within: float = Field(0, ge=0, description="seconds")
    parameters: dict[str, Any] | None = None


class DeploymentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    entrypoint: str
    description: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    schedule: ScheduleSpec | None = None
    tags: list[str] = Field(default_factory=list)
    paused: bool = False
    work_pool: WorkPoolSpec | None = None
    triggers: list[TriggerSpec] = Field(default_factory=list)

    @field_validator("entrypoint")
    @classmethod
    def entrypoint_shape(cls, v: str) -> str:
        if not ENTRYPOINT.match(v) and not is_module_entrypoint(v):
            raise ValueError(f"{v!r} is not of the form 'path/to/file.py:flow_function' or "
                             f"'{FLOWS_PACKAGE}.module.flow_function'")
        return v

    @model_validator(mode="after")
    def parameters_fit_the_flow(self) -> DeploymentSpec:
        """A flow of this project takes one ``config``: validate it now, not at 2 a.m. when the schedule fires."""
        config_class = flow_config_class(self.entrypoint)
        if config_class is None:
            return self
        unknown = [k for k in self.parameters if k != "config"]
        if unknown:
            raise ValueError(f"unknown parameter {unknown[0]!r}: the flow takes only 'config'")
        if "config" in self.parameters:
            try:
                config_class.model_validate(self.parameters["config"])
            except ValidationError as exc:
                err = exc.errors()[0]
                where = ".".join(str(x) for x in err["loc"]) or "(config)"
                raise ValueError(f"parameters.config.{where}: {err['msg']}") from exc
        return self


def flow_config_class(entrypoint: str) -> type[BaseModel] | None:
    """The pydantic config of one of this project's flows, by its entrypoint's function name."""
    func = entrypoint.rsplit(":", 1)[-1].rsplit(".", 1)[-1]
    if func == "train_flow":
        from vae_anomaly.jobs.train import TrainJobConfig

        return TrainJobConfig
    if func == "score_flow":
        from vae_anomaly.jobs.score import ScoreJobConfig

        return ScoreJobConfig
    if func == "synthesize_flow":
        from vae_anomaly.jobs.synthesize import SynthJobConfig

        return SynthJobConfig
    return None


class FlowsFile(BaseModel):
    """The file is also a valid ``prefect.yaml`` (``prefect deploy --prefect-file flows.yaml --all``):
    the project-level keys Prefect reads are allowed; build/push/pull steps are not (serve runs local code)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str | None = None
    prefect_version: str | None = Field(None, alias="prefect-version")
    deployments: list[DeploymentSpec] = Field(min_length=1)


def load_flows_file(path: str | Path) -> FlowsFile:
    """Parse and validate; an error names the deployment (index and name) and the field."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with a 'deployments' list")
    try:
        spec = FlowsFile.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = list(err["loc"])
        where = ""
        if len(loc) >= 2 and loc[0] == "deployments" and isinstance(loc[1], int):
            items = raw.get("deployments") or []
            name = items[loc[1]].get("name", "?") if loc[1] < len(items) and isinstance(items[loc[1]], dict) else "?"
            field = ".".join(str(x) for x in loc[2:]) or "(entry)"
            where = f"deployment #{loc[1]} ({name!r}), field {field!r}"
        else:
            where = f"field {'.'.join(map(str, loc))!r}"
        raise ConfigError(f"{path}: {where}: {err['msg']}") from exc
    names = [d.name for d in spec.deployments]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        raise ConfigError(f"{path}: deployment name {dup!r} is used twice")
    for d in spec.deployments:
        check_entrypoint(d, path.parent, where=str(path))
    return spec


def deployment_config(path: str | Path, name: str) -> BaseModel:
    """The validated job config (``TrainJobConfig``, ``ScoreJobConfig``...) of deployment ``name`` in a deployments
    file: ``vae-anomaly demo`` runs flows.yaml's own train and score jobs, not a copy of them."""
    spec = load_flows_file(path)
    found = next((d for d in spec.deployments if d.name == name), None)
    config_class = flow_config_class(found.entrypoint) if found else None
    if config_class is None:
        raise ConfigError(f"{path}: no deployment {name!r} of this project's flows")
    return config_class.model_validate(found.parameters.get("config") or {})


def demo_configs(path: str | Path, experiment: str) -> tuple[BaseModel, BaseModel]:
    """The train and score jobs of ``vae-anomaly demo``: the file's ``nightly-train`` and ``hourly-score``
    configs, with their paths made absolute (they are relative to the file's folder; the demo runs elsewhere),
    logged to ``experiment``, the score job using the model the train job registers."""
    root = Path(path).resolve().parent
    train = deployment_config(path, "nightly-train")
    train = train.model_copy(update={"data": str((root / train.data).resolve()), "experiment": experiment})
    score = deployment_config(path, "hourly-score")
    score = score.model_copy(update={"input": str((root / score.input).resolve()), "model": train.model_name,
                                     "experiment": experiment})
    return train, score


def check_entrypoint(spec: DeploymentSpec, project: Path, where: str = "flows.yaml") -> Path:
    """The entrypoint's file, once it is known to lie inside ``project`` (the folder of flows.yaml, symlinks
    resolved) -- or, for a module path, to be a module of this package's flows -- and to define the named
    function as a Prefect flow -- read with ``ast``, never imported, so ``serve --check`` and ``serve`` run
    no code from a file that is not a flow of this project."""
    prefix = f"{where}: deployment {spec.name!r}, field 'entrypoint'"
    if is_module_entrypoint(spec.entrypoint):
        module, func = spec.entrypoint.rsplit(".", 1)
        package, _, name = module.rpartition(".")
        if package != FLOWS_PACKAGE:
            raise ConfigError(f"{prefix}: {module} is outside the project: a module entrypoint must be one of this "
                              f"project's flows ({FLOWS_PACKAGE}.<module>.<flow>); other code goes in a file under the "
                              "folder that holds the deployments file")
        file, root = f"{name}.py", FLOWS_DIR
    else:
        file, func = spec.entrypoint.rsplit(":", 1)
        root = project.resolve()
    target = (root / file).resolve()
    if Path(file).is_absolute() or not target.is_relative_to(root):
        raise ConfigError(f"{prefix}: {file} is outside the project folder {root}: entrypoints must be files under "
                          "the folder that holds the deployments file")
    if not target.is_file():
        raise ConfigError(f"{prefix}: {file} does not exist")
    try:
        tree = ast.parse(target.read_bytes(), filename=str(target))
    except (SyntaxError, ValueError) as exc:
        raise ConfigError(f"{prefix}: {file} is not valid Python: {exc}") from exc
    if not defines_flow(tree, func):
        raise ConfigError(f"{prefix}: {file} defines no flow {func!r} (a top-level function decorated with "
                          "prefect's @flow)")
    return target


def defines_flow(tree: ast.Module, name: str) -> bool:
    """Whether a module's top level binds ``name`` to a Prefect flow: ``@flow``/``@flow(...)``/``@prefect.flow``
    on a function, or ``name = flow(fn)`` / ``flow(...)(fn)``, with ``flow`` imported from prefect."""
    flow_names, prefect_names = set(), set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "prefect":
            flow_names |= {a.asname or a.name for a in node.names if a.name == "flow"}
        elif isinstance(node, ast.Import):
            prefect_names |= {a.asname or a.name for a in node.names if a.name == "prefect"}

    def is_flow(expr: ast.expr) -> bool:
        if isinstance(expr, ast.Call):  # @flow(name=...) or flow(name=...)(fn)
            return is_flow(expr.func)
        if isinstance(expr, ast.Name):
            return expr.id in flow_names
        return (isinstance(expr, ast.Attribute) and expr.attr == "flow" and isinstance(expr.value, ast.Name)
                and expr.value.id in prefect_names)

    found = False  # the last binding of the name wins, as at import
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            found = any(is_flow(d) for d in node.decorator_list)
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            found = isinstance(node.value, ast.Call) and is_flow(node.value.func)
    return found
