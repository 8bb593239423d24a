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
from recbole_session.evaluation import evaluate_protocols
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
        assert verdict["holds"] is None
    assert versus["diff"] == versus["protocols"]["full"]["diff"]
    # where each run trained, for a table that joins runs resumed from machines of both kinds
    assert run["device"] == "cpu" and rows[table2.OFF]["devices"] == ["cpu"]
    rows[table2.SASREC]["devices"] = [table2.UNRECORDED]
    assert table2.trained_where(rows) == (f"not recorded: {table2.SASREC} (1 run); "
                                          f"cpu: {', '.join(label for label in rows if label != table2.SASREC)} (2 runs)")


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
             ("table2", "--dataset", "nowhere", "--data-path", "{tmp}"), "unknown dataset 'nowhere'"),
    BadInput("reproduce", "figure2 with a bad list of m", "recbole_session.reproduce:main",
             ("figure2", "--dataset", "ml-100k", "--segments", "two"), "--segments two: expected integers"),
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
