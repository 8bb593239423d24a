"""No value from a file reaches code in RecBole's models: the routes of issue 24 (a data-only
checkpoint, a config file, a dataset folder's yaml, a pickled ``.npy`` in a dataset folder, a
pretrained-model file), each with a marker file that running code would create, and the
completeness of :data:`recbole_session.checks.CODE_PATHS` against RecBole's model sources."""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import recbole
import torch
from bad_input import MARKER, REPO, BadInput, check, touch_gadget

from recbole_session import checkpoint
from recbole_session.build import make_config
from recbole_session.checks import CODE_PATHS, UnsafeConfigError, check_code_paths
from recbole_session.cli import UsageError

TRAIN = "recbole_session.command:main"
EVALUATE = "recbole_session.evaluate:main"
RECOMMEND = "recbole_session.recommend:main"
ITEMS = 30  # items of the tiny dataset: more than RecBole's default topk
CODE = "__import__('os').system('touch {marker}') or CrossNet"


def _dataset(folder: Path, name: str = "mine") -> Path:
    """``data/<name>/<name>.inter``: a tiny dataset that passes the file checks."""
    inter = folder / "data" / name / f"{name}.inter"
    inter.parent.mkdir(parents=True, exist_ok=True)
    rows = [f"{user}\t{item}\t{item}.0" for user in (1, 2, 3) for item in range(1, ITEMS + 1)]
    inter.write_text("user_id:token\titem_id:token\ttimestamp:float\n" + "\n".join(rows) + "\n")
    return inter.parent


def _kd_dagfm_checkpoint(folder: Path) -> None:
    """A data-only checkpoint (it opens with torch's weights-only unpickler) naming KD_DAGFM with
    code in ``teacher``, which KD_DAGFM's __init__ eval()s."""
    _dataset(folder, "ml-100k")
    config = make_config("GRU4Rec", "ml-100k", config_dict={"data_path": str(folder / "data")})
    literals = checkpoint.config_literals(config)
    literals.update(model="KD_DAGFM", threshold=None, phase="teacher_training",
                    teacher=CODE.format(marker=folder / MARKER))
    literals[checkpoint.STATE_KEY]["model"] = "KD_DAGFM"
    torch.save({"config": literals, "state_dict": {}}, folder / "evil.pth")


def _write(name: str, text: str):
    def setup(folder: Path) -> None:
        _dataset(folder)
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.replace("{marker}", str(folder / MARKER)))
    return setup


def _pickled_npy(folder: Path) -> None:
    """An ``item_emb.npy`` that np.load(allow_pickle=True) would unpickle (a plain pickle)."""
    data = _dataset(folder)
    with open(data / "item_emb.npy", "wb") as handle:
        pickle.dump(touch_gadget(folder), handle)


def _object_npy(folder: Path) -> None:
    """An ``item_emb.npy`` that is a real .npy array of Python objects."""
    data = _dataset(folder)
    np.save(data / "item_emb.npy", np.array([touch_gadget(folder), 1], dtype=object), allow_pickle=True)


def _pretrain_gadget(folder: Path) -> None:
    _dataset(folder)
    torch.save({"state_dict": touch_gadget(folder)}, folder / "mf.pth")


MINE = "--dataset=mine"
DATA = "--data_path={tmp}/data"
CHECKPOINT_ROUTES = [
    BadInput("checkpoint", "a data-only checkpoint naming KD_DAGFM with code in teacher", EVALUATE,
             ("{tmp}/evil.pth",), "refused: KD_DAGFM evaluates its key teacher as Python code", setup=_kd_dagfm_checkpoint),
    BadInput("checkpoint", "the same checkpoint given to recommend", RECOMMEND, ("{tmp}/evil.pth", "--user", "2"),
             "refused: KD_DAGFM evaluates its key teacher as Python code", setup=_kd_dagfm_checkpoint),
]
CODE_CASES = [
    BadInput("training", "a config file with code in KD_DAGFM's teacher", TRAIN,
             ("--model=KD_DAGFM", MINE, DATA, "--config_files={tmp}/evil.yaml"),
             "teacher must be one of CrossNet, CIN, not", setup=_write("evil.yaml", f'teacher: "{CODE}"\n')),
    BadInput("training", "a dataset folder's yaml that sets a model key", TRAIN, ("--model=KD_DAGFM", MINE, DATA),
             "mine.yaml, line 2, key 'teacher': a dataset folder's yaml sets dataset keys only",
             setup=_write("data/mine/mine.yaml", f'USER_ID_FIELD: user_id\nteacher: "{CODE}"\n')),
    BadInput("training", "a pickle named item_emb.npy in the dataset folder", TRAIN,
             ("--model=LDiffRec", MINE, DATA, "--n_cate=2"),
             "item_emb.npy: refused: not a .npy array (numpy would read it as a pickle", setup=_pickled_npy),
    BadInput("training", "an .npy array of Python objects in the dataset folder", TRAIN,
             ("--model=LDiffRec", MINE, DATA, "--n_cate=2"),
             "item_emb.npy: refused: an array of Python objects", setup=_object_npy),
    BadInput("training", "a pretrained-model file that holds Python objects", TRAIN,
             ("--model=NeuMF", MINE, DATA, "--use_pretrain=True", "--mf_pretrain_path={tmp}/mf.pth",
              "--mlp_pretrain_path={tmp}/mf.pth"),
             "mf.pth: mf_pretrain_path of NeuMF: refused: the file holds", setup=_pretrain_gadget),
    BadInput("training", "a config file of nested aliases (a billion laughs)", TRAIN,
             (MINE, DATA, "--model=GRU4Rec", "--config_files={tmp}/bomb.yaml"),
             "bomb.yaml, line 6: refused: expands to more than 1,000,000 characters",
             setup=_write("bomb.yaml", "a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
                 f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(8)))),
    BadInput("training", "a config key that is a number", TRAIN, (MINE, DATA, "--model=GRU4Rec", "--config_files={tmp}/c.yaml"),
             "c.yaml, line 2: key '1': a config key is a name (a string)", setup=_write("c.yaml", "epochs: 1\n1: 2\n")),
    BadInput("training", "a dataset folder's yaml that is not yaml", TRAIN, (MINE, DATA, "--model=GRU4Rec"),
             "mine.yaml, line 2: not valid yaml", setup=_write("data/mine/mine.yaml", "load_col: [\n  x: y\n")),
]
CASES = CHECKPOINT_ROUTES + CODE_CASES


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_route_runs_nothing(case, tmp_path):
    check(case, tmp_path)
    assert not (tmp_path / MARKER).exists()


def test_load_data_and_model_refuses_the_kd_dagfm_checkpoint_before_building(tmp_path):
    """RecBole's own load_data_and_model after `import recbole_session`: refused, nothing runs."""
    _kd_dagfm_checkpoint(tmp_path)
    script = (
        "import recbole_session\n"
        "from recbole.quick_start import load_data_and_model\n"
        "from recbole_session.checkpoint import CheckpointError\n"
        "try:\n"
        f"    load_data_and_model({str(tmp_path / 'evil.pth')!r})\n"
        "except CheckpointError as err:\n"
        "    print('refused:', err)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert "KD_DAGFM evaluates its key teacher as Python code" in out.stdout
    assert not (tmp_path / MARKER).exists()


def test_a_plain_teacher_name_still_builds_kd_dagfm(tmp_path):
    """The rule refuses code, not the model: RecBole's default teacher passes."""
    _dataset(tmp_path)
    config = make_config("KD_DAGFM", "mine", config_dict={"data_path": str(tmp_path / "data"), "teacher": "CIN"})
    assert config["teacher"] == "CIN"


def test_the_full_unpickler_switch_is_refused_where_a_model_loads_a_file(tmp_path, monkeypatch):
    _dataset(tmp_path)
    torch.save({"config": {"model": "NeuMF", "dataset": "mine"}, "state_dict": {}}, tmp_path / "mf.pth")
    overrides = {"data_path": str(tmp_path / "data"), "use_pretrain": True,
                 "mf_pretrain_path": str(tmp_path / "mf.pth"), "mlp_pretrain_path": str(tmp_path / "mf.pth")}
    assert make_config("NeuMF", "mine", config_dict=overrides)["use_pretrain"] is True  # a data-only file passes
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    with pytest.raises(UsageError, match="TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD makes that a full unpickler"):
        make_config("NeuMF", "mine", config_dict=overrides)


def test_a_config_changed_after_it_was_made_is_checked_again_by_check_code_paths(tmp_path):
    _dataset(tmp_path)
    config = make_config("KD_DAGFM", "mine", config_dict={"data_path": str(tmp_path / "data")})
    config["teacher"] = "__import__('os')"
    with pytest.raises(UnsafeConfigError, match="teacher must be one of"):
        check_code_paths(config)


# a call that evaluates text or unpickles what a path names
_REACHES_CODE = re.compile(r"\b(eval|exec)\(|pickle\.loads?\(|np\.load\(|torch\.load\(")


def test_code_paths_cover_every_recbole_model_that_evaluates_or_unpickles():
    """Scan RecBole's model sources: every model file with such a call has its model in
    CODE_PATHS (a RecBole upgrade that adds one fails here)."""
    root = Path(recbole.__file__).parent / "model"
    covered = {path.model.lower() for path in CODE_PATHS}
    reaching = set()
    for file in root.rglob("*.py"):
        text = "\n".join(line for line in file.read_text(encoding="utf-8").splitlines()
                         if not line.lstrip().startswith("#"))
        if _REACHES_CODE.search(text):
            reaching.add(file.stem)
    assert reaching, "the scan found nothing: RecBole's model sources moved"
    assert reaching <= covered, f"not in CODE_PATHS: {sorted(reaching - covered)}"
    assert covered <= reaching | {"kd_dagfm"}, f"stale entries: {sorted(covered - reaching)}"
