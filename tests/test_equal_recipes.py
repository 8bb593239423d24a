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
