"""The tiny models the recommend and evaluate tests load: one checkpoint each, trained once per
test session (1 epoch, tiny sizes) on the session-aware ml-100k by conftest's ``checkpoints``."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from recbole_session.quick_start import run_recbole_session

TINY_TRANSFORMER = {"n_layers": 1, "n_heads": 1, "hidden_size": 16, "inner_size": 32}
SB4R_OFF = {"session_token": False, "max_session_segments": 0, "temporal_dim": 0}
# SessionBERT4Rec trains in its per-user regime (one sequence per user per epoch): the fixture
# stays quick on a loaded 2-core machine
MODELS = {
    "SessionBERT4Rec": {**TINY_TRANSFORMER, "train_regime": "per_user"},
    "SRIEM": {"embedding_size": 16, "attention_size": 8},
    "ASARS": {"embedding_size": 16, "hidden_size": 16, "user_embedding_size": 8, "dwell_embedding_size": 8},
    "SASRec": TINY_TRANSFORMER,
    "GRU4Rec": {"embedding_size": 16, "hidden_size": 16},
    "SessionSASRec": TINY_TRANSFORMER,
    "SessionGRU4Rec": {"embedding_size": 16, "hidden_size": 16},
}
# the models the issue names (the package's three and SASRec); GRU4Rec checks the path through
# RecBole's other sequential models
MAIN_MODELS = ["SessionBERT4Rec", "SRIEM", "ASARS", "SASRec"]
# the session-based checkpoints (benchmark files of tests/session_data.py): SRIEM, V-SKNN and four
# of RecBole's models that read a session's items
SESSION_BASED = {"SRIEM": {"embedding_size": 16, "attention_size": 8}, "VSKNN": {},
                 "NARM": {"embedding_size": 16, "hidden_size": 16}, "SRGNN": {"embedding_size": 16},
                 "STAMP": {"embedding_size": 16}, "GRU4Rec": {"embedding_size": 16, "hidden_size": 16}}
SESSION_SHAPE = {"n_sessions": 600, "n_items": 120, "n_topics": 8}


def train_session_checkpoints(root: Path, folder: Path) -> dict[str, str]:
    """One checkpoint per :data:`SESSION_BASED` model on a tiny DIGINETICA-shaped benchmark written
    under ``root``, 1 epoch."""
    from session_data import SessionShape, write_session_benchmark

    write_session_benchmark(root, "diginetica-synth", SessionShape(**SESSION_SHAPE))
    base = {"data_path": str(root), "checkpoint_dir": str(folder / "saved"), "epochs": 1, "train_batch_size": 128,
            "show_progress": False, "state": "WARNING", "use_gpu": False, "eval_protocols": []}
    with _inside(folder):
        return {model: run_recbole_session(model, "diginetica-synth", config_dict={**base, **cfg})["model_file"]
                for model, cfg in SESSION_BASED.items()}


@contextlib.contextmanager
def _inside(folder: Path):
    """Run in ``folder``: RecBole writes log/ in the working directory."""
    cwd = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.chdir(cwd)


def train_checkpoints(atomic_root: Path, folder: Path) -> dict[str, str]:
    """One checkpoint per model (and SessionBERT4Rec with its three switches off), 1 epoch."""
    base = {"data_path": str(atomic_root), "checkpoint_dir": str(folder / "saved"), "epochs": 1,
            "train_batch_size": 1024, "eval_batch_size": 512, "show_progress": False, "state": "WARNING",
            "MAX_ITEM_LIST_LENGTH": 20, "eval_protocols": [], "use_gpu": False}
    runs = {**{m: (m, cfg) for m, cfg in MODELS.items()},
            "SessionBERT4Rec-off": ("SessionBERT4Rec", {**MODELS["SessionBERT4Rec"], **SB4R_OFF})}
    with _inside(folder):
        return {name: run_recbole_session(model, "ml-100k", config_dict={**base, **cfg})["model_file"]
                for name, (model, cfg) in runs.items()}
