"""SessionBERT4Rec: parameter counts (ours and paper Table 2), equivalence with RecBole's
BERT4Rec when every switch is off, the input layout (session tokens, segments, cut), masking,
temporal self-attention, inference that knows the request, and end-to-end runs of all eight
switch combinations through RecBole's own Trainer."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from recbole.data import data_preparation
from recbole.data.interaction import Interaction, cat_interactions
from recbole.model.sequential_recommender.bert4rec import BERT4Rec
from recbole.utils import get_trainer, init_seed

from recbole_session.data.dataset import SessionBERT4RecDataset
from recbole_session.model.sequential_recommender.sessionbert4rec import (
    SessionBERT4Rec,
    TemporalEncoding,
    TemporalMultiHeadAttention,
    added_parameter_count,
    reference_parameter_count,
)
from recbole_session.quick_start import make_config, run_recbole_session
from recbole_session.utils import create_dataset

TINY = {"hidden_size": 16, "n_layers": 1, "n_heads": 2, "inner_size": 32}
M, DT = 3, 4
SWITCHES = list(itertools.product([False, True], [0, M], [0, DT]))


pytestmark = pytest.mark.usefixtures("one_thread")


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.fixture(scope="module")
def data(atomic_root, tmp_path_factory):
    """One config and the ml-100k dataloaders (prefix regime), shared by the unit tests."""
    workdir = tmp_path_factory.mktemp("sbert")
    config = make_config("SessionBERT4Rec", "ml-100k", config_dict={
        "data_path": str(atomic_root), "checkpoint_dir": str(workdir / "saved"),
        "MAX_ITEM_LIST_LENGTH": 20, "eval_batch_size": 64, "train_batch_size": 64,
        "train_regime": "prefix", "state": "WARNING", "show_progress": False, "use_gpu": False, **TINY,
    })
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    return config, train, valid, test


def build(config, session_token=False, segments=0, temporal=0, dataset=None, **extra):
    extra.setdefault("padding_side", "right")  # the layouts below are written right-aligned
    saved = {k: config[k] for k in ("session_token", "max_session_segments", "temporal_dim", *extra)}
    config["session_token"], config["max_session_segments"], config["temporal_dim"] = (
        session_token, segments, temporal)
    for key, value in extra.items():
        config[key] = value
    try:
        init_seed(config["seed"], config["reproducibility"])
        return SessionBERT4Rec(config, dataset).eval()
    finally:
        for key, value in saved.items():
            config[key] = value


def test_dataset_class_and_float64_times(data):
    config, train, _, test = data
    assert isinstance(train._dataset, SessionBERT4RecDataset)
    assert train._dataset.inter_feat["timestamp_list"].dtype == torch.float64
    interaction = next(iter(test))[0]
    assert interaction["timestamp"].dtype == torch.float64
    assert {"session_id", "session_id_list", "timestamp_list"} <= set(interaction.interaction)


@pytest.mark.parametrize("st,m,dt", SWITCHES)
def test_parameters_added_by_each_switch(data, st, m, dt):
    config, train, _, _ = data
    base = n_params(BERT4Rec(config, train._dataset))
    model = build(config, st, m, dt, dataset=train._dataset)
    d, layers = TINY["hidden_size"], TINY["n_layers"]
    expected = (d if st else 0) + ((m + 1) * d if m else 0) + (
        2 * dt + layers * (dt * dt + dt) if dt else 0)
    assert n_params(model) - base == expected
    assert added_parameter_count(d, layers, st, m, dt) == expected


def test_paper_table2_parameter_column():
    """#params of paper Table 2 from the reference implementation's sizes (d 256, 4 layers)."""
    table = {  # dataset: (items, L, m, dT, [BERT4Rec, +ST, +SSE, +TSA, +ST+SSE, +ST+TSA, +SSE+TSA, all])
        "Steam": (4331, 15, 5, 32, [5385708, 5385964, 5386988, 5389996, 5387244, 5390252, 5391276, 5391532]),
        "ML-1M": (3327, 200, 3, 16, [4918016, 4918272, 4918784, 4919136, 4919040, 4919392, 4919904, 4920160]),
        "ML-20M": (12239, 100, 5, 64, [9464272, 9464528, 9465552, 9481040, 9465808, 9481296, 9482320, 9482576]),
    }
    combos = [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, 0, 1), (0, 1, 1), (1, 1, 1)]
    for items, max_len, m, dt, column in table.values():
        got = [reference_parameter_count(items, max_len, 256, 4, bool(st), m * se, dt * te)
               for st, se, te in combos]
        assert got == column


def test_feed_forward_gelu_is_recboles_function_in_one_kernel(data):
    """The feed-forward activation is torch's gelu (autograd keeps one tensor, not three of the
    layer's inner size): the same function as RecBole's ``FeedForward.gelu``, values and
    gradients."""
    config, train, _, _ = data
    model = build(config, True, M, DT, dataset=train._dataset)
    for layer in model.trm_encoder.layer:
        assert layer.feed_forward.intermediate_act_fn is torch.nn.functional.gelu
    recbole_gelu = model.trm_encoder.layer[0].feed_forward.gelu
    x = torch.linspace(-6, 6, 1001, dtype=torch.float32, requires_grad=True)
    y = x.detach().clone().requires_grad_()
    torch.testing.assert_close(torch.nn.functional.gelu(x), recbole_gelu(y))
    torch.nn.functional.gelu(x).sum().backward()
    recbole_gelu(y).sum().backward()
    torch.testing.assert_close(x.grad, y.grad)


def test_switches_off_is_recbole_bert4rec(data):
    config, train, _, test = data
    theirs = BERT4Rec(config, train._dataset).eval()
    ours = build(config, dataset=train._dataset)
    assert n_params(ours) == n_params(theirs)
    ours.load_state_dict(theirs.state_dict())  # strict: same names and shapes
    interaction = cat_interactions([batch[0] for batch in test])  # every test user
    length = interaction["item_length"]
    full = length == config["MAX_ITEM_LIST_LENGTH"]
    assert full.any() and (~full).any()
    with torch.no_grad():
        mine, ref = ours.full_sort_predict(interaction), theirs.full_sort_predict(interaction)
        torch.testing.assert_close(mine[full], ref[full])
        torch.testing.assert_close(ours.predict(interaction)[full], theirs.predict(interaction)[full])
        # on a shorter history RecBole's reconstruct_test_data drops the oldest item; we keep it,
        # so we equal BERT4Rec given one more (dummy) item in front
        short = interaction[~full]
        items = short["item_id_list"]
        padded = torch.cat([torch.full_like(items[:, :1], 7), items[:, :-1]], 1)
        shifted = Interaction({**short.interaction, "item_id_list": padded,
                               "item_length": short["item_length"] + 1})
        torch.testing.assert_close(ours.full_sort_predict(short), theirs.full_sort_predict(shifted))


def layout_inputs():
    """Two users, L = 8: items 11..16 in sessions (1, 1, 2, 2, 2, 3) at times 0, 10, 2e5, ...;
    the second user has a single session of two items."""
    items = torch.tensor([[11, 12, 13, 14, 15, 16, 0, 0], [21, 22, 0, 0, 0, 0, 0, 0]])
    length = torch.tensor([6, 2])
    sessions = torch.tensor([[1, 1, 2, 2, 2, 3, 0, 0], [9, 9, 0, 0, 0, 0, 0, 0]])
    times = torch.tensor([[0.0, 10, 2e5, 2e5 + 5, 2e5 + 9, 4e5, 0, 0],
                          [5e5, 5e5 + 1, 0, 0, 0, 0, 0, 0]], dtype=torch.float64)
    return items, length, times, sessions


def test_layout_session_tokens_segments_and_cut(data):
    config, train, _, _ = data
    model = build(config, True, 2, 0, dataset=train._dataset)
    st, mask = model.session_token_id, model.mask_token
    items, length, times, sessions = layout_inputs()
    tokens, segments, out_times, last = model._layout(items, length, times, sessions)
    # user 0: 6 items + 3 session tokens = 9 > L = 8: the oldest token (a session token) is cut
    assert tokens.tolist() == [[11, 12, st, 13, 14, 15, st, 16], [st, 21, 22, 0, 0, 0, 0, 0]]
    # m = 2: newest session 2, the one before 1, older clamped to 1, padding 0
    assert segments.tolist() == [[1, 1, 1, 1, 1, 1, 2, 2], [2, 2, 2, 0, 0, 0, 0, 0]]
    assert last.tolist() == [7, 2]
    # a session token takes the time of its session's first item
    assert out_times[0, 2].item() == 2e5 and out_times[0, 6].item() == 4e5
    assert out_times[1, :3].tolist() == [5e5, 5e5, 5e5 + 1]

    # the request continues the last session: MASK only; or opens a new one: token + MASK
    mask_col = torch.full_like(length, mask)
    same = model._layout(items, length, times, sessions, mask_col,
                         torch.tensor([4e5 + 1, 5e5 + 2], dtype=torch.float64), torch.tensor([3, 9]))
    new = model._layout(items, length, times, sessions, mask_col,
                        torch.tensor([4e5 + 1, 5e5 + 2], dtype=torch.float64), torch.tensor([4, 8]))
    assert same[0].tolist() == [[12, st, 13, 14, 15, st, 16, mask], [st, 21, 22, mask, 0, 0, 0, 0]]
    assert new[0].tolist() == [[st, 13, 14, 15, st, 16, st, mask], [st, 21, 22, st, mask, 0, 0, 0]]
    assert same[1].tolist() == [[1, 1, 1, 1, 1, 2, 2, 2], [2, 2, 2, 2, 0, 0, 0, 0]]
    assert new[1].tolist() == [[1, 1, 1, 1, 1, 1, 2, 2], [1, 1, 1, 2, 2, 0, 0, 0]]
    assert same[3].tolist() == [7, 3] and new[3].tolist() == [7, 4]
    assert new[2][0, 6].item() == 4e5 + 1  # the new session's token carries the request time
    # same session id but a gap above session_gap (86,400 s) also opens a session
    gap = model._layout(items, length, times, sessions, mask_col,
                        torch.tensor([4e5 + 1, 5e5 + 2e5], dtype=torch.float64), torch.tensor([3, 9]))
    assert gap[0][1].tolist() == [st, 21, 22, st, mask, 0, 0, 0]


def test_layout_without_session_token_keeps_positions(data):
    config, train, _, _ = data
    model = build(config, False, 3, 0, dataset=train._dataset)
    items, length, times, sessions = layout_inputs()
    tokens, segments, _, last = model._layout(items, length, times, sessions)
    assert torch.equal(tokens, items)
    assert segments.tolist() == [[1, 1, 2, 2, 2, 3, 0, 0], [3, 3, 0, 0, 0, 0, 0, 0]]
    assert last.tolist() == [5, 1]


def test_masking_skips_session_tokens_and_splits_80_10_10(data):
    config, train, _, _ = data
    model = build(config, True, 0, 0, dataset=train._dataset, mask_ratio=0.5)
    st = model.session_token_id
    torch.manual_seed(0)
    tokens = torch.randint(1, model.n_items, (400, 20))
    tokens[:, ::5] = st
    tokens[:, 17:] = 0
    masked, chosen, labels = model._mask(tokens)
    assert not chosen[tokens == st].any() and not chosen[tokens == 0].any()
    assert torch.equal(masked[tokens == st], tokens[tokens == st])
    assert torch.equal(labels, tokens[chosen])
    is_item = (tokens > 0) & (tokens != st)
    assert abs(chosen.sum().item() / is_item.sum().item() - 0.5) < 0.02
    to_mask = (masked[chosen] == model.mask_token).float().mean().item()
    unchanged = (masked[chosen] == tokens[chosen]).float().mean().item()
    assert abs(to_mask - 0.8) < 0.02 and abs(unchanged - 0.1) < 0.02
    assert not chosen[~is_item].any()


def test_temporal_encoding_resolves_one_second():
    te = TemporalEncoding(16, (0, 9))
    assert torch.allclose(te.weight, torch.from_numpy(10.0 ** -np.linspace(0, 9, 16)).float())
    assert torch.equal(te.bias, torch.zeros(16))
    times = torch.tensor([3e7, 3e7 + 1], dtype=torch.float64)
    out = te(times)
    assert not torch.allclose(out[0], out[1], atol=1e-3)
    # exact value on a tiny input: cos(w t + b)
    with torch.no_grad():
        te.bias.fill_(0.5)
    expected = torch.cos(torch.tensor(2.0, dtype=torch.float64) * te.weight.double() + 0.5).float()
    torch.testing.assert_close(te(torch.tensor([2.0], dtype=torch.float64))[0], expected)
    # the float32 trap: the same times rounded to float32 (RecBole's storage) collide
    assert torch.tensor([3e7], dtype=torch.float32) == torch.tensor([3e7 + 1], dtype=torch.float32)


def test_temporal_attention_is_concatenation_per_head():
    torch.manual_seed(0)
    d, h, dt, length = 8, 2, 3, 5
    att = TemporalMultiHeadAttention(h, d, 0.0, 0.0, 1e-12, dt).eval()
    x, t = torch.randn(2, length, d), torch.randn(2, length, dt)
    valid = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    mask = torch.where(valid[:, None, None, :], 0.0, -10000.0)
    out = att(x, mask, t)
    # by hand: [Q_h T'] [K_h T']^T / sqrt(d/h + dT), V without T'
    tp = att.temporal_proj(t)
    q, k, v = (layer(x).view(2, length, h, d // h).transpose(1, 2) for layer in (att.query, att.key, att.value))
    tp_h = tp.unsqueeze(1).expand(-1, h, -1, -1)
    qc, kc = torch.cat([q, tp_h], -1), torch.cat([k, tp_h], -1)
    scores = qc @ kc.transpose(-1, -2) / math.sqrt(d / h + dt) + mask
    ctx = (scores.softmax(-1) @ v).transpose(1, 2).reshape(2, length, d)
    torch.testing.assert_close(out, att.LayerNorm(att.dense(ctx) + x))
    # a padded key's time does not matter
    t2 = t.clone()
    t2[0, 4] = 100.0
    torch.testing.assert_close(att(x, mask, t2)[0, :4], out[0, :4])


def request_pair(interaction, new_session: bool, later: float = 0.0):
    """The batch with the target moved into the last history session (or a new one), at the
    last history time + 1 s (+ ``later``)."""
    length = interaction["item_length"]
    last = (length - 1).unsqueeze(1)
    last_session = interaction["session_id_list"].gather(1, last).squeeze(1)
    last_time = interaction["timestamp_list"].gather(1, last).squeeze(1)
    changed = dict(interaction.interaction)
    changed["session_id"] = last_session + (1 if new_session else 0)
    changed["timestamp"] = last_time + 1 + later
    return Interaction(changed)


@pytest.mark.parametrize("side", ["right", "left"])
def test_inference_knows_the_request(data, side):
    config, train, _, test = data
    interaction = next(iter(test))[0][:16]
    same, new = request_pair(interaction, False), request_pair(interaction, True)
    later = request_pair(interaction, False, later=3600.0)
    with torch.no_grad():
        for st, m, dt in SWITCHES:
            model = build(config, st, m, dt, dataset=train._dataset, padding_side=side)
            a, b = model.full_sort_predict(same), model.full_sort_predict(new)
            c = model.full_sort_predict(later)
            if st or m:  # the new session shows through a session token and/or a segment
                assert (a - b).abs().amax(1).min() > 1e-6
            else:
                torch.testing.assert_close(a, b)
            if dt:  # the request's own time reaches the MASK token
                assert (a - c).abs().amax(1).min() > 1e-6
            else:
                torch.testing.assert_close(a, c)
            # predict agrees with full_sort_predict on the target items
            scores = model.predict(new)
            torch.testing.assert_close(scores, b.gather(1, new["item_id"].unsqueeze(1)).squeeze(1))
        tokens, _, _, at = model._layout(*model._history(new), *model._target(
            new, torch.full_like(new["item_length"], model.mask_token)))
        last = tokens.gather(1, at.unsqueeze(1)).squeeze(1)
        before = tokens.gather(1, (at - 1).unsqueeze(1)).squeeze(1)
        assert (last == model.mask_token).all() and (before == model.session_token_id).all()
        if side == "left":
            assert (at == config["MAX_ITEM_LIST_LENGTH"] - 1).all()


def roll_right(rows: torch.Tensor, counts: torch.Tensor, width: int) -> torch.Tensor:
    """Each right-padded row moved right so that its ``counts`` tokens end at column ``width - 1``."""
    return torch.stack([torch.roll(row, width - int(n)) for row, n in zip(rows, counts)])


def test_left_padding_ends_every_row_at_the_last_column(data):
    """Left padding is the right layout moved to the end of the row: same tokens, segments and
    times, the newest token (the MASK at inference) always at L - 1."""
    config, train, _, _ = data
    right = build(config, True, 2, DT, dataset=train._dataset, padding_side="right")
    left = build(config, True, 2, DT, dataset=train._dataset, padding_side="left")
    items, length, times, sessions = layout_inputs()
    request = (torch.full_like(length, right.mask_token),
               torch.tensor([4e5 + 1, 7e5], dtype=torch.float64), torch.tensor([4, 9]))
    for extra in ((), request):
        r_tokens, r_segments, r_times, r_last = right._layout(items, length, times, sessions, *extra)
        l_tokens, l_segments, l_times, l_last = left._layout(items, length, times, sessions, *extra)
        counts = r_last + 1
        assert l_last.tolist() == [7, 7]
        assert torch.equal(l_tokens, roll_right(r_tokens, counts, 8))
        assert torch.equal(l_segments, roll_right(r_segments, counts, 8))
        assert torch.equal(l_times, roll_right(r_times, counts, 8))
    assert l_tokens[:, -1].tolist() == [left.mask_token] * 2
    # user 1 (2 items, one session, the request opens a second): pad, ST, 21, 22, ST, MASK
    assert l_tokens[1].tolist() == [0, 0, 0, left.session_token_id, 21, 22, left.session_token_id, left.mask_token]


def test_padding_sides_differ_only_in_positions(data):
    """With the position embeddings zeroed, left and right padding give the same scores (the
    padding is masked out of attention either way); with them, the scores differ."""
    config, train, _, test = data
    interaction = next(iter(test))[0][:16]
    # keep the newest 8 history events of each row, so that both layouts have padding
    length = interaction["item_length"]
    cols = (length.unsqueeze(1) - 8 + torch.arange(8)).clamp(min=0)
    short = {k: v for k, v in interaction.interaction.items()}
    for key in ("item_id_list", "timestamp_list", "session_id_list"):
        short[key] = torch.cat([short[key].gather(1, cols), torch.zeros_like(short[key][:, 8:])], 1)
    short["item_length"] = torch.full_like(length, 8)
    interaction = Interaction(short)
    right = build(config, True, M, DT, dataset=train._dataset, padding_side="right")
    left = build(config, True, M, DT, dataset=train._dataset, padding_side="left")
    left.load_state_dict(right.state_dict())
    with torch.no_grad():
        assert (left.full_sort_predict(interaction) - right.full_sort_predict(interaction)).abs().max() > 1e-4
        for model in (left, right):
            model.position_embedding.weight.zero_()
        torch.testing.assert_close(left.full_sort_predict(interaction), right.full_sort_predict(interaction),
                                   rtol=1e-4, atol=1e-4)


def temporal_term_spread(model, times: torch.Tensor) -> float:
    """Std of the first layer's temporal attention term T' T'^T at initialisation."""
    proj = model.trm_encoder.layer[0].multi_head_attention.temporal_proj(model.temporal_encoding(times))
    return (proj @ proj.transpose(1, 2)).std().item()


def test_temporal_projection_init_option(data):
    config, train, _, _ = data
    dt = 16
    default = build(config, False, 0, dt, dataset=train._dataset, temporal_proj_init="default")
    normal = build(config, False, 0, dt, dataset=train._dataset, temporal_proj_init="normal")
    w_default = default.trm_encoder.layer[0].multi_head_attention.temporal_proj
    w_normal = normal.trm_encoder.layer[0].multi_head_attention.temporal_proj
    # PyTorch's Linear default: U(-1/sqrt(dT), 1/sqrt(dT)), std 1/sqrt(3 dT) = 0.144; Q/K's: N(0, 0.02)
    assert w_default.weight.abs().max() <= 1 / math.sqrt(dt)
    assert w_default.weight.std().item() == pytest.approx(1 / math.sqrt(3 * dt), rel=0.2)
    assert w_default.bias.abs().sum() > 0
    assert w_normal.weight.std().item() == pytest.approx(config["initializer_range"], rel=0.2)
    assert torch.equal(w_normal.bias, torch.zeros(dt))
    times = torch.linspace(0, 3e6, 20, dtype=torch.float64).view(1, 20)
    with torch.no_grad():
        assert temporal_term_spread(default, times) > 20 * temporal_term_spread(normal, times)
    with pytest.raises(ValueError, match="temporal_proj_init"):
        build(config, False, 0, dt, dataset=train._dataset, temporal_proj_init="xavier")
    with pytest.raises(ValueError, match="padding_side"):
        build(config, dataset=train._dataset, padding_side="middle")


@pytest.mark.parametrize("side", ["right", "left"])
def test_gradients_reach_every_session_parameter(data, side):
    """One per-user training step: the session token's row, the segment rows of the sessions in
    the batch, TE's w and b and every layer's W_T get non-zero gradients."""
    config, train, _, _ = data
    model = build(config, True, M, DT, dataset=train._dataset, padding_side=side,
                  train_regime="per_user").train()
    torch.manual_seed(0)
    model.calculate_loss(next(iter(train))).backward()
    assert model.item_embedding.weight.grad[model.session_token_id].abs().sum() > 0
    assert (model.segment_embedding.weight.grad[1:].abs().sum(1) > 0).all()
    assert model.segment_embedding.weight.grad[0].abs().sum() == 0  # padding
    assert model.temporal_encoding.weight.grad.abs().min() > 0
    assert model.temporal_encoding.bias.grad.abs().min() > 0
    for layer in model.trm_encoder.layer:
        assert layer.multi_head_attention.temporal_proj.weight.grad.abs().sum() > 0


def test_loss_is_ce_over_masked_positions(data):
    config, train, _, _ = data
    model = build(config, True, M, DT, dataset=train._dataset).train()
    batch = next(iter(train))
    torch.manual_seed(1)
    loss = model.calculate_loss(batch)
    loss.backward()
    assert torch.isfinite(loss) and loss.item() > math.log(model.n_items) * 0.5
    assert model.item_embedding.weight.grad[model.session_token_id].abs().sum() > 0
    assert model.temporal_encoding.weight.grad.abs().sum() > 0
    # by hand, with the same random draws
    torch.manual_seed(1)
    items, length, times, sessions = model._history(batch)
    tokens, segments, times, _ = model._layout(items, length, times, sessions)
    masked, chosen, labels = model._mask(tokens)
    model.eval()
    torch.manual_seed(1)
    with torch.no_grad():
        hidden = model.forward(masked, segments, times)[chosen]
        logits = hidden @ model.item_embedding.weight[: model.n_items].t() + model.output_bias
        torch.testing.assert_close(model.calculate_loss(batch),
                                   torch.nn.functional.cross_entropy(logits, labels))


def test_ft_ratio_masks_only_each_rows_target(data):
    """``ft_ratio`` (RecBole BERT4Rec's key): a fine-tuning batch appends each row's target and
    masks only it, as RecBole's BERT4Rec does, so the loss is the CE of predicting the targets;
    with ft_ratio 0 (the default, the reference's) no batch is one."""
    config, train, _, _ = data
    model = build(config, True, M, DT, dataset=train._dataset, ft_ratio=1.0)
    batch = next(iter(train))
    items, length, times, sessions = model._history(batch)
    new = model._target(batch, batch[model.ITEM_ID])
    tokens, segments, times, last = model._layout(items, length, times, sessions, *new)
    masked, chosen, labels = model._mask_newest(tokens, last)
    assert chosen.sum(1).tolist() == [1] * len(length)
    assert torch.equal(labels, batch[model.ITEM_ID])
    assert torch.equal(masked[~chosen], tokens[~chosen]) and (masked[chosen] == model.mask_token).all()
    with torch.no_grad():
        hidden = model.forward(masked, segments, times)[chosen]
        logits = hidden @ model.item_embedding.weight[: model.n_items].t() + model.output_bias
        torch.testing.assert_close(model.calculate_loss(batch), torch.nn.functional.cross_entropy(logits, labels))
    assert build(config, True, M, DT, dataset=train._dataset).ft_ratio == 0.0


@pytest.mark.parametrize("st,m,dt", SWITCHES)
def test_all_combinations_train_through_recbole(fast_config, st, m, dt):
    """One epoch (per-user regime, one row per user) and full-ranking evaluation through
    RecBole's own Trainer."""
    result = run_recbole_session("SessionBERT4Rec", "ml-100k", config_dict={
        **fast_config, **TINY, "session_token": st, "max_session_segments": m,
        "temporal_dim": dt, "train_regime": "per_user"}, saved=False)
    assert 0.0 <= result["test_result"]["ndcg@10"] <= 1.0
    assert result["n_params"] > 0


def test_per_user_regime_keeps_newest_row_per_user(atomic_root, workdir):
    config = make_config("SessionBERT4Rec", "ml-100k", config_dict={
        "data_path": str(atomic_root), "MAX_ITEM_LIST_LENGTH": 20, "train_regime": "per_user",
        "state": "WARNING"})
    train = create_dataset(config).build()[0]
    users = train.inter_feat["user_id"].numpy()
    assert len(np.unique(users)) == len(users) == train.user_num - 1
    # the newest training row of a user is the third last of their rows
    full = create_dataset(config)
    full._change_feat_format()
    frame = full.inter_feat
    for row in range(0, len(users), 37):
        user = users[row]
        rows = (frame["user_id"] == user).nonzero().squeeze(1)
        times = frame["timestamp"][rows]
        assert train.inter_feat["timestamp"][row] == torch.sort(times).values[-3]


def test_window_regime_tiles_every_training_sequence(atomic_root, workdir):
    """``window`` rows (history + target, cut to L as the model does) cover every training
    interaction of every user exactly once (but a user's very first one when the number of
    training targets is a multiple of L); ``batches_per_epoch`` gives 10 batches."""
    def rows(regime):
        config = make_config("SessionBERT4Rec", "ml-100k", config_dict={
            "data_path": str(atomic_root), "MAX_ITEM_LIST_LENGTH": 20, "train_regime": regime,
            "state": "WARNING"})
        return config, create_dataset(config).build()[0].inter_feat

    config, window = rows("window")
    assert config["train_batch_size"] == math.ceil(len(window) / 10)
    _, prefix = rows("prefix")
    covered: dict[int, list[int]] = {}
    for i, user in enumerate(window["user_id"].tolist()):
        n = int(window["item_length"][i])
        covered.setdefault(user, []).extend((window["item_id_list"][i, :n].tolist() + [int(window["item_id"][i])])[-20:])
    training: dict[int, list[int]] = {}
    for i, user in enumerate(prefix["user_id"].tolist()):
        if user not in training:  # the user's first row: its one history item, the oldest
            training[user] = [int(prefix["item_id_list"][i, 0])]
        training[user].append(int(prefix["item_id"][i]))
    assert covered.keys() == training.keys()
    for user, items in covered.items():
        if (len(training[user]) - 1) % 20:
            assert sorted(items) == sorted(training[user])
        else:  # the oldest window is full: only the user's very first item is left out
            assert sorted(items) == sorted(training[user][1:])


def test_prefix_regime_trains_and_checkpoint_reloads(fast_config):
    from recbole.quick_start import load_data_and_model

    fast_config = {**fast_config, **TINY, "train_regime": "prefix", "train_batch_size": 1024}
    result = run_recbole_session("SessionBERT4Rec", "ml-100k", config_dict=fast_config)
    config, model, _, _, _, test_data = load_data_and_model(result["model_file"])
    assert type(model) is SessionBERT4Rec and model.use_session_token and model.temporal_dim
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    again = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
    assert again["ndcg@10"] == pytest.approx(result["test_result"]["ndcg@10"], abs=1e-4)


def test_model_code_never_leaves_the_device():
    """RecBole's GPU path: nothing in the model file moves tensors to the host."""
    import inspect

    from recbole_session.model.sequential_recommender import sessionbert4rec

    source = inspect.getsource(sessionbert4rec.SessionBERT4Rec)
    source += inspect.getsource(sessionbert4rec.TemporalMultiHeadAttention)
    source += inspect.getsource(sessionbert4rec.TemporalEncoding.forward)
    for call in (".cpu()", ".numpy()", ".tolist()", ".item()", "np."):
        assert call not in source, call
