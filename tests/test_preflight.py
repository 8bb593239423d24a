"""The pre-flight of a training run (issue 24): every check that used to fail after minutes of
training now fails before any data is loaded, with one line and exit code 2: output folders
that are files, unwritable or full, values out of range, a valid_metric the run does not
compute, a top-k or protocol larger than the item count, distributed options, a dataset name
that cannot be a folder, and wrong argument types in the Python API."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from bad_input import REPO, BadInput, check

from recbole_session import checkpoint
from recbole_session.build import from_checkpoint, load_data_and_model, make_config
from recbole_session.checkpoint import CheckpointError
from recbole_session.cli import UsageError
from recbole_session.training import run_recbole_session

TRAIN = "recbole_session.command:main"
ITEMS = 30  # items of the tiny dataset: more than RecBole's default topk
EVALUATE = "recbole_session.evaluate:main"
MINE = ("--model=GRU4Rec", "--dataset=mine", "--data_path={tmp}/data")
ML100K = ("--model=GRU4Rec", "--dataset=ml-100k", "--data_path={tmp}/data")  # a recipe: nothing built before a check


def _dataset(folder: Path, name: str = "mine") -> None:
    inter = folder / "data" / name / f"{name}.inter"
    inter.parent.mkdir(parents=True, exist_ok=True)
    rows = [f"{user}\t{item}\t{item}.0" for user in (1, 2, 3) for item in range(1, ITEMS + 1)]
    inter.write_text("user_id:token\titem_id:token\ttimestamp:float\n" + "\n".join(rows) + "\n")


def _session_dataset(folder: Path) -> None:
    """``mine`` with a session column (a new session every 10 items)."""
    inter = folder / "data" / "mine" / "mine.inter"
    inter.parent.mkdir(parents=True, exist_ok=True)
    rows = [f"{user}\t{item}\t{item}.0\t{item // 10}" for user in (1, 2, 3) for item in range(1, ITEMS + 1)]
    inter.write_text("user_id:token\titem_id:token\ttimestamp:float\tsession_id:token\n" + "\n".join(rows) + "\n")


def _file(name: str):
    def setup(folder: Path) -> None:
        (folder / name).write_text("not a folder\n")
    return setup


def _checkpoint_with(**changes):
    def setup(folder: Path) -> None:
        _dataset(folder, "ml-100k")
        config = make_config("GRU4Rec", "ml-100k", config_dict={"data_path": str(folder / "data")})
        literals = checkpoint.config_literals(config)
        literals.update(changes)
        torch.save({"config": literals, "state_dict": {}}, folder / "model.pth")
    return setup


CASES = [
    BadInput("training", "a checkpoint folder that is a file", TRAIN, (*ML100K, "--checkpoint_dir={tmp}/saved"),
             "saved: is a file, not a folder (--checkpoint_dir=", setup=_file("saved")),
    BadInput("training", "a log folder that is a file", TRAIN, ML100K,
             "log: is a file, not a folder (RecBole writes its logs to ./log", setup=_file("log")),
    BadInput("training", "a checkpoint folder under a file", TRAIN, (*ML100K, "--checkpoint_dir={tmp}/saved/run1"),
             "saved: is a file, not a folder, so", setup=_file("saved")),
    BadInput("training", "--eval_batch_size=100000000000000000000", TRAIN, (*ML100K, "--eval_batch_size=100000000000000000000"),
             "eval_batch_size expects an integer >= 1 and <= 2,147,483,647"),
    BadInput("training", "--valid_metric=ndcg@30 when topk is [10, 20]", TRAIN, (*ML100K, "--valid_metric=ndcg@30"),
             "valid_metric expects one of the metrics the run computes (metrics at each topk): recall@10"),
    BadInput("training", "--valid_metric=AUC when metrics has no AUC", TRAIN, (*ML100K, "--valid_metric=AUC"),
             "valid_metric expects one of the metrics the run computes"),
    BadInput("training", "a dataset with fewer items than the largest topk", TRAIN, (*MINE, "--topk=[5,50]", "--valid_metric=ndcg@5"),
             "mine has 30 items (distinct item ids in its files), fewer than the largest topk 50",
             setup=_dataset),
    BadInput("training", "--eval_protocols=[random100000]", TRAIN, (*MINE, "--topk=[5]", "--valid_metric=ndcg@5", "--eval_protocols=[random100000]"),
             "random100000 ranks the target among 100,000 sampled items, but mine has 30 items", setup=_dataset),
    BadInput("training", "--eval_negatives_seed=-1", TRAIN, (*ML100K, "--eval_negatives_seed=-1"),
             "eval_negatives_seed expects an integer >= 0 and <= 4,294,967,295"),
    BadInput("training", "--seed=-1", TRAIN, (*ML100K, "--seed=-1"), "seed expects an integer >= 0 and <= 4,294,967,295"),
    BadInput("training", "--seed=2**40", TRAIN, (*ML100K, f"--seed={2**40}"), "seed expects an integer >= 0"),
    BadInput("training", "--state=CRITICALX", TRAIN, (*ML100K, "--state=CRITICALX"),
             "state expects one of INFO, DEBUG, WARNING, ERROR, CRITICAL"),
    BadInput("training", "a 5,000-character --dataset", TRAIN, ("--model=GRU4Rec", "--dataset=" + "d" * 5000),
             "expected a dataset name, the name of a folder under data_path (no '/', at most 255 bytes)"),
    BadInput("training", "--dataset=../elsewhere", TRAIN, ("--model=GRU4Rec", "--dataset=../elsewhere"),
             "expected a dataset name"),
    BadInput("training", "--nproc=0", TRAIN, (*ML100K, "--nproc=0"), "--nproc=0: expected a number of processes >= 1"),
    BadInput("training", "--port=http", TRAIN, (*ML100K, "--nproc=2", "--port=http"), "--port='http': expected a TCP port"),
    BadInput("training", "--group_offset=1 with --nproc=2 (world of 2)", TRAIN, (*ML100K, "--nproc=2", "--group_offset=1"),
             "--group_offset=1 + --nproc=2 is more than --world_size=2"),
    BadInput("training", "--ip=10.255.255.1 (not this machine's) on rank 0's machine", TRAIN,
             (*ML100K, "--nproc=2", "--ip=10.255.255.1"), "--ip='10.255.255.1': cannot listen there"),
    BadInput("checkpoint", "a checkpoint whose config has a value out of range", EVALUATE, ("{tmp}/model.pth",),
             "field 'config': bad value eval_batch_size: 100000000000000000000",
             setup=_checkpoint_with(eval_batch_size=10**20)),
]


def _config_file(text: str):
    def setup(folder: Path) -> None:
        (folder / "c.yaml").write_text(text)
    return setup


REPRODUCE = "recbole_session.reproduce:main"
MORE_CASES = [
    BadInput("training", "--metrics=[]", TRAIN, (*ML100K, "--metrics=[]"), "metrics expects a non-empty list of RecBole metrics"),
    BadInput("training", "--metrics=[Recal]", TRAIN, (*ML100K, "--metrics=[Recal]"), "did you mean recall?"),
    BadInput("training", "--learner=sgdx (RecBole trained with Adam instead)", TRAIN, (*ML100K, "--learner=sgdx"),
             "learner expects one of adam, adamw, sgd, adagrad, rmsprop, sparse_adam"),
    BadInput("training", "--loss_type=XYZ", TRAIN, (*ML100K, "--loss_type=XYZ"), "loss_type expects one of CE, BPR for GRU4Rec"),
    BadInput("training", "a sequential model in random order", TRAIN, (*ML100K, "--eval_args={'order': 'RO'}"),
             "eval_args expects order RO or TO ('TO', time order, for a sequential model such as GRU4Rec)"),
    BadInput("training", "--gpu_id=abc", TRAIN, (*ML100K, "--gpu_id=abc"), "gpu_id expects GPU numbers separated by commas"),
    BadInput("training", "--hidden_size=0", TRAIN, (*ML100K, "--hidden_size=0"), "hidden_size expects a positive integer"),
    BadInput("training", "--embedding_size=-4", TRAIN, (*ML100K, "--embedding_size=-4"), "embedding_size expects a positive integer"),
    BadInput("training", "--MAX_ITEM_LIST_LENGTH=100000000000", TRAIN, (*ML100K, "--MAX_ITEM_LIST_LENGTH=100000000000"),
             "MAX_ITEM_LIST_LENGTH expects an integer >= 1 and <= 100,000"),
    BadInput("training", "--checkpoint_dir= (empty)", TRAIN, (*ML100K, "--checkpoint_dir="), "--checkpoint_dir='': expected a folder"),
    BadInput("training", "a 300-character --checkpoint_dir", TRAIN, (*ML100K, "--checkpoint_dir=" + "d" * 300),
             "cannot use it as a folder: File name too long (--checkpoint_dir="),
    BadInput("training", "--checkpoint_dir=/proc/x", TRAIN, (*ML100K, "--checkpoint_dir=/proc/x"), "not a folder on a disk"),
    BadInput("training", "--checkpoint_dir=5 (a number where a path goes)", TRAIN, (*ML100K, "--checkpoint_dir=5"),
             "checkpoint_dir expects a string (default 'saved')"),
    BadInput("training", "epochs: null in a config file", TRAIN, (*ML100K, "--config_files={tmp}/c.yaml"),
             "epochs expects an integer >= 1, not null", setup=_config_file("epochs: null\n")),
    BadInput("training", "a key given twice in a config file", TRAIN, (*ML100K, "--config_files={tmp}/c.yaml"),
             "c.yaml, line 2: key 'epochs': given twice", setup=_config_file("epochs: 1\nepochs: 2\n")),
    BadInput("training", "load_col without the item column", TRAIN, (*MINE, "--load_col={'inter': ['user_id', 'timestamp']}"),
             "its 'inter' list leaves out 'item_id', which RecBole needs", setup=_dataset),
    BadInput("training", "a 5,000-character --model", TRAIN, ("--model=" + "M" * 5000, "--dataset=ml-100k"), "MMM...MMM"),
    BadInput("training", "--eval_split=last", TRAIN, (*ML100K, "--eval_split=last"),
             "eval_split expects one of loo, last_session"),
    BadInput("training", "--eval_split=last_session with a ratio split", TRAIN,
             (*ML100K, "--eval_split=last_session", "--eval_args={'split': {'RS': [0.8, 0.1, 0.1]}, 'order': 'TO', 'mode': 'full'}"),
             "eval_split expects loo with eval_args split {'RS': [0.8, 0.1, 0.1]}"),
    BadInput("training", "--eval_split=last_session for a general model", TRAIN,
             ("--model=BPR", "--dataset=ml-100k", "--data_path={tmp}/data", "--eval_split=last_session"),
             "eval_split expects loo for BPR, whose dataset class is RecBole's Dataset"),
    BadInput("training", "--eval_split=last_session on a dataset without sessions", TRAIN,
             (*MINE, "--topk=[5]", "--valid_metric=ndcg@5", "--eval_split=last_session"),
             "line 1: column 'session_id' missing (the header has user_id, item_id, timestamp); eval_split: last_session needs it",
             setup=_dataset),
    BadInput("training", "--eval_split=last_session with load_col leaving out the session", TRAIN,
             (*MINE, "--topk=[5]", "--valid_metric=ndcg@5", "--eval_split=last_session",
              "--load_col={'inter': ['user_id', 'item_id', 'timestamp']}"),
             "its 'inter' list leaves out 'session_id', which eval_split: last_session needs", setup=_session_dataset),
    BadInput("reproduce", "--out onto a file", REPRODUCE, ("table2", "--dataset=ml-100k", "--out={tmp}/f"),
             "f: is a file, not a folder (--out", setup=_file("f")),
    BadInput("reproduce", "--work onto a file", REPRODUCE, ("table2", "--dataset=ml-100k", "--out={tmp}/o", "--work={tmp}/f"),
             "f: is a file, not a folder (--work", setup=_file("f")),
    BadInput("reproduce", "--threads=100000", REPRODUCE, ("table2", "--dataset=ml-100k", "--threads=100000"),
             "--jobs and --threads must be at most this machine's"),
    BadInput("reproduce", "a 5,000-character --dataset", REPRODUCE, ("table2", "--dataset=" + "x" * 5000),
             "expected a dataset name"),
]


@pytest.mark.parametrize("case", CASES + MORE_CASES, ids=lambda c: c.id)
def test_bad_input(case, tmp_path):
    check(case, tmp_path)


def test_a_list_written_without_inner_quotes_is_a_list(tmp_path):
    """--metrics=[Recall,MRR,NDCG], as a shell user writes it, is the list RecBole expects."""
    from recbole_session.cli import parse_overrides

    overrides = parse_overrides(["--metrics=[Recall,MRR,NDCG]", "--topk=[5,10]"])
    assert overrides == {"metrics": ["Recall", "MRR", "NDCG"], "topk": [5, 10]}
    config = make_config("GRU4Rec", "ml-100k", config_dict={"data_path": str(tmp_path), **overrides})
    assert config["metrics"] == ["Recall", "MRR", "NDCG"]


@pytest.mark.parametrize("args, message", [
    ((None, "ml-100k"), "no model given"),
    (("GRU4Rec", None), "no dataset given"),
    ((123, "ml-100k"), "model: expected a model name"),
    (("GRU4Rec", 5), "dataset: expected a dataset name"),
    (("GRU4Rec", "ml-100k", "a.yaml"), "config_file_list: expected a list of file paths"),
    (("GRU4Rec", "ml-100k", None, [("epochs", 1)]), "config_dict: expected a dict"),
    (("GRU4Rec", "ml-100k", None, {1: 2}), "config_dict: key 1 is not a name"),
    (("GRU4Rec", "ml-100k", None, {"data_path": 5}), "bad value data_path: 5: expected a folder"),
])
def test_python_api_types_are_one_line_errors(args, message):
    for function in (make_config, run_recbole_session):
        with pytest.raises(UsageError, match=message):
            function(*args)


def test_load_data_and_model_wants_a_path():
    for function in (load_data_and_model, from_checkpoint):
        with pytest.raises(CheckpointError, match="expected the path of a checkpoint file, got int"):
            function(7)


def _fill(disk: Path, leave: int) -> None:
    """Fill ``disk`` up to ``leave`` bytes free."""
    import shutil

    (disk / "filler").write_bytes(b"\0" * max(0, shutil.disk_usage(disk).free - leave))


@pytest.fixture
def tiny_disk(tmp_path):
    """A 4 MiB tmpfs (root only): a disk that fills up."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], capture_output=True).returncode == 0
    if not mounted:
        pytest.skip("mounting a tmpfs needs root")
    yield disk
    subprocess.run(["umount", str(disk)], check=False)


def test_a_full_checkpoint_disk_is_refused_before_training(tiny_disk, tmp_path):
    _fill(tiny_disk, leave=64 * 1024)
    _dataset(tmp_path)
    proc = subprocess.run([sys.executable, str(REPO / "run_recbole_session.py"), "--model=GRU4Rec", "--dataset=mine",
                           f"--data_path={tmp_path / 'data'}", f"--checkpoint_dir={tiny_disk}"],
                          cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
                          timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert f"{tiny_disk}: no space left on the device:" in proc.stderr
    assert not (tmp_path / "log").exists()  # nothing was started


def test_a_disk_that_fills_during_training_says_so_naming_the_folder(tiny_disk, tmp_path):
    """The pre-flight passes (the disk has room for the model then), the disk fills before the
    first checkpoint: the save says "no space left" naming the folder, and leaves no partial file."""
    _dataset(tmp_path)
    script = (
        "import sys, pathlib\n"
        "from recbole_session.command import main\n"
        "import recbole_session.checks as checks\n"
        "real = checks.check_room\n"
        "def fill(config, model):\n"
        "    real(config, model)\n"
        f"    from test_preflight import _fill; _fill(pathlib.Path({str(tiny_disk)!r}), leave=4096)\n"
        "import recbole_session.training as training\n"
        "training.check_room = fill\n"
        f"sys.exit(main(['--model=GRU4Rec', '--dataset=mine', '--data_path={tmp_path / 'data'}', "
        f"'--checkpoint_dir={tiny_disk}', '--epochs=1', '--eval_protocols=[]', '--topk=[5]', '--valid_metric=ndcg@5']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}"}, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("run_recbole_session.py: error: "), lines[-3:]
    assert f"{tiny_disk}: no space left on the device while saving the checkpoint" in lines[-1]
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["filler"]
