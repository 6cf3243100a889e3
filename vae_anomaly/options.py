"""The one table of options: each option's name and the values it accepts, declared once.

``VAEDetector``, ``VAEOversampler``, the CLI's ``--set``, the jobs' pydantic configs, a saved
model's JSON and the typed configs (:class:`~vae_anomaly.models.ModelConfig`,
:class:`~vae_anomaly.trainer.TrainConfig`) all check an option against :data:`OPTIONS`, by name,
with :func:`check`. An estimator's ``_parameter_constraints`` is a selection of this table
(:func:`select`), never a copy. The fixed sets of words (noise kinds, devices, ...) are spelled here
once, as ``Literal`` types for the type hints and as tuples for the table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, get_args

from .errors import ConfigError
from .params import (
    BOOL,
    EPOCHS,
    N_JOBS,
    NONE,
    SEED,
    Check,
    Interval,
    Options,
    check_option_names,
    positive_int_tuple,
    string_list,
    validate_params,
)

ModelKind = Literal["vae", "cvae", "vqvae"]
DetectorKind = Literal["vae", "vqvae"]  # a detector's models are unconditional
NoiseKind = Literal["gaussian", "salt_pepper", "mask"]
StoppingRule = Literal["validation", "separation", "none"]
ImageLikelihood = Literal["bernoulli", "gaussian", "continuous_bernoulli"]
Architecture = Literal["auto", "mlp", "conv"]
Scaling = Literal["robust", "standard", "minmax"]
BinaryColumns = Literal["bernoulli", "gaussian"]
ScoreMethod = Literal["recon_kl", "neg_elbo", "iwae", "recon", "kl"]
ThresholdMethod = Literal["contamination", "fpr", "fixed"]
ComplexityMethod = Literal["png", "zlib"]

MODEL_KINDS: tuple[str, ...] = get_args(ModelKind)
DETECTOR_KINDS: tuple[str, ...] = get_args(DetectorKind)
NOISE_KINDS: tuple[str, ...] = get_args(NoiseKind)
STOPPING_RULES: tuple[str, ...] = get_args(StoppingRule)
IMAGE_LIKELIHOODS: tuple[str, ...] = get_args(ImageLikelihood)
ARCHITECTURES: tuple[str, ...] = get_args(Architecture)
SCALINGS: tuple[str, ...] = get_args(Scaling)
BINARY_COLUMNS: tuple[str, ...] = get_args(BinaryColumns)
THRESHOLD_METHODS: tuple[str, ...] = get_args(ThresholdMethod)
SCORE_METHODS: tuple[str, ...] = get_args(ScoreMethod)
COMPLEXITY_METHODS: tuple[str, ...] = get_args(ComplexityMethod)
# Device names torch knows here; "cuda:N" names one GPU. device.resolve_device turns them into devices.
DEVICE_NAMES = ("auto", "cpu", "cuda", "mps")
DEVICE = Check(lambda v: isinstance(v, str) and v.split(":")[0] in DEVICE_NAMES,
               "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")
# The seed a training loop and GenerativeModel.fit take: the estimators turn None or a RandomState into it.
INT_SEED = Interval(int, 0, None)

# The share of each batch's highest-loss rows left out of the gradient: the training loop's rule (an
# estimator's "contamination" is resolved to its share before the loop sees it).
TRIM_SHARE = Interval(float, 0, 0.5, closed="left")

# Every option, by its one name. Options that mean the same thing to every owner are declared here once.
OPTIONS: dict[str, list[Any]] = {
    # the model (ModelConfig)
    "kind": [Options(DETECTOR_KINDS)],
    "latent_dim": [Interval(int, 1, 4096), NONE],
    "hidden_dims": [Check(positive_int_tuple, "a non-empty list of integers in [1, 65536]"), NONE],
    "architecture": [Options(ARCHITECTURES)],
    "dropout": [Interval(float, 0, 1, closed="left")],
    "image_likelihood": [Options(IMAGE_LIKELIHOODS)],
    "beta": [Interval(float, 0, None)],
    "capacity": [NONE, Interval(float, 0, None)],
    "capacity_anneal": [Interval(float, 0, 1, closed="right")],
    "kl_warmup": [Interval(float, 0, 1)],
    "commitment": [Interval(float, 0, None)],
    "ema_decay": [Interval(float, 0, 1, closed="neither")],
    "dead_code_threshold": [Interval(float, 0, None)],
    "codebook_size": [Interval(int, 1, 1_000_000)],
    "code_dim": [Interval(int, 1, 65536)],
    "n_positions": [Interval(int, 1, 65536)],
    # training (TrainConfig)
    "epochs": [EPOCHS],
    "batch_size": [Options(("auto",)), Interval(int, 1, 1_000_000)],
    "max_steps": [Interval(int, 1, 10_000_000)],
    "lr": [Interval(float, 0, 10, closed="right")],
    "weight_decay": [Interval(float, 0, None)],
    "val_fraction": [Interval(float, 0, 0.9)],
    "patience": [NONE, Interval(int, 1, None)],
    "stopping": [Options(STOPPING_RULES)],
    "separation_patience": [Interval(int, 1, None)],
    "noise": [NONE, Options(NOISE_KINDS)],
    "noise_level": [Interval(float, 0, 1)],
    "trim_fraction": [Options(("contamination",)), TRIM_SHARE],
    "trim_start": [Interval(float, 0, 1)],
    "n_estimators": [Interval(int, 1, 64)],
    "max_samples": [Interval(float, 0, 1, closed="right")],
    "device": [DEVICE],
    "n_jobs": [N_JOBS],
    "random_state": [SEED],
    "verbose": [BOOL],
    # preprocessing (PreprocessConfig)
    "scaling": [Options(SCALINGS)],
    "binary_columns": [Options(BINARY_COLUMNS)],
    "categorical_columns": [NONE, Check(string_list, "a list of column names")],
    # scoring and thresholds (VAEDetector)
    "contamination": [Interval(float, 0, 0.5, closed="neither")],
    "score_method": [Options(SCORE_METHODS)],
    "n_samples": [Interval(int, 1, 100_000)],
    "threshold": [Options(THRESHOLD_METHODS)],
    "target_fpr": [Interval(float, 0, 1, closed="neither")],
    "threshold_value": [NONE, Interval(float)],
    "complexity_correction": [NONE, Options(COMPLEXITY_METHODS)],
}


def select(*names: str, **own: list[Any]) -> dict[str, list[Any]]:
    """An owner's constraints: the named entries of :data:`OPTIONS` plus its ``own`` options (which
    must not redeclare a shared name: one option, one declaration)."""
    shared = set(own) & set(OPTIONS)
    assert not shared, f"options declared twice: {sorted(shared)}"
    return {**{n: OPTIONS[n] for n in names}, **own}


def check(owner: str, values: Mapping[str, Any], constraints: Mapping[str, Any] | None = None, *,
          known: bool = False) -> None:
    """The one boundary check: ``values`` against ``constraints`` (default: the whole table), naming
    ``owner`` and the option. ``known=True`` also refuses names the constraints do not hold."""
    table = OPTIONS if constraints is None else constraints
    if known:
        check_option_names(owner, values, list(table))
    validate_params(owner, values, table)


def parse_set_options(pairs: Sequence[str] | None, owner: type | None = None) -> dict[str, object]:
    """``key=value`` options (the CLI's ``--set``); values parsed as JSON when they parse, else kept as text.

    With ``owner`` (an estimator class) the names and values are checked against its
    ``_parameter_constraints`` (:func:`check` with ``known=True``).
    """
    import json

    out: dict[str, object] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ConfigError(f"--set expects key=value, got {pair!r}")
        k, v = pair.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    if owner is not None:
        check(owner.__name__, out, owner._parameter_constraints, known=True)
    return out


def check_job_options(owner: type, options: dict[str, Any]) -> dict[str, Any]:
    """A job config's estimator options (``detector:``, ``oversampler:``): names and values against the
    estimator's constraints, as a ``ValueError`` that pydantic reports under the field's name."""
    try:
        check(owner.__name__, options, owner._parameter_constraints, known=True)
    except ConfigError as exc:
        raise ValueError(str(exc)) from exc
    return options
