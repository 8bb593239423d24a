"""VSKNN: exact scores on hand-made training sessions (computed by hand in the comments), the
k and sample_size cut-offs, the current session and its own exclusion, predict against
full_sort_predict, and a 1-epoch run on ml-100k through RecBole's own Trainer."""

from __future__ import annotations

import math
import subprocess
import sys
from fractions import Fraction as F
from pathlib import Path

import pytest
import torch
from recbole.data.interaction import Interaction

from recbole_session import lookup
from recbole_session.cli import UsageError
from recbole_session.literals import load_yaml
from recbole_session.model.sequential_recommender.vsknn import VSKNN
from recbole_session.paths import properties_dir
from recbole_session.training import run_recbole_session

N_ITEMS = 8  # ids 1..7, 0 pads
WIDTH = 5


class TinyDataset:
    """What VSKNN reads of a built train split: ``inter_feat``, ``field2type`` and ``num``."""

    def __init__(self, rows: list[dict]):
        def padded(values, fill=0):
            return values + [fill] * (WIDTH - len(values))

        self.inter_feat = Interaction({
            "user_id": torch.tensor([r["user"] for r in rows]),
            "item_id": torch.tensor([r["target"][0] for r in rows]),
            "session_id": torch.tensor([r["target"][1] for r in rows]),
            "timestamp": torch.tensor([float(r["target"][2]) for r in rows]),
            "item_id_list": torch.tensor([padded([i for i, _, _ in r["history"]]) for r in rows]),
            "session_id_list": torch.tensor([padded([s for _, s, _ in r["history"]]) for r in rows]),
            "timestamp_list": torch.tensor([padded([float(t) for _, _, t in r["history"]], 0.0) for r in rows]),
            "item_length": torch.tensor([len(r["history"]) for r in rows]),
        })
        self.field2type = {name: None for name in self.inter_feat.interaction}

    def num(self, field: str) -> int:
        assert field == "item_id"
        return N_ITEMS


# training sessions (user, session id): items, newest time; each row is one user's sequence,
# its last event the target, as RecBole's rows are
#   A (1, 1): {1, 2, 3}  t 10        B (2, 1): {2, 4}  t 20
#   C (3, 1): {3, 5, 6}  t 30        D (3, 2): {7}     t 40     E (4, 1): {1, 3, 4}  t 50
TRAIN = [
    {"user": 1, "history": [(1, 1, 8), (2, 1, 9)], "target": (3, 1, 10)},
    {"user": 2, "history": [(2, 1, 19)], "target": (4, 1, 20)},
    {"user": 3, "history": [(3, 1, 28), (5, 1, 29), (6, 1, 30)], "target": (7, 2, 40)},
    {"user": 4, "history": [(1, 1, 48), (3, 1, 49)], "target": (4, 1, 50)},
]
# the query: user 9's history is session 1 = [7], then the current session 2 = [2, 1, 3]
QUERY = {"user": 9, "items": [7, 2, 1, 3], "sessions": [1, 2, 2, 2]}
#   div weights of the current events i = 1..3 of n = 3: item 2: 1/3, item 1: 2/3, item 3: 1
#   vec similarity = weighted dot / 3 distinct items:
#     A: (1/3 + 2/3 + 1) / 3 = 2/3     B: (1/3) / 3 = 1/9     C: 1 / 3 = 1/3
#     D: shares nothing with the current session (item 7 is in the previous one): no candidate
#     E: (2/3 + 1) / 3 = 5/9
#   div score decay 1/step, step back to the newest current event the neighbour holds
#   (step 1: item 3, 2: item 1, 3: item 2): A, C, E hold item 3: 1; B holds only item 2: 1/3
SIM = {"A": F(2, 3), "B": F(1, 9) * F(1, 3), "C": F(1, 3), "E": F(5, 9)}
ITEMS = {"A": {1, 2, 3}, "B": {2, 4}, "C": {3, 5, 6}, "D": {7}, "E": {1, 3, 4}}


def expected(neighbours: str) -> list[float]:
    """Score of items 0..7: the sum of the decayed similarities of the neighbours holding it."""
    return [float(sum((SIM[n] for n in neighbours if item in ITEMS[n]), F(0))) for item in range(N_ITEMS)]


def model(**overrides) -> VSKNN:
    config = {**load_yaml((properties_dir() / "model" / "VSKNN.yaml").read_text()),
              "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "LIST_SUFFIX": "_list",
              "ITEM_LIST_LENGTH_FIELD": "item_length", "NEG_PREFIX": "neg_", "MAX_ITEM_LIST_LENGTH": WIDTH,
              "device": "cpu", "SESSION_ID_FIELD": "session_id", "TIME_FIELD": "timestamp",
              "normalize": False, **overrides}
    return VSKNN(config, TinyDataset(TRAIN))


def query(user: int = QUERY["user"], items=QUERY["items"], sessions=QUERY["sessions"], target: int = 4) -> Interaction:
    pad = WIDTH - len(items)
    return Interaction({"user_id": torch.tensor([user]), "item_id": torch.tensor([target]),
                        "item_id_list": torch.tensor([items + [0] * pad]),
                        "session_id_list": torch.tensor([sessions + [0] * pad]),
                        "item_length": torch.tensor([len(items)])})


def scores(m: VSKNN, q: Interaction | None = None) -> list[float]:
    return m.full_sort_predict(q or query())[0].tolist()


def test_exact_scores_with_session_recs_defaults():
    # every candidate is a neighbour (k 100, sample 1000):
    #   item 1: A + E = 11/9, 2: A + B = 19/27, 3: A + C + E = 14/9, 4: B + E = 16/27, 5, 6: C = 1/3
    assert scores(model()) == pytest.approx(expected("ABCE"), rel=1e-6)
    assert expected("ABCE")[3] == pytest.approx(14 / 9) and expected("ABCE")[2] == pytest.approx(19 / 27)


def test_normalize_divides_by_the_row_maximum():
    assert scores(model(normalize=True)) == pytest.approx([s / (14 / 9) for s in expected("ABCE")], rel=1e-6)


def test_k_keeps_the_most_similar_sessions():
    # k 2: A (2/3) and E (5/9); B, C drop out: item 2 = A alone, items 5 and 6 score 0
    assert scores(model(k=2)) == pytest.approx(expected("AE"), rel=1e-6)
    # k 1: A alone
    assert scores(model(k=1)) == pytest.approx(expected("A"), rel=1e-6)


def test_sample_size_keeps_the_most_recent_candidates():
    # candidates A (t 10), B (20), C (30), E (50); D (40) is newer than C but no candidate
    assert scores(model(sample_size=2)) == pytest.approx(expected("CE"), rel=1e-6)
    assert scores(model(sample_size=3)) == pytest.approx(expected("BCE"), rel=1e-6)
    assert scores(model(sample_size=0)) == pytest.approx(expected("ABCE"), rel=1e-6)  # 0: all


def test_weighting_score_same_is_the_plain_sum_of_similarities():
    # B's similarity 1/9 is no longer divided by its step 3
    same = scores(model(weighting_score="same"))
    assert same[4] == pytest.approx(1 / 9 + 5 / 9) and same[2] == pytest.approx(2 / 3 + 1 / 9)


def test_remind_false_zeroes_the_current_sessions_items():
    got = scores(model(remind=False))
    assert got[1] == got[2] == got[3] == 0.0
    assert got[4:] == pytest.approx(expected("ABCE")[4:], rel=1e-6)


def test_the_current_session_is_not_its_own_neighbour():
    # user 1's history session 1 is A itself (leave-one-out: its earlier events are training
    # rows): A is left out, as session-rec never matches a session with itself
    own = query(user=1, items=[2, 1, 3], sessions=[1, 1, 1])
    assert scores(model(), own) == pytest.approx(expected("BCE"), rel=1e-6)
    # the same items in another of user 1's sessions: A is a neighbour again
    other = query(user=1, items=[2, 1, 3], sessions=[5, 5, 5])
    assert scores(model(), other) == pytest.approx(expected("ABCE"), rel=1e-6)


def test_without_session_ids_the_window_is_the_session():
    # the whole history [7, 2, 1, 3]: D joins (holds item 7, the first of 4 events, weight 1/4)
    m = model()
    m.use_sessions = False
    q = query()
    got = m.full_sort_predict(Interaction({k: v for k, v in q.interaction.items() if k != "session_id_list"}))
    # D: sim (1/4) / 4 distinct, decay 1/4 (item 7 is 4 steps back)
    assert got[0, 7].item() == pytest.approx(1 / 4 / 4 / 4)


def test_predict_equals_full_sort_gathered_at_the_candidates():
    m = model()
    rows = [query(items=[2, 1, 3], sessions=[2, 2, 2]), query(items=[5, 4], sessions=[1, 1]),
            query(user=1, items=[7, 3, 3, 1], sessions=[1, 2, 2, 2])]
    batch = Interaction({key: torch.cat([r[key] for r in rows]) for key in rows[0].interaction})
    full = m.full_sort_predict(batch)
    for item in range(1, N_ITEMS):
        batch.interaction["item_id"] = torch.full((len(rows),), item)
        assert torch.equal(m.predict(batch), full[:, item])
    assert (full > 0).any(dim=1).all()


def test_bad_settings_are_refused():
    with pytest.raises(UsageError, match="similarity 'dice' is not one of vec, cosine, jaccard"):
        model(similarity="dice")
    with pytest.raises(UsageError, match="k must be at least 1"):
        model(k=0)


def test_the_lookup_finds_vsknn():
    assert lookup.get_model("VSKNN") is VSKNN
    assert "VSKNN" in lookup.model_names()


def test_one_epoch_on_ml100k_through_recboles_trainer(fast_config):
    result = run_recbole_session("VSKNN", "ml-100k", config_dict={**fast_config, "eval_protocols": []})
    assert result["n_params"] == 1  # the dummy parameter
    test = result["test_result"]
    assert all(math.isfinite(v) for v in test.values())
    assert 0.0 < test["ndcg@10"] <= test["hit@10"] <= 1.0


def test_the_command_line_finds_vsknn(atomic_root, workdir):
    script = Path(__file__).resolve().parents[1] / "run_recbole_session.py"
    done = subprocess.run([sys.executable, str(script), "--model=VSKNN", "--dataset=ml-100k",
                           f"--data_path={atomic_root}", "--eval_protocols=[]", "--show_progress=False",
                           f"--checkpoint_dir={workdir / 'saved'}", "--MAX_ITEM_LIST_LENGTH=20"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "test result" in done.stdout + done.stderr
