"""Promotion: register a trained model and move the ``champion`` alias only when it wins.

The business rule of the registry in one library function, testable without Prefect:
register (once per run) -> load the champion -> re-score both on the *same* validation
data -> tag the decision -> move the alias. Promotions of one model name are serialised
(a lock) and the alias is re-read just before it is moved (compare-and-set), so two jobs
that finish together cannot leave the worse model as champion.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..errors import DataError, PromotionConflictError
from .train import TrainingData, TrainJobConfig, negative_elbo_nats

MAX_ATTEMPTS = 5


def promotion_metric(config: TrainJobConfig, data: TrainingData) -> tuple[str, bool]:
    """(metric name, higher is better)."""
    name = config.promote_metric
    if name == "auto":
        name = "val_auroc" if data.has_labels else "val_neg_elbo"
    if name == "val_auroc" and not data.has_labels:
        raise DataError("promote_metric='val_auroc' needs labels with both classes in the validation split",
                        file=data.dataset.source)
    return name, name == "val_auroc"


def metric_of(detector: Any, data: TrainingData, metric: str) -> float:
    if metric == "val_auroc":
        from sklearn.metrics import roc_auc_score

        return float(roc_auc_score(data.y_val, detector.decision_function(data.X_val)))
    return negative_elbo_nats(detector, data.X_val)


@dataclass
class PromotionDecision:
    promoted: bool
    reason: str
    metric: str
    new_value: float
    champion_version: str | None = None
    champion_value: float | None = None


def decide_promotion(new_detector: Any, champion: Any | None, champion_version: str | None, data: TrainingData,
                     config: TrainJobConfig) -> PromotionDecision:
    """Promote when there is no champion or the new model beats it on *this* validation data."""
    from ..errors import SchemaError

    metric, higher = promotion_metric(config, data)
    new = metric_of(new_detector, data, metric)
    if champion is None:
        return PromotionDecision(True, f"first model: no champion yet ({metric} = {new:.4f})", metric, new)
    try:
        old = metric_of(champion, data, metric)
    except (SchemaError, DataError) as exc:
        return PromotionDecision(False, f"champion v{champion_version} cannot score this data ({exc}); "
                                 "not promoted: promote by hand if the schema change is intended",
                                 metric, new, champion_version)
    better = new > old if higher else new < old
    word = "beats" if better else "does not beat"
    return PromotionDecision(better, f"{metric} {new:.4f} {word} champion v{champion_version} ({old:.4f}) "
                             "on the same validation data", metric, new, champion_version, old)


@dataclass
class PromotionResult:
    version: str
    promoted: bool
    reason: str
    champion_version: str | None
    metric: str
    new_value: float
    champion_value: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def promote(detector: Any, data: TrainingData, config: TrainJobConfig, *, model_uri: str, run_id: str
            ) -> PromotionResult:
    """Register ``model_uri`` for ``run_id`` and make it champion if it beats the current one.

    Safe to retry: a second call for the same run registers nothing new and decides again against
    the champion of the moment.
    """
    from .. import tracking

    name = config.model_name
    with tracking.promotion_lock(name):
        version = tracking.register(model_uri, name, run_id, tags={"data_sha256": data.dataset.fingerprint["sha256"]})
        for _ in range(MAX_ATTEMPTS):
            current = tracking.champion_version(name)
            if current == version:
                metric, _higher = promotion_metric(config, data)
                value = metric_of(detector, data, metric)
                return PromotionResult(version, True, f"version {version} is already the champion", version,
                                       metric, value)
            champion = tracking.load_detector(f"models:/{name}/{current}")[0] if current is not None else None
            decision = decide_promotion(detector, champion, current, data, config)
            tracking.tag_version(name, version, {"promotion_metric": decision.metric,
                                                 "promotion_value": decision.new_value,
                                                 "promotion_decision": decision.reason})
            if not decision.promoted:
                return PromotionResult(version, False, decision.reason, current, decision.metric,
                                       decision.new_value, decision.champion_value)
            # Compare-and-set: another job (on another machine, past our lock) may have moved the alias
            # while we were scoring; then decide again against the new champion.
            if tracking.champion_version(name) != current:
                continue
            tracking.set_champion(name, version, decision.reason)
            return PromotionResult(version, True, decision.reason, version, decision.metric, decision.new_value,
                                   decision.champion_value)
    # A race between jobs, not bad data: a registry error (a TrackingError, which the flows may retry).
    raise PromotionConflictError(f"model {name!r}: the champion kept moving during {MAX_ATTEMPTS} promotion "
                                 f"attempts; version {version} is registered but not promoted -- rerun to decide")
