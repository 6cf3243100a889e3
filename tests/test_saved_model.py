"""The schema of model.json (vae_anomaly.saved_model): saved folders fit it, loading checks it, a tampered
field is a ModelError naming the file and the field, models saved by earlier versions still load."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import edit_meta
from vae_anomaly import VAEDetector
from vae_anomaly.errors import ModelError
from vae_anomaly.saved_model import DetectorEntry, GenerativeEntry, SavedModel, saved_model_schema


def test_saved_folders_fit_the_published_schema(fitted):
    _, path = fitted
    meta = json.loads((path / "model.json").read_text())
    saved = SavedModel.model_validate(meta)
    assert saved.network == meta["model_config"] and saved.n_members == 1
    entry = DetectorEntry.model_validate(meta["extra"])
    assert entry.threshold == meta["extra"]["threshold"] and len(entry.train_score_quantiles) == 101
    schema = saved_model_schema()
    assert set(schema) == {"SavedModel", "DetectorEntry", "GenerativeEntry"}
    assert {"format_version", "model_config", "weights_sha256", "extra"} <= set(schema["SavedModel"]["properties"])
    assert {"model_config", "weights_sha256"} <= set(schema["SavedModel"]["required"])
    assert {"threshold", "train_score_quantiles", "member_stats"} <= set(schema["DetectorEntry"]["properties"])
    json.dumps(schema)  # plain JSON, for tools


@pytest.mark.parametrize("edit, fragment", [
    # Each of these loaded (or failed with a TypeError deep inside) before the schema.
    (lambda m: m["extra"].update(feature_names_in=5), r"feature_names_in: input should be a valid list"),
    (lambda m: m["extra"].update(history="none"), r"history: input should be a valid list"),
    (lambda m: m["extra"].update(n_features_in=0), r"n_features_in: input should be greater than or equal to 1"),
    (lambda m: m["extra"].update(threshold="1.5"), r"threshold: input should be a valid number \(got '1.5'\)"),
    (lambda m: m["extra"].update(train_score_max=float("inf")), r"train_score_max inf is not a finite number"),
    (lambda m: m["extra"].update(data_columns={"ids": ["a"]}), r"data_columns\.ids\.\[key\]"),
    (lambda m: m["extra"].pop("train_score_min"), r"train_score_min is missing"),
    (lambda m: m.update(n_members=True), r"n_members: input should be a valid integer"),
    (lambda m: m.update(n_members=65), r"n_members: value error, must be an integer in \[1, 64\]"),
    (lambda m: m.update(weights_sha256="not-a-hash"), r"weights_sha256: string should match pattern"),
    (lambda m: m.update(extra=[]), r"extra: input should be a valid dictionary"),
])
def test_a_tampered_field_is_refused_naming_the_file_and_the_field(fitted, tmp_path, edit, fragment):
    _, path = fitted
    bad = edit_meta(path, tmp_path / "m", edit)
    with pytest.raises(ModelError, match=fragment) as e:
        VAEDetector.load(bad)
    assert str(bad / "model.json") in str(e.value) and "\n" not in str(e.value)


def test_a_model_saved_by_0_1_0_still_loads_and_scores_the_same(fitted, table, tmp_path):
    """0.1.0 wrote no library_version, model_class, n_members, score moments, member_stats, data_columns,
    feature_names_in or history, and named the score option ``score``."""
    det, path = fitted

    def as_0_1_0(meta):
        for key in ("library_version", "model_class", "n_members"):
            meta.pop(key)
        for key in ("train_score_mean", "train_score_std", "n_train_scores", "member_stats", "data_columns",
                    "feature_names_in", "history"):
            meta["extra"].pop(key)
        meta["extra"]["params"]["score"] = meta["extra"]["params"].pop("score_method")

    old = VAEDetector.load(edit_meta(path, tmp_path / "old", as_0_1_0))
    np.testing.assert_array_equal(old.decision_function(table[:50]), det.decision_function(table[:50]))
    assert old.threshold_ == det.threshold_ and not hasattr(old, "n_train_scores_")
    assert old.member_stats_ == [] and old.data_columns_ == {} and old.history_ == []


def test_generative_model_entry_is_checked(tmp_path, digits):
    from vae_anomaly.generative import GenerativeModel

    X, y = digits
    GenerativeModel.fit(X[:120], y[:120] % 2, kind="cvae", epochs=1).save(tmp_path / "g")
    assert GenerativeModel.load(tmp_path / "g").classes == [0, 1]
    GenerativeEntry.model_validate(json.loads((tmp_path / "g" / "model.json").read_text())["extra"])
    bad = edit_meta(tmp_path / "g", tmp_path / "bad", lambda m: m["extra"].update(classes="01"))
    with pytest.raises(ModelError, match=r"model\.json: GenerativeModel entry is malformed: classes: input should be"):
        GenerativeModel.load(bad)
