"""The ``vae-anomaly`` command line.

Library commands import only what they use, so they start in about a second;
flow commands import ``vae_anomaly.flows`` (the only prefect importer) inside the command.
Every error the user can cause ends as one paragraph on stderr and exit code 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import defaults  # light: constants only
from .options import NOISE_KINDS  # light: the option words, no torch

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
# `demo` runs this file's train and score jobs (nightly-train, hourly-score) in a scratch experiment.
FLOWS_FILE = REPO_DATA.parent / "flows.yaml"
DEMO_EXPERIMENT = defaults.DEMO_EXPERIMENT


def _parse_sets(pairs: list[str] | None, owner: type | None = None) -> dict[str, object]:
    # In options (not here) so that fit_command, which the CLI calls, never imports the CLI back.
    from .options import parse_set_options

    return parse_set_options(pairs, owner)


def _epochs(value: str) -> int | str:
    from .errors import ConfigError

    if value == "auto":
        return value
    try:
        n = int(value)
    except ValueError:
        raise ConfigError(f"--epochs must be a positive integer or 'auto', not {value!r}") from None
    if n < 1:
        raise ConfigError(f"--epochs must be a positive integer or 'auto', not {value!r}")
    return n


def _job_config(cls: type, **fields: object):  # noqa: ANN202
    """A job's pydantic config, built before any work starts: its validators are the one check of the options
    (the options table); a refusal is one ConfigError naming the field."""
    from pydantic import ValidationError

    from .errors import config_error

    try:
        return cls(**fields)
    except ValidationError as exc:
        raise config_error(exc, cls.__name__) from None


@app.command()
def train(
    data: Annotated[Path, typer.Argument(help="Training data: table, image folder, NPZ or IDX.")],
    label: LabelOpt = None,
    anomaly_label: Annotated[Optional[str], typer.Option(help="Label value meaning anomaly.")] = None,  # noqa: UP045
    id_column: IdOpt = None,
    labels_path: Annotated[Optional[Path], typer.Option("--labels", help="IDX label file.")] = None,  # noqa: UP045
    train_on: Annotated[str, typer.Option(help="'all' (unsupervised) or 'normal' (rows labelled normal).")] = "all",
    model_name: Annotated[str, typer.Option(help="Registered model name.")] = defaults.MODEL_NAME,
    experiment: Annotated[str, typer.Option(help="MLflow experiment.")] = defaults.EXPERIMENT,
    kind: Annotated[str, typer.Option(help="Model family: 'vae' or 'vqvae'.")] = "vae",
    epochs: Annotated[str, typer.Option(help="Epochs, or 'auto'.")] = "auto",
    contamination: Annotated[float, typer.Option(help="Expected share of anomalies.")] = 0.1,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Extra VAEDetector option key=value.")] = None,  # noqa: UP045
) -> None:
    """Run the train flow: fit, log to MLflow, register, promote to champion if it wins."""
    if train_on not in ("all", "normal"):  # checked here, in the option's words, not by the job's pydantic model
        from .errors import ConfigError

        raise ConfigError(f"--train-on must be 'all' or 'normal', not {train_on!r}")
    from .flows._runtime import tie_temporary_servers_to_this_process
    from .flows.train import train_flow
    from .jobs import TrainJobConfig

    detector = {"kind": kind, "epochs": _epochs(epochs), "contamination": contamination, **_parse_sets(set_)}
    cfg = _job_config(TrainJobConfig, data=str(data), label_column=label, anomaly_label=anomaly_label,
                      id_column=id_column, labels_path=str(labels_path) if labels_path else None, train_on=train_on,
                      model_name=model_name, experiment=experiment, detector=detector)
    tie_temporary_servers_to_this_process()
    result = train_flow(cfg)
    _print_json(result)


@app.command()
def score(
    input_path: Annotated[Path, typer.Argument(help="Data to score (table file/folder, images).")],
    model: Annotated[str, typer.Option(help="NAME (champion), NAME@alias, NAME/version or models:/ URI.")] = defaults.MODEL_NAME,
    model_dir: Annotated[Optional[Path], typer.Option(help="Score with a saved detector folder instead (no MLflow, no Prefect).")] = None,  # noqa: UP045, E501
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help=".parquet or .csv")] = None,  # noqa: UP045
    keep: Annotated[Optional[list[str]], typer.Option(help="Column copied to the output, not scored (repeatable).")] = None,  # noqa: UP045
    chunk_rows: Annotated[int, typer.Option(min=1, help="Rows per chunk.")] = defaults.CHUNK_ROWS,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
    dask: Annotated[Optional[str], typer.Option(help="Score on Dask: local, local:N or tcp://host:8786 "  # noqa: UP045
                                                "(Parquet in, a folder of Parquet parts out).")] = None,
) -> None:
    """Batch-score a file with the registered champion (score flow), or with a local model folder."""
    try:
        _score(input_path, model, model_dir, output, keep, chunk_rows, overwrite, dask)
    except KeyboardInterrupt:
        # Ctrl-C: the cluster and any partial output are already gone (their finally blocks ran).
        typer.echo("interrupted: scoring stopped, no output was written", err=True)
        raise typer.Exit(130) from None


def _score(input_path: Path, model: str, model_dir: Path | None, output: Path | None, keep: list[str] | None,
           chunk_rows: int, overwrite: bool, dask: str | None) -> None:
    from .outputs import check_output

    if output is not None and dask is None:
        check_output(output, "table")
    from .jobs import ScoreJobConfig

    cfg = ScoreJobConfig(model=model, model_dir=str(model_dir) if model_dir is not None else None,
                         input=str(input_path), output=str(output) if output else None, keep_columns=keep or [],
                         chunk_rows=chunk_rows, overwrite=overwrite, dask=dask)
    if model_dir is not None:  # the library job itself: no MLflow, no Prefect
        from .jobs.score import run

        _print_json(run(cfg, verbose=sys.stderr.isatty()).summary)
        return
    from .tracking import check_tracking, model_version_info, resolve_model_uri

    uri = resolve_model_uri(model)  # a malformed reference is refused before any server starts
    if uri.startswith(("models:/", "runs:/")):
        # A dead tracking server or an unknown name/version/alias: one line in seconds, before Prefect
        # starts its server and the load task's retries wait out a failure that cannot pass.
        check_tracking()
        model_version_info(uri)
    from .flows._runtime import tie_temporary_servers_to_this_process
    from .flows.score import score_flow

    tie_temporary_servers_to_this_process()
    _print_json(score_flow(cfg))


@app.command()
def lineage(
    scores: Annotated[Path, typer.Argument(help="A scores file (.parquet, or .csv with its .lineage.json).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole chain as JSON.")] = False,
    use_recorded_tracking_uri: Annotated[bool, typer.Option(
        help="Look the model up in the tracking store the scores record (default: MLFLOW_TRACKING_URI or "
             "./mlflow.db). A SQLite file that does not exist is never created.")] = False,
) -> None:
    """Trace a scores file back to its model version, training run, training data and commit, and verify it.

    Read-only. Exit code 1 when a check fails (scores, weights or input changed since scoring), 2 for
    unusable input.
    """
    from .lineage import format_trace, trace

    result = trace(scores, use_recorded_tracking_uri=use_recorded_tracking_uri)
    if as_json:
        _print_json(result)
    else:
        typer.echo(format_trace(result))
    if not result["ok"]:
        raise typer.Exit(1)


@app.command()
def fit(
    data: Annotated[Path, typer.Argument(help="Training data.")],
    out: Annotated[Path, typer.Option("--out", help="Folder to save the detector in (new, empty, or a model folder).")],
    label: LabelOpt = None,
    id_column: IdOpt = None,
    kind: Annotated[str, typer.Option(help="Model family: 'vae', 'vqvae' or 'cvae'.")] = "vae",
    epochs: Annotated[str, typer.Option(help="Epochs, or 'auto'.")] = "auto",
    noise: Annotated[Optional[str], typer.Option(help=f"Denoising: {', '.join(NOISE_KINDS)}.")] = None,  # noqa: UP045
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Extra VAEDetector option key=value.")] = None,  # noqa: UP045
    resume: Annotated[bool, typer.Option(help="Continue from the checkpoint a killed run of this command left.")] = True,
) -> None:
    """Fit a model and save it to a folder (library only: no MLflow, no Prefect).

    vae/vqvae give a detector (also usable by generate/encode/plot); cvae needs --label.
    A checkpoint is kept after every epoch; rerunning the same command after a crash resumes from it.
    """
    from .fit_command import fit_and_save

    _print_json(fit_and_save(data, out, label=label, id_column=id_column, kind=kind, epochs=_epochs(epochs),
                             noise=noise, options=set_, resume=resume, verbose=sys.stderr.isatty()))


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option(help="Where mlflow.db, mlartifacts/ and outputs/ go.")] = Path("."),
) -> None:
    """The main job on embedded defaults: flows.yaml's nightly-train and hourly-score jobs on the sample table
    (train, register, batch-score), in the experiment vae-anomaly-demo."""
    import os

    from .flows._runtime import tie_temporary_servers_to_this_process
    from .flows.deployments import demo_configs
    from .flows.score import score_flow
    from .flows.train import train_flow

    train_cfg, score_cfg = demo_configs(FLOWS_FILE, DEMO_EXPERIMENT)
    data = train_cfg.data
    tie_temporary_servers_to_this_process()
    workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)
    typer.echo(f"training on {data} (malignant = anomaly; the model sees only benign rows)", err=True)
    trained = train_flow(train_cfg)
    scored = score_flow(score_cfg)
    m = trained["metrics"]
    typer.echo("")
    typer.echo(f"registered model : {train_cfg.model_name} version {trained.get('version')} "
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
    from .flows._runtime import tie_temporary_servers_to_this_process
    from .flows.synthesize import synthesize_flow
    from .jobs.synthesize import SynthJobConfig

    if output is not None:
        from .outputs import check_output

        check_output(output, "rows_or_images")
    parsed = _parse_sets([f"s={strategy}"])["s"]
    cfg = _job_config(SynthJobConfig, data=str(data), label_column=label, id_column=id_column,
                      labels_path=str(labels_path) if labels_path else None, output=str(output) if output else None,
                      sampling_strategy=parsed, oversampler=_parse_sets(set_))
    tie_temporary_servers_to_this_process()
    _print_json(synthesize_flow(cfg))


def _generative_model(model_dir: Path, output: Path, kind: str):  # noqa: ANN202
    """The saved model of a generate/denoise/encode/decode command, once its output path is checked."""
    from .generative import GenerativeModel
    from .outputs import check_output

    check_output(output, kind)
    return GenerativeModel.load(model_dir)


@app.command()
def generate(
    model_dir: Annotated[Path, typer.Argument(help="A saved model folder (fit, or a VAEDetector).")],
    n: Annotated[int, typer.Option("-n", min=1, help="How many samples.")] = 16,
    cls: Annotated[Optional[str], typer.Option("--class", help="Class to generate (CVAE).")] = None,  # noqa: UP045
    output: Annotated[Path, typer.Option("--output", "-o", help=".png grid, .npz, .csv or .parquet")] = Path("samples.png"),
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Sample images or rows from a trained model (per class for a CVAE, code prior for a VQ-VAE)."""
    from .outputs import write_rows_or_images

    gm = _generative_model(model_dir, output, "rows_or_images")
    write_rows_or_images(gm.generate(n, cls, seed), output)
    _print_json({"output": str(output), "n": n, "class": cls})


@app.command()
def denoise(
    model_dir: Annotated[Path, typer.Argument(help="A model trained with --noise (fit --noise gaussian).")],
    data: Annotated[Path, typer.Argument(help="Images (folder, NPZ, IDX) to clean.")],
    output: Annotated[Path, typer.Option("--output", "-o", help=".npz or .png")] = Path("denoised.npz"),
    evaluate: Annotated[Optional[str], typer.Option(help="Treat DATA as clean: corrupt it with this noise "  # noqa: UP045
                                                    f"({', '.join(NOISE_KINDS)}) and report PSNR/SSIM.")] = None,
    level: Annotated[float, typer.Option(help="Noise level for --evaluate, in (0, 1].")] = 0.3,
) -> None:
    """Clean a data set with a denoising model; with --evaluate, report PSNR/SSIM noisy vs denoised."""
    from .data import load_dataset
    from .generative_reports import denoise_report
    from .outputs import write_rows_or_images

    gm = _generative_model(model_dir, output, "images")
    ds = load_dataset(data)
    if ds.kind != "image":
        from .errors import DataError

        raise DataError("denoise works on images; this is a table", file=data)
    den, report = denoise_report(gm, ds.X, evaluate=evaluate, level=level)
    write_rows_or_images(gm.preprocessor.inverse_transform(den), output, labels=ds.y)
    _print_json({"output": str(output), "rows": int(len(den)), **report})


@app.command()
def encode(
    model_dir: Annotated[Path, typer.Argument(help="A saved VAE or VQ-VAE folder.")],
    data: Annotated[Path, typer.Argument(help="Data to compress.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Code file (.npz).")] = Path("codes.npz"),
) -> None:
    """Compress data to latent codes (float16 latents, or bit-packed VQ indices); report ratio and error."""
    from .data import load_dataset
    from .generative_reports import encode_report

    gm = _generative_model(model_dir, output, "codes")
    _print_json(encode_report(gm, load_dataset(data).X, output))


@app.command()
def decode(
    model_dir: Annotated[Path, typer.Argument(help="The model that encoded the codes.")],
    codes: Annotated[Path, typer.Argument(help="Code file from `encode`.")],
    output: Annotated[Path, typer.Option("--output", "-o", help=".npz/.png or .csv/.parquet")] = Path("decoded.npz"),
) -> None:
    """Reconstruct data from a code file; refuses codes made by another model."""
    from .codes import load_codes
    from .outputs import write_rows_or_images

    gm = _generative_model(model_dir, output, "rows_or_images")
    out = gm.decode(load_codes(codes, gm))
    write_rows_or_images(out, output)
    _print_json({"output": str(output), "rows": int(len(out))})


@app.command()
def plot(
    model_dir: Annotated[Path, typer.Argument(help="A saved model folder.")],
    data: Annotated[Path, typer.Argument(help="Data to plot (labels colour the latent space).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the PNGs.")] = Path("figures"),
    label: LabelOpt = None,
    id_column: IdOpt = None,
    labels_path: Annotated[Optional[Path], typer.Option("--labels", help="IDX label file.")] = None,  # noqa: UP045
    method: Annotated[str, typer.Option(help="pca or tsne for latents above 2-D.")] = "pca",
) -> None:
    """Training curves, reconstructions, samples, latent space, traversal and score plots as PNGs."""
    from .data import load_dataset
    from .generative import GenerativeModel
    from .plots import model_figures

    gm = GenerativeModel.load(model_dir)
    ds = load_dataset(data, label_column=label, id_column=id_column, labels_path=labels_path)
    written = model_figures(gm, ds.X, ds.y, out, method)
    _print_json({"figures": [str(p) for p in written]})


@app.command("fashion-mnist")
def fashion_mnist_cmd(
    data_dir: Annotated[Path, typer.Option(help="Folder with train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the pictures and the model.")] = Path("fashion-mnist-out"),
    download: Annotated[bool, typer.Option(help="Fetch the files from their public address, checking MD5 sums.")] = False,
    epochs: Annotated[int, typer.Option(help="Epochs (the tutorial uses 10).")] = 10,
    limit: Annotated[Optional[int], typer.Option(help="Use only the first N images.")] = None,  # noqa: UP045
) -> None:
    """The classic dense 2-D-latent VAE on Fashion-MNIST IDX files, trained on the correct objective."""
    from .recipes import fashion_mnist

    _print_json(fashion_mnist(data_dir, out, download=download, epochs=epochs, limit=limit,
                              verbose=sys.stderr.isatty()))


@app.command()
def serve(
    file: Annotated[Path, typer.Option("--file", help="Deployments file.")] = Path("flows.yaml"),
    start_server: Annotated[bool, typer.Option(help="Start a local `prefect server` on 127.0.0.1 first.")] = False,
    port: Annotated[int, typer.Option(help="Port for --start-server.")] = 4200,
    check: Annotated[bool, typer.Option(help="Only validate the file and exit.")] = False,
) -> None:
    """Serve the flows.yaml deployments with their schedules (schedules need a real Prefect server)."""
    import os

    from .flows.deployments import load_flows_file

    spec = load_flows_file(file)
    if check:
        _print_json({"deployments": [d.name for d in spec.deployments], "file": str(file)})
        return
    proc = None
    if start_server:
        from .flows.serve import start_prefect_server

        proc, url = start_prefect_server(port)
        os.environ["PREFECT_API_URL"] = url
        typer.echo(f"started prefect server at {url} (UI: http://127.0.0.1:{port})", err=True)
    elif not os.environ.get("PREFECT_API_URL"):
        typer.echo("note: Prefect's ephemeral mode runs flows but not schedules; use --start-server "
                   "or set PREFECT_API_URL to a running `prefect server`.", err=True)
    try:
        from .flows.serve import serve_flows_file

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
