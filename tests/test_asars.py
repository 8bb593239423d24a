"""ASARS: Scott's dwell bins, triangle parallel attention (every prefix in one pass), the
session reset switch, local negative sampling, the per-user window regime, and end-to-end
runs through RecBole's own Trainer and checkpoint loading."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from recbole.data import data_preparation
from recbole.data.interaction import Interaction

import recbole_session  # noqa: F401
from recbole_session.convert import convert
from recbole_session.data.dataset import ASARSDataset, window_ends
from recbole_session.model.sequential_recommender.asars import (
    ASARS,
    N_SPECIAL_BINS,
    scott_bin_width,
    triangle_attention,
)
from recbole_session.quick_start import make_config, run_recbole_session
from recbole_session.utils import create_dataset

# 1-hour sessions as the paper; few rows per user keep the tests fast
SESSION_GAP = 3600
CONVERT = {"session_gap": SESSION_GAP, "min_sessions": 2, "min_session_length": 1, "max_user_inter": 20}
SMALL = {
    "embedding_size": 16,
    "hidden_size": 16,
    "user_embedding_size": 8,
    "dwell_embedding_size": 8,
    "neg_sample_num": 8,
    "MAX_ITEM_LIST_LENGTH": 12,
    "train_batch_size": 128,
    "eval_batch_size": 512,
    "epochs": 1,
    "show_progress": False,
    "state": "WARNING",
    "use_gpu": False,
    "session_gap": SESSION_GAP,
}


@pytest.fixture(scope="module")
def hour_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("asars_atomic")
    convert("ml-100k", out=root, force=True, **CONVERT)
    return root


@pytest.fixture(scope="module")
def train_rows(hour_root) -> pd.DataFrame:
    """The training rows computed independently of RecBole: each user's rows but the last two
    (leave-one-out valid and test)."""
    df = pd.read_csv(hour_root / "ml-100k" / "ml-100k.inter", sep="\t")
    df.columns = [c.split(":")[0] for c in df.columns]
    df = df.sort_values(["user_id", "timestamp"], kind="mergesort")
    from_end = df.groupby("user_id").cumcount(ascending=False)
    return df[from_end.to_numpy() >= 2]


def build(hour_root, tmp_path, **overrides):
    """(config, train, valid, test) dataloaders for ASARS on the 1-hour data."""
    config = make_config(
        "ASARS", "ml-100k",
        config_dict={**SMALL, "data_path": str(hour_root), "checkpoint_dir": str(tmp_path / "saved"), **overrides},
    )
    dataset = create_dataset(config)
    return (config, *data_preparation(config, dataset))


def prefix(batch: Interaction, k: int) -> Interaction:
    """The batch cut to its first k positions (a separate input, not a view of the original)."""
    cut = {}
    for key, value in batch.interaction.items():
        cut[key] = value[:, :k].clone() if value.dim() == 2 else value.clone()
    cut["item_length"] = batch["item_length"].clamp(max=k)
    return Interaction(cut)


# ---------------------------------------------------------------- pure functions
def test_scott_bin_width_exact():
    values = np.array([0.0, 1.0, 2.0, 3.0, 10.0])
    expected = (24 * math.sqrt(math.pi) / 5) ** (1 / 3) * np.std(values)
    assert scott_bin_width(values) == pytest.approx(expected, rel=1e-12)
    assert scott_bin_width(values) == pytest.approx(3.49 * np.std(values) * 5 ** (-1 / 3), rel=1e-3)
    assert scott_bin_width(np.array([5.0, 5.0])) == 1.0  # constant sample: one bin


def test_triangle_attention_rows_are_prefix_softmax():
    gen = torch.Generator().manual_seed(0)
    scores, values = torch.randn(3, 6, generator=gen), torch.randn(3, 6, 4, generator=gen)
    out, weights = triangle_attention(scores, values)
    for k in range(6):
        alpha = torch.softmax(scores[:, : k + 1], dim=-1)
        torch.testing.assert_close(out[:, k], (alpha.unsqueeze(-1) * values[:, : k + 1]).sum(1))
        assert torch.all(weights[:, k, k + 1 :] == 0)


def test_local_negatives_follow_batch_popularity_and_skip_history():
    from recbole_session.model.sequential_recommender.asars import sample_local_negatives

    n_items = 10
    batch_items = torch.tensor([1, 1, 1, 2, 3, 3, 4])  # counts 1:3, 2:1, 3:2, 4:1
    history = torch.tensor(sorted([0 * n_items + 3, 0 * n_items + 4, 1 * n_items + 1]))  # user0: {3,4}; user1: {1}
    gen = torch.Generator().manual_seed(0)
    drawn = sample_local_negatives(torch.tensor([0, 1]), batch_items, history, n_items, 20000, gen)
    user0, user1 = Counter(drawn[0].tolist()), Counter(drawn[1].tolist())
    assert set(user0) == {1, 2} and set(user1) == {2, 3, 4}
    assert user0[1] / 20000 == pytest.approx(3 / 4, abs=0.02)
    assert user1[3] / 20000 == pytest.approx(2 / 4, abs=0.02)
    # a user who saw every batch item falls back to the items outside its history
    history = torch.tensor([2 * n_items + i for i in (1, 2, 3, 4)])
    drawn = sample_local_negatives(torch.tensor([2]), batch_items, history, n_items, 500, gen)
    assert set(drawn[0].tolist()) <= set(range(5, n_items)) and len(set(drawn[0].tolist())) > 1


def test_window_ends_cover_each_target_once():
    users = np.array([7] * 9 + [3] * 2)
    keep = window_ends(users, 4)
    assert keep.tolist() == [True, False, False, False, True, False, False, False, True, False, True]


# ---------------------------------------------------------------- model on real data
@pytest.mark.parametrize(
    "variant, rnn_type, reset",
    [("time_user", "LSTM", True), ("user_att", "GRU", True), ("time_cat", "GRU", False),
     ("user_cat", "LSTM", True), ("time_att", "LSTM", False)],
)
def test_output_at_k_equals_forward_on_prefix_k(hour_root, tmp_path, workdir, variant, rnn_type, reset):
    config, train, _, _ = build(hour_root, tmp_path, variant=variant, rnn_type=rnn_type, reset_hidden_at_session=reset)
    torch.manual_seed(0)
    model = ASARS(config, train._dataset).eval()
    batch = next(iter(train))
    with torch.no_grad():
        full = model(batch)
        for k in (1, 3, 7, 12):
            rows = batch["item_length"] >= k
            part = model(prefix(batch, k))
            torch.testing.assert_close(part[rows, k - 1], full[rows, k - 1], rtol=1e-5, atol=1e-5)


def test_reset_switch_isolates_sessions(hour_root, tmp_path, workdir):
    config, train, _, _ = build(hour_root, tmp_path, variant="user_cat")
    batch = next(iter(train))
    starts = None
    for reset in (True, False):
        config["reset_hidden_at_session"] = reset
        torch.manual_seed(0)
        model = ASARS(config, train._dataset).eval()
        if starts is None:
            starts = model._session_starts(batch, batch["item_id_list"])
            valid = torch.arange(starts.size(1)).unsqueeze(0) < batch["item_length"].unsqueeze(1)
            # rows whose last session starts after position 0: change every earlier item
            last_start = torch.where(starts & valid, torch.arange(starts.size(1)), 0).max(1).values
            rows = last_start > 0
            assert rows.sum() > 10
            changed = batch.interaction.copy()
            earlier = torch.arange(starts.size(1)).unsqueeze(0) < last_start.unsqueeze(1)
            changed["item_id_list"] = torch.where(earlier, (batch["item_id_list"] % 50) + 1, batch["item_id_list"])
            changed = Interaction(changed)
            last = batch["item_length"] - 1
        with torch.no_grad():
            same = torch.isclose(
                model.gather_indexes(model(batch), last), model.gather_indexes(model(changed), last), atol=1e-6
            ).all(dim=1)[rows]
        # the last session's output depends on earlier sessions only when the state is carried
        assert same.all() if reset else (~same).all()


def test_dwell_bins_from_training_rows_only_and_saved(hour_root, tmp_path, workdir, train_rows):
    from recbole.quick_start import load_data_and_model

    result = run_recbole_session(
        "ASARS", "ml-100k", config_dict={**SMALL, "data_path": str(hour_root), "checkpoint_dir": str(tmp_path / "saved")}
    )
    expected = 3.49 * train_rows["dwell"].std(ddof=0) * len(train_rows) ** (-1 / 3)
    state = torch.load(result["model_file"], map_location="cpu", weights_only=False)["state_dict"]
    assert float(state["dwell_bin_width"]) == pytest.approx(expected, rel=1e-3)
    all_rows = pd.read_csv(hour_root / "ml-100k" / "ml-100k.inter", sep="\t")["dwell:float"]
    assert float(state["dwell_bin_width"]) != pytest.approx(scott_bin_width(all_rows.to_numpy()), rel=1e-6)
    value_bins = int(train_rows["dwell"].max() // float(state["dwell_bin_width"])) + 1
    assert state["dwell_embedding.weight"].shape[0] == value_bins + N_SPECIAL_BINS
    config, model, _, _, _, test_data = load_data_and_model(result["model_file"])
    assert isinstance(model, ASARS) and float(model.dwell_bin_width) == float(state["dwell_bin_width"])
    assert set(result["test_result"]) >= {"mrr@10", "mrr@20", "mrr@30", "mrr@40", "recall@20", "ndcg@20"}


def test_local_negatives_never_in_user_history(hour_root, tmp_path, workdir, train_rows):
    config, train, _, _ = build(hour_root, tmp_path, neg_sample_num=64)
    model = ASARS(config, train._dataset)
    field2id = train._dataset.field2token_id
    history = {
        (field2id["user_id"][str(u)], field2id["item_id"][str(i)])
        for u, i in zip(train_rows["user_id"], train_rows["item_id"])
    }
    keys = model.history_keys
    assert set(zip(keys.div(model.n_items, rounding_mode="floor").tolist(), (keys % model.n_items).tolist())) == history
    drawn_any = 0
    for batch in train:
        from recbole_session.model.sequential_recommender.asars import sample_local_negatives

        valid = torch.arange(batch["item_id_list"].size(1)).unsqueeze(0) < batch["item_length"].unsqueeze(1)
        items = torch.cat([batch["item_id_list"][valid], batch["item_id"]])
        negatives = sample_local_negatives(batch["user_id"], items, model.history_keys, model.n_items, 64)
        for user, row in zip(batch["user_id"].tolist(), negatives.tolist()):
            assert not any((user, item) in history for item in row)
            assert set(row) <= set(items.tolist())
            drawn_any += len(row)
    assert drawn_any > 0


def test_window_regime_trains_every_target_once(hour_root, tmp_path, workdir):
    config, train_w, valid_w, test_w = build(hour_root, tmp_path, train_regime="window")
    assert isinstance(train_w._dataset, ASARSDataset)
    model = ASARS(config, train_w._dataset)
    windowed = Counter()
    feat = train_w._dataset.inter_feat
    targets, mask = model._targets(feat)
    users = feat["user_id"].unsqueeze(1).expand_as(targets)
    windowed.update(zip(users[mask].tolist(), targets[mask].tolist()))
    _, train_p, valid_p, test_p = build(hour_root, tmp_path, train_regime="prefix")
    prefix_feat = train_p._dataset.inter_feat
    assert windowed == Counter(zip(prefix_feat["user_id"].tolist(), prefix_feat["item_id"].tolist()))
    assert len(feat) < len(prefix_feat) / 3
    for a, b in ((valid_w, valid_p), (test_w, test_p)):
        for field in ("user_id", "item_id", "item_id_list", "item_length"):
            assert torch.equal(a._dataset.inter_feat[field], b._dataset.inter_feat[field])


@pytest.mark.parametrize(
    "overrides",
    [
        {"variant": "user_att", "loss_type": "BPR", "rnn_type": "GRU"},
        {"variant": "user_cat", "loss_type": "TOP1", "reset_hidden_at_session": False},
        {"variant": "time_att", "loss_type": "CE", "train_regime": "prefix"},
        {"variant": "time_cat", "loss_type": "hinge"},
    ],
)
def test_end_to_end_variants_and_losses(hour_root, tmp_path, workdir, overrides):
    result = run_recbole_session(
        "ASARS", "ml-100k",
        config_dict={**SMALL, "data_path": str(hour_root), "checkpoint_dir": str(tmp_path / "saved"), **overrides},
        saved=False,
    )
    assert all(np.isfinite(v) for v in result["test_result"].values())
    assert 0 <= result["test_result"]["mrr@40"] <= 1


def test_training_lowers_the_loss(hour_root, tmp_path, workdir):
    config, train, _, _ = build(hour_root, tmp_path, learning_rate=0.05)
    torch.manual_seed(0)
    model = ASARS(config, train._dataset)
    optimizer = torch.optim.Adagrad(model.parameters(), lr=config["learning_rate"])
    batch = next(iter(train))
    losses = []
    for _ in range(15):
        loss = model.calculate_loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_parameter_count_time_user(hour_root, tmp_path, workdir):
    config, train, _, _ = build(hour_root, tmp_path)
    model = ASARS(config, train._dataset)
    d, h, u, t = 16, 16, 8, 8
    n_items, n_users = model.n_items, train._dataset.user_num
    bins = int(model.dwell_value_bins) + N_SPECIAL_BINS
    lstm = lambda i: 4 * h * (i + h) + 8 * h  # noqa: E731  (weights and both biases)
    expected = (
        n_items * d + n_items  # item embedding and bias
        + bins * t + lstm(d) + lstm(t)  # dwell embedding, session and dwell LSTMs
        + h * h + h  # W_s, b_s
        + n_users * u + (h + u) * d + d  # user embedding, FC
    )
    assert sum(p.numel() for p in model.parameters()) == expected


def test_config_and_errors(hour_root, tmp_path, workdir):
    config, train, _, _ = build(hour_root, tmp_path, loss_type="BPR")
    assert config["train_neg_sample_args"]["distribution"] == "none"
    assert config["metrics"] == ["Recall", "MRR", "NDCG"] and config["topk"] == [10, 20, 30, 40]
    for key, value, message in (
        ("variant", "time_both", "variant"),
        ("rnn_type", "RNN", "rnn_type"),
        ("loss_type", "softmax", "loss_type"),
        ("train_neg_sample_args", {"distribution": "uniform", "sample_num": 1}, "local negative sampling"),
    ):
        config[key] = value
        with pytest.raises(ValueError, match=message):
            ASARS(config, train._dataset)
        config[key] = {"variant": "time_user", "rnn_type": "LSTM", "loss_type": "BPR",
                       "train_neg_sample_args": {"distribution": "none"}}[key]


def test_no_future_dwell_reaches_the_prediction(hour_root, tmp_path, workdir):
    """Step i sees the dwell of item i-1: the gap from the last input to the target (the last
    input's dwell) and the target's own dwell never change the scores; an earlier dwell does."""
    config, train, _, _ = build(hour_root, tmp_path, variant="time_user")
    torch.manual_seed(0)
    model = ASARS(config, train._dataset).eval()
    batch = next(iter(train))
    last = batch["item_length"] - 1
    rows = torch.arange(len(last))
    future = batch.interaction.copy()
    future["dwell_list"] = batch["dwell_list"].clone()
    future["dwell_list"][rows, last] += 5000.0
    future["dwell"] = batch["dwell"] + 5000.0
    past = batch.interaction.copy()
    past["dwell_list"] = batch["dwell_list"].clone()
    past["dwell_list"][rows, (last - 1).clamp(min=0)] += 5000.0
    with torch.no_grad():
        scores = model.full_sort_predict(batch)
        torch.testing.assert_close(model.full_sort_predict(Interaction(future)), scores)
        moved = ~torch.isclose(model.full_sort_predict(Interaction(past)), scores).all(dim=1)
    # a changed earlier dwell moves the scores of every row that has an earlier in-session step
    starts = model._session_starts(batch, batch["item_id_list"])
    in_session = (last > 0) & ~starts[rows, last]
    assert in_session.sum() > 10 and moved[in_session].all()
