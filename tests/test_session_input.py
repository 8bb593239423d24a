"""The shared session input (:mod:`recbole_session.model.session_input`) changed nothing for
SessionBERT4Rec: with a fixed seed, on a tiny hand-made batch, its scores and losses equal the
ones saved in ``tests/fixtures/sessionbert4rec_outputs.pt`` from the code before the move
(commit befe1dd). The fixture holds plain tensors and is loaded with ``weights_only=True``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from recbole.data.interaction import Interaction
from recbole.utils import init_seed

from recbole_session.model.sequential_recommender.sessionbert4rec import SessionBERT4Rec
from recbole_session.quick_start import make_config
from recbole_session.utils import create_dataset

FIXTURE = Path(__file__).parent / "fixtures" / "sessionbert4rec_outputs.pt"
TINY = {"hidden_size": 16, "n_layers": 2, "n_heads": 2, "inner_size": 32, "MAX_ITEM_LIST_LENGTH": 8}
# (name, switches and layout): the full model on both sides, each switch alone, all off
CASES = {
    "all-left": {"session_token": True, "max_session_segments": 2, "temporal_dim": 4, "padding_side": "left"},
    "all-right": {"session_token": True, "max_session_segments": 2, "temporal_dim": 4, "padding_side": "right"},
    "st-left": {"session_token": True, "max_session_segments": 0, "temporal_dim": 0, "padding_side": "left"},
    "sse-right": {"session_token": False, "max_session_segments": 3, "temporal_dim": 0, "padding_side": "right"},
    "tas-left": {"session_token": False, "max_session_segments": 0, "temporal_dim": 4, "padding_side": "left"},
    "off-right": {"session_token": False, "max_session_segments": 0, "temporal_dim": 0, "padding_side": "right"},
}
SEED = 2026

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_batch() -> Interaction:
    """Three users, L = 8: a full history of three sessions (the window cuts a session token),
    a short one-session history, and one whose request opens a new session at a later time."""
    items = torch.tensor([[11, 12, 13, 14, 15, 16, 17, 18], [21, 22, 0, 0, 0, 0, 0, 0],
                          [31, 32, 33, 34, 0, 0, 0, 0]])
    sessions = torch.tensor([[1, 1, 2, 2, 2, 3, 3, 3], [9, 9, 0, 0, 0, 0, 0, 0], [4, 4, 5, 5, 0, 0, 0, 0]])
    times = torch.tensor([[0.0, 10, 2e5, 2e5 + 5, 2e5 + 9, 4e5, 4e5 + 60, 4e5 + 90],
                          [5e5, 5e5 + 1, 0, 0, 0, 0, 0, 0], [1e6, 1e6 + 7, 2e6, 2e6 + 30, 0, 0, 0, 0]],
                         dtype=torch.float64)
    return Interaction({
        "item_id_list": items, "item_length": torch.tensor([8, 2, 4]),
        "session_id_list": sessions, "timestamp_list": times,
        "item_id": torch.tensor([19, 23, 35]), "session_id": torch.tensor([3, 9, 6]),
        "timestamp": torch.tensor([4e5 + 120, 5e5 + 3, 3e6], dtype=torch.float64),
    })


@pytest.fixture(scope="module")
def setting(atomic_root, tmp_path_factory):
    config = make_config("SessionBERT4Rec", "ml-100k", config_dict={
        "data_path": str(atomic_root), "checkpoint_dir": str(tmp_path_factory.mktemp("si") / "saved"),
        "state": "WARNING", "show_progress": False, "use_gpu": False, "seed": SEED, **TINY})
    dataset = create_dataset(config)
    dataset.build()  # adds the <field>_list fields the model looks for
    return config, dataset


def outputs(config, dataset) -> dict[str, torch.Tensor]:
    """Scores and losses of each case on :func:`tiny_batch`, every model built and every loss
    drawn from ``SEED``: full-ranking and target scores in eval mode; the loss of a prefix and of
    a per-user batch in train mode (dropout and cloze masking drawn from the seed)."""
    batch = tiny_batch()
    saved = {key: config[key] for case in CASES.values() for key in [*case, "train_regime"]}
    result = {}
    try:
        for name, case in CASES.items():
            for key, value in case.items():
                config[key] = value
            init_seed(SEED, True)
            model = SessionBERT4Rec(config, dataset)
            model.eval()
            with torch.no_grad():
                result[f"{name}/full"] = model.full_sort_predict(batch)
                result[f"{name}/predict"] = model.predict(batch)
            model.train()
            for regime in ("prefix", "per_user"):
                model.train_regime = regime
                torch.manual_seed(SEED)
                result[f"{name}/loss-{regime}"] = model.calculate_loss(batch).detach()
    finally:
        for key, value in saved.items():
            config[key] = value
    return result


def test_sessionbert4rec_outputs_equal_the_saved_ones(setting):
    expected = torch.load(FIXTURE, weights_only=True)
    got = outputs(*setting)
    assert set(got) == set(expected)
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value, rtol=0, atol=0, msg=key)
