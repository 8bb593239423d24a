"""Nothing a user feeds the training, evaluate and tune commands runs code, dies with a
traceback or is silently misread: the bad-input table (exit code 2, one line naming the file,
line and field or the option, nothing left behind), crafted checkpoints that must run nothing,
Ctrl+C during training, and evaluate reloading a checkpoint of every model of the package."""

from __future__ import annotations

import json
import os
import pickle
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from bad_input import (
    MARKER,
    REPO,
    BadInput,
    Gadget,
    check,
    sigint_default,
    troubleshooting_table,
    write,
)

from recbole_session import checkpoint
from recbole_session.build import make_config
from recbole_session.command import build_parser

TRAIN = "recbole_session.command:main"
EVALUATE = "recbole_session.evaluate:main"
TUNE = "recbole_session.tune.__main__:main"
DATA = "--data_path={tmp}/data"  # ml-100k has a recipe: nothing is built before a check fails


# ------------------------------------------------------------------ crafted and broken checkpoints


def _touch(folder: Path) -> str:
    return f"__import__('os').system('touch {folder / MARKER}')"


def _config_gadget(config_class_path: str):
    def setup(folder: Path) -> None:
        module, _, name = config_class_path.rpartition(".")
        cls = getattr(__import__(module, fromlist=[name]), name)
        gadget = Gadget(cls, ("GRU4Rec", "ml-100k", None, {"x": _touch(folder)}))
        torch.save({"config": gadget, "state_dict": {}}, folder / "model.pth")
    return setup


def _system_reduce(folder: Path) -> None:
    torch.save({"config": Gadget(os.system, (f"touch {folder / MARKER}",)), "state_dict": {}}, folder / "model.pth")


def _legacy_pickle(folder: Path) -> None:
    with open(folder / "model.pth", "wb") as handle:
        pickle.dump({"config": Gadget(os.system, (f"touch {folder / MARKER}",)), "state_dict": {}}, handle)


def _literals(folder: Path, **changes) -> dict:
    """The literal config a run of GRU4Rec on ml-100k would save, its data under ``folder``."""
    config = make_config("GRU4Rec", "ml-100k", config_dict={"data_path": str(folder / "data")})
    literals = checkpoint.config_literals(config)
    literals.update(changes)
    return literals


def _save(name: str, make):
    def setup(folder: Path) -> None:
        torch.save(make(folder), folder / name)
    return setup


def _with_data(folder: Path) -> None:
    """``data/ml-100k/ml-100k.inter``: a tiny stand-in that passes the file checks."""
    inter = folder / "data" / "ml-100k" / "ml-100k.inter"
    inter.parent.mkdir(parents=True)
    rows = [f"{user}\t{item}\t{item}.0" for user in (1, 2, 3) for item in range(1, 31)]  # more items than topk
    inter.write_text("user_id:token\titem_id:token\ttimestamp:float\n" + "\n".join(rows) + "\n")


def _weights_of_another_model(folder: Path) -> None:
    _with_data(folder)
    torch.save({"config": _literals(folder), "state_dict": {"other.weight": torch.zeros(2, 2)}}, folder / "model.pth")


def _truncated(folder: Path) -> None:
    torch.save({"config": _literals(folder), "state_dict": {"w": torch.zeros(100, 100)}}, folder / "full.pth")
    data = (folder / "full.pth").read_bytes()
    (folder / "model.pth").write_bytes(data[: len(data) // 2])
    (folder / "full.pth").unlink()


def _inter(text: str):
    return write("data/bad/bad.inter", text)


CHECKPOINT_CASES = [
    BadInput("checkpoint", "a crafted file whose config calls this package's Config with code in a value",
             EVALUATE, ("{tmp}/model.pth",), "refused: the file holds a Python object (recbole_session.config.Config)",
             setup=_config_gadget("recbole_session.config.Config")),
    BadInput("checkpoint", "a crafted file whose config calls RecBole's Config with code in a value",
             EVALUATE, ("{tmp}/model.pth",), "refused: the file holds a Python object (recbole.config.configurator.Config)",
             setup=_config_gadget("recbole.config.configurator.Config")),
    BadInput("checkpoint", "a crafted file that calls os.system", EVALUATE, ("{tmp}/model.pth",),
             "loading it could run code", setup=_system_reduce),
    BadInput("checkpoint", "a legacy (plain pickle) file that calls os.system", EVALUATE, ("{tmp}/model.pth",),
             "loading it could run code", setup=_legacy_pickle),
    BadInput("checkpoint", "a truncated checkpoint", EVALUATE, ("{tmp}/model.pth",),
             "not a readable checkpoint", setup=_truncated),
    BadInput("checkpoint", "an empty file", EVALUATE, ("{tmp}/model.pth",),
             "not a readable checkpoint (empty file)", setup=write("model.pth", b"")),
    BadInput("checkpoint", "a text file", EVALUATE, ("{tmp}/model.pth",),
             "not a readable checkpoint", setup=write("model.pth", "hello\n")),
    BadInput("checkpoint", "a folder", EVALUATE, ("{tmp}",), "not a file"),
    BadInput("checkpoint", "a file that does not exist", EVALUATE, ("{tmp}/missing.pth",), "no such checkpoint file"),
    BadInput("checkpoint", "a torch file that holds a list", EVALUATE, ("{tmp}/model.pth",),
             "field 'config' missing: not a RecBole checkpoint", setup=_save("model.pth", lambda f: [1, 2])),
    BadInput("checkpoint", "a checkpoint without weights", EVALUATE, ("{tmp}/model.pth",),
             "field 'state_dict' missing", setup=_save("model.pth", lambda f: {"config": _literals(f)})),
    BadInput("checkpoint", "a config without model and dataset names", EVALUATE, ("{tmp}/model.pth",),
             "holds no model and dataset names",
             setup=_save("model.pth", lambda f: {"config": {"epochs": 1}, "state_dict": {}})),
    BadInput("checkpoint", "a checkpoint of a model that is not installed", EVALUATE, ("{tmp}/model.pth",),
             "[NoSuchModel] is neither a recbole_session model",
             setup=_save("model.pth", lambda f: {"config": _literals(f, model="NoSuchModel"), "state_dict": {}})),
    BadInput("checkpoint", "weights of another model", EVALUATE, ("{tmp}/model.pth",),
             "its weights do not fit a GRU4Rec built on ml-100k", setup=_weights_of_another_model),
    BadInput("checkpoint", "a checkpoint whose dataset is gone (nothing is created or downloaded)", EVALUATE,
             ("{tmp}/model.pth",), "the dataset 'ml-100k' of this checkpoint is not in",
             setup=_save("model.pth", lambda f: {"config": _literals(f), "state_dict": {}})),
    BadInput("checkpoint", "--data_path without the dataset", EVALUATE, ("{tmp}/model.pth", "--data_path", "{tmp}/nowhere"),
             "give --data_path DIR", setup=_save("model.pth", lambda f: {"config": _literals(f), "state_dict": {}})),
    BadInput("checkpoint", "--protocols random1x", EVALUATE, ("{tmp}/model.pth", "--protocols", "random1x"),
             "unknown evaluation protocol 'random1x'"),
    BadInput("checkpoint", "--split train", EVALUATE, ("{tmp}/model.pth", "--split", "train"),
             "--split must name valid and/or test"),
]

TRAINING_CASES = [
    BadInput("training", "--model=sessionbert4rec", TRAIN, ("--model=sessionbert4rec", DATA), "did you mean SessionBERT4Rec?"),
    BadInput("training", "--model=sasrec", TRAIN, ("--model=sasrec", DATA), "did you mean SASRec?"),
    BadInput("training", "--model=GRU4Recc", TRAIN, ("--model=GRU4Recc", DATA), "did you mean GRU4Rec?"),
    BadInput("training", "--model=NoSuchModel", TRAIN, ("--model=NoSuchModel", DATA),
             "[NoSuchModel] is neither a recbole_session model"),
    BadInput("training", "--dataset=ml100k", TRAIN, ("--model=GRU4Rec", "--dataset=ml100k", DATA),
             "unknown dataset 'ml100k': did you mean ml-100k?"),
    BadInput("training", "--dataset=no-such-data", TRAIN, ("--model=GRU4Rec", "--dataset=no-such-data", DATA),
             "unknown dataset 'no-such-data'"),
    BadInput("training", "a dataset in another data_path", TRAIN, ("--model=GRU4Rec", "--dataset=mine", DATA),
             "found atomic_files/mine/mine.yaml: give --data_path=atomic_files",
             setup=write("atomic_files/mine/mine.yaml", "MAX_ITEM_LIST_LENGTH: 5\n")),
    BadInput("training", "--max_session_segmentz=0", TRAIN, ("--max_session_segmentz=0", DATA),
             "unknown config key --max_session_segmentz=0: did you mean max_session_segments?"),
    BadInput("training", "--data-path=X", TRAIN, ("--data-path=X",), "the key is data_path"),
    BadInput("training", "--epochs 1 (no =)", TRAIN, ("--model=GRU4Rec", "--epochs", "1", DATA),
             "bad override '--epochs': write overrides as --key=value"),
    BadInput("training", "--epochs=ten", TRAIN, ("--model=GRU4Rec", "--epochs=ten", DATA), "epochs expects an integer"),
    BadInput("training", "--epochs=-1", TRAIN, ("--model=GRU4Rec", "--epochs=-1", DATA),
             "bad value --epochs=-1: epochs expects an integer >= 1"),
    BadInput("training", "--train_batch_size=0", TRAIN, ("--model=GRU4Rec", "--train_batch_size=0", DATA),
             "train_batch_size expects an integer >= 1"),
    BadInput("training", "--MAX_ITEM_LIST_LENGTH=0", TRAIN, ("--model=GRU4Rec", "--MAX_ITEM_LIST_LENGTH=0", DATA),
             "MAX_ITEM_LIST_LENGTH expects an integer >= 1"),
    BadInput("training", "--mask_ratio=1.5", TRAIN, ("--model=SessionBERT4Rec", "--mask_ratio=1.5", DATA),
             "mask_ratio expects a number in (0, 1)"),
    BadInput("training", "--learning_rate=0", TRAIN, ("--model=GRU4Rec", "--learning_rate=0", DATA),
             "learning_rate expects a number > 0"),
    BadInput("training", "--dropout_prob=1.5", TRAIN, ("--model=GRU4Rec", "--dropout_prob=1.5", DATA),
             "dropout_prob expects a number in [0, 1)"),
    BadInput("training", "--topk=[0]", TRAIN, ("--model=GRU4Rec", "--topk=[0]", DATA), "topk must be a positive integer or a list of positive integers"),
    BadInput("training", "--eval_protocols=[random1x]", TRAIN, ("--model=GRU4Rec", "--eval_protocols=[random1x]", DATA),
             "eval_protocols expects a list of full, random<N>"),
    BadInput("training", "--eval_protocols=random1x", TRAIN, ("--model=GRU4Rec", "--eval_protocols=random1x", DATA),
             "eval_protocols expects a list of full, random<N>"),
    BadInput("training", "--seeds=1,x", TRAIN, ("--model=GRU4Rec", "--seeds=1,x", DATA), "bad --seeds '1,x'"),
    BadInput("training", "--nproc=abc", TRAIN, ("--nproc=abc",), "argument --nproc: invalid int value: 'abc'"),
    BadInput("training", "code in an override value runs nothing", TRAIN,
             ("--model=GRU4Rec", "--x=__import__('os').system('touch ran')", DATA),
             "unknown config key --x="),
    BadInput("training", "a config file that does not exist", TRAIN,
             ("--model=GRU4Rec", "--config_files", "{tmp}/missing.yaml", DATA), "missing.yaml: cannot read the config file"),
    BadInput("training", "a config file that is not yaml", TRAIN, ("--model=GRU4Rec", "--config_files", "{tmp}/bad.yaml", DATA),
             "bad.yaml, line 2: not valid yaml (mapping values are not allowed here)",
             setup=write("bad.yaml", "epochs: 1\nx: y: z\n")),
    BadInput("training", "a config file that is a list", TRAIN, ("--model=GRU4Rec", "--config_files", "{tmp}/list.yaml", DATA),
             "list.yaml: a config file is a mapping", setup=write("list.yaml", "- 1\n- 2\n")),
    BadInput("training", "a config file with a Python object tag", TRAIN,
             ("--model=GRU4Rec", "--config_files", "{tmp}/tag.yaml", DATA), "tag.yaml, line 1: not valid yaml",
             setup=write("tag.yaml", "x: !!python/object/apply:os.system ['touch {tmp}/ran']\n")),
    BadInput("training", "a bad value in a config file", TRAIN, ("--model=GRU4Rec", "--config_files", "{tmp}/c.yaml", DATA),
             "bad value epochs: 0 (config files): epochs expects an integer >= 1", setup=write("c.yaml", "epochs: 0\n")),
    BadInput("training", "an .inter without the item column", TRAIN, ("--model=GRU4Rec", "--dataset=bad", DATA),
             "bad.inter, line 1: column 'item_id' missing",
             setup=_inter("user_id:token\ttimestamp:float\n1\t1.0\n")),
    BadInput("training", "an .inter with abc in a float field", TRAIN, ("--model=GRU4Rec", "--dataset=bad", DATA),
             "bad.inter, line 3, column timestamp:float: 'abc' is not a number",
             setup=_inter("user_id:token\titem_id:token\ttimestamp:float\n1\t1\t1.0\n1\t2\tabc\n")),
    BadInput("training", "an empty .inter", TRAIN, ("--model=GRU4Rec", "--dataset=bad", DATA),
             "bad.inter: empty file: expected a header of name:type fields", setup=_inter("")),
    BadInput("training", "an .inter with only a header", TRAIN, ("--model=GRU4Rec", "--dataset=bad", DATA),
             "bad.inter: no rows after the header line",
             setup=_inter("user_id:token\titem_id:token\ttimestamp:float\n")),
    BadInput("training", "an .inter header with an unknown type", TRAIN, ("--model=GRU4Rec", "--dataset=bad", DATA),
             "bad.inter, line 1, column 3 'timestamp:int': expected name:type",
             setup=_inter("user_id:token\titem_id:token\ttimestamp:int\n1\t1\t1\n")),
    BadInput("training", "an .inter that is not UTF-8", TRAIN, ("--model=GRU4Rec", "--dataset=bad", DATA),
             "bad.inter, line 1: not utf-8 text", setup=_inter(b"user_id:token\titem\xff:token\n")),
]

SPACE = "{tmp}/space.yaml"
TUNE_CASES = [
    BadInput("tune", "a search-space key that no yaml defines", TUNE,
             ("--model=GRU4Rec", "--dataset=ml-100k", "--space", SPACE, "--out", "{tmp}/out", DATA),
             "space.yaml, line 2, key 'hidden_sizez': not a config key of GRU4Rec (its yaml) nor of RecBole: did you mean hidden_size?",
             setup=write("space.yaml", "dropout_prob: {grid: [0.1, 0.2]}\nhidden_sizez: {choice: [8, 16]}\n")),
    BadInput("tune", "a key of another model's yaml", TUNE,
             ("--model=GRU4Rec", "--dataset=ml-100k", "--space", SPACE, "--out", "{tmp}/out", DATA),
             "key 'max_session_segments': not a config key of GRU4Rec",
             setup=write("space.yaml", "max_session_segments: {grid: [2, 3]}\n")),
    BadInput("tune", "--epochs=-1", TUNE, ("--model=GRU4Rec", "--dataset=ml-100k", "--epochs=-1", "--out", "{tmp}/out", DATA),
             "epochs expects an integer >= 1"),
    BadInput("tune", "--num-samples=x", TUNE, ("--model=GRU4Rec", "--num-samples=x"), "argument --num-samples: invalid int value"),
]

CASES = CHECKPOINT_CASES + TRAINING_CASES + TUNE_CASES


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input(case, tmp_path):
    check(case, tmp_path)
    assert not (tmp_path / MARKER).exists()


def test_the_table_has_the_cases_the_issue_asks_for():
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)


def test_troubleshooting_table_has_a_row_per_case():
    table = troubleshooting_table()
    rows = table.splitlines()[2:]
    for case in CASES:
        assert f"| {case.area} | {case.input} | `{case.message}` |" in rows, case.id


def test_crafted_checkpoint_runs_nothing_through_recboles_load_data_and_model(tmp_path):
    """RecBole's own load_data_and_model, after `import recbole_session`, refuses the gadget in
    one line (CheckpointError) and runs nothing."""
    _config_gadget("recbole.config.configurator.Config")(tmp_path)
    script = (
        "import recbole_session\n"
        "from recbole.quick_start import load_data_and_model\n"
        "from recbole_session.checkpoint import CheckpointError\n"
        "try:\n"
        f"    load_data_and_model({str(tmp_path / 'model.pth')!r})\n"
        "except CheckpointError as err:\n"
        "    print('refused:', err)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert "refused:" in out.stdout and "loading it could run code" in out.stdout
    assert not (tmp_path / MARKER).exists()


def test_values_are_literals_never_evaluated(tmp_path):
    code = _touch(tmp_path)
    config = make_config("GRU4Rec", "ml-100k", config_dict={
        "data_path": str(tmp_path), "embedding_size": "16", "learning_rate": "1e-3", "eval_args": "{'mode': 'full', 'order': 'TO'}",
        "show_progress": "false", "topk": "[5, 10]", "dataset_save_path": "None", "checkpoint_dir": code})
    assert config["embedding_size"] == 16 and config["learning_rate"] == 1e-3
    assert config["topk"] == [5, 10] and config["show_progress"] is False and config["dataset_save_path"] is None
    assert config["checkpoint_dir"] == code  # the text, not its result
    assert not (tmp_path / MARKER).exists()


def test_seed_is_recboles_seed_not_an_abbreviation_of_seeds():
    args, rest = build_parser().parse_known_args(["--model=GRU4Rec", "--seed=7"])
    assert args.seeds is None and rest == ["--seed=7"]


def test_importing_the_package_allow_lists_nothing_for_torch_load(tmp_path):
    """No process-wide allow-list: importing the package (and RecBole, with every shim applied)
    adds none of RecBole's, yaml's or numpy's classes to torch's weights-only allow-list."""
    script = (
        "import torch, recbole_session\n"
        "import recbole.quick_start, recbole_session.evaluate  # every hook and shim in force\n"
        "ours = [g for g in torch.serialization.get_safe_globals()\n"
        "        if getattr(g, '__module__', '').split('.')[0] in ('recbole', 'recbole_session', 'yaml', 'numpy')]\n"
        "print('allow-listed:', ours)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "allow-listed: []"


# ------------------------------------------------------------------ real runs


def test_ctrl_c_during_training_names_the_best_checkpoint_and_how_to_evaluate_it(atomic_root, workdir):
    cmd = [sys.executable, str(REPO / "run_recbole_session.py"), "--model=GRU4Rec", "--dataset=ml-100k",
           "--epochs=200", "--embedding_size=8", "--hidden_size=8", "--train_batch_size=512",
           "--eval_protocols=[]", "--show_progress=False", "--state=INFO", f"--data_path={atomic_root}"]
    proc = subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, preexec_fn=sigint_default)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "Saving current" in line:  # the first best checkpoint is on disk
            break
    else:
        pytest.fail("".join(seen[-30:]))
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=120)
    out = "".join(seen) + rest
    assert proc.returncode == 130, out[-3000:]
    assert "Traceback" not in out
    last = rest.strip().splitlines()[-1]
    match = re.fullmatch(r"run_recbole_session\.py: interrupted: the best checkpoint so far is (\S+); "
                         r"evaluate it with: (python -m recbole_session\.evaluate \S+)", last)
    assert match, last
    model_file = workdir / match.group(1)
    assert checkpoint.load(model_file)["config"]["model"] == "GRU4Rec"
    command = match.group(2).split()
    evaluated = subprocess.run([sys.executable, *command[1:], "--protocols", "full", "--split", "test"],
                               cwd=workdir, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert "test/full/ndcg@10" in evaluated.stdout


SMALL_MODELS = {
    "SessionBERT4Rec": {"hidden_size": 16, "inner_size": 32, "n_layers": 1, "n_heads": 1, "temporal_dim": 4,
                        "train_regime": "per_user"},
    "SRIEM": {"embedding_size": 16, "attention_size": 8},
    "ASARS": {"embedding_size": 16, "hidden_size": 16, "user_embedding_size": 8, "dwell_embedding_size": 8,
              "neg_sample_num": 8},
}  # a RecBole model (STAMP) is reloaded with its run's metrics in test_evaluation_e2e


@pytest.mark.parametrize("model", sorted(SMALL_MODELS))
def test_evaluate_reloads_every_model_with_the_metrics_of_the_process_that_saved_it(model, fast_config, capsys):
    """A checkpoint written by RecBole's own ``Trainer._save_checkpoint`` (through the shim) is
    rebuilt by ``python -m recbole_session.evaluate`` exactly: the model on the train split, as
    when it was saved (ASARS's dwell bins come from that split), the same weights, the same
    protocol metrics. The weights are the initial ones: no training is needed to check the
    reload (a trained STAMP is reloaded in test_evaluation_e2e)."""
    from recbole_session.build import build
    from recbole_session.evaluate import main
    from recbole_session.evaluation import evaluate_protocols_detailed

    config = make_config(model, "ml-100k", config_dict={**fast_config, **SMALL_MODELS[model]})
    built = build(config)
    built.trainer._save_checkpoint(0, verbose=False)
    model_file = built.trainer.saved_model_file
    assert checkpoint.load(model_file)["config"]["model"] == model
    expected = {split: evaluate_protocols_detailed(built.model, data, config, ["random100", "full"],
                                                   dataset=built.dataset).metrics
                for split, data in (("valid", built.valid_data), ("test", built.test_data))}
    assert main([model_file, "--protocols", "random100,full"]) == 0
    saved = json.loads(Path(capsys.readouterr().out.strip().splitlines()[-1].removeprefix("results: ")).read_text())
    assert saved["model"] == model and saved["n_params"] > 0
    assert saved["valid_protocols"] == expected["valid"] and saved["test_protocols"] == expected["test"]
