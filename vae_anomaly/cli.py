"""The ``vae-anomaly`` command line.

Library commands import only what they use, so they start in about a second;
flow commands reach into ``pipelines/`` lazily (the one place the library may).
Every error the user can cause ends as one paragraph on stderr and exit code 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Variational autoencoders for anomaly detection, synthetic data and generation.")

EXIT_USER_ERROR = 2

LabelOpt = Annotated[Optional[str], typer.Option("--label", help="Label column of a table.")]  # noqa: UP045
IdOpt = Annotated[Optional[str], typer.Option("--id", help="Id column of a table (kept out of the features).")]  # noqa: UP045


@app.callback()
def _root() -> None:
    """Variational autoencoders for anomaly detection, synthetic data and generation."""


def _print_json(obj: object) -> None:
    typer.echo(json.dumps(obj, indent=2, default=str))


@app.command()
def info(
    path: Annotated[Path, typer.Argument(help="CSV/Parquet file or folder, image folder, NPZ or IDX file.")],
    label: LabelOpt = None,
    id_column: IdOpt = None,
    labels_path: Annotated[Optional[Path], typer.Option("--labels", help="IDX label file for an IDX image file.")] = None,  # noqa: UP045
) -> None:
    """Read and validate a data set; print its summary (rows, columns or image shape, classes, hash)."""
    from .data import load_dataset

    ds = load_dataset(path, label_column=label, id_column=id_column, labels_path=labels_path)
    _print_json(ds.summary())


REPO_DATA = Path(__file__).resolve().parents[1] / "data"


def _parse_sets(pairs: list[str] | None) -> dict[str, object]:
    """``key=value`` options for VAEDetector; values parsed as JSON when they parse."""
    from .errors import ConfigError

    out: dict[str, object] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ConfigError(f"--set expects key=value, got {pair!r}")
        k, v = pair.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def _epochs(value: str) -> int | str:
    return value if value == "auto" else int(value)


@app.command()
def train(
    data: Annotated[Path, typer.Argument(help="Training data: table, image folder, NPZ or IDX.")],
    label: LabelOpt = None,
    anomaly_label: Annotated[Optional[str], typer.Option(help="Label value meaning anomaly.")] = None,  # noqa: UP045
    id_column: IdOpt = None,
    labels_path: Annotated[Optional[Path], typer.Option("--labels", help="IDX label file.")] = None,  # noqa: UP045
    train_on: Annotated[str, typer.Option(help="'all' (unsupervised) or 'normal' (rows labelled normal).")] = "all",
    model_name: Annotated[str, typer.Option(help="Registered model name.")] = "vae-anomaly",
    experiment: Annotated[str, typer.Option(help="MLflow experiment.")] = "vae-anomaly",
    model: Annotated[str, typer.Option(help="'vae' or 'vqvae'.")] = "vae",
    epochs: Annotated[str, typer.Option(help="Epochs, or 'auto'.")] = "auto",
    contamination: Annotated[float, typer.Option(help="Expected share of anomalies.")] = 0.1,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Extra VAEDetector option key=value.")] = None,  # noqa: UP045
) -> None:
    """Run the train flow: fit, log to MLflow, register, promote to champion if it wins."""
    from pipelines.train import train_flow

    from .jobs import TrainJobConfig

    det = {"model": model, "epochs": _epochs(epochs), "contamination": contamination, **_parse_sets(set_)}
    cfg = TrainJobConfig(data=str(data), label_column=label, anomaly_label=anomaly_label, id_column=id_column,
                         labels_path=str(labels_path) if labels_path else None, train_on=train_on,
                         model_name=model_name, experiment=experiment, detector=det)
    result = train_flow(cfg)
    _print_json(result)


@app.command()
def score(
    input_path: Annotated[Path, typer.Argument(help="Data to score (table file/folder, images).")],
    model: Annotated[str, typer.Option(help="NAME (champion), NAME@alias, NAME/version or models:/ URI.")] = "vae-anomaly",
    model_dir: Annotated[Optional[Path], typer.Option(help="Score with a saved detector folder instead (no MLflow, no Prefect).")] = None,  # noqa: UP045, E501
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help=".parquet or .csv")] = None,  # noqa: UP045
    keep: Annotated[Optional[list[str]], typer.Option(help="Column copied to the output, not scored (repeatable).")] = None,  # noqa: UP045
    chunk_rows: Annotated[int, typer.Option(help="Rows per chunk.")] = 100_000,
) -> None:
    """Batch-score a file with the registered champion (score flow), or with a local model folder."""
    if model_dir is not None:
        from .batch import score_file
        from .detector import VAEDetector
        from .jobs import default_output

        det = VAEDetector.load(model_dir)
        out = output or Path(default_output(model_dir.name))
        _print_json(score_file(det, input_path, out, keep_columns=keep or [], chunk_rows=chunk_rows,
                               progress=sys.stderr.isatty()).to_dict())
        return
    from pipelines.score import score_flow

    from .jobs import ScoreJobConfig

    cfg = ScoreJobConfig(model=model, input=str(input_path), output=str(output) if output else None,
                         keep_columns=keep or [], chunk_rows=chunk_rows)
    _print_json(score_flow(cfg))


@app.command()
def fit(
    data: Annotated[Path, typer.Argument(help="Training data.")],
    out: Annotated[Path, typer.Option("--out", help="Folder to save the detector in.")],
    label: LabelOpt = None,
    id_column: IdOpt = None,
    model: Annotated[str, typer.Option(help="'vae' or 'vqvae'.")] = "vae",
    epochs: Annotated[str, typer.Option(help="Epochs, or 'auto'.")] = "auto",
    noise: Annotated[Optional[str], typer.Option(help="Denoising: gaussian, salt_pepper or mask.")] = None,  # noqa: UP045
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Extra VAEDetector option key=value.")] = None,  # noqa: UP045
) -> None:
    """Fit a detector and save it to a folder (library only: no MLflow, no Prefect)."""
    from .data import load_dataset
    from .detector import VAEDetector

    ds = load_dataset(data, label_column=label, id_column=id_column)
    det = VAEDetector(model=model, epochs=_epochs(epochs), verbose=sys.stderr.isatty(), **_parse_sets(set_))
    if noise:
        det.set_params(noise=noise)
    det.fit(ds.X)
    det.save(out)
    _print_json({"saved": str(out), "epochs_run": det.train_result_.epochs_run, "threshold": det.threshold_})


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option(help="Where mlflow.db, mlartifacts/ and outputs/ go.")] = Path("."),
) -> None:
    """The main job on embedded defaults: train on the sample table, register, batch-score it."""
    import os

    from pipelines.score import score_flow
    from pipelines.train import train_flow

    from .jobs import ScoreJobConfig, TrainJobConfig

    data = REPO_DATA / "breast_cancer.csv"
    workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)
    typer.echo(f"training on {data} (malignant = anomaly; the model sees only benign rows)", err=True)
    trained = train_flow(TrainJobConfig(
        data=str(data), label_column="diagnosis", anomaly_label="malignant", id_column="patient_id",
        train_on="normal", model_name="breast-cancer-vae", experiment="vae-anomaly-demo",
        detector={"contamination": 0.05}))
    scored = score_flow(ScoreJobConfig(model="breast-cancer-vae", input=str(data), experiment="vae-anomaly-demo",
                                       keep_columns=["patient_id", "diagnosis"]))
    m = trained["metrics"]
    typer.echo("")
    typer.echo(f"registered model : breast-cancer-vae version {trained.get('version')} "
               f"(champion: version {trained.get('champion_version')}; {trained.get('reason')})")
    typer.echo(f"validation       : AUROC {m.get('val_auroc', float('nan')):.3f}, AUPRC {m.get('val_auprc', float('nan')):.3f}, "
               f"F1 at threshold {m.get('val_f1', float('nan')):.3f}")
    typer.echo(f"scores           : {Path(scored['output']).resolve()} "
               f"({scored['summary']['rows']} rows, {scored['summary']['flagged']} flagged)")
    typer.echo(f"MLflow runs      : {trained['tracking_uri']}  (browse: mlflow ui --backend-store-uri {trained['tracking_uri']})")


@app.command()
def synthesize(
    data: Annotated[Path, typer.Argument(help="Labelled data: table, image folder, NPZ or IDX.")],
    label: LabelOpt = None,
    id_column: IdOpt = None,
    labels_path: Annotated[Optional[Path], typer.Option("--labels", help="IDX label file.")] = None,  # noqa: UP045
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help=".parquet/.csv (tables) or .npz (images)")] = None,  # noqa: UP045, E501
    strategy: Annotated[str, typer.Option(help="'auto', a ratio, or JSON {class: count}.")] = "auto",
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="VAEOversampler option key=value.")] = None,  # noqa: UP045
) -> None:
    """Run the synthesize flow: balance classes with CVAE samples and judge them against SMOTE."""
    from pipelines.synthesize import synthesize_flow

    from .synth_job import SynthJobConfig

    parsed = _parse_sets([f"s={strategy}"])["s"]
    cfg = SynthJobConfig(data=str(data), label_column=label, id_column=id_column,
                         labels_path=str(labels_path) if labels_path else None, output=str(output) if output else None,
                         sampling_strategy=parsed, oversampler=_parse_sets(set_))
    _print_json(synthesize_flow(cfg))


def _start_prefect_server(port: int, timeout: float = 120.0):  # noqa: ANN202
    """Start `prefect server start` on 127.0.0.1 and wait for its health endpoint."""
    import os
    import subprocess
    import time
    import urllib.request

    from .errors import ConfigError

    log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"prefect-server-{port}.log", "w")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                             "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise ConfigError(f"prefect server exited with code {proc.returncode}; see {log.name}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(1)
    proc.terminate()
    raise ConfigError(f"prefect server did not answer on {url} within {timeout:.0f} s; see {log.name}")


@app.command()
def serve(
    file: Annotated[Path, typer.Option("--file", help="Deployments file.")] = Path("flows.yaml"),
    start_server: Annotated[bool, typer.Option(help="Start a local `prefect server` on 127.0.0.1 first.")] = False,
    port: Annotated[int, typer.Option(help="Port for --start-server.")] = 4200,
    check: Annotated[bool, typer.Option(help="Only validate the file and exit.")] = False,
) -> None:
    """Serve the flows.yaml deployments with their schedules (schedules need a real Prefect server)."""
    import os

    from .flows_config import load_flows_file

    spec = load_flows_file(file)
    if check:
        _print_json({"deployments": [d.name for d in spec.deployments], "file": str(file)})
        return
    proc = None
    if start_server:
        proc, url = _start_prefect_server(port)
        os.environ["PREFECT_API_URL"] = url
        typer.echo(f"started prefect server at {url} (UI: http://127.0.0.1:{port})", err=True)
    elif not os.environ.get("PREFECT_API_URL"):
        typer.echo("note: Prefect's ephemeral mode runs flows but not schedules; use --start-server "
                   "or set PREFECT_API_URL to a running `prefect server`.", err=True)
    try:
        from pipelines.serve import serve_flows_file

        serve_flows_file(file)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)


def main() -> None:
    """Console entry point: the project's own errors become a message and exit code 2."""
    import signal

    from .errors import VAEAnomalyError

    # SIGTERM (a scheduler cancelling the job) unwinds like Ctrl-C, so temporary outputs are removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        app()
    except VAEAnomalyError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USER_ERROR)


if __name__ == "__main__":
    main()
