"""Equal recipes in ``benchmarks/session_based.py``: RecBole's baselines train on SRIEM's
learning-rate schedule (through ``ScheduledTrainer``, chosen by ``lookup.trainer_for``), SRIEM can
train without it, a schedule no trainer can follow is refused, and the table states each row's
recipe."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import pytest
from recbole.trainer import Trainer
from session_data import SessionShape, write_session_benchmark

from recbole_session.build import build, make_config
from recbole_session.cli import UsageError
from recbole_session.paths import properties_dir
from recbole_session.trainer import ScheduledTrainer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
session_based = importlib.import_module("session_based")
common = importlib.import_module("_session_common")

DATASET = "diginetica-synth"
TINY = SessionShape(n_sessions=300, n_items=60, n_topics=6)
BASELINES = ("GRU4Rec", "SRGNN", "NARM", "STAMP")

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def session_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("recipes")
    write_session_benchmark(root, DATASET, TINY)
    return root


@pytest.fixture
def protocol(session_root, workdir) -> dict:
    """The benchmark's shared config (its own function), small and one epoch."""
    args = argparse.Namespace(embedding_size=16, batch_size=64, eval_batch_size=256, epochs=1, stopping_step=1)
    return common.protocol(args, DATASET, str(session_root), workdir)


def rates_of_each_step(trainer, built) -> list[float]:
    """The learning rate of every optimizer step of one ``fit``, read from the optimizer."""
    seen: list[float] = []
    trainer.optimizer.register_step_post_hook(lambda optimizer, args, kwargs: seen.append(
        optimizer.param_groups[0]["lr"]))
    trainer.fit(built.train_data, built.valid_data, saved=False)
    return seen


def test_sriem_schedule_is_read_from_its_yaml():
    text = (properties_dir() / "model" / "SRIEM.yaml").read_text()
    schedule = session_based.sriem_schedule()
    assert set(schedule) == set(session_based.SCHEDULE_KEYS)
    assert f"lr_schedule: {schedule['lr_schedule']} " in text and schedule["lr_decay_rate"] == pytest.approx(0.1)
    assert session_based.row_config({"epochs": 1}, "own") == {"epochs": 1}
    assert session_based.row_config({"epochs": 1}, "none") == {"epochs": 1, "lr_schedule": "none"}


@pytest.mark.parametrize("model", BASELINES)
def test_a_baseline_follows_the_schedule_step_by_step(model, protocol):
    # SRIEM's schedule counted in steps, every step: the rate of step k is 0.001 * 0.1**k
    config = {**session_based.row_config(protocol, "sriem"), "lr_schedule": "steps", "lr_decay_steps": 1}
    built = build(make_config(model, DATASET, config_dict=config))
    assert type(built.trainer) is ScheduledTrainer
    rates = rates_of_each_step(built.trainer, built)
    assert len(rates) == len(built.train_data) >= 3
    assert rates == pytest.approx([1e-3 * 0.1 ** k for k in range(len(rates))], rel=1e-9)


def test_a_baseline_on_sriems_plateau_schedule(protocol):
    # SRIEM's own schedule (plateau, patience 1): a rate too small to move the validation score
    # makes every epoch after the first a plateau, so the rate drops at the third validation
    config = {**session_based.row_config(protocol, "sriem"), "epochs": 3, "learning_rate": 1e-9}
    built = build(make_config("GRU4Rec", DATASET, config_dict=config))
    assert built.trainer.lr_schedule == "plateau"
    rates = rates_of_each_step(built.trainer, built)
    assert rates == pytest.approx([1e-9] * 3 * len(built.train_data), rel=1e-6)
    assert built.trainer.optimizer.param_groups[0]["lr"] == pytest.approx(1e-10, rel=1e-6)


def test_own_and_constant_recipes(protocol):
    # own: RecBole's baseline keeps RecBole's Trainer and its constant rate
    built = build(make_config("GRU4Rec", DATASET, config_dict=session_based.row_config(protocol, "own")))
    assert type(built.trainer) is Trainer
    assert set(rates_of_each_step(built.trainer, built)) == {1e-3}
    # none: SRIEM without its schedule
    config = {**session_based.row_config(protocol, "none"), "learning_rate": 1e-9, "epochs": 3}
    built = build(make_config("SRIEM", DATASET, config_dict=config))
    assert set(rates_of_each_step(built.trainer, built)) == {1e-9}


def test_a_schedule_the_trainer_cannot_follow_is_refused(atomic_root, workdir):
    # ItemKNN trains with RecBole's TraditionalTrainer (no optimizer steps): never silently constant
    config = make_config("ItemKNN", "ml-100k", config_dict={"data_path": str(atomic_root), "lr_schedule": "epochs",
                                                            "lr_decay_epochs": 1, "lr_decay_rate": 0.1,
                                                            "use_gpu": False, "state": "WARNING"})
    with pytest.raises(UsageError, match="lr_schedule 'epochs': ItemKNN trains with TraditionalTrainer"):
        session_based.trainer_for(config)


def test_the_table_states_each_rows_recipe(session_root, tmp_path, monkeypatch):
    monkeypatch.setattr(common, "DOCS", tmp_path / "benchmarks.md")
    out = tmp_path / "table.md"
    argv = ["--models", "GRU4Rec", "SRIEM", "--seeds", "1", "--epochs", "1", "--sessions", "300", "--items", "60",
            "--embedding-size", "16", "--batch-size", "64", "--out", str(out)]
    plateau = "x0.1 after 1 validation(s) without a better score"
    for schedule, gru4rec, sriem in (("sriem", plateau, plateau), ("own", "constant rate", plateau),
                                     ("none", "constant rate", "constant rate")):
        assert session_based.main([*argv, "--lr-schedule", schedule]) == 0
        lines = out.read_text().splitlines()
        header = next(line for line in lines if line.startswith("| model |"))
        assert "| recipe (optimizer, lr, weight decay, schedule, epochs, patience, selection) |" in header
        rows = {line.split(" | ")[0].strip("| "): line for line in lines if line.startswith(("| GRU4Rec", "| SRIEM"))}
        assert f"Adam, lr 0.001, wd 0, {gru4rec}, <= 1 epochs, patience 3, best valid MRR@20" in rows["GRU4Rec"]
        assert f"Adam, lr 0.001, wd 1e-05, {sriem}, <= 1 epochs, patience 3, best valid MRR@20" in rows["SRIEM"]
        assert session_based.SCHEDULE_LINES[schedule] in out.read_text()


def fake_row(values: list[list[float]], sessions: list[str]) -> dict:
    """A row as ``train_seeds`` returns it, for the claims: per seed, one MRR@20 and Recall@20
    value per test row."""
    return {"per_seed": [{"sessions": sessions, "recall@20": v, "mrr@20": v} for v in values]}


def test_claims_compare_sriem_with_rows_of_its_recipe_only_and_with_itself_without_its_schedule():
    sessions = ["s1", "s1", "s2", "s3"]
    rows = {"SRIEM": fake_row([[1, 1, 1, 0], [1, 1, 0, 1]], sessions),
            session_based.SRIEM_CONSTANT: fake_row([[0, 0, 0, 0], [0, 0, 0, 0]], sessions),
            "SRGNN": fake_row([[1, 1, 1, 0], [1, 1, 0, 1]], sessions),
            "NARM": fake_row([[0, 0, 0, 0], [0, 0, 0, 0]], sessions)}
    scheduled = {"learner": "adam", "lr_schedule": "plateau", "lr_decay_rate": 0.1, "lr_plateau_patience": 1,
                 "epochs": 20, "stopping_step": 3, "valid_metric": "MRR@20"}
    recipes = {"SRIEM": scheduled, session_based.SRIEM_CONSTANT: {**scheduled, "lr_schedule": "none"},
               "SRGNN": dict(scheduled), "NARM": {**scheduled, "lr_schedule": "none"}}
    models = {label: label.split(",")[0] for label in rows}
    tests = session_based.claims(rows, recipes, models)
    # NARM trained at another schedule: no claim; the constant-rate SRIEM is the schedule's claim
    assert {(b, m) for _, b, m in tests} == {(b, m) for b in ("SRGNN", session_based.SRIEM_CONSTANT)
                                             for m in ("recall@20", "mrr@20")}
    same = tests[("SRIEM", "SRGNN", "mrr@20")]
    assert same["diff"] == 0 and same["verdict"] == "not separated"
    # SRIEM minus the constant rate: 0.75 on both seeds, every session above 0
    schedule = tests[("SRIEM", session_based.SRIEM_CONSTANT, "mrr@20")]
    assert schedule["diff"] == pytest.approx(0.75) and schedule["ci_low"] > 0 and schedule["verdict"] == "better"
    assert schedule["sessions"] == 3
    assert all(t["p_holm"] >= t["p"] for t in tests.values())


def test_the_constant_rate_row_comes_with_the_sriem_schedule_only():
    assert list(session_based.table_rows(["SRIEM", "SRGNN"], "sriem")) == ["SRIEM", session_based.SRIEM_CONSTANT, "SRGNN"]
    assert list(session_based.table_rows(["SRIEM", "SRGNN"], "own")) == ["SRIEM", "SRGNN"]
    assert session_based.table_rows(["SRIEM"], "sriem")[session_based.SRIEM_CONSTANT] == ("SRIEM", {"lr_schedule": "none"})


def test_a_cached_seed_is_keyed_by_its_settings_and_code():
    base = {"epochs": 3, "checkpoint_dir": "/a"}
    key = common.seed_key("SRGNN", base)
    assert key == common.seed_key("SRGNN", {**base, "checkpoint_dir": "/b"})
    assert key != common.seed_key("SRGNN", {**base, "epochs": 4})
    assert key.endswith(common.code_key("SRGNN"))
