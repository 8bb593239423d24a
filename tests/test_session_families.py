"""SessionSASRec and SessionGRU4Rec (issue 26): equivalence with RecBole's SASRec / GRU4Rec when
every switch is off, parameters per switch, the next-item input of the reference (labels of
``datasets/nwp.py``), causal and padding masks, gradients, predictions that follow the session
signal only, and runs through RecBole's Trainer, the checkpoint, ``evaluate``, ``recommend`` and
``tune``'s spaces."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from recbole.data import data_preparation
from recbole.data.interaction import Interaction, cat_interactions
from recbole.model.sequential_recommender.gru4rec import GRU4Rec
from recbole.model.sequential_recommender.sasrec import SASRec
from recbole.utils import init_seed

from recbole_session import lookup
from recbole_session.data.dataset import (
    SessionGRU4RecDataset,
    SessionSASRecDataset,
    SessionTimeDataset,
)
from recbole_session.model.sequential_recommender.sessiongru4rec import SessionGRU4Rec
from recbole_session.model.sequential_recommender.sessionsasrec import SessionSASRec
from recbole_session.quick_start import make_config, run_recbole_session
from recbole_session.tune.space import default_space_file, load_space
from recbole_session.utils import create_dataset

REPO = Path(__file__).resolve().parent.parent
M, DT = 3, 4
SWITCHES = list(itertools.product([False, True], [0, M], [0, DT]))
SIZES = {
    "SessionSASRec": {"hidden_size": 16, "n_layers": 2, "n_heads": 2, "inner_size": 32},
    "SessionGRU4Rec": {"embedding_size": 16, "hidden_size": 24},
}
BASES = {"SessionSASRec": SASRec, "SessionGRU4Rec": GRU4Rec}
CLASSES = {"SessionSASRec": SessionSASRec, "SessionGRU4Rec": SessionGRU4Rec}

pytestmark = pytest.mark.usefixtures("one_thread")


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.fixture(scope="module", params=list(SIZES))
def data(request, atomic_root, tmp_path_factory):
    """One config and the ml-100k dataloaders of each family."""
    name = request.param
    config = make_config(name, "ml-100k", config_dict={
        "data_path": str(atomic_root), "checkpoint_dir": str(tmp_path_factory.mktemp("fam") / "saved"),
        "MAX_ITEM_LIST_LENGTH": 20, "eval_batch_size": 64, "train_batch_size": 64,
        "state": "WARNING", "show_progress": False, "use_gpu": False, **SIZES[name]})
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    return name, config, train, valid, test


def build(config, name, session_token=False, segments=0, temporal=0, dataset=None, **extra):
    """The family's model with these switches (right padding unless ``extra`` says otherwise)."""
    extra.setdefault("padding_side", "right")
    keys = ("session_token", "max_session_segments", "temporal_dim", *extra)
    saved = {k: config[k] for k in keys}
    config["session_token"], config["max_session_segments"], config["temporal_dim"] = session_token, segments, temporal
    for key, value in extra.items():
        config[key] = value
    try:
        init_seed(config["seed"], config["reproducibility"])
        return CLASSES[name](config, dataset).eval()
    finally:
        for key, value in saved.items():
            config[key] = value


def every_test_row(test) -> Interaction:
    return cat_interactions([batch[0] for batch in test])


# ------------------------------------------------------------------------------ equivalence
def test_switches_off_is_recboles_model(data):
    """Same seed: the same state dict (names, shapes, values) and the same scores and loss."""
    name, config, train, _, test = data
    init_seed(config["seed"], config["reproducibility"])
    theirs = BASES[name](config, train._dataset).eval()
    ours = build(config, name, dataset=train._dataset)
    mine, ref = ours.state_dict(), theirs.state_dict()
    assert list(mine) == list(ref)
    for key in ref:
        assert torch.equal(mine[key], ref[key]), key
    interaction = every_test_row(test)
    length = interaction["item_length"]
    assert (length == config["MAX_ITEM_LIST_LENGTH"]).any() and (length < config["MAX_ITEM_LIST_LENGTH"]).any()
    with torch.no_grad():
        torch.testing.assert_close(ours.full_sort_predict(interaction), theirs.full_sort_predict(interaction))
        torch.testing.assert_close(ours.predict(interaction), theirs.predict(interaction))
        torch.testing.assert_close(ours.calculate_loss(interaction), theirs.calculate_loss(interaction))


@pytest.mark.parametrize("st,m,dt", SWITCHES)
def test_parameters_added_by_each_switch(data, st, m, dt):
    name, config, train, _, _ = data
    base = n_params(BASES[name](config, train._dataset))
    model = build(config, name, st, m, dt, dataset=train._dataset)
    sizes = SIZES[name]
    if name == "SessionSASRec":
        d = sizes["hidden_size"]
        temporal = 2 * dt + sizes["n_layers"] * (dt * dt + dt)
    else:  # add: Linear(dT, E) on TE
        d = sizes["embedding_size"]
        temporal = 2 * dt + dt * d + d
    expected = (d if st else 0) + ((m + 1) * d if m else 0) + (temporal if dt else 0)
    assert n_params(model) - base == expected


def test_gru_concat_join_grows_the_input_weights(data):
    name, config, train, _, _ = data
    if name != "SessionGRU4Rec":
        pytest.skip("GRU4Rec's join")
    base = n_params(GRU4Rec(config, train._dataset))
    model = build(config, name, False, 0, DT, dataset=train._dataset, temporal_join="concat")
    assert n_params(model) - base == 2 * DT + 3 * SIZES[name]["hidden_size"] * DT
    assert model.gru_layers.input_size == SIZES[name]["embedding_size"] + DT
    with pytest.raises(ValueError, match="temporal_join"):
        build(config, name, False, 0, DT, dataset=train._dataset, temporal_join="gate")
    with pytest.raises(ValueError, match="padding_side"):
        build(config, name, dataset=train._dataset, padding_side="left")


# ------------------------------------------------------------------------------ the input
def nwp_tokens(items: list[int], sessions: list[int], st: int) -> tuple[list[int], list[int]]:
    """The reference's next-item training row (``datasets/nwp.py``, one user, ST on, no cut):
    a session token before every session labelled with the session's first item, every item
    labelled with the next, the item before a session token unlabelled (0)."""
    tokens, labels, previous = [], [], None
    for i in range(len(items) - 1):
        if sessions[i] != previous:
            previous = sessions[i]
            if labels:
                labels[-1] = 0
            tokens.append(st)
            labels.append(items[i])
        tokens.append(items[i])
        labels.append(items[i + 1])
    return tokens, labels


def prefix_rows(items: list[int], sessions: list[int], times: list[float], max_len: int) -> Interaction:
    """RecBole's training rows of one user: every prefix (history of 1..n-1 events) and its target."""
    n = len(items)
    rows = range(1, n)
    pad = [0] * max_len
    return Interaction({
        "item_id_list": torch.tensor([(items[:k] + pad)[:max_len] for k in rows]),
        "session_id_list": torch.tensor([(sessions[:k] + pad)[:max_len] for k in rows]),
        "timestamp_list": torch.tensor([(times[:k] + pad)[:max_len] for k in rows], dtype=torch.float64),
        "item_length": torch.tensor(list(rows)),
        "item_id": torch.tensor(items[1:]), "session_id": torch.tensor(sessions[1:]),
        "timestamp": torch.tensor(times[1:], dtype=torch.float64),
    })


ONE_USER = ([11, 12, 13, 14, 15, 16, 17], [1, 1, 2, 2, 2, 3, 3],
            [0.0, 10.0, 2e5, 2e5 + 5, 2e5 + 9, 4e5, 4e5 + 60])


def test_prefix_rows_carry_the_reference_labels(data):
    """Each of RecBole's prefix rows is the reference's row cut at the position that predicts its
    target: a row whose target opens a session ends with that session's token (the token's label
    is the session's first item), and no row predicts the first item of a session from the item
    before it (the reference ignores that label)."""
    name, config, train, _, _ = data
    model = build(config, name, True, 2, DT, dataset=train._dataset)
    st = model.session_token_id
    items, sessions, times = ONE_USER
    tokens, labels = nwp_tokens(items, sessions, st)
    rows = prefix_rows(items, sessions, times, 20)
    got, last, segments, out_times = model._input(rows)
    # every labelled position of the reference is one row: its input is the reference's prefix
    # (but the first, the first session's token: RecBole has no row without history)
    labelled = [p for p, label in enumerate(labels) if label][1:]
    assert len(labelled) == len(rows)
    for row, p in enumerate(labelled):
        assert got[row, : last[row] + 1].tolist() == tokens[: p + 1]
        assert labels[p] == rows["item_id"][row].item()
    # a new session's token carries the target's time; segments: newest m = 2, older clamped
    assert out_times[1, last[1]].item() == 2e5 and segments[1, : last[1] + 1].tolist() == [1, 1, 1, 2]
    assert segments[4, : last[4] + 1].tolist() == [1, 1, 1, 1, 1, 1, 1, 2]


def test_without_session_token_the_request_adds_nothing(data):
    """ST off: the input is the history as RecBole gives it; SSE's newest segment is the
    history's last session (the reference's evaluation input without ST)."""
    name, config, train, _, _ = data
    model = build(config, name, False, 2, DT, dataset=train._dataset)
    rows = prefix_rows(*ONE_USER, 20)
    tokens, last, segments, _ = model._input(rows)
    assert torch.equal(tokens, rows["item_id_list"]) and torch.equal(last, rows["item_length"] - 1)
    assert segments[5, :6].tolist() == [1, 1, 1, 1, 1, 2]


def test_sasrec_left_padding_and_causal_mask(data):
    """Left padding puts the last token at L - 1; under the causal mask a position's output does
    not change with later tokens or their times, nor with the padding's times."""
    name, config, train, _, _ = data
    if name != "SessionSASRec":
        pytest.skip("SASRec's attention")
    model = build(config, name, True, M, DT, dataset=train._dataset, padding_side="left")
    rows = prefix_rows(*ONE_USER, 20)
    tokens, last, segments, times = model._input(rows)
    assert (last == 19).all() and (tokens[:, -1] > 0).all() and tokens[0, 0] == 0
    with torch.no_grad():
        out = model._encode(tokens, segments, times, bidirectional=False)
        later = tokens.clone()
        later[:, -1] = 5  # the last token of every row replaced
        later_times = times.clone()
        later_times[:, -1] += 1e6
        changed = model._encode(later, segments, later_times, bidirectional=False)
        valid = (tokens > 0)[:, :-1]  # a padded query sees only masked keys: its output is no output
        torch.testing.assert_close(changed[:, :-1][valid], out[:, :-1][valid])
        assert (changed[:, -1] - out[:, -1]).abs().amax() > 1e-4
        padded_times = times.clone()
        padded_times[tokens == 0] = 123456.0
        torch.testing.assert_close(model._encode(tokens, segments, padded_times, bidirectional=False)[:, -1],
                                   out[:, -1])


# ------------------------------------------------------------------------------ training signal
@pytest.mark.parametrize("st,m,dt", [(True, M, DT), (True, 0, 0), (False, M, 0), (False, 0, DT)])
def test_gradients_reach_every_switch(data, st, m, dt):
    name, config, train, _, _ = data
    model = build(config, name, st, m, dt, dataset=train._dataset).train()
    torch.manual_seed(0)
    model.calculate_loss(next(iter(train))).backward()
    if st:
        assert model.item_embedding.weight.grad[model.session_token_id].abs().sum() > 0
    if m:
        assert (model.segment_embedding.weight.grad[1:].abs().sum(1) > 0).all()
        assert model.segment_embedding.weight.grad[0].abs().sum() == 0  # padding
    if dt:
        assert model.temporal_encoding.weight.grad.abs().min() > 0
        assert model.temporal_encoding.bias.grad.abs().min() > 0
        projections = ([layer.multi_head_attention.temporal_proj for layer in model.trm_encoder.layer]
                       if name == "SessionSASRec" else [model.temporal_proj])
        for proj in projections:
            assert proj.weight.grad.abs().sum() > 0


def moved(interaction: Interaction, **changes) -> Interaction:
    return Interaction({**interaction.interaction, **changes})


@pytest.mark.parametrize("st,m,dt", SWITCHES)
def test_predictions_follow_only_the_session_signal(data, st, m, dt):
    """Changing only the request's session (ST), the history's session ids (SSE) or the
    history's times (TAS) changes the scores exactly when that switch is on."""
    name, config, train, _, test = data
    interaction = every_test_row(test)
    interaction = interaction[interaction["item_length"] >= 5][:32]  # sessions to split below
    length = interaction["item_length"]
    last = (length - 1).unsqueeze(1)
    last_session = interaction["session_id_list"].gather(1, last).squeeze(1)
    last_time = interaction["timestamp_list"].gather(1, last).squeeze(1)
    same = moved(interaction, session_id=last_session, timestamp=last_time + 1)
    new = moved(same, session_id=last_session + 1)
    # one session for the whole history (same times: no gap decides either way)
    valid = interaction["session_id_list"] > 0
    merged = moved(same, session_id_list=torch.where(valid, 1, 0), session_id=torch.ones_like(last_session),
                   timestamp_list=torch.where(valid, last_time.unsqueeze(1), 0.0).to(torch.float64),
                   timestamp=last_time.to(torch.float64))
    merged_split = moved(merged, session_id_list=torch.where(valid, 1 + (torch.arange(20) >= 3).long() * valid, 0))
    shifted = moved(same, timestamp_list=interaction["timestamp_list"] - 3600.0 * valid)
    model = build(config, name, st, m, dt, dataset=train._dataset)
    with torch.no_grad():
        base = model.full_sort_predict(same)
        pairs = {"st": (base, model.full_sort_predict(new)),
                 "sse": (model.full_sort_predict(merged), model.full_sort_predict(merged_split)),
                 "tas": (base, model.full_sort_predict(shifted))}
    for switch, on in (("st", st), ("sse", bool(m) or st), ("tas", bool(dt))):
        a, b = pairs[switch]
        if on:
            assert (a - b).abs().amax(1).min() > 1e-6, switch
        else:
            torch.testing.assert_close(a, b, msg=switch)


# ------------------------------------------------------------------------------ the package
@pytest.mark.parametrize("name", list(SIZES))
def test_found_by_the_lookup_with_float64_times(name):
    assert lookup.get_model(name) is CLASSES[name]
    assert lookup.dataset_class(name, None) is {"SessionSASRec": SessionSASRecDataset,
                                                "SessionGRU4Rec": SessionGRU4RecDataset}[name]
    assert issubclass(lookup.dataset_class(name, None), SessionTimeDataset)
    assert lookup.get_trainer(CLASSES[name].type, name).__name__ == "Trainer"  # RecBole's, as the bases'
    assert lookup.unmatched_classes() == []


@pytest.mark.parametrize("name", list(SIZES))
def test_tune_space_keys_are_the_models_keys(name):
    known = set(yaml.safe_load((REPO / "properties" / "model" / f"{name}.yaml").read_text()))
    space = load_space(default_space_file(name))
    assert set(space.params) <= known and {"max_session_segments", "temporal_dim"} <= set(space.params)
    assert space.to_ray()


@pytest.mark.parametrize("name", list(SIZES))
def test_trains_through_recbole_and_the_checkpoint_reloads(name, fast_config):
    """One epoch through RecBole's Trainer, full-ranking test; the checkpoint reloads into the
    same model and scores, and ``recommend`` hears a new session in a request."""
    from recbole.quick_start import load_data_and_model
    from recbole.utils import get_trainer

    from recbole_session.recommend import Recommender

    result = run_recbole_session(name, "ml-100k", config_dict={
        **fast_config, **SIZES[name], "train_batch_size": 1024, "eval_protocols": []})
    assert 0.0 <= result["test_result"]["ndcg@10"] <= 1.0
    config, model, _, _, _, test_data = load_data_and_model(result["model_file"])
    assert type(model) is CLASSES[name] and model.use_session_token and model.temporal_dim
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    again = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
    assert again["ndcg@10"] == pytest.approx(result["test_result"]["ndcg@10"], abs=1e-4)

    rec = Recommender.from_checkpoint(result["model_file"], data_path=fast_config["data_path"])
    n = rec.n_items - 1
    near, far = (rec.recommend_many([("2", at)], k=n) for at in ("+60", "+864000"))
    assert not near["new_session"].any() and far["new_session"].all()
    assert near["item"].tolist() != far["item"].tolist()
    # the far request's input ends with a session token
    user = rec.user_ids["2"]
    batch = rec.batch(rec.history, torch.tensor([user]).numpy(), rec.history.last_time[[user]] + 864000,
                      torch.tensor([True]).numpy())
    tokens, last, _, _ = rec.model._input(batch.to(rec.device))
    assert tokens[0, last[0]] == rec.model.session_token_id

    evaluate = subprocess.run([sys.executable, "-m", "recbole_session.evaluate", result["model_file"],
                               "--protocols", "full", "--split", "test"], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    assert evaluate.returncode == 0, evaluate.stderr[-2000:]


@pytest.mark.parametrize("name, key, value, expected", [
    ("SessionSASRec", "temporal_dim", -1, "an integer >= 0"),
    ("SessionSASRec", "max_session_segments", -2, "an integer >= 0"),
    ("SessionSASRec", "padding_side", "middle", "one of left, right"),
    ("SessionGRU4Rec", "temporal_join", "gate", "one of add, concat"),
    ("SessionBERT4Rec", "temporal_proj_init", "xavier", "one of default, normal"),
])
def test_bad_session_values_are_refused_before_the_run(name, key, value, expected, atomic_root):
    from recbole_session.cli import UsageError

    with pytest.raises(UsageError, match=f"bad value --{key}=.*{key} expects {expected}"):
        make_config(name, "ml-100k", config_dict={"data_path": str(atomic_root), key: value})


@pytest.mark.parametrize("name, base", [("SessionSASRec", "SASRec"), ("SessionGRU4Rec", "GRU4Rec")])
def test_yaml_sizes_are_recboles_defaults_of_the_base(name, base):
    """Every key the model's yaml shares with RecBole's yaml of the base model has RecBole's value,
    so that the switches-off row is RecBole's model as RecBole configures it."""
    import recbole

    ours = yaml.safe_load((REPO / "properties" / "model" / f"{name}.yaml").read_text())
    theirs = yaml.safe_load((Path(recbole.__file__).parent / "properties" / "model" / f"{base}.yaml").read_text())
    assert set(theirs) <= set(ours)
    assert {key: ours[key] for key in theirs} == theirs


def test_code_sources_of_each_model_hold_the_shared_input_and_not_the_other_models():
    """A run's code key (reproduce's cache) follows the shared session input and the model's own
    file; editing another family's file does not retrain it."""
    from recbole_session.reproduce.runner import code_sources

    files = {name: {p.as_posix().split("recbole_session/", 1)[-1] for p in code_sources(name)
                    if "recbole_session/" in p.as_posix()} for name in ("SessionSASRec", "SessionGRU4Rec", "SessionBERT4Rec")}
    own = {"SessionSASRec": "sessionsasrec.py", "SessionGRU4Rec": "sessiongru4rec.py", "SessionBERT4Rec": "sessionbert4rec.py"}
    for name, paths in files.items():
        assert "model/session_input.py" in paths and "data/dataset.py" in paths
        models = {p.rsplit("/", 1)[-1] for p in paths if p.startswith("model/sequential_recommender/")}
        assert models == {own[name], "__init__.py"} or models == {own[name]}, models


def test_bpr_loss_switches_off_is_recboles(data):
    """loss_type BPR: the same loss as RecBole's model on the same sampled negatives; with the
    session token on, the loss still reaches its row."""
    name, config, train, _, test = data
    saved = config["loss_type"]
    config["loss_type"] = "BPR"
    try:
        init_seed(config["seed"], config["reproducibility"])
        theirs = BASES[name](config, train._dataset).eval()
        ours = build(config, name, dataset=train._dataset)
        full = build(config, name, True, M, DT, dataset=train._dataset)
    finally:
        config["loss_type"] = saved
    interaction = every_test_row(test)
    negatives = torch.randint(1, ours.n_items, interaction["item_id"].shape, generator=torch.Generator().manual_seed(0))
    interaction = moved(interaction, **{ours.NEG_ITEM_ID: negatives})
    with torch.no_grad():
        torch.testing.assert_close(ours.calculate_loss(interaction), theirs.calculate_loss(interaction))
    new = moved(interaction, session_id=interaction["session_id"] + 10**6)  # every request opens a session
    full.calculate_loss(new).backward()
    assert full.item_embedding.weight.grad[full.session_token_id].abs().sum() > 0
