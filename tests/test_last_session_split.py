"""``eval_split: last_session`` (issue 25): each user's last session is the test session and the
one before it the valid session, every event of them a target given everything before it.

Exact rows on a hand-made dataset, leave-one-out unchanged, and end to end on session-aware
ml-100k through RecBole's real Trainer (SASRec, RecBole's; SessionBERT4Rec, ours) with the
target counts and the slice of targets that open a session checked against counts taken
straight from the atomic file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from recbole.data.dataset import SequentialDataset

from recbole_session.build import make_config
from recbole_session.data.dataset import SessionSequentialDataset
from recbole_session.data.split import MIN_SPLIT_SESSIONS, last_session_parts, session_places
from recbole_session.lookup import create_dataset, dataset_class
from recbole_session.training import run_recbole_session

DAY = 86_400
# user -> sessions (item tokens in time order); session ids restart at 1 for every user, as the
# converter writes them. A: 4 sessions; B: 2 (all rows train); C: 3, the first of one item (its
# only event is no target, yet it is one of C's sessions)
SESSIONS = {
    "A": [[1, 2, 3], [4, 5], [6, 7, 8], [9, 10]],
    "B": [[11, 12], [13, 14]],
    "C": [[15], [16, 17], [18, 19]],
}
# part -> user -> [(target, history)], the history oldest first
EXPECTED = {
    "train": {"A": [(2, [1]), (3, [1, 2]), (4, [1, 2, 3]), (5, [1, 2, 3, 4])],
              "B": [(12, [11]), (13, [11, 12]), (14, [11, 12, 13])]},
    "valid": {"A": [(6, [1, 2, 3, 4, 5]), (7, [1, 2, 3, 4, 5, 6]), (8, [1, 2, 3, 4, 5, 6, 7])],
              "C": [(16, [15]), (17, [15, 16])]},
    "test": {"A": [(9, [1, 2, 3, 4, 5, 6, 7, 8]), (10, [1, 2, 3, 4, 5, 6, 7, 8, 9])],
             "C": [(18, [15, 16, 17]), (19, [15, 16, 17, 18])]},
}
PARTS = ("train", "valid", "test")


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sessions")
    (root / "tiny").mkdir()
    lines = ["user_id:token\titem_id:token\ttimestamp:float\tsession_id:token"]
    for user, sessions in SESSIONS.items():
        for number, items in enumerate(sessions, start=1):
            # sessions a week apart, events a minute apart; users interleaved in time
            lines += [f"{user}\t{item}\t{7 * DAY * number + 60 * k + ord(user)}\t{number}" for k, item in enumerate(items)]
    (root / "tiny" / "tiny.inter").write_text("\n".join(lines) + "\n")
    return root


def tiny_config(root: Path, model: str = "SASRec", **extra):
    return make_config(model, "tiny", None, {
        "data_path": str(root), "load_col": {"inter": ["user_id", "item_id", "timestamp", "session_id"]},
        "MAX_ITEM_LIST_LENGTH": 50, "use_gpu": False, "state": "ERROR", "topk": [5], "valid_metric": "NDCG@5",
        "eval_protocols": [], **extra})


def rows(part) -> dict[str, list[tuple[int, list[int]]]]:
    """user token -> [(target token, history tokens)] of a built part, in its row order."""
    feat = part.inter_feat
    users = part.id2token(part.uid_field, feat[part.uid_field].numpy())
    targets = part.id2token(part.iid_field, feat[part.iid_field].numpy())
    lists, lengths = feat[part.item_id_list_field].numpy(), feat[part.item_list_length_field].numpy()
    out: dict[str, list] = {}
    for user, target, items, length in zip(users, targets, lists, lengths):
        history = [int(t) for t in part.id2token(part.iid_field, items[:length])]
        out.setdefault(str(user), []).append((int(target), history))
    return out


@pytest.mark.parametrize("model", ["SASRec", "SessionBERT4Rec"])
def test_exact_rows_of_each_part(tiny_root, model):
    dataset = create_dataset(tiny_config(tiny_root, model, eval_split="last_session"))
    assert isinstance(dataset, SessionSequentialDataset)
    built = dict(zip(PARTS, dataset.build()))
    for part in PARTS:
        assert rows(built[part]) == EXPECTED[part], part
    # a valid or test target's history holds the earlier events of its own session
    assert rows(built["valid"])["A"][2][1][-2:] == [6, 7] and rows(built["test"])["A"][1][1][-1] == 9


def test_leave_one_out_is_recboles_own_split(tiny_root):
    """The default (and eval_split: loo) builds exactly what RecBole's SequentialDataset builds."""
    config = tiny_config(tiny_root)
    assert config["eval_split"] == "loo"
    ours, recbole = create_dataset(config).build(), SequentialDataset(config).build()
    for mine, theirs in zip(ours, recbole):
        assert mine.inter_feat.columns == theirs.inter_feat.columns
        for column in mine.inter_feat.columns:
            assert torch.equal(mine.inter_feat[column], theirs.inter_feat[column]), column
    assert rows(ours[2]) == {"A": [(10, list(range(1, 10)))], "B": [(14, [11, 12, 13])], "C": [(19, [15, 16, 17, 18])]}


def test_every_sequential_model_gets_the_split():
    from recbole.utils import ModelType

    for model in ("SASRec", "GRU4Rec", "BERT4Rec", "SRIEM", "SessionBERT4Rec", "ASARS"):
        assert issubclass(dataset_class(model, ModelType.SEQUENTIAL), SessionSequentialDataset), model


def test_session_places_order_sessions_by_time_not_by_id():
    # user 7's session ids run backwards in time; user 8 has two sessions
    users = np.array([7, 7, 7, 7, 8, 8])
    sessions = np.array([30, 30, 20, 10, 1, 2])
    times = np.array([0.0, 1.0, 50.0, 90.0, 5.0, 6.0])
    from_end, count = session_places(users, sessions, times)
    assert from_end.tolist() == [2, 2, 1, 0, 1, 0] and count.tolist() == [3, 3, 3, 3, 2, 2]
    assert last_session_parts(from_end, count).tolist() == [0, 0, 1, 2, 0, 0]
    assert MIN_SPLIT_SESSIONS == 3


def ml100k_sessions(data_path: str) -> pd.DataFrame:
    """Per (user, session) of the atomic file: its size and place from the user's newest."""
    inter = pd.read_csv(Path(data_path) / "ml-100k" / "ml-100k.inter", sep="\t")
    inter.columns = [c.split(":")[0] for c in inter.columns]
    sessions = inter.groupby(["user_id", "session_id"]).agg(start=("timestamp", "min"), size=("item_id", "size"))
    sessions = sessions.reset_index().sort_values(["user_id", "start"])
    sessions["count"] = sessions.groupby("user_id")["session_id"].transform("size")
    sessions["from_end"] = sessions["count"] - 1 - sessions.groupby("user_id").cumcount()
    return sessions


@pytest.mark.parametrize("model, extra", [
    ("SASRec", {"hidden_size": 16, "inner_size": 32, "n_layers": 1, "n_heads": 1}),
    ("SessionBERT4Rec", {"hidden_size": 16, "inner_size": 32, "n_layers": 1, "n_heads": 1, "epoch_steps": 2,
                         "eval_step": 1, "train_batch_size": 64}),
])
def test_end_to_end_counts_and_open_slice(fast_config, model, extra, caplog):
    caplog.set_level("INFO")  # RecBole's log file stays empty under pytest's own log handlers
    result = run_recbole_session(model, "ml-100k", None, {**fast_config, **extra, "eval_split": "last_session", "state": "INFO"})
    sessions = ml100k_sessions(fast_config["data_path"])
    held_out = sessions[sessions["count"] >= MIN_SPLIT_SESSIONS]
    expected = {"valid": int(held_out.loc[held_out["from_end"] == 1, "size"].sum()),
                "test": int(held_out.loc[held_out["from_end"] == 0, "size"].sum())}
    n_users = held_out["user_id"].nunique()
    assert result["targets"] == expected and expected["test"] > 1000
    # one target per held-out session opens it: its first event
    assert result["open_targets"] == {"valid": n_users, "test": n_users}

    saved = json.loads(Path(result["results_file"]).read_text())
    assert saved["eval_split"] == "last_session" and saved["targets"] == expected
    test = saved["per_user"]["test"]
    assert len(test["users"]) == len(test["opens"]) == expected["test"]
    # a user is one row per event of the last session, the first of which opens it
    last = held_out[held_out["from_end"] == 0].set_index("user_id")["size"]
    assert pd.Series(test["users"]).astype(int).value_counts().sort_index().to_dict() == last.sort_index().to_dict()
    opening = [user for user, flag in zip(test["users"], test["opens"]) if flag]
    assert sorted(map(int, opening)) == sorted(last.index)
    # "full" is RecBole's own full ranking of these rows; the slice is the mean over its rows
    assert saved["test_protocols"]["full/ndcg@10"] == saved["test_result"]["ndcg@10"]
    values = np.array(test["per_user"]["random100/ndcg@10"])
    assert saved["test_open_protocols"]["open/random100/ndcg@10"] == pytest.approx(
        values[np.array(test["opens"])].mean(), abs=1e-4)
    log = caplog.text
    assert f"targets (last_session split): valid {expected['valid']} ({n_users} open a session), test {expected['test']}" in log
