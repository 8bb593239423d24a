"""The foundation: RecBole's own models through our entry point, the Config, the lookups, the
compatibility shims, checkpoints through RecBole's load_data_and_model, and CLI errors."""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from recbole.utils import ModelType

import recbole_session
from recbole_session.build import build
from recbole_session.config import Config
from recbole_session.quick_start import UsageError, main, make_config, run_recbole_session

REPO = Path(__file__).resolve().parent.parent
METRIC_KEYS = {"recall@10", "ndcg@10", "mrr@10", "hit@10"}
SMALL = {
    "BERT4Rec": {"n_layers": 1, "n_heads": 1, "hidden_size": 16, "inner_size": 32},
    "SASRec": {"n_layers": 1, "n_heads": 1, "hidden_size": 16, "inner_size": 32},
    "GRU4Rec": {"embedding_size": 16, "hidden_size": 16},
}


@pytest.mark.parametrize("model", sorted(SMALL))
def test_recbole_models_train_and_test_through_our_entry_point(model, fast_config):
    result = run_recbole_session(model, "ml-100k", config_dict={**fast_config, **SMALL[model]})
    assert METRIC_KEYS <= set(result["test_result"]) and METRIC_KEYS <= set(result["best_valid_result"])
    assert all(0.0 <= v <= 1.0 for v in result["test_result"].values())
    assert result["n_params"] > 0 and Path(result["model_file"]).is_file()


def test_checkpoint_loads_back_with_recbole_load_data_and_model(fast_config, workdir):
    """A fresh process that only imports recbole_session loads our checkpoint with RecBole's own
    load_data_and_model (torch's weights-only unpickler + allow-list) and reproduces the test
    metrics of the run that saved it."""
    result = run_recbole_session("GRU4Rec", "ml-100k", config_dict={**fast_config, **SMALL["GRU4Rec"]})
    script = f"""
import json, torch
import recbole_session
from recbole.quick_start import load_data_and_model
from recbole.utils import get_trainer
config, model, dataset, train, valid, test = load_data_and_model({result['model_file']!r})
assert torch.load({result['model_file']!r})["config"]["model"] == "GRU4Rec"  # weights_only default
trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
print(json.dumps(dict(trainer.evaluate(test, load_best_model=False))))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=workdir)
    assert out.returncode == 0, out.stderr[-2000:]
    reloaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert reloaded == pytest.approx(dict(result["test_result"]))


def test_config_loads_our_property_files_on_top_of_recboles(atomic_root):
    config = make_config("BERT4Rec", "ml-100k", config_dict={"data_path": str(atomic_root)})
    assert config["data_path"] == str(atomic_root / "ml-100k")  # not RecBole's bundled copy
    assert config["session_gap"] == 86400  # properties/dataset/ml-100k.yaml
    assert config["SESSION_ID_FIELD"] == "session_id"  # properties/overall.yaml
    assert config["mask_ratio"] == 0.2  # RecBole's own BERT4Rec.yaml still applies
    assert config["normalize_all"] is False  # relative times must not be rescaled
    assert config["train_neg_sample_args"]["distribution"] == "none"  # CE needs no negatives


def test_explicit_train_neg_sample_args_is_kept():
    with pytest.raises(ValueError, match="train_neg_sample_args"):
        make_config("GRU4Rec", "ml-100k", config_dict={"train_neg_sample_args": {"distribution": "uniform", "sample_num": 1}})


def test_config_reads_command_line_like_recbole(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["script.py", "--epochs=7"])
    assert Config("GRU4Rec", "ml-100k")["epochs"] == 7  # drop-in: RecBole's behaviour kept
    assert make_config("GRU4Rec", "ml-100k")["epochs"] != 7  # our API ignores foreign argv


def test_lookups_fall_back_to_recbole_and_register_ours():
    from recbole.model.sequential_recommender import GRU4Rec
    from recbole.trainer import Trainer
    from recbole.utils import get_model as recbole_get_model

    assert recbole_session.get_model("GRU4Rec") is GRU4Rec
    assert recbole_session.get_trainer(ModelType.SEQUENTIAL, "GRU4Rec") is Trainer
    for name in recbole_session.model_names():
        assert recbole_get_model(name) is recbole_session.get_model(name)
        assert recbole_session.get_model(name).__module__.startswith("recbole_session.")
    with pytest.raises(ValueError, match="NoSuchModel"):
        recbole_session.get_model("NoSuchModel")


def test_anomaly_detection_is_off_after_import():
    import recbole.model.sequential_recommender  # noqa: F401  (the import that switches it on)

    assert not torch.is_anomaly_enabled()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model=NoSuchModel", "--dataset=ml-100k"], "NoSuchModel"),
        (["--model=GRU4Rec", "--dataset=no-such-data"], "unknown dataset 'no-such-data'"),
        (["--model=GRU4Rec", "--dataset=ml-100k", "--epochs=ten"], "epochs expects an integer"),
        (["--model=GRU4Rec", "--dataset=ml-100k", "--epochs", "1"], "bad override '--epochs'"),
        (["--model=GRU4Rec", "--dataset=ml-100k", "--nproc=2", "--group_offset=1"],
         "--group_offset=1 + --nproc=2 is more than --world_size=2"),
    ],
)
def test_cli_errors_are_one_line_with_exit_code_2(argv, message, atomic_root, workdir, capsys):
    code = main([*argv, f"--data_path={atomic_root}"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and message in err


def test_usage_error_for_unknown_model_from_api():
    with pytest.raises(UsageError, match="neither a recbole_session model"):
        make_config("NoSuchModel", "ml-100k")


def test_command_line_script_prints_valid_and_test_results(atomic_root, workdir):
    """... and prints none of the warnings known to be harmless."""
    cmd = [sys.executable, str(REPO / "run_recbole_session.py"), "--model=GRU4Rec", "--dataset=ml-100k",
           "--epochs=1", "--embedding_size=16", "--hidden_size=16", "--show_progress=False",
           f"--data_path={atomic_root}", f"--checkpoint_dir={workdir / 'saved'}"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir)
    assert out.returncode == 0, out.stderr[-2000:]
    log = out.stdout + out.stderr
    assert "best valid" in log and "test result" in log and "ndcg@10" in log
    # pandas' inplace FutureWarnings (RecBole's _fill_nan), torch's GradScaler FutureWarning and
    # ray's pkg_resources UserWarning are silenced in compat
    assert "Warning" not in log, log[-3000:]


def test_missing_ml_100k_is_built_offline(tmp_path):
    config = make_config("GRU4Rec", "ml-100k", config_dict={"data_path": str(tmp_path)})
    from recbole_session.quick_start import ensure_atomic_files

    folder = ensure_atomic_files(config)
    header = (folder / "ml-100k.inter").read_text().splitlines()[0].split("\t")
    assert header == ["user_id:token", "item_id:token", "timestamp:float", "session_id:token", "dwell:float"]


def test_renamed_dataset_loads_its_own_yaml_and_counts_as_the_converter(atomic_root, workdir, caplog):
    """A dataset converted under another name holds <name>.yaml next to its atomic files: the
    Config loads it by itself (overrides still win), the log says so, the counts printed are the
    converter's (RecBole's own count includes its padding id), and a batch that gives fewer than
    10 optimizer steps per epoch is named with the key to change."""
    folder = workdir / "data" / "mine"
    folder.mkdir(parents=True)
    shutil.copy(atomic_root / "ml-100k" / "ml-100k.inter", folder / "mine.inter")
    (folder / "mine.yaml").write_text("MAX_ITEM_LIST_LENGTH: 7\nsession_gap: 3600\n")
    small = {"data_path": str(workdir / "data"), **SMALL["GRU4Rec"], "train_batch_size": 4096, "state": "INFO"}
    assert make_config("GRU4Rec", "mine", config_dict={**small, "MAX_ITEM_LIST_LENGTH": 9})["MAX_ITEM_LIST_LENGTH"] == 9
    config = make_config("GRU4Rec", "mine", config_dict=small)
    assert config["MAX_ITEM_LIST_LENGTH"] == 7 and config["session_gap"] == 3600
    assert config.dataset_config_file == str(folder / "mine.yaml") and "session_gap" in config.parameters["Dataset"]
    with caplog.at_level(logging.INFO):
        built = build(config)
    log = caplog.text
    assert "dataset settings read from" in log and str(folder / "mine.yaml") in log
    stats = json.loads((atomic_root / "ml-100k" / "ml-100k.stats.json").read_text())
    assert f"mine: {stats['users']:,} users, {stats['items']:,} items" in log
    assert built.dataset.user_num == stats["users"] + 1  # RecBole's padding id
    steps = len(built.train_data)
    assert steps < 10 and f"train_batch_size=4096 gives {steps} optimizer step(s) per epoch" in log
    assert "--train_batch_size=" in log



def test_two_runs_in_one_second_save_to_different_checkpoints(fast_config):
    """RecBole names a checkpoint by the second: two runs side by side wrote one file."""
    config = make_config("GRU4Rec", "ml-100k", config_dict={**fast_config, "embedding_size": 8, "hidden_size": 8})
    first = build(config)
    second = build(config)
    names = [Path(b.trainer.saved_model_file).name for b in (first, second)]
    assert names[0] != names[1]
    assert all(re.fullmatch(r"GRU4Rec-.+-\d{2}-\d{2}-[0-9a-f]{6}\.pth", name) for name in names), names
