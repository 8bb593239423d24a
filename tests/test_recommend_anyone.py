"""Recommendations for anyone: users the data never had, anonymous sessions, and session-based
checkpoints (benchmark files), through ``Recommender`` and ``python -m recbole_session.recommend``.

The session-aware models are conftest's tiny checkpoints on ml-100k; the session-based ones are
trained here, 1 epoch on a tiny DIGINETICA-shaped benchmark (``tests/session_data.py``). Every
reference score comes from the model's own ``full_sort_predict`` on RecBole's loader rows or on a
known user's request.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from recbole_session.evaluate import load_checkpoint
from recbole_session.recommend import Recommender, RecommendError, RecommendWarning, main
from recbole_session.recommend_requests import At, Event, Request
from recbole_session.training import run_recbole_session
from tests.tiny_models import MODELS, SESSION_BASED

SEQUENCE_MODELS = [m for m in MODELS if m != "ASARS"]  # no user table: a user id is nothing to them
_LOADED: dict[str, Recommender] = {}


def recommender(path: str) -> Recommender:
    if path not in _LOADED:
        _LOADED[path] = Recommender.from_checkpoint(path)
    return _LOADED[path]


def events_of(inter: pd.DataFrame, user: str, origin: float, who: str | None) -> pd.DataFrame:
    rows = inter[inter["user_id"] == user]
    frame = pd.DataFrame({"item": rows["item_id"], "time": rows["timestamp"] + origin})
    return frame.assign(user=who) if who is not None else frame


# ------------------------------------------------------------------------------ new users
@pytest.mark.parametrize("model", SEQUENCE_MODELS)
def test_a_new_user_with_a_known_users_events_gets_that_users_answer(model, checkpoints, inter):
    """A sequence model needs no user id: a user the data never had, whose fresh events are
    exactly a known user's, gets exactly that user's scores, in the current session and in a new
    one (sessions and dwell rebuilt from the times, as the converter builds them)."""
    rec = recommender(checkpoints[model])
    for user in ("2", "5"):
        events = events_of(inter, user, rec.time_axis.origin, "newcomer")
        for at in ("+60", "+864000"):
            want = rec.recommend_many([(user, at)], k=20)
            got = rec.recommend_many([("newcomer", at)], k=20, events=events)
            assert got["item"].tolist() == want["item"].tolist()
            assert got["score"].tolist() == want["score"].tolist()
            assert got["new_user"].all() and not got["popular"].any() and not got["mean_user"].any()
            assert not want["new_user"].any()
            assert got["new_session"].tolist() == want["new_session"].tolist() == [at == "+864000"] * 20


@pytest.mark.parametrize("model", SEQUENCE_MODELS)
def test_an_anonymous_session_is_scored_from_its_events(model, checkpoints, inter):
    rec = recommender(checkpoints[model])
    user = inter["user_id"].iloc[-1]
    events = events_of(inter, user, rec.time_axis.origin, None)
    pairs = list(zip(events["item"], events["time"]))
    assert rec.recommend(None, events=pairs, at="+60", k=10) == rec.recommend(user, at="+60", k=10)
    assert rec.recommend(None, events=events, k=10) == rec.recommend(user, k=10)
    with pytest.raises(RecommendError, match="an anonymous session needs its events"):
        rec.recommend(None)


def test_a_request_with_its_own_events_does_not_see_another_requests_events(checkpoints, inter):
    """Recommender.answer (the service's form): each request's events are its own, even for the
    same user in the same batch."""

    rec = recommender(checkpoints["SessionBERT4Rec"])
    last = rec.time_axis.origin + inter.loc[inter["user_id"] == "2", "timestamp"].max()
    plain = Request("2", At.parse("+60"), [], 5)
    fresh = Request("2", At.parse("+60"), [Event("2", "50", last + 30, "e")], 5)
    a, b, c = rec.answer([plain, fresh, plain])
    assert a == c
    alone = rec.recommend("2", at="+60", k=5)
    with_event = rec.recommend("2", at="+60", k=5, events=[("50", last + 30)])
    for got, want in ((a, alone), (b, with_event)):  # another batch shape: the last float32 digit may move
        assert [i for i, _ in got["items"]] == [i for i, _ in want]
        assert [s for _, s in got["items"]] == pytest.approx([s for _, s in want], rel=1e-6)
    assert [s for _, s in with_event] != pytest.approx([s for _, s in alone], rel=1e-6)  # the event counts


def test_a_model_with_a_user_table_uses_the_mean_user_and_says_so(checkpoints, inter):
    """ASARS for a user the data never had: exactly the known user's scores when that user's
    embedding is replaced by the mean of the trained users' (a copy of the model; the served
    model's weights stay as they were)."""
    rec = recommender(checkpoints["ASARS"])
    user, internal = "2", rec.user_ids["2"]
    weight = rec.model.user_embedding.weight
    before = weight.detach().clone()
    averaged = copy.deepcopy(rec.model)
    with torch.no_grad():
        averaged.user_embedding.weight[internal] = weight[1:].mean(dim=0)
    reference = Recommender(rec.config, averaged, rec.dataset)
    events = events_of(inter, user, rec.time_axis.origin, "newcomer")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = rec.recommend_many([("newcomer", "+60")], k=20, events=events)
    want = reference.recommend_many([(user, "+60")], k=20)
    assert got["item"].tolist() == want["item"].tolist()
    assert np.allclose(got["score"], want["score"], rtol=1e-6)
    assert got["mean_user"].all() and got["new_user"].all()
    assert any("mean of ASARS's user embeddings" in str(w.message) for w in caught)
    assert torch.equal(rec.model.user_embedding.weight, before)
    assert got["score"].tolist() != rec.recommend_many([(user, "+60")], k=20)["score"].tolist()  # its own row


def test_vsknn_answers_a_new_user_from_its_events(checkpoints, inter, atomic_root, tmp_path):
    """V-SKNN (no training: its index is the training sessions) scores a new user's events by their
    neighbours: an answer of its own, not the popular items."""
    path = run_recbole_session("VSKNN", "ml-100k", config_dict={
        "data_path": str(atomic_root), "checkpoint_dir": str(tmp_path), "epochs": 1, "show_progress": False,
        "state": "WARNING", "use_gpu": False, "eval_protocols": [], "MAX_ITEM_LIST_LENGTH": 20})["model_file"]
    rec = Recommender.from_checkpoint(path)
    events = events_of(inter, "2", rec.time_axis.origin, "newcomer")
    frame = rec.recommend_many([("newcomer", "+60")], k=10, events=events)
    assert frame["new_user"].all() and not frame["popular"].any() and len(frame) == 10
    assert (frame["score"] > 0).all()  # its neighbours' items


def test_events_of_unknown_items_only_fall_back_to_popular_items(checkpoints):
    rec = recommender(checkpoints["SASRec"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = rec.recommend_many(["newcomer"], k=3, events=[("newcomer", "no-such-item", 9e8)])
    assert frame["popular"].all() and not frame["new_user"].any()
    assert sum(issubclass(w.category, RecommendWarning) for w in caught) == 2  # the item, the fallback


def test_the_command_line_answers_a_new_user_from_its_events(checkpoints, inter, tmp_path):
    rec = recommender(checkpoints["SASRec"])
    events = events_of(inter, "2", rec.time_axis.origin, "newcomer")[["user", "item", "time"]]
    events.to_csv(tmp_path / "events.csv", index=False)
    out = tmp_path / "out.csv"
    assert main([checkpoints["SASRec"], "--user", "newcomer", "--events", str(tmp_path / "events.csv"),
                 "--topk", "5", "--out", str(out)]) == 0
    frame = pd.read_csv(out, dtype={"item": str})
    assert frame["item"].tolist() == [i for i, _ in rec.recommend("2", k=5)]


# ------------------------------------------------------------------------------ session-based
@pytest.mark.parametrize("model", list(SESSION_BASED))
def test_session_based_checkpoints_answer_a_sessions_items_as_recboles_loader_row(model, session_checkpoints):
    """On benchmark files a request is a session's items: its scores are exactly those RecBole's
    test loader row (the same items) gets from full_sort_predict."""
    rec = recommender(session_checkpoints[model])
    assert rec.session_based and not rec.exclude_seen_default  # sessions repeat items
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        _, net, dataset, _, test = load_checkpoint(session_checkpoints[model])
    net.eval()
    row = next(iter(test))[0][:40]
    with torch.no_grad():
        scores = net.full_sort_predict(row).view(len(row), -1)
    scores[:, 0] = -torch.inf
    top = torch.topk(scores, 10, dim=1)
    items = row["item_id_list"].numpy()
    for i, length in enumerate(row["item_length"].tolist()):
        session = rec.item_tokens[items[i, :length]].tolist()
        answer = rec.recommend(None, events=session, k=10)
        assert [item for item, _ in answer] == rec.item_tokens[top.indices[i].numpy()].tolist()
        assert [s for _, s in answer] == pytest.approx(top.values[i].double().tolist(), rel=1e-5)


def test_session_based_requests_name_no_user(session_checkpoints, tmp_path, capsys):
    rec = recommender(session_checkpoints["SRIEM"])
    with pytest.raises(RecommendError, match="session-based"):
        rec.recommend("s1", events=["1", "2"])
    with pytest.raises(RecommendError, match="session-based"):
        rec.recommend_many(["s1"])
    with pytest.raises(RecommendError, match="request: dataset 'diginetica-synth' is session-based"):
        rec.answer([Request("s1", At.parse(None), [], 3)])  # not the popular items of a user it has no data of
    items = rec.item_tokens[1:4].tolist()
    out = tmp_path / "out.csv"
    assert main([session_checkpoints["SRIEM"], "--session", ",".join(items), "--session", items[0],
                 "--topk", "4", "--out", str(out)]) == 0
    frame = pd.read_csv(out, dtype={"item": str})
    assert list(frame.columns) == ["session", "rank", "item", "score", "popular"]
    assert frame["session"].tolist() == [1] * 4 + [2] * 4
    assert frame["item"].tolist()[:4] == [i for i, _ in rec.recommend(None, events=items, k=4)]
    assert main([session_checkpoints["SRIEM"], "--user", "s1"]) == 2
    assert "session-based" in capsys.readouterr().err
