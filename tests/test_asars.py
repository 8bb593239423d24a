"""ASARS: Scott's dwell bins, triangle parallel attention (every prefix in one pass, within the
session by default), the session reset switch, per-position negatives and their exclusion
rules, the per-user window regime, the mechanisms (gradients, non-uniform attention, dwell
reaching the prediction), end-to-end runs through RecBole's own Trainer and checkpoint loading,
and the ``full_unseen`` evaluation protocol on a hand-made dataset."""

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
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType

import recbole_session  # noqa: F401
from recbole_session import build as building
from recbole_session.build import make_config
from recbole_session.convert import convert
from recbole_session.data.dataset import ASARSDataset, window_ends
from recbole_session.evaluation import evaluate_protocols_detailed
from recbole_session.model.sequential_recommender.asars import (
    ASARS,
    N_SPECIAL_BINS,
    first_positions,
    negative_weights,
    sample_negatives,
    scott_bin_width,
    triangle_attention,
)
from recbole_session.training import run_recbole_session

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
    """(config, train, valid, test) dataloaders for ASARS on the 1-hour data (the tests make
    their own models, with their own seeds)."""
    config = make_config(
        "ASARS", "ml-100k",
        config_dict={**SMALL, "data_path": str(hour_root), "checkpoint_dir": str(tmp_path / "saved"), **overrides},
    )
    built = building.build(config, trainer=False)
    return config, built.train_data, built.valid_data, built.test_data


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


def test_triangle_attention_within_session():
    gen = torch.Generator().manual_seed(1)
    scores, values = torch.randn(2, 6, generator=gen), torch.randn(2, 6, 3, generator=gen)
    segments = torch.tensor([[1, 1, 2, 2, 2, 3], [1, 1, 1, 1, 1, 1]])
    out, weights = triangle_attention(scores, values, segments)
    for b in range(2):
        for k in range(6):
            own = [j for j in range(k + 1) if segments[b, j] == segments[b, k]]
            alpha = torch.softmax(scores[b, own], dim=-1)
            torch.testing.assert_close(out[b, k], (alpha.unsqueeze(-1) * values[b, own]).sum(0))
            assert weights[b, k].nonzero().squeeze(1).tolist() == own
    # one segment per row is the window form
    torch.testing.assert_close(out[1], triangle_attention(scores, values)[0][1])


def test_negative_weights_exact():
    batch_items = torch.tensor([1, 1, 1, 2, 3, 3, 4])  # counts 1:3, 2:1, 3:2, 4:1
    pop = negative_weights("batch_popularity", batch_items, 6, 0.5)
    torch.testing.assert_close(pop, torch.tensor([0, 3, 1, 2, 1, 0]) / 7.0)
    torch.testing.assert_close(negative_weights("uniform", batch_items, 6, 0.5), torch.tensor([0, 1, 1, 1, 1, 1]) / 5.0)
    mixed = negative_weights("mixed", batch_items, 6, 0.25)
    torch.testing.assert_close(mixed, 0.25 * pop + 0.75 * torch.tensor([0, 1, 1, 1, 1, 1]) / 5.0)


def test_sample_negatives_redraws_forbidden_and_marks_impossible():
    gen = torch.Generator().manual_seed(0)
    weights = torch.tensor([0.0, 0.5, 0.3, 0.2])
    forbid = torch.tensor([[1, 1], [2, 2], [1, 2]])  # row 2 may only draw item 3
    negatives, usable = sample_negatives(
        weights, 3, 500, lambda p, neg: (neg == forbid[p, :1]) | (neg == forbid[p, 1:]), gen
    )
    assert usable.all()
    assert not (negatives[0] == 1).any() and set(negatives[0].tolist()) == {2, 3}
    assert set(negatives[2].tolist()) == {3}
    # nothing allowed: every draw stays forbidden and is marked unusable
    negatives, usable = sample_negatives(weights, 2, 10, lambda p, neg: neg > 0, gen)
    assert not usable.any()


def test_first_positions():
    seq = torch.tensor([[3, 1, 3, 0], [2, 2, 0, 0]])
    first = first_positions(seq, 5)
    assert first.tolist() == [[3, 1, 4, 0, 4], [2, 4, 0, 4, 4]]


def test_window_ends_cover_each_target_once():
    users = np.array([7] * 9 + [3] * 2)
    keep = window_ends(users, 4)
    assert keep.tolist() == [True, False, False, False, True, False, False, False, True, False, True]


# ---------------------------------------------------------------- model on real data
@pytest.mark.parametrize(
    "variant, rnn_type, reset, extra",
    [("time_user", "LSTM", True, {}), ("user_att", "GRU", True, {}), ("time_cat", "GRU", False, {}),
     ("user_cat", "LSTM", True, {}), ("time_att", "LSTM", False, {"attention_scope": "window"}),
     ("time_user", "GRU", False, {"time_att_query": "user"}), ("plain", "LSTM", True, {})],
)
def test_output_at_k_equals_forward_on_prefix_k(hour_root, tmp_path, workdir, variant, rnn_type, reset, extra):
    """The triangle form: row k of one forward equals a separate forward on the prefix 0..k."""
    config, train, _, _ = build(hour_root, tmp_path, variant=variant, rnn_type=rnn_type,
                                reset_hidden_at_session=reset, **extra)
    torch.manual_seed(0)
    model = ASARS(config, train._dataset).eval()
    batch = next(iter(train))
    with torch.no_grad():
        full = model(batch)
        for k in (1, 3, 7, 12):
            rows = batch["item_length"] >= k
            part = model(prefix(batch, k))
            torch.testing.assert_close(part[rows, k - 1], full[rows, k - 1], rtol=1e-5, atol=1e-5)


def earlier_sessions_changed(model: ASARS, batch: Interaction) -> tuple[Interaction, torch.Tensor, torch.Tensor]:
    """(the batch with every item before each row's last session replaced, the rows that have an
    earlier session, the (B, L) mask of positions in each row's last session)."""
    starts = model._session_starts(batch, batch["item_id_list"])
    positions = torch.arange(starts.size(1)).unsqueeze(0)
    valid = positions < batch["item_length"].unsqueeze(1)
    last_start = torch.where(starts & valid, positions, 0).max(1).values
    changed = batch.interaction.copy()
    earlier = positions < last_start.unsqueeze(1)
    changed["item_id_list"] = torch.where(earlier, (batch["item_id_list"] % 50) + 1, batch["item_id_list"])
    rows = last_start > 0
    assert rows.sum() > 10  # enough rows for the comparison to mean something
    return Interaction(changed), rows, (positions >= last_start.unsqueeze(1)) & valid


def models_with(config, dataset, key: str, values: tuple):
    """(value, ASARS in eval mode built with ``config[key] = value`` from seed 0) per value."""
    for value in values:
        config[key] = value
        torch.manual_seed(0)
        yield value, ASARS(config, dataset).eval()


@pytest.mark.parametrize("variant", ["time_user", "user_att"])
def test_within_session_attention_ignores_earlier_sessions(hour_root, tmp_path, workdir, variant):
    """Default scope: an item of an earlier session changes no attention weight of the current
    session's positions; across the window (the option) it changes them."""
    config, train, _, _ = build(hour_root, tmp_path, variant=variant)
    batch = next(iter(train))
    for scope, model in models_with(config, train._dataset, "attention_scope", ("session", "window")):
        changed, rows, current = earlier_sessions_changed(model, batch)
        with torch.no_grad():
            before, after = model.attention_weights(batch), model.attention_weights(changed)
        same = (before == after).all(dim=2) | ~current  # (B, L): row k unchanged, bit for bit
        if scope == "session":
            assert same.all()
            # and the weights of a current-session row sit on its own session only
            assert (before[current].sum(-1) - 1).abs().max() < 1e-5
        else:
            assert (~same[rows]).any(dim=1).all()


def test_reset_switch_isolates_sessions(hour_root, tmp_path, workdir):
    config, train, _, _ = build(hour_root, tmp_path, variant="user_cat")
    batch = next(iter(train))
    last = batch["item_length"] - 1
    for reset, model in models_with(config, train._dataset, "reset_hidden_at_session", (True, False)):
        # rows whose last session starts after position 0: change every earlier item
        changed, rows, _ = earlier_sessions_changed(model, batch)
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


def tiny_batch() -> Interaction:
    """Two sequences of items 1..5 (internal ids): row 0 = 1 2 3 2 -> 4, row 1 = 4 4 5 -> 1."""
    return Interaction({
        "user_id": torch.tensor([1, 2]),
        "item_id_list": torch.tensor([[1, 2, 3, 2, 0], [4, 4, 5, 0, 0]]),
        "item_length": torch.tensor([4, 3]),
        "item_id": torch.tensor([4, 1]),
    })


def test_negatives_per_position_exclusion_rules(hour_root, tmp_path, workdir):
    config, train, _, _ = build(hour_root, tmp_path, variant="plain", neg_distribution="batch_popularity",
                                neg_sample_num=3000)
    model = ASARS(config, train._dataset)
    batch = tiny_batch()
    targets, mask = model._targets(batch)
    assert targets[mask].tolist() == [2, 3, 2, 4, 4, 5, 1]
    batch_items = {1, 2, 3, 4, 5}
    seen_allowed = [{3, 4, 5}, {4, 5}, {4, 5}, {5}, {1, 2, 3, 5}, {1, 2, 3}, {2, 3}]
    for exclude, allowed in (
        ("target", [batch_items - {t} for t in targets[mask].tolist()]),
        ("seen", seen_allowed),
    ):
        model.neg_exclude = exclude
        negatives, usable = model.negatives(batch, mask, targets, torch.Generator().manual_seed(0))
        assert negatives.shape == (7, 3000) and usable.all()
        # each position gets its own draws, exactly the allowed items of that position
        assert [set(row.tolist()) for row in negatives] == allowed
    # uniform: every item but the target can be drawn, items outside the batch included
    model.neg_exclude, model.neg_distribution = "target", "uniform"
    negatives, usable = model.negatives(batch, mask, targets, torch.Generator().manual_seed(0))
    assert usable.all() and not (negatives == targets[mask].unsqueeze(1)).any()
    assert negatives.max() > 5 and negatives.min() >= 1


def test_history_exclusion_per_position(hour_root, tmp_path, workdir, train_rows):
    config, train, _, _ = build(hour_root, tmp_path, neg_exclude="history", neg_sample_num=64)
    model = ASARS(config, train._dataset)
    field2id = train._dataset.field2token_id
    history = {
        (field2id["user_id"][str(u)], field2id["item_id"][str(i)])
        for u, i in zip(train_rows["user_id"], train_rows["item_id"])
    }
    keys = model.history_keys
    assert set(zip(keys.div(model.n_items, rounding_mode="floor").tolist(), (keys % model.n_items).tolist())) == history
    batch = next(iter(train))
    targets, mask = model._targets(batch)
    negatives, usable = model.negatives(batch, mask, targets)
    users = batch["user_id"].unsqueeze(1).expand_as(mask)[mask]
    assert usable.float().mean() > 0.99
    for user, row, ok in zip(users.tolist(), negatives.tolist(), usable.tolist()):
        assert not any((user, item) in history for item, good in zip(row, ok) if good)


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
        ("attention_scope", "all", "attention_scope"),
        ("neg_distribution", "popularity", "neg_distribution"),
        ("neg_exclude", "user", "neg_exclude"),
        ("neg_mix", 1.5, "neg_mix"),
        ("train_neg_sample_args", {"distribution": "uniform", "sample_num": 1}, "its own negatives"),
    ):
        saved = config[key]
        config[key] = value
        with pytest.raises(ValueError, match=message):
            ASARS(config, train._dataset)
        config[key] = saved
    config["variant"], config["time_att_query"] = "time_att", "user"
    with pytest.raises(ValueError, match="time_att_query 'user'"):
        ASARS(config, train._dataset)


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


# ---------------------------------------------------------------- mechanisms
@pytest.mark.parametrize("variant", ["time_user", "user_att"])
def test_gradients_reach_user_dwell_and_attention(hour_root, tmp_path, workdir, variant):
    config, train, _, _ = build(hour_root, tmp_path, variant=variant)
    torch.manual_seed(0)
    model = ASARS(config, train._dataset)
    model.calculate_loss(next(iter(train))).backward()
    names = {"time_user": ["user_embedding.weight", "dwell_embedding.weight", "dwell_attention.weight",
                           "dwell_rnn.weight_hh_l0", "session_rnn.weight_ih_l0"],
             "user_att": ["user_embedding.weight", "user_attention.weight", "session_rnn.weight_ih_l0"]}[variant]
    params = dict(model.named_parameters())
    for name in names:
        assert params[name].grad is not None and params[name].grad.abs().sum() > 0, name


def within_session_spread(model: ASARS, batch: Interaction) -> torch.Tensor:
    """Per current-session row with >= 3 positions: n * max weight (1 for uniform weights)."""
    with torch.no_grad():
        weights = model.attention_weights(batch)
    support = (weights > 0).sum(-1)
    valid = torch.arange(weights.size(1)).unsqueeze(0) < batch["item_length"].unsqueeze(1)
    rows = valid & (support >= 3)
    return (weights.max(-1).values * support)[rows]


def test_attention_weights_not_uniform_after_training(hour_root, tmp_path, workdir):
    config, train, _, _ = build(hour_root, tmp_path, variant="time_user", dropout_prob=0.0)
    torch.manual_seed(0)
    model = ASARS(config, train._dataset)
    optimizer = torch.optim.Adagrad(model.parameters(), lr=config["learning_rate"])
    batch = next(iter(train))
    at_init = within_session_spread(model.eval(), batch).median()
    model.train()
    for _ in range(20):
        optimizer.zero_grad()
        model.calculate_loss(batch).backward()
        optimizer.step()
    spread = within_session_spread(model.eval(), batch)
    assert spread.numel() > 50
    # the largest weight of a typical row is well above 1/n (about 1/n at init): the dwell
    # attention learned to discriminate
    assert at_init < 1.1 and spread.median() > 1.2


def test_prediction_changes_with_only_the_dwell_input(hour_root, tmp_path, workdir):
    config, train, _, _ = build(hour_root, tmp_path, variant="time_user")
    torch.manual_seed(0)
    model = ASARS(config, train._dataset).eval()
    batch = next(iter(train))
    slower = batch.interaction.copy()
    slower["dwell_list"] = batch["dwell_list"] * 7 + 600.0
    with torch.no_grad():
        moved = ~torch.isclose(model.full_sort_predict(batch), model.full_sort_predict(Interaction(slower))).all(1)
    starts = model._session_starts(batch, batch["item_id_list"])
    last = batch["item_length"] - 1
    in_session = (last > 0) & ~starts[torch.arange(len(last)), last]
    assert moved[in_session].all()


# ---------------------------------------------------------------- full_unseen protocol
# user -> items in time order; the last is the test target, the one before it the valid target
UNSEEN_USERS = {"A": [10, 20, 30, 40, 50], "B": [60, 10, 30, 60], "C": [20, 40, 60, 30, 10, 50]}


class TokenScores(SequentialRecommender):
    """Scores every item by minus its token (item 10 first): a fixed ranking."""

    input_type = InputType.POINTWISE

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        tokens = [float(t) if t != "[PAD]" else 0.0 for t in dataset.field2id_token[self.ITEM_ID]]
        self.register_buffer("scores", -torch.tensor(tokens))
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def full_sort_predict(self, interaction):
        return self.scores.expand(len(interaction), -1)


def test_full_unseen_protocol_on_a_tiny_dataset(tmp_path, workdir):
    (tmp_path / "unseen").mkdir()
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    for user, items in UNSEEN_USERS.items():
        lines += [f"{user}\t{item}\t{100 * t}" for t, item in enumerate(items)]
    (tmp_path / "unseen" / "unseen.inter").write_text("\n".join(lines) + "\n")
    # a list of 2 items: the earlier history must come from the times, not the list
    config = make_config(TokenScores, "unseen", None, {
        "data_path": str(tmp_path), "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "MAX_ITEM_LIST_LENGTH": 2, "use_gpu": False, "state": "ERROR", "metrics": ["MRR"], "topk": [6],
        "valid_metric": "MRR@6",
    })
    dataset = building.create_dataset(config)
    _, valid, test = data_preparation(config, dataset)
    model = TokenScores(config, dataset)
    # test targets 50, 60, 50 among items 10..60: full ranks 5, 6, 5; unseen ranks among the
    # items not seen before: A {50, 60} -> 1; B (60 repeated, stays a candidate) {20, 40, 50, 60}
    # -> 4; C {50} -> 1
    ranks = {"full": {"A": 5, "B": 6, "C": 5}, "full_unseen": {"A": 1, "B": 4, "C": 1}}
    result = evaluate_protocols_detailed(model, test, config, ["full", "full_unseen"], dataset=dataset)
    for protocol, by_user in ranks.items():
        expected = [1 / by_user[u] for u in result.users]
        np.testing.assert_allclose(result.per_user[f"{protocol}/mrr@6"], expected)
    # valid targets 40, 30, 10: A {40, 50, 60} -> 1; B {20, 30, 40, 50} -> 2 (60, 10 seen);
    # C: 10 never seen before it -> 1 (the later test item 50 is no history of the valid row)
    result = evaluate_protocols_detailed(model, valid, config, ["full_unseen"], dataset=dataset)
    np.testing.assert_allclose(result.per_user["full_unseen/mrr@6"],
                               [1 / {"A": 1, "B": 2, "C": 1}[u] for u in result.users])
