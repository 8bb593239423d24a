"""Shared fixtures: the session-aware ml-100k atomic files (built once, offline, from the
recbole wheel) and a small, fast RecBole configuration for end-to-end runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from tiny_models import train_checkpoints, train_session_checkpoints

import recbole_session  # noqa: F401  (shims and registration before any RecBole use)
from recbole_session.convert import convert


@pytest.fixture(scope="session", autouse=True)
def resume_key(tmp_path_factory) -> Path:
    """The key that signs tune's output folders for --resume: the tests' own, never the user's
    (~/.config/recbole-session/resume.key); the commands the tests start inherit it."""
    from recbole_session.tune.trust import KEY_ENV

    path = tmp_path_factory.mktemp("config") / "recbole-session" / "resume.key"
    saved = os.environ.get(KEY_ENV)
    os.environ[KEY_ENV] = str(path)
    yield path
    if saved is None:
        os.environ.pop(KEY_ENV, None)
    else:
        os.environ[KEY_ENV] = saved


@pytest.fixture(scope="session")
def atomic_root(tmp_path_factory) -> Path:
    """A data_path holding ``ml-100k/ml-100k.inter`` (session-aware)."""
    root = tmp_path_factory.mktemp("atomic_files")
    convert("ml-100k", out=root)
    return root


@pytest.fixture(scope="session")
def inter(atomic_root):
    """The converted ml-100k.inter, read independently of RecBole (tokens as strings, times as
    floats)."""
    import pandas as pd

    frame = pd.read_csv(atomic_root / "ml-100k" / "ml-100k.inter", sep="\t", dtype=str)
    frame.columns = [c.split(":")[0] for c in frame.columns]
    frame["timestamp"] = frame["timestamp"].astype(float)
    return frame


@pytest.fixture(scope="session")
def checkpoints(atomic_root, tmp_path_factory) -> dict[str, str]:
    """A checkpoint of each tiny model of tests/tiny_models.py, trained once for every module
    that loads one (recommend, evaluate)."""
    return train_checkpoints(atomic_root, tmp_path_factory.mktemp("tiny_runs"))


@pytest.fixture(scope="session")
def session_checkpoints(tmp_path_factory) -> dict[str, str]:
    """A checkpoint of each session-based tiny model (tests/tiny_models.py), on benchmark files."""
    return train_session_checkpoints(tmp_path_factory.mktemp("session_based"), tmp_path_factory.mktemp("session_runs"))


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """Run in a temporary folder: RecBole writes ./log and ./log_tensorboard there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def fast_config(atomic_root, workdir) -> dict:
    """One quick epoch on ml-100k with small sizes; models add their own small sizes."""
    return {
        "data_path": str(atomic_root),
        "checkpoint_dir": str(workdir / "saved"),
        "epochs": 1,
        "train_batch_size": 256,
        "eval_batch_size": 512,
        "show_progress": False,
        "state": "WARNING",
        "MAX_ITEM_LIST_LENGTH": 20,
        "use_gpu": False,
    }


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module's tests: tiny tensors gain nothing from a second one, and
    on a machine whose cores are shared two threads that wait for each other were 30x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def open_folder():
    """A case folder that a process without permission overrides can enter (pytest's are 0700);
    its locked folders are opened again afterwards, for it to be removed."""
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="case-"))
    folder.chmod(0o777)
    yield folder
    for path in [folder, *folder.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)
    shutil.rmtree(folder, ignore_errors=True)
