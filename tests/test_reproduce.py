"""Selection on a candidate protocol and fixed-step epochs (``recbole_session.trainer``), the
per-user batch rule, the new-session slice, the paper preset, and ``python -m
recbole_session.reproduce`` (a tiny resumable table, the figure's plot, bad options)."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bad_input import BadInput, check
from recbole.data import data_preparation
from recbole.trainer import Trainer
from recbole.utils import init_seed

from recbole_session import compat
from recbole_session.build import build
from recbole_session.convert import convert
from recbole_session.evaluation import evaluate_protocols, stats
from recbole_session.paths import properties_dir
from recbole_session.quick_start import make_config
from recbole_session.reproduce import figure2, table2
from recbole_session.reproduce.runner import new_session_users, run_all, shared_recipe
from recbole_session.trainer import SessionBERT4RecTrainer, with_protocol_validation
from recbole_session.trainer.protocol_trainer import StepWindow
from recbole_session.utils import create_dataset, get_model, get_trainer

TINY = {"hidden_size": 16, "n_layers": 1, "n_heads": 2, "inner_size": 32, "MAX_ITEM_LIST_LENGTH": 20}


pytestmark = pytest.mark.usefixtures("one_thread")


class Passes:
    """An iterable whose every pass yields ``(pass, i)`` for ``i`` in range(n)."""

    def __init__(self, n: int):
        self.n, self.passes = n, 0

    def __iter__(self):
        self.passes += 1
        return iter([(self.passes, i) for i in range(self.n)])


def test_every_table2_row_has_its_rows_key_and_knn_is_one():
    """--rows names each row of table 2 by one key, V-SKNN's included (one epoch: nothing to learn)."""
    from recbole_session.reproduce import ROW_KEYS, row_key

    rows = table2.table_rows(2, 4)
    assert [row_key(label) for label, _, _ in rows] == ROW_KEYS
    assert (table2.KNN, "VSKNN", {"epochs": 1}) in rows and row_key(table2.KNN) == "knn"


def test_step_window_continues_and_starts_a_new_pass():
    loader = Passes(5)
    window = StepWindow(loader, 3)
    assert len(window) == 3
    assert list(window) == [(1, 0), (1, 1), (1, 2)]
    assert list(window) == [(1, 3), (1, 4), (2, 0)]
    assert list(window) == [(2, 1), (2, 2), (2, 3)]


def loaders(config):
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    return dataset, *data_preparation(config, dataset)


def test_protocol_validation_and_epoch_steps_on_recbole_sasrec(fast_config, monkeypatch):
    """RecBole's own SASRec and Trainer, mixed in: each epoch is 3 steps, the early-stopping
    score is valid N@10 under random-100 of the model being validated, and the C heap's free
    pages are given back after every epoch (on glibc, where malloc_trim exists)."""
    trims = []
    trim_heap = compat.trim_heap
    monkeypatch.setattr(compat, "trim_heap", lambda: trims.append(trim_heap()) or trims[-1])
    config = make_config("SASRec", "ml-100k", config_dict={
        **fast_config, **TINY, "epochs": 2, "eval_step": 1, "valid_protocol": "random100",
        "epoch_steps": 3, "train_batch_size": 32})
    dataset, train, valid, _ = loaders(config)
    model = get_model("SASRec")(config, train._dataset)
    trainer = with_protocol_validation(get_trainer(config["MODEL_TYPE"], "SASRec"))(config, model)
    assert isinstance(trainer, Trainer) and with_protocol_validation(Trainer) is type(trainer)
    trainer.protocol_dataset = dataset
    steps = []
    original = model.calculate_loss
    model.calculate_loss = lambda interaction: (steps.append(len(interaction)), original(interaction))[1]
    scores = []
    trainer.fit(train, valid, saved=True, show_progress=False, verbose=False,
                callback_fn=lambda epoch, score: scores.append(score))
    assert len(steps) == 6 and set(steps) == {32}  # 2 epochs x 3 steps of full batches
    assert trims == [True, True]  # once per epoch; this Linux has glibc
    assert len(train) > 6  # ... out of a loader much longer than that
    assert set(trainer.best_valid_result) >= {"random100/ndcg@10", "random100/recall@10"}
    assert trainer.best_valid_score == max(scores)
    trainer.evaluate(valid, load_best_model=True, show_progress=False)  # loads the best epoch
    again = evaluate_protocols(model, valid, config, ["random100"], dataset=dataset)["random100/ndcg@10"]
    assert again == pytest.approx(trainer.best_valid_score, abs=1e-4)


def test_sessionbert4rec_default_recipe_and_window_batch_rule(fast_config):
    """The default: RecBole's every-prefix rows, epochs of 10 steps of the reference's batch 128.
    The window regime: ``batches_per_epoch`` sets the batch so that one pass is 10 steps."""
    yaml_batch = {k: v for k, v in fast_config.items() if k != "train_batch_size"}
    config = make_config("SessionBERT4Rec", "ml-100k", config_dict={**yaml_batch, **TINY})
    assert get_trainer(config["MODEL_TYPE"], "SessionBERT4Rec") is SessionBERT4RecTrainer
    assert config["valid_protocol"] == "random100" and config["train_regime"] == "prefix"
    assert (config["train_batch_size"], config["epoch_steps"]) == (128, 10)
    dataset, train, _, _ = loaders(config)
    # one row per training target: every interaction but each user's valid and test ones
    assert len(train.dataset) == dataset.inter_num - 2 * (dataset.user_num - 1)
    assert config["train_batch_size"] == 128 and len(train) > config["epoch_steps"]

    window = make_config("SessionBERT4Rec", "ml-100k", config_dict={**yaml_batch, **TINY, "train_regime": "window"})
    _, train, _, _ = loaders(window)
    rows = len(train.dataset)
    assert window["train_batch_size"] == math.ceil(rows / window["batches_per_epoch"])
    assert len(train) == window["batches_per_epoch"] == window["epoch_steps"] == 10


def test_few_steps_warning_counts_the_trainers_epoch_steps(fast_config, caplog):
    """A batch larger than the data is worth a warning only when an epoch is one pass: with
    ``epoch_steps`` the trainer takes that many steps whatever the batch."""
    config = {**fast_config, **TINY, "train_batch_size": 4096, "state": "INFO"}
    with caplog.at_level(logging.INFO):
        build(make_config("SessionBERT4Rec", "ml-100k", config_dict={**config, "epoch_steps": 0}))
    assert "train_batch_size=4096 gives 5 optimizer step(s) per epoch" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO):
        build(make_config("SessionBERT4Rec", "ml-100k", config_dict={**config, "epoch_steps": 10}))
    assert "optimizer step(s) per epoch" not in caplog.text


def test_paper_preset_configures_every_model():
    preset = properties_dir() / "preset" / "SessionBERT4Rec-paper.yaml"
    for model in ("SessionBERT4Rec", "SASRec", "BERT4Rec"):
        config = make_config(model, "ml-100k", [str(preset)], {"use_gpu": False})
        assert (config["hidden_size"], config["n_layers"], config["MAX_ITEM_LIST_LENGTH"],
                config["epochs"], config["train_batch_size"]) == (256, 4, 200, 800, 128)
        # the reference's recipe: one pass of its per-user windows per epoch
        assert (config["train_regime"], config["epoch_steps"]) == ("window", 0)


@pytest.fixture(scope="module")
def open_root(tmp_path_factory) -> Path:
    """ml-100k with single-item sessions kept: some test targets open a new session."""
    root = tmp_path_factory.mktemp("open")
    convert("ml-100k", out=root, name="ml-100k-open", min_session_length=1, verbose=False)
    return root


def test_new_session_users_match_the_atomic_file(open_root, workdir):
    config = make_config("SASRec", "ml-100k-open", config_dict={
        "data_path": str(open_root), "MAX_ITEM_LIST_LENGTH": 20, "state": "WARNING",
        "session_gap": 86400})
    _, _, _, test = loaders(config)
    found = set(new_session_users(test, config))
    frame = pd.read_csv(open_root / "ml-100k-open" / "ml-100k-open.inter", sep="\t")
    frame.columns = [c.split(":")[0] for c in frame.columns]
    frame = frame.sort_values(["user_id", "timestamp"], kind="stable")
    last_two = frame.groupby("user_id").session_id.apply(lambda s: s.iloc[-1] != s.iloc[-2])
    expected = {str(u) for u, opens in last_two.items() if opens}
    assert expected and found == expected


def small_specs(atomic_root: Path, work: Path) -> tuple[dict, dict]:
    base = {"data_path": str(atomic_root), "use_gpu": False, **TINY, "epochs": 1, "eval_step": 1}
    recipe, facts = shared_recipe("ml-100k", [], base)
    rows = [row for row in table2.table_rows(2, 4) if row[0] in (table2.SASREC, table2.OFF, "+ ST + SSE")]
    return table2.specs_for(rows, "ml-100k", [1], {**base, **recipe}, []), facts


def test_table2_runs_once_and_resumes(atomic_root, tmp_path):
    work = tmp_path / "runs"
    specs, facts = small_specs(atomic_root, work)
    assert facts["users"] == 173
    flat = [spec for row in specs.values() for spec in row]
    # the default recipe for every row: prefix rows, epochs of 10 steps of batch 128
    assert facts["train_regime"] == "prefix" and facts["train_rows"] > 100 * facts["users"]
    assert (flat[0].shared["epoch_steps"], flat[0].shared["train_batch_size"]) == (10, 128)
    assert all(spec.shared == flat[0].shared for spec in flat)
    lines: list[str] = []
    paths = run_all(flat, work, jobs=1, progress=lines.append)
    assert len(lines) == 3 and all("test N@10 all" in line for line in lines)
    stamps = [p.stat().st_mtime for p in paths]
    again: list[str] = []
    assert run_all(flat, work, jobs=1, progress=again.append) == paths
    assert again == [f"3 of 3 runs already finished in {work.resolve()}: not trained again"]
    assert [p.stat().st_mtime for p in paths] == stamps
    # the same run under another label (figure 2's point that is table 2's full row) is found
    renamed = [dataclasses.replace(spec, label=f"renamed {i}") for i, spec in enumerate(flat)]
    assert run_all(renamed, work, jobs=1, progress=again.append) == paths
    run = json.loads(paths[0].read_text())
    assert run["label"] == table2.SASREC and run["per_user"]["test"]["users"]
    # the run's code and where it trained are in its file (and the code in its name)
    assert run["code"] == flat[0].code_key() and f"-{run['code']}-seed1." in paths[0].name
    assert run["environment"]["threads"] == 1 and run["environment"]["device"] == "cpu"
    assert {"test/full/ndcg@10", "test/random100/ndcg@10"} <= {f"test/{k}" for k in run["test_protocols"]}

    by_label = {label: paths[i:i + 1] for i, label in enumerate(specs)}
    summary = table2.summarize(specs, by_label, work.resolve())
    rows = summary["rows"]
    assert rows[table2.OFF]["vs_off"]["full/ndcg@10"]["p"] == 1.0
    sasrec = rows[table2.SASREC]
    assert sasrec["mean"]["test/full/ndcg@10"] == pytest.approx(run["test_protocols"]["full/ndcg@10"])
    assert rows["+ ST + SSE"]["n_params"] - rows[table2.OFF]["n_params"] == 16 + 3 * 16
    # the claims, on every protocol: differences of the rows' means, no verdict from one seed
    claim = table2.claims(rows)
    assert claim["best_row"] == "+ ST + SSE"  # switches off is never a candidate
    versus = claim["best_vs_sasrec"]
    assert set(versus["protocols"]) == set(table2.PROTOCOLS) and "full_vs_off" not in claim
    for protocol, verdict in versus["protocols"].items():
        key = f"test/{protocol}/ndcg@10"
        # the paired difference of per-user values; the rows' means are rounded to 4 decimals
        assert verdict["diff"] == pytest.approx(rows["+ ST + SSE"]["mean"][key] - sasrec["mean"][key], abs=2e-4)
        # one seed: the interval is the users' only; the verdict is the interval's
        assert verdict["seeds"] == 1 and verdict["ci_low"] <= verdict["diff"] <= verdict["ci_high"]
        assert verdict["verdict"] == stats.verdict(verdict["ci_low"], verdict["ci_high"])
        assert 0 < verdict["p"] <= verdict["p_holm"] <= 1
    assert versus["diff"] == versus["protocols"]["full"]["diff"]
    # where each run trained, for a table that joins runs resumed from machines of both kinds
    assert run["device"] == "cpu" and rows[table2.OFF]["devices"] == ["cpu"]
    rows[table2.SASREC]["devices"] = [table2.UNRECORDED]
    assert table2.trained_where(rows) == (f"not recorded: {table2.SASREC} (1 run); "
                                          f"cpu: {', '.join(label for label in rows if label != table2.SASREC)} (2 runs)")


# synthetic rows of table 2 (no training): test and valid N@10 levels per row, 3 seeds
SYNTHETIC_USERS = [str(u) for u in range(25)]
SYNTHETIC_SEEDS = [1, 2, 3]
# "+ ST" is best on valid, the full model on test: the selection must follow valid
LEVELS = {table2.SASREC: (0.10, 0.10), table2.BERT4REC: (0.12, 0.11), table2.OFF: (0.14, 0.13),
          "+ ST": (0.15, 0.20), table2.FULL: (0.30, 0.16)}


def synthetic_run(path: Path, label: str, seed: int) -> None:
    test, valid = LEVELS[label]
    rng = np.random.default_rng([seed, len(label)])
    # users' own level shared by every row (paired), the row's level, a little noise
    users = np.random.default_rng(seed).random(len(SYNTHETIC_USERS)) * 0.2
    per_user = {f"{p}/{m}": np.round(users + test + rng.normal(0, 0.01, len(users)), 6).tolist()
                for p in table2.PROTOCOLS for m in ("recall@10", "ndcg@10")}
    path.write_text(json.dumps({
        "kind": "run", "model": "M", "dataset": "ml-100k", "seed": seed, "n_params": 10,
        "train_seconds": 1.0, "best_epoch": 1, "epochs_run": 1, "device": "cpu",
        "test_protocols": {k: float(np.mean(v)) for k, v in per_user.items()},
        "valid_protocols": {k: valid for k in per_user},
        "per_user": {"test": {"users": SYNTHETIC_USERS, "fingerprints": {p: "f" for p in table2.PROTOCOLS},
                              "per_user": per_user}}}))


def write_synthetic_runs(specs: dict, work: Path, write) -> dict[str, list[Path]]:
    """Each spec's run file, as the runner names it under ``work``, written by
    ``write(path, label, seed)``; the paths per label (no training)."""
    (work / "ml-100k").mkdir(parents=True, exist_ok=True)
    paths = {}
    for label, row_specs in specs.items():
        paths[label] = [Path(f"{spec.stem(work)}.results.json") for spec in row_specs]
        for spec, path in zip(row_specs, paths[label]):
            write(path, label, spec.seed)
    return paths


def test_claims_choose_the_best_combination_on_valid_and_report_intervals(tmp_path):
    work = tmp_path / "runs"
    rows = [row for row in table2.table_rows(2, 4) if row[0] in LEVELS]
    specs = table2.specs_for(rows, "ml-100k", SYNTHETIC_SEEDS, {}, [])
    paths = write_synthetic_runs(specs, work, synthetic_run)
    summary = table2.summarize(specs, paths, work)
    rows = summary["rows"]
    assert rows["+ ST"]["run_files"] == [str(p) for p in paths["+ ST"]]
    claim = table2.claims(rows)
    # valid and test disagree: the choice is valid's, and it is reported on test
    assert rows[table2.FULL]["mean"][table2.N_ALL] > rows["+ ST"]["mean"][table2.N_ALL]
    assert claim["best_row"] == "+ ST" and claim["selection"] == "valid/full/ndcg@10"

    def values(label: str) -> list[list[float]]:
        return [json.loads(p.read_text())["per_user"]["test"]["per_user"]["full/ndcg@10"] for p in paths[label]]

    expected = stats.paired_difference(values(table2.BERT4REC), values("+ ST"), SYNTHETIC_USERS)
    got = claim["best_vs_bert4rec"]
    assert (got["diff"], got["ci_low"], got["ci_high"], got["p"], got["verdict"]) == (
        expected.diff, expected.ci_low, expected.ci_high, expected.p, expected.verdict)
    assert got["verdict"] == "better" and got["seeds"] == 3
    assert (claim["best_vs_bert4rec_ci_low"], claim["best_vs_bert4rec_ci_high"]) == (got["ci_low"], got["ci_high"])
    # Holm over the 9 claim tests (3 claims x 3 protocols), in the claims' order
    family = [claim[name]["protocols"][p] for name in ("full_vs_off", "best_vs_bert4rec", "best_vs_sasrec")
              for p in table2.PROTOCOLS]
    assert [c["p_holm"] for c in family] == stats.holm([c["p"] for c in family])
    assert claim["full_vs_off"]["p_holm"] == claim["full_vs_off"]["protocols"]["full"]["p_holm"]
    # the rows against switches off: Holm over the 4 rows compared, on N@10 over all items
    compared = [label for label in rows if label != table2.OFF]
    versus = [rows[label]["vs_off"]["full/ndcg@10"] for label in compared]
    assert [v["p_holm"] for v in versus] == stats.holm([v["p"] for v in versus])

    facts = {"users": 25, "items": 9, "interactions": 99, "hidden_size": 16, "n_layers": 1, "n_heads": 2,
             "MAX_ITEM_LIST_LENGTH": 20, "train_regime": "prefix", "padding_side": "left", "mask_ratio": 0.2,
             "temporal_proj_init": "normal"}
    recipe = {"stopping_step": 10, "eval_step": 1, "learner": "adam", "learning_rate": 0.001, "weight_decay": 0,
              "train_batch_size": 128, "epoch_steps": 10, "epochs": 1, "valid_metric": "NDCG@10",
              "valid_protocol": "random100"}
    payload = {"rows": rows, "facts": facts, "recipe": recipe, "claims": claim, "minutes": 0.1, "machine": "test",
               "seeds": SYNTHETIC_SEEDS, "m": 2, "dt": 4, "dataset": "ml-100k", "runs": 15,
               "summary": {k: v for k, v in summary.items() if k != "rows"}}
    md, js = table2.write_outputs(tmp_path, "ml-100k", payload, "test")
    text = md.read_text()
    assert "holds" not in text and "seed spread" not in text
    assert "highest valid N@10 over all items" in text
    line = (f"- N@10 All, best combination (+ ST) vs RecBole's BERT4Rec: {got['diff']:+.4f}, 95 % CI "
            f"[{got['ci_low']:+.4f}, {got['ci_high']:+.4f}], p {got['p']:.3g} (Holm {got['p_holm']:.3g}): better.")
    assert line in text
    full = rows[table2.FULL]["vs_off"]["full/ndcg@10"]
    assert f"| {full['diff']:+.4f} [{full['ci_low']:+.4f}, {full['ci_high']:+.4f}] | " in text
    assert json.loads(js.read_text())["claims"]["full_vs_off_ci_low"] == claim["full_vs_off"]["ci_low"]
    head = table2.headline({**payload, "minutes": 0.1})
    assert head["best_vs_sasrec_ci_high"] == round(claim["best_vs_sasrec"]["ci_high"], 4)
    assert head["p_holm_full_vs_off"] == round(claim["full_vs_off"]["p_holm"], 4)


def test_figure2_plot_is_a_png(tmp_path):
    grid, sweeps = figure2.grid_rows([2, 3], [4, 8], m=3, dt=4)
    assert [label for label, _, _ in grid] == ["m = 2, dT = 4", "m = 3, dT = 4", "m = 3, dT = 8"]
    assert sweeps["dT"] == [(4, "m = 3, dT = 4"), (8, "m = 3, dT = 8")]
    rows = {label: {"mean": {f"test/{p}/ndcg@10": 0.1 * i for p in table2.HEADERS},
                    "std": {f"test/{p}/ndcg@10": 0.01 for p in table2.HEADERS}}
            for i, (label, _, _) in enumerate(grid)}
    path = tmp_path / "f.png"
    figure2.plot(rows, sweeps, path, "test")
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", head[16:24])[0] > 500
    assert np.isclose(figure2.series(rows, sweeps["m"], "full")[1], [0.0, 0.1]).all()


CASES = [
    BadInput("reproduce", "an unknown preset", "recbole_session.reproduce:main",
             ("table2", "--dataset", "ml-100k", "--preset", "huge"), "--preset huge: unknown preset (known: paper"),
    BadInput("reproduce", "a preset file that does not exist", "recbole_session.reproduce:main",
             ("table2", "--dataset", "ml-100k", "--preset", "{tmp}/nope.yaml"), "nope.yaml: no such file"),
    BadInput("reproduce", "zero seeds", "recbole_session.reproduce:main",
             ("table2", "--dataset", "ml-100k", "--seeds", "0"), "--seeds, --jobs and --threads must be at least 1"),
    BadInput("reproduce", "a dataset with no files and no recipe", "recbole_session.reproduce:main",
             ("table2", "--dataset", "nowhere", "--data_path", "{tmp}"), "unknown dataset 'nowhere'"),
    BadInput("reproduce", "figure2 with a bad list of m", "recbole_session.reproduce:main",
             ("figure2", "--dataset", "ml-100k", "--segments", "two"), "--segments two: expected integers"),
    BadInput("reproduce", "families: an unknown row", "recbole_session.reproduce:main",
             ("families", "--dataset", "ml-100k", "--rows", "off,lstm"), "--rows off,lstm: unknown lstm (known: a family"),
    BadInput("reproduce", "an unknown row", "recbole_session.reproduce:main",
             ("table2", "--dataset", "ml-100k", "--rows", "off,gru"), "--rows off,gru: unknown gru (known: sasrec"),
    BadInput("reproduce", "no dataset", "recbole_session.reproduce:main", ("table2",), "table2 needs --dataset"),
    BadInput("reproduce", "an override of the wrong type", "recbole_session.reproduce:main",
             ("table2", "--dataset", "ml-100k", "--epochs=ten"), "epochs expects an integer"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input(case, tmp_path, atomic_root):
    check(case, tmp_path)


def test_table2_reads_a_renamed_dataset_from_the_callers_atomic_files(open_root, workdir):
    """The runs train in WORK/_cwd: the default data_path and the converter's yaml of a renamed
    dataset are the caller's (./atomic_files), not a folder of the same name there."""
    from recbole_session.reproduce import main

    (workdir / "atomic_files").mkdir()
    (workdir / "atomic_files" / "ml-100k-open").symlink_to(open_root / "ml-100k-open")
    out = workdir / "out"
    assert main(["table2", "--dataset", "ml-100k-open", "--seeds", "1", "--rows", "off", "--out", str(out),
                 "--epochs=1", "--hidden_size=16", "--inner_size=32", "--n_layers=1", "--MAX_ITEM_LIST_LENGTH=20"]) == 0
    assert (out / "table2_ml-100k-open.md").is_file()
    assert not (out / "runs" / "_cwd" / "atomic_files").exists()
