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


def main() -> None:
    """Console entry point: the project's own errors become a message and exit code 2."""
    from .errors import VAEAnomalyError

    try:
        app()
    except VAEAnomalyError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USER_ERROR)


if __name__ == "__main__":
    main()
