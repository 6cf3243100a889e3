"""Issue #21: one vocabulary -- the right error types, one flagging rule, chunk-independent sampled
scores, an explicit model interface, no import cycle."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vae_anomaly import VAEDetector


def _train_data(frame: pd.DataFrame, labels: np.ndarray | None):
    from vae_anomaly.data import Dataset
    from vae_anomaly.jobs import TrainingData

    return TrainingData(Dataset(X=frame, y=None, kind="tabular", source="mem"), frame, frame, labels)


# --------------------------------------------------------------------------- promotion race
def test_a_champion_that_keeps_moving_is_a_promotion_conflict_naming_the_version(mlflow_store, cancer, monkeypatch):
    """Another job moves the alias (for real, in the store) after every read: promote gives up after
    MAX_ATTEMPTS with a registry error naming the registered version -- not a DataError, and not the
    literal text '{version}'."""
    from vae_anomaly import jobs, tracking
    from vae_anomaly.errors import DataError, PromotionConflictError, TrackingError

    X, y = cancer
    data = _train_data(X, y)
    cfg = jobs.TrainJobConfig(model_name="race", experiment="race")
    poor = VAEDetector(random_state=0, epochs=2).fit(X[y == 1])
    good = VAEDetector(random_state=0, epochs=30, trim_fraction=0.0).fit(X[y == 0])

    def log(det, name):
        run = tracking.start_run("race", run_name=name)
        return run, tracking.log_detector(run, det, X.iloc[:5])

    run1, uri1 = log(poor, "v1")
    assert jobs.promote(poor, data, cfg, model_uri=uri1, run_id=run1).version == "1"
    run2, uri2 = log(poor, "v2")
    tracking.register(uri2, "race", run2)  # a second poor version the other job flips to
    real_read = tracking.champion_version

    def read_then_other_job_moves_alias(name):
        current = real_read(name)
        tracking.set_champion(name, "2" if current == "1" else "1", "the other job")
        return current

    monkeypatch.setattr(tracking, "champion_version", read_then_other_job_moves_alias)
    run3, uri3 = log(good, "good")
    with pytest.raises(PromotionConflictError) as e:
        jobs.promote(good, data, cfg, model_uri=uri3, run_id=run3)
    assert isinstance(e.value, TrackingError) and not isinstance(e.value, DataError)
    message = str(e.value)
    assert "version 3 is registered but not promoted" in message and "{version}" not in message
    assert f"{jobs.promotion.MAX_ATTEMPTS} promotion attempts" in message


# --------------------------------------------------------------------------- one flagging rule
def test_flag_is_the_one_rule_strictly_above_the_threshold_as_int64():
    from vae_anomaly.scoring import flag

    flags = flag(np.array([0.5, 1.0, 1.0 + 1e-12, 7.0]), 1.0)
    assert flags.tolist() == [0, 0, 1, 1] and flags.dtype == np.int64  # a score equal to the threshold is normal
    assert flag([2.0, -1.0], np.float32(0.0)).tolist() == [1, 0] and flag(np.empty(0), 0.0).dtype == np.int64


def test_every_flag_in_the_package_comes_from_scoring_flag():
    """No second copy of ``scores > threshold`` (nine copies had drifted between int, int8 and int64)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    copy = re.compile(r"[<>]=?\s*(?:\w+\.)*threshold_?\b(?!\s*[=(])")
    found = [f"{p.relative_to(root)}:{i}: {line.strip()}"
             for folder in ("vae_anomaly",) for p in sorted((root / folder).rglob("*.py"))
             for i, line in enumerate(p.read_text().splitlines(), 1)
             if copy.search(line.split("#")[0]) and "drift" not in line and "def flag" not in line]
    flag_body = [f for f in found if f.startswith("vae_anomaly/scoring.py")]
    assert len(flag_body) == 1 and "scores" in flag_body[0], found  # the rule itself
    assert [f for f in found if f not in flag_body] == []


def test_predict_labels_and_metrics_use_the_one_rule(cancer):
    from vae_anomaly.scoring import detection_metrics, flag

    X, y = cancer
    det = VAEDetector(random_state=0, epochs=2).fit(X)
    s = det.decision_function(X)
    pred = det.predict(X)
    assert pred.dtype == flag(s, det.threshold_).dtype and (pred == flag(s, det.threshold_)).all()
    assert det.labels_.dtype == np.int64 and (det.labels_ == flag(det.decision_scores_, det.threshold_)).all()
    det.calibrate_threshold(X, target_fpr=0.2)
    assert det.labels_.dtype == np.int64 and (det.labels_ == flag(det.decision_scores_, det.threshold_)).all()
    from sklearn.metrics import f1_score

    assert detection_metrics(y, s, det.threshold_)["f1"] == pytest.approx(f1_score(y, flag(s, det.threshold_)))


# --------------------------------------------------------------------------- chunk-independent sampled scores
@pytest.fixture(scope="module")
def small_detectors(cancer):
    X, _ = cancer
    single = VAEDetector(random_state=0, epochs=3, n_samples=4).fit(X)
    ensemble = VAEDetector(random_state=0, epochs=2, n_estimators=2, score_method="neg_elbo", n_samples=4).fit(X)
    return single, ensemble


def _chunked(det, X, size, method=None):
    return np.concatenate([det.decision_function(X.iloc[i:i + size], method=method) for i in range(0, len(X), size)])


@pytest.mark.parametrize("method", ["recon_kl", "neg_elbo", "iwae", "recon", "kl"])
def test_every_score_method_gives_a_row_the_same_score_whatever_the_chunking(small_detectors, cancer, method):
    from vae_anomaly.scoring import SCORE_METHODS

    assert set(SCORE_METHODS) == {"recon_kl", "neg_elbo", "iwae", "recon", "kl"}  # a new method joins this test
    X, _ = cancer
    det, ensemble = small_detectors
    whole = det.decision_function(X, method=method)
    for size in (7, 64, 4096):
        np.testing.assert_allclose(_chunked(det, X, size, method), whole, rtol=1e-5, atol=1e-6, err_msg=str(size))
    # the rows in another order: each keeps its score
    order = np.random.default_rng(0).permutation(len(X))
    np.testing.assert_allclose(det.decision_function(X.iloc[order], method=method), whole[order], rtol=1e-5, atol=1e-6)
    if method in ("neg_elbo", "iwae"):  # an ensemble's members are sampled the same way
        np.testing.assert_allclose(_chunked(ensemble, X, 7, method), ensemble.decision_function(X, method=method),
                                   rtol=1e-5, atol=1e-6)


def test_sampled_scores_are_sampled_and_seeded(small_detectors, cancer):
    """The noise is real (another seed or more samples change the score) and the same seed repeats it."""
    import torch

    from vae_anomaly.scoring import score_batch

    X, _ = cancer
    det, _ = small_detectors
    x = torch.from_numpy(det.preprocessor_.transform(X.iloc[:50]))
    a = score_batch(det.model_, x, method="neg_elbo", n_samples=4, seed=0)
    assert torch.equal(a, score_batch(det.model_, x, method="neg_elbo", n_samples=4, seed=0))
    assert not torch.allclose(a, score_batch(det.model_, x, method="neg_elbo", n_samples=4, seed=1))
    assert not torch.allclose(a, score_batch(det.model_, x, method="neg_elbo", n_samples=8, seed=0))


def test_score_file_chunk_size_does_not_change_sampled_scores(small_detectors, cancer, tmp_path):
    from vae_anomaly.file_scoring import score_file

    X, _ = cancer
    _, ensemble = small_detectors
    X.to_csv(tmp_path / "in.csv", index=False)
    outs = []
    for rows in (7, 4096):
        score_file(ensemble, tmp_path / "in.csv", tmp_path / f"s{rows}.parquet", chunk_rows=rows)
        outs.append(pd.read_parquet(tmp_path / f"s{rows}.parquet")["score"].to_numpy())
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(outs[1], ensemble.decision_function(X), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- the model interface
def _family():
    from vae_anomaly.models import CVAE, VAE, VQVAE, ModelConfig

    return {"vae": VAE(ModelConfig((6,))), "cvae": CVAE(ModelConfig((6,), kind="cvae", n_conditions=3)),
            "vqvae": VQVAE(ModelConfig((6,), kind="vqvae")), "conv-vae": VAE(ModelConfig((1, 8, 8)))}


def test_every_model_meets_the_vae_model_protocol_and_an_ensemble_holds_such_models():
    import inspect

    from torch import nn

    from vae_anomaly.models import ModelEnsemble, VAEModel

    family = _family()
    for name, m in family.items():
        assert isinstance(m, VAEModel), name
        for method in ("encode", "decode", "loss", "score_terms", "reconstruct"):  # (x or z, c=None, ...)
            assert "c" in inspect.signature(getattr(m, method)).parameters, (name, method)
    assert [m.is_quantized for m in family.values()] == [False, False, True, False]
    ens = ModelEnsemble([family["vae"], _family()["vae"]])
    assert not isinstance(ens, VAEModel) and all(isinstance(m, VAEModel) for m in ens.members)
    assert ens.is_quantized is False and ModelEnsemble([family["vqvae"]]).is_quantized is True
    assert not isinstance(nn.Linear(2, 2), VAEModel)


def test_score_terms_are_what_the_scores_add_up():
    import torch

    from vae_anomaly.scoring import score_batch

    family = _family()
    for name, m in family.items():
        m.eval()
        x = torch.rand(5, *m.config.input_shape)
        c = torch.tensor([0, 1, 2, 0, 1]) if name == "cvae" else None
        nllf, rate = m.score_terms(x, c)
        assert nllf.shape == (5, x[0].numel()) and rate.shape == (5,)
        torch.testing.assert_close(score_batch(m, x, c), nllf.sum(1) + rate)
        torch.testing.assert_close(score_batch(m, x, c, method="kl"), rate)


def test_an_unconditional_model_refuses_a_condition_instead_of_ignoring_it():
    import torch

    family = _family()
    x = torch.rand(4, 6)
    for name in ("vae", "vqvae"):
        with pytest.raises(ValueError, match="not conditional"):
            family[name].encode(x, torch.tensor([0, 1, 0, 1]))
        z = family["vqvae"].encode(x) if name == "vqvae" else torch.zeros(4, family[name].latent_dim)
        with pytest.raises(ValueError, match="not conditional"):
            family[name].decode(z, torch.tensor([0, 1, 0, 1]))


# --------------------------------------------------------------------------- no import cycle with the CLI
def _import_graph() -> dict[str, set[str]]:
    """vae_anomaly module -> the vae_anomaly modules it imports anywhere (top level or inside functions).

    ``from p import x`` is an edge to ``p.x`` when that is a module, else to ``p`` (its ``__init__``'s
    names); a package's ``__init__`` run only because one of its submodules is imported is not an edge
    (else every submodule importing a sibling would "cycle" with its package). Imports under
    ``if TYPE_CHECKING:`` never run and are skipped. ``importlib.import_module`` with a literal name is
    an edge; one with a computed name (a lazy re-export table) counts every string in that module that
    names a module of the package, absolute or relative to its package.
    """
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    files: dict[str, tuple[Path, list[str]]] = {}
    for path in (root / "vae_anomaly").rglob("*.py"):
        parts = list(path.relative_to(root).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        files[name] = (path, parts[:-1])  # the package a relative import starts from

    def known(*candidates: str) -> set[str]:
        return {c for c in candidates if c in files}

    graph: dict[str, set[str]] = {}
    for name, (path, package) in files.items():
        tree = ast.parse(path.read_text())
        skipped = {id(n) for top in ast.walk(tree) if isinstance(top, ast.If)
                   and "TYPE_CHECKING" in ast.unparse(top.test) for stmt in top.body for n in ast.walk(stmt)}
        found: set[str] = set()
        dynamic = False
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.Import):
                found |= known(*(a.name for a in node.names))
            elif isinstance(node, ast.ImportFrom):
                base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else [])) \
                    if node.level else node.module or ""
                for alias in node.names:
                    found |= known(f"{base}.{alias.name}") or known(base)
            elif isinstance(node, ast.Call) and ast.unparse(node.func).endswith("import_module"):
                arg = node.args[0] if node.args else None
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    rel = arg.value.lstrip(".")
                    found |= known(f"{'.'.join(package)}.{rel}" if arg.value.startswith(".") else arg.value)
                else:
                    dynamic = True
        if dynamic:
            for const in ast.walk(tree):
                if isinstance(const, ast.Constant) and isinstance(const.value, str) and const.value:
                    found |= known(const.value, f"{'.'.join(package)}.{const.value.lstrip('.')}")
        graph[name] = found - {name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle path (a -> ... -> a) per strongly connected component of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[set[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm; the graph is small, recursion is fine
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    paths = []
    for component in components:  # a shortest way from the component's first module back to itself
        start = min(component)
        parent: dict[str, str | None] = {start: None}
        queue, end = [start], start
        for v in queue:
            successors = sorted(graph[v] & component)
            if start in successors:
                end = v
                break
            for w in successors:
                if w not in parent:
                    parent[w] = v
                    queue.append(w)
        chain: list[str] = []
        node: str | None = end
        while node is not None:
            chain.append(node)
            node = parent[node]
        paths.append([*reversed(chain), start])
    return paths


def test_the_import_graph_finds_a_cycle_and_reports_its_path():
    assert _cycles({"a": {"b"}, "b": {"c", "d"}, "c": {"a"}, "d": set()}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_package_has_no_import_cycle():
    """Issue #21: no module imports one that (directly or not, at import time or inside a function)
    imports it back -- shared code sits in a leaf both import (``provenance``, ``tracking/manifest``)."""
    graph = _import_graph()
    # What the builder must see: a function-level ``from . import package``, a lazy re-export table, and
    # not an import that only type checkers run (codes names GenerativeModel under TYPE_CHECKING).
    assert "vae_anomaly.tracking" in graph["vae_anomaly.lineage"]
    assert {"vae_anomaly.detector", "vae_anomaly.oversampler"} <= graph["vae_anomaly"]
    assert "vae_anomaly.generative_reports" in graph["vae_anomaly.generative"]
    assert "vae_anomaly.generative" not in graph["vae_anomaly.codes"]
    cycles = _cycles(graph)
    assert cycles == [], "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_a_detector_epoch_cap_is_the_epochs_option_s_own():
    """One number: the detector's auto-epoch cap is what ``epochs`` accepts at most, not a second literal."""
    from vae_anomaly.fitting import DETECTION_MAX_EPOCHS
    from vae_anomaly.params import EPOCHS, MAX_EPOCHS

    assert DETECTION_MAX_EPOCHS == MAX_EPOCHS and EPOCHS.accepts(MAX_EPOCHS) and not EPOCHS.accepts(MAX_EPOCHS + 1)


def test_experiment_names_are_spelled_once_in_defaults():
    import ast
    from pathlib import Path

    from vae_anomaly import cli, defaults
    from vae_anomaly.jobs.synthesize import SynthJobConfig

    assert SynthJobConfig().experiment == defaults.SYNTH_EXPERIMENT == "vae-anomaly-synth"
    assert cli.DEMO_EXPERIMENT == defaults.DEMO_EXPERIMENT == "vae-anomaly-demo"
    names = {defaults.SYNTH_EXPERIMENT, defaults.DEMO_EXPERIMENT}  # (EXPERIMENT is also the distribution's name)
    spelled = [(path.name, node.value) for path in Path(defaults.__file__).parent.rglob("*.py") if path.name != "defaults.py"
               for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, ast.Constant) and node.value in names]
    assert spelled == []


def test_no_library_module_imports_the_cli():
    """The CLI sits on top: fit_command (and every other module) must not import it back."""
    graph = _import_graph()
    assert "vae_anomaly.cli" in graph and "vae_anomaly.fit_command" in graph["vae_anomaly.cli"]
    assert sorted(m for m, deps in graph.items() if "vae_anomaly.cli" in deps and m != "vae_anomaly.cli") == []


def test_fit_command_checks_options_without_loading_the_cli(tmp_path):
    import subprocess
    import sys

    code = ("import sys\nfrom vae_anomaly.errors import ConfigError\nfrom vae_anomaly.fit_command import fit_and_save\n"
            f"try:\n    fit_and_save('nowhere.csv', {str(tmp_path / 'm')!r}, options=['laten_dim=4'])\n"
            "except ConfigError as exc:\n    print('refused:', exc)\n"
            "print('cli loaded:', 'vae_anomaly.cli' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert "refused:" in r.stdout and "latent_dim" in r.stdout, (r.stdout, r.stderr[-2000:])
    assert "cli loaded: False" in r.stdout, r.stdout


# --------------------------------------------------------------------------- names that say what they do
def test_evaluate_and_register_model_name_one_thing_each():
    """``evaluate`` named five functions and ``register_model`` meant "send to the Dask workers" beside
    MLflow's "register in the registry": each name is now one idea (trainer.mean_loss_terms: loss terms on
    held-out rows; registering is tracking.register)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    defs: dict[str, list[str]] = {}
    for folder in ("vae_anomaly",):
        for path in (root / folder).rglob("*.py"):
            for node in ast.parse(path.read_text()).body:
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    defs.setdefault(node.name, []).append(str(path.relative_to(root)))
    assert "evaluate" not in defs, defs.get("evaluate")
    from vae_anomaly.trainer import mean_loss_terms

    assert callable(mean_loss_terms)
    assert "register_model" not in defs, defs.get("register_model")
    from vae_anomaly import jobs
    from vae_anomaly.jobs import synthesize

    assert callable(jobs.validation_metrics) and callable(synthesize.synthesis_metrics)


# --------------------------------------------------------------------------- one name per option
def test_resuming_a_checkpoint_made_for_other_data_or_options_is_refused(tmp_path):
    """The checkpoint key is set from the training request (data + options): a checkpoint left by a fit
    on other data, or with other options, is refused instead of being silently continued."""
    from vae_anomaly.errors import TrainingError

    rng = np.random.default_rng(0)
    X, other = rng.normal(size=(120, 4)), rng.normal(size=(120, 4)) + 1.0
    ckpt = tmp_path / "ck"
    VAEDetector(random_state=0, epochs=2).fit(X, checkpoint_dir=ckpt)
    with pytest.raises(TrainingError, match="another training request"):
        VAEDetector(random_state=0, epochs=2).fit(other, checkpoint_dir=ckpt, resume=True)
    with pytest.raises(TrainingError, match="another training request"):
        VAEDetector(random_state=0, epochs=2, lr=1e-2).fit(X, checkpoint_dir=ckpt, resume=True)
    # The same request resumes from its last epoch.
    det = VAEDetector(random_state=0, epochs=2).fit(X, checkpoint_dir=ckpt, resume=True)
    assert det.train_result_.resumed_from_epoch == 1


# --------------------------------------------------------------------------- one top-level package
def test_the_distribution_installs_only_the_vae_anomaly_package():
    """A wheel of this project puts one name on a user's sys.path: a top-level ``pipelines`` (the old home of
    the flows) would shadow or be shadowed by any other package of that name."""
    import tomllib
    from pathlib import Path

    from setuptools import find_packages

    root = Path(__file__).resolve().parents[1]
    find = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    packages = find_packages(where=str(root), include=find["include"], exclude=find.get("exclude", ()))
    assert {p.split(".")[0] for p in packages} == {"vae_anomaly"}, packages
    assert "vae_anomaly.flows" in packages and "vae_anomaly.jobs" in packages
    assert not (root / "pipelines").exists()


def test_only_the_flows_import_prefect_and_importing_the_package_does_not():
    """``vae_anomaly.flows`` is the one prefect importer; ``import vae_anomaly`` loads neither it nor prefect."""
    import ast
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    importers = set()
    for path in (root / "vae_anomaly").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            if any(n == "prefect" or n.startswith(("prefect.", "prefect_")) for n in names):
                importers.add(path.relative_to(root).parts[:2])
    assert importers == {("vae_anomaly", "flows")}, importers
    code = "import sys, vae_anomaly; print(sorted(m for m in sys.modules if m.startswith(('prefect', 'vae_anomaly.flows'))))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]", r.stdout


# Options of the typed configs that no estimator parameter sets: the loop's own settings, where a fit
# keeps its checkpoint, and the data-dependent or VQ-VAE-internal parts of the model config.
INTERNAL_TRAIN = {"max_epochs", "min_delta", "grad_clip", "checkpoint_dir", "resume", "checkpoint_key", "trim_start"}
DATA_MODEL = {"input_shape", "blocks", "n_conditions"}
INTERNAL_MODEL = {"conv_channels", "table_hidden_dims", "capacity_anneal", "codebook_size", "code_dim", "n_positions", "commitment",
                  "ema_decay", "dead_code_threshold"}


def test_each_option_reaches_the_typed_configs_under_its_own_name():
    """One name per idea from the estimator to the loop: every TrainConfig field and every chosen
    ModelConfig field is a VAEDetector parameter of the same name (or listed above as internal), and a
    detector's configs carry its parameters' values under those names."""
    import dataclasses
    import inspect

    from vae_anomaly.models import ModelConfig
    from vae_anomaly.trainer import TrainConfig

    params = set(inspect.signature(VAEDetector).parameters)
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    model_fields = {f.name for f in dataclasses.fields(ModelConfig)}
    assert train_fields - INTERNAL_TRAIN <= params, train_fields - INTERNAL_TRAIN - params
    assert model_fields - DATA_MODEL - INTERNAL_MODEL <= params, model_fields - DATA_MODEL - INTERNAL_MODEL - params
    assert not (INTERNAL_TRAIN | INTERNAL_MODEL) & params  # an internal name is not also a parameter
    assert not {"model", "seed", "trim", "progress", "n_members", "member_fraction"} & (train_fields | params)

    det = VAEDetector(kind="vqvae", latent_dim=3, hidden_dims=(8,), beta=2.0, epochs=7, batch_size=32, max_steps=55,
                      lr=0.02, weight_decay=0.0, val_fraction=0.2, patience=3, stopping="separation",
                      separation_patience=9, noise="mask", noise_level=0.3, device="cpu", trim_fraction=0.25,
                      n_estimators=3, max_samples=0.6, n_jobs=1, random_state=7, verbose=True, dropout=0.1,
                      architecture="mlp", image_likelihood="bernoulli", kl_warmup=0.5, capacity=2.0)
    given = det.get_params()
    tc, mc = det._train_config(), det._model_config()
    for name in train_fields - INTERNAL_TRAIN:
        assert getattr(tc, name) == given[name], name
    for name in model_fields - DATA_MODEL - INTERNAL_MODEL:
        assert getattr(mc, name) == given[name], name


def test_a_fitted_ensemble_keeps_its_options_in_train_config_(cancer):
    X, _ = cancer
    det = VAEDetector(random_state=3, epochs=2, n_estimators=2, max_samples=0.5, trim_fraction=0.2).fit(X)
    tc = det.train_config_
    assert (tc.n_estimators, tc.max_samples, tc.trim_fraction, tc.random_state, tc.epochs) == (2, 0.5, 0.2, 3, 2)


def _spelled_sets(path) -> list[tuple[int, set[str]]]:
    """String constants written together as a set of values in ``path``: tuple, list or set literals and
    Literal[...] subscripts (a ``==`` against one word is using a value, not declaring the set)."""
    import ast

    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Tuple):
            elts = node.slice.elts
        elif isinstance(node, ast.Tuple | ast.List | ast.Set):
            elts = node.elts
        else:
            continue
        words = {e.value for e in elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
        if words:
            out.append((node.lineno, words))
    return out


def test_the_options_table_is_the_only_place_the_word_sets_are_spelled():
    """The noise kinds, device names, stopping rules, image likelihoods, model kinds and scalings are
    declared once, in vae_anomaly/options.py; every other module imports them."""
    from pathlib import Path

    import vae_anomaly
    from vae_anomaly import options

    root = Path(vae_anomaly.__file__).parent
    sets = {"noise": options.NOISE_KINDS, "device": options.DEVICE_NAMES, "stopping": options.STOPPING_RULES,
            "image likelihood": options.IMAGE_LIKELIHOODS, "scaling": options.SCALINGS,
            "score method": options.SCORE_METHODS, "binary columns": options.BINARY_COLUMNS,
            "model kind": options.MODEL_KINDS, "architecture": options.ARCHITECTURES,
            "threshold": options.THRESHOLD_METHODS}
    assert options.NOISE_KINDS == ("gaussian", "salt_pepper", "mask")
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.name == "options.py":
            continue
        for line, words in _spelled_sets(path):
            for what, values in sets.items():
                if set(values) <= words:  # the whole set written out again: a second declaration
                    found.append(f"{path.relative_to(root)}:{line} spells the {what} set {sorted(words)}")
    assert not found, "\n".join(found)
    # The estimators' constraints are selections of the table: the same objects, not copies.
    from vae_anomaly.oversampler import VAEOversampler

    for owner in (VAEDetector, VAEOversampler):
        for name in ("device", "epochs", "lr", "latent_dim", "n_jobs", "random_state"):
            assert owner._parameter_constraints[name] is options.OPTIONS[name]


def test_an_old_saved_model_and_job_config_with_model_still_load(cancer, tmp_path):
    """Renamed ``model`` -> ``kind``: a model folder and a train-job config written with the old key load."""
    import json

    from vae_anomaly.jobs import TrainJobConfig

    X, _ = cancer
    VAEDetector(random_state=0, epochs=1).fit(X).save(tmp_path / "m")
    path = tmp_path / "m" / "model.json"
    meta = json.loads(path.read_text())
    params = meta["extra"]["params"]
    params["model"] = params.pop("kind")
    path.write_text(json.dumps(meta))
    assert VAEDetector.load(tmp_path / "m").kind == "vae"
    assert TrainJobConfig(detector={"model": "vqvae"}).detector == {"kind": "vqvae"}


def test_cli_fit_takes_kind_and_model_is_only_the_registry_reference(tmp_path):
    import json
    import re
    import subprocess
    import sys
    from pathlib import Path

    cli = Path(sys.executable).parent / "vae-anomaly"
    data = Path(__file__).parents[1] / "data" / "breast_cancer.csv"
    ok = subprocess.run([str(cli), "fit", str(data), "--kind", "vqvae", "--epochs", "1", "--out", str(tmp_path / "m"),
                         "--id", "patient_id", "--label", "diagnosis"], capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert json.loads((tmp_path / "m" / "model.json").read_text())["extra"]["params"]["kind"] == "vqvae"
    old = subprocess.run([str(cli), "fit", str(data), "--model", "vqvae", "--out", str(tmp_path / "n")],
                         capture_output=True, text=True, timeout=120)
    assert old.returncode == 2 and "--model" in old.stderr and not (tmp_path / "n").exists()
    for command in ("fit", "train"):
        text = subprocess.run([str(cli), command, "--help"], capture_output=True, text=True, timeout=120).stdout
        assert "--kind" in text and not re.search(r"--model(?![-\w])", text), command


def test_job_configs_call_the_seed_random_state_and_still_read_seed():
    from vae_anomaly.jobs import TrainJobConfig
    from vae_anomaly.jobs.synthesize import SynthJobConfig

    for cls in (TrainJobConfig, SynthJobConfig):
        assert "seed" not in cls.model_fields and cls().random_state == 0
        assert cls(seed=3).random_state == 3 and cls(random_state=4).random_state == 4
        assert "seed" not in cls(seed=3).model_dump()


def test_an_unbound_model_config_builds_no_model_and_a_saved_one_must_be_bound():
    from vae_anomaly.errors import ConfigError
    from vae_anomaly.models import ModelConfig, build_model

    with pytest.raises(ConfigError, match="for_input"):
        build_model(ModelConfig(kind="vae"))
    assert build_model(ModelConfig(kind="vae").for_input((6,))) is not None
    bound = ModelConfig(kind="vae").for_input((6,)).to_dict()
    with pytest.raises(ConfigError, match="input_shape"):
        ModelConfig.from_dict({**bound, "input_shape": []})


def test_fit_model_takes_the_class_count_from_the_estimator_and_checks_the_codes():
    from vae_anomaly.errors import DataError
    from vae_anomaly.fitting import PreprocessConfig, fit_model
    from vae_anomaly.models import ModelConfig
    from vae_anomaly.trainer import TrainConfig

    X = np.random.default_rng(0).normal(size=(40, 3))
    codes = np.repeat([0, 1], 20)  # the labels hold three classes; the third has no row in this sample
    fitted = fit_model(X, codes, model_config=ModelConfig(kind="cvae", n_conditions=3),
                       train_config=TrainConfig(epochs=1), preprocess_config=PreprocessConfig())
    assert fitted.model.config.n_conditions == 3
    for bad in (np.repeat([0, 3], 20), np.repeat([-1, 1], 20), np.repeat([0.0, 1.0], 20)):
        with pytest.raises(DataError, match="class codes"):
            fit_model(X, bad, model_config=ModelConfig(kind="cvae", n_conditions=3),
                      train_config=TrainConfig(epochs=1), preprocess_config=PreprocessConfig())


def test_the_progress_seed_and_trim_switches_carry_the_estimators_names():
    """One name per idea down to the helpers: verbose (not progress), random_state (not seed), trim_fraction
    (not trim), n_estimators (not n_members)."""
    import dataclasses
    import inspect

    from vae_anomaly import file_scoring, fit_command, fitting, plots, recipes
    from vae_anomaly.jobs import score

    expected = {fit_command.fit_and_save: {"verbose"}, recipes.fashion_mnist: {"verbose", "random_state"},
                plots.training_curves: {"trim_fraction"}, score.run: {"verbose"}, file_scoring.score_file: {"verbose"}}
    for function, names in expected.items():
        params = set(inspect.signature(function).parameters)
        assert names <= params and not {"progress", "seed", "trim"} & params, (function.__name__, params)
    assert "random_state" in {f.name for f in dataclasses.fields(fitting.FittedModel)}


def test_the_readme_architecture_names_every_module():
    # The README's architecture section is the living design: a module added without it fails here.
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    section = readme[readme.index("## Architecture"):readme.index("\n## ", readme.index("## Architecture") + 3)]
    package = root / "vae_anomaly"
    modules = [p for p in package.rglob("*.py") if p.name not in ("__init__.py", "_version.py")]
    missing = [str(p.relative_to(package)) for p in modules if p.name not in section]
    assert not missing, f"README's Architecture section does not name {missing}"
    for folder in {p.parent for p in modules if p.parent != package}:
        assert f"{folder.name}/" in section, folder.name
