"""The schema of a saved model's ``model.json``: what :func:`persist.save_model` writes and every load checks.

``SavedModel`` is the envelope every model folder has; its ``extra`` object is the saving estimator's own
entry, ``DetectorEntry`` for a ``VAEDetector`` and ``GenerativeEntry`` for a ``GenerativeModel``. The
network's settings (``model_config``) are checked by ``ModelConfig.from_dict`` and the preprocessing by
``transformer_from_dict``, which know their ranges and size budgets. ``saved_model_schema()`` gives the
JSON Schema of all three (for documentation and for tools that write or audit model folders).

A file that does not fit is a :class:`ModelError` naming the file and the field, never a half-built model.
Fields added after 0.1.0 have defaults, so models saved by earlier versions still load.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator

from .errors import ModelError

# Numbers as JSON numbers: a string or true is refused, not converted.
FiniteFloat = Annotated[float, Field(strict=True, allow_inf_nan=False)]
PositiveFloat = Annotated[float, Field(strict=True, gt=0, allow_inf_nan=False)]


class SavedModel(BaseModel):
    """``model.json``: the envelope of every saved model folder."""

    # ``model_config`` is a field of the file (the network's settings), so pydantic's own namespace is freed.
    model_config = ConfigDict(populate_by_name=True, protected_namespaces=(), extra="ignore")

    format_version: StrictInt = Field(description="Layout of the folder and this file (persist.FORMAT_VERSION); "
                                                  "another version is refused before anything else is read.")
    library_version: str | None = Field(None, description="The vae-anomaly version that saved the model.")
    model_class: str | None = Field(None, description="VAE, CVAE, VQVAE or ModelEnsemble.")
    n_members: StrictInt = Field(1, description="Networks in the weights file (an ensemble's members share one "
                                                "config); at most models.ensemble.MAX_MEMBERS.")
    network: dict[str, Any] = Field(alias="model_config",
                                    description="ModelConfig.to_dict(); checked by ModelConfig.from_dict.")
    preprocessing: dict[str, Any] | None = Field(None, description="The fitted TabularTransformer or ImageScaler.")
    weights_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of model.safetensors.")
    extra: dict[str, Any] = Field(default_factory=dict,
                                  description="The saving estimator's entry: DetectorEntry or GenerativeEntry.")

    @field_validator("n_members")
    @classmethod
    def _members_within_bound(cls, n: int) -> int:
        from .models.ensemble import MAX_MEMBERS

        if not 1 <= n <= MAX_MEMBERS:
            raise ValueError(f"must be an integer in [1, {MAX_MEMBERS}]")
        return n


class DetectorEntry(BaseModel):
    """``extra`` of a VAEDetector: its parameters, threshold and what drift checks and probabilities need."""

    owner: Literal["VAEDetector"]
    params: dict[str, Any] = Field(description="get_params(); checked against the detector's constraints.")
    threshold: FiniteFloat = Field(description="Scores above it are flagged.")
    train_score_quantiles: list[FiniteFloat] = Field(min_length=2, description="101 quantiles of the training "
                                                                                "scores (drift, predict_proba).")
    train_score_min: FiniteFloat
    train_score_max: FiniteFloat
    # Absent in models saved by 0.1.0: predict_proba('unify') then uses the quantiles.
    train_score_mean: FiniteFloat | None = None
    train_score_std: FiniteFloat | None = None
    n_train_scores: StrictInt | None = None
    n_features_in: StrictInt = Field(ge=1)
    feature_names_in: list[str] = Field(default_factory=list)
    history: list[dict[str, Any]] = Field(default_factory=list, description="Per-epoch training metrics.")
    member_stats: list[tuple[FiniteFloat, PositiveFloat]] = Field(
        default_factory=list, description="[center, spread] of each ensemble member's training scores.")
    data_columns: dict[Literal["id", "label"], list[str]] = Field(
        default_factory=dict, description="The fitted file's id and label columns.")


class GenerativeEntry(BaseModel):
    """``extra`` of a GenerativeModel: a CVAE's class names and the training history."""

    owner: Literal["GenerativeModel"]
    classes: list[Any] | None = Field(None, description="A CVAE's class names, in condition order.")
    history: list[dict[str, Any]] = Field(default_factory=list)


Entry = TypeVar("Entry", bound=BaseModel)


def validate(schema: type[Entry], data: Any, where: str, what: str = "") -> Entry:
    """``data`` checked against ``schema``; a mismatch is one :class:`ModelError` naming ``where`` and each field."""
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise ModelError(f"{where}: {what}{'; '.join(_describe(e) for e in exc.errors())}") from None


def _describe(error: Any) -> str:
    field = ".".join(str(p) for p in error["loc"]) or "the file"
    if error["type"] == "missing":
        return f"{field} is missing"
    if error["type"] == "finite_number":
        return f"{field} {error['input']!r} is not a finite number"
    shown = repr(error["input"])
    return f"{field}: {error['msg'][0].lower()}{error['msg'][1:]} (got {shown[:60]}{'...' if len(shown) > 60 else ''})"


def saved_model_schema() -> dict[str, Any]:
    """JSON Schemas of ``model.json`` (``SavedModel``) and of its ``extra`` entries, by name."""
    return {"SavedModel": SavedModel.model_json_schema(by_alias=True),
            "DetectorEntry": DetectorEntry.model_json_schema(),
            "GenerativeEntry": GenerativeEntry.model_json_schema()}


__all__ = ["DetectorEntry", "GenerativeEntry", "SavedModel", "saved_model_schema", "validate"]
