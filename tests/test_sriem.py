"""SRIEM: the importance extraction module against hand computations, padding on either side,
its gradients (the default form learns, the literal printed form cannot), importance learned on
sessions where one item is informative, the learning-rate schedules through RecBole's own
Trainer, and end-to-end runs on a tiny DIGINETICA-shaped session-based dataset (SR-GNN
benchmark file contract)."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from bad_input import BadInput, check
from recbole.data.interaction import Interaction
from recbole.quick_start import load_data_and_model
from session_data import (
    CONTRACT_KEYS,
    HEADER,
    SessionShape,
    contract_keys_for,
    write_session_benchmark,
)

from recbole_session.build import build as build_run
from recbole_session.build import make_config
from recbole_session.lookup import create_dataset, get_model, get_trainer
from recbole_session.model.sequential_recommender.sriem import IMPORTANCE_FORMS, SRIEM
from recbole_session.paths import properties_dir
from recbole_session.trainer import SRIEMTrainer
from recbole_session.training import run_recbole_session

DATASET = "diginetica-synth"
TINY = SessionShape(n_sessions=600, n_items=120, n_topics=8)
SMALL_MODEL = {"embedding_size": 16, "attention_size": 8}
DEFAULT_FORM, DEFAULT_SCHEDULE = "paper", "plateau"  # measured: docs/sriem.md


@pytest.fixture(scope="module")
def session_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("session_based")
    write_session_benchmark(root, DATASET, TINY)
    return root


@pytest.fixture
def run_config(session_root, workdir) -> dict:
    return {
        "data_path": str(session_root),
        "checkpoint_dir": str(workdir / "saved"),
        "epochs": 1,
        "eval_batch_size": 512,
        "show_progress": False,
        "state": "WARNING",
        "use_gpu": False,
        "metrics": ["Recall", "MRR"],
        "topk": [10, 20],
        **SMALL_MODEL,
    }




@pytest.fixture(scope="module")
def dataset(session_root):
    config = make_config(
        "SRIEM", DATASET, config_dict={"data_path": str(session_root), "use_gpu": False}
    )
    return config, create_dataset(config)


def build(dataset, **overrides) -> SRIEM:
    config, data = dataset
    saved = {key: config[key] for key in overrides}
    for key, value in {**SMALL_MODEL, **overrides}.items():
        config[key] = value
    try:
        torch.manual_seed(0)
        return SRIEM(config, data)
    finally:
        for key, value in saved.items():
            config[key] = value


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def hand_importance(model: SRIEM, items: list[int], form: str) -> tuple[np.ndarray, np.ndarray]:
    """Eqs. (1)-(5) (or the authors' code) in float64 numpy, for one session without padding."""
    emb = model.item_embedding.weight.detach().double().numpy()[items]
    wq = model.query.weight.detach().double().numpy()
    wk = model.key.weight.detach().double().numpy()
    d, t = emb.shape[1], len(items)
    if form == "authors":
        q, k = emb @ wq.T, emb @ wk.T
        c = sigmoid(q @ k.T / math.sqrt(d))
        divisor = max(t - 1, 1)
    else:
        q, k = sigmoid(emb @ wq.T), sigmoid(emb @ wk.T)
        c = sigmoid(q @ k.T) / math.sqrt(d) if form == "paper_literal" else sigmoid(q @ k.T / math.sqrt(d))
        divisor = t
    alpha = np.array([sum(c[i, j] for j in range(t) if j != i) / divisor for i in range(t)])
    beta = np.exp(alpha) / np.exp(alpha).sum()
    return alpha, beta


def popularity_recall_at_20(root: Path) -> float:
    """Recall@20 on the test rows of always recommending the 20 most frequent training targets."""

    def targets(part: str) -> list[str]:
        lines = (root / DATASET / f"{DATASET}.{part}.inter").read_text().splitlines()[1:]
        return [line.split("\t")[2] for line in lines]

    top = {item for item, _ in Counter(targets("train")).most_common(20)}
    test = targets("test")
    return sum(item in top for item in test) / len(test)


def importance_of(model: SRIEM, item_seq: torch.Tensor):
    with torch.no_grad():
        return model.importance(model.item_embedding(item_seq), item_seq.gt(0))


def test_defaults(dataset):
    config, _ = dataset
    assert config["embedding_size"] == 200 and config["attention_size"] == 100
    assert config["importance"] == DEFAULT_FORM
    assert config["learner"] == "adam" and config["learning_rate"] == pytest.approx(1e-3)
    assert config["lr_schedule"] == DEFAULT_SCHEDULE and config["lr_decay_rate"] == pytest.approx(0.1)
    assert config["lr_decay_epochs"] == 3  # the paper's schedule, as an option
    assert config["lr_decay_steps"] == 8670  # 3 epochs of the paper's YOOCHOOSE 1/64 at batch 128
    assert config["train_batch_size"] == 128 and config["weight_decay"] == pytest.approx(1e-5)
    assert config["MAX_ITEM_LIST_LENGTH"] == 10 and config["loss_type"] == "CE"
    assert config["train_neg_sample_args"]["distribution"] == "none"  # CE: no negative sampling
    assert (properties_dir() / "model" / "SRIEM.yaml").is_file()
    assert get_model("SRIEM") is SRIEM
    assert get_trainer(config["MODEL_TYPE"], "SRIEM") is SRIEMTrainer


def test_parameter_count(dataset):
    _, data = dataset
    model = build(dataset)
    d, l_att, n = SMALL_MODEL["embedding_size"], SMALL_MODEL["attention_size"], data.item_num
    assert sum(p.numel() for p in model.parameters()) == n * d + 2 * d * l_att + 2 * d * d
    assert torch.all(model.item_embedding.weight[0] == 0)


@pytest.mark.parametrize("form", IMPORTANCE_FORMS)
def test_importance_sums_to_one_and_skips_padding(dataset, form):
    model = build(dataset, importance=form)
    item_seq = torch.tensor(
        [[5, 9, 13, 2, 0, 0], [7, 0, 0, 0, 0, 0], [3, 4, 5, 6, 7, 8], [0, 0, 0, 0, 0, 0]]
    )
    mask = item_seq.gt(0)
    alpha, beta = importance_of(model, item_seq)
    assert not torch.isnan(beta).any() and not torch.isnan(alpha).any()
    assert torch.allclose(beta.sum(dim=1)[:3], torch.ones(3))
    assert torch.all(beta[~mask] == 0)
    assert torch.all(beta[mask] > 0)
    assert beta[1, 0].item() == pytest.approx(1.0)  # a session of one item
    assert torch.all(beta[3] == 0)  # an all-padding row stays finite


@pytest.mark.parametrize("form", IMPORTANCE_FORMS)
def test_importance_equals_hand_computation(dataset, form):
    model = build(dataset, importance=form)
    items = [11, 4, 27]
    alpha, beta = importance_of(model, torch.tensor([items + [0, 0]]))
    hand_alpha, hand_beta = hand_importance(model, items, form)
    np.testing.assert_allclose(alpha[0, :3].double().numpy(), hand_alpha, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(beta[0, :3].double().numpy(), hand_beta, rtol=1e-5, atol=1e-7)
    assert np.ptp(hand_beta) > 0  # the items are really weighed differently (l = 8: no saturation)


def test_masked_diagonal_removes_self_affinity(dataset):
    model = build(dataset)
    item_seq = torch.tensor([[11, 4, 27, 0], [6, 0, 0, 0]])
    alpha, beta = importance_of(model, item_seq)

    plain_affinity = model.affinity

    def huge_self_affinity(emb):
        return plain_affinity(emb) + 1e3 * torch.eye(emb.size(1))

    def no_self_affinity(emb):
        return plain_affinity(emb) * (1 - torch.eye(emb.size(1)))

    model.affinity = huge_self_affinity
    boosted_alpha, boosted_beta = importance_of(model, item_seq)
    assert torch.equal(alpha, boosted_alpha) and torch.equal(beta, boosted_beta)
    assert alpha[1, 0].item() == 0.0  # a lone item has no other item to be similar to

    model.affinity = no_self_affinity
    assert torch.equal(importance_of(model, item_seq)[0], alpha)


@pytest.mark.parametrize("form", IMPORTANCE_FORMS)
def test_left_and_right_padding_give_the_same_output(dataset, form):
    model = build(dataset, importance=form).eval()
    sessions = [[5, 9, 13], [7], [3, 4, 5, 6, 7, 8], [21, 21]]
    width = 8
    right = torch.tensor([s + [0] * (width - len(s)) for s in sessions])
    left = torch.tensor([[0] * (width - len(s)) + s for s in sessions])
    lengths = torch.tensor([len(s) for s in sessions])
    with torch.no_grad():
        out_right, out_left = model(right, lengths), model(left, lengths)
        alone = torch.cat([model(torch.tensor([s]), torch.tensor([len(s)])) for s in sessions])
    assert torch.allclose(out_right, out_left, atol=1e-6)
    assert torch.allclose(out_right, alone, atol=1e-6)
    assert SRIEM.last_positions(right.gt(0)).tolist() == [2, 0, 5, 1]
    assert SRIEM.last_positions(left.gt(0)).tolist() == [width - 1] * 4


def test_bad_importance_form_is_rejected(dataset):
    with pytest.raises(ValueError, match="importance"):
        build(dataset, importance="mean")


PAPER_SIZES = {"attention_size": 100}  # the paper's l: Q K^T is about l/4 = 25 at init


def importance_gradients(model: SRIEM) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of W_q and W_k from the real CE loss on one batch of sessions."""
    item_seq = torch.tensor([[5, 9, 13, 2, 0], [7, 3, 0, 0, 0], [3, 4, 5, 6, 7], [11, 40, 2, 0, 0]])
    interaction = Interaction({
        model.ITEM_SEQ: item_seq,
        model.ITEM_SEQ_LEN: item_seq.gt(0).sum(dim=1),
        model.POS_ITEM_ID: torch.tensor([20, 21, 22, 23]),
    })
    model.zero_grad()
    model.calculate_loss(interaction).backward()
    return model.query.weight.grad, model.key.weight.grad


@pytest.mark.parametrize("form", ["paper", "authors"])
def test_learning_forms_get_importance_gradients_at_the_papers_sizes(dataset, form):
    grad_q, grad_k = importance_gradients(build(dataset, importance=form, **PAPER_SIZES))
    assert grad_q.abs().sum() > 0 and grad_k.abs().sum() > 0


def test_literal_form_cannot_learn_at_the_papers_sizes(dataset, caplog):
    """The trap the default avoids: sigmoid(Q K^T) is exactly 1.0 in float32."""
    with caplog.at_level("WARNING"):
        model = build(dataset, importance="paper_literal", **PAPER_SIZES)
    assert any("paper_literal" in r.getMessage() for r in caplog.records)
    grad_q, grad_k = importance_gradients(model)
    assert torch.all(grad_q == 0) and torch.all(grad_k == 0)
    item_seq = torch.tensor([[5, 9, 13, 2, 0]])
    alpha, beta = importance_of(model, item_seq)
    assert torch.all(beta[0, :4] == 0.25)  # exactly the session mean


def signal_batch(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sessions of 5 items: one informative item (1..8) at a random place before the last,
    the others noise (17..59); the target (9..16) is determined by the informative item."""
    item_seq = torch.randint(17, 60, (n, 5), generator=generator)
    place = torch.randint(0, 4, (n,), generator=generator)
    signal = torch.randint(1, 9, (n,), generator=generator)
    item_seq[torch.arange(n), place] = signal
    return item_seq, place, signal + 8


@pytest.mark.parametrize("form", ["paper", "authors"])
def test_trained_importance_picks_the_informative_item(dataset, form, one_thread):
    """A few Adam steps on the real loss: the weights become non-uniform and favour the one
    item that predicts the target (uniform weight: 1/5)."""
    model = build(dataset, importance=form)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    generator = torch.Generator().manual_seed(1)
    for _ in range(100):
        item_seq, _, target = signal_batch(64, generator)
        interaction = Interaction({model.ITEM_SEQ: item_seq, model.ITEM_SEQ_LEN: torch.full((64,), 5),
                                   model.POS_ITEM_ID: target})
        optimizer.zero_grad()
        model.calculate_loss(interaction).backward()
        optimizer.step()
    item_seq, place, _ = signal_batch(500, torch.Generator().manual_seed(2))
    _, beta = importance_of(model, item_seq)
    assert (beta.max(dim=1).values / beta.min(dim=1).values).mean() > 1.1
    assert beta[torch.arange(500), place].mean() > 0.22


def scheduled_trainer(run_config: dict, **overrides):
    built = build_run(make_config("SRIEM", DATASET, config_dict={**run_config, "train_batch_size": 512, **overrides}))
    return built.trainer, built.train_data, built.valid_data


def learning_rates(trainer, train_data, valid_data) -> list[float]:
    """The learning rate at the end of every epoch of RecBole's own ``fit``."""
    seen = []
    trainer.fit(train_data, valid_data, saved=False,
                callback_fn=lambda epoch, score: seen.append(trainer.optimizer.param_groups[0]["lr"]))
    return seen


def test_epoch_schedule_through_recbole_trainer(run_config, one_thread):
    trainer, train_data, valid_data = scheduled_trainer(
        run_config, epochs=3, lr_schedule="epochs", lr_decay_epochs=2)
    assert learning_rates(trainer, train_data, valid_data) == pytest.approx([1e-3, 1e-3, 1e-4])
    assert trainer.learning_rate_at(7) == pytest.approx(1e-6)


def test_step_schedule_counts_optimizer_steps(run_config, one_thread):
    trainer, train_data, valid_data = scheduled_trainer(
        run_config, epochs=2, lr_schedule="steps", lr_decay_steps=3)
    steps = len(train_data)  # optimizer steps per epoch
    assert steps >= 3
    expected = [1e-3 * 0.1 ** ((steps * (epoch + 1) - 1) // 3) for epoch in range(2)]
    assert learning_rates(trainer, train_data, valid_data) == pytest.approx(expected)
    assert trainer.optimizer_steps == 2 * steps


def test_plateau_schedule_follows_the_validation_score(run_config, one_thread):
    # a learning rate too small to move the validation score: every epoch after the first is
    # a plateau, so the rate drops after patience + 1 = 2 of them (then the count restarts)
    trainer, train_data, valid_data = scheduled_trainer(
        run_config, epochs=5, learning_rate=1e-9, lr_schedule="plateau", lr_plateau_patience=1)
    assert learning_rates(trainer, train_data, valid_data) == pytest.approx(
        [1e-9, 1e-9, 1e-10, 1e-10, 1e-11], rel=1e-6)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"lr_schedule": "cosine"}, "lr_schedule must be one of"),
        ({"lr_schedule": "steps", "lr_decay_steps": 0}, "positive integer lr_decay_steps"),
        ({"lr_schedule": "epochs", "lr_decay_rate": 1.5}, "0 < lr_decay_rate < 1"),
    ],
)
def test_bad_schedule_is_rejected(dataset, workdir, overrides, message):
    config, _ = dataset
    model = build(dataset)
    saved = {key: config[key] for key in overrides}
    try:
        for key, value in overrides.items():
            config[key] = value
        with pytest.raises(ValueError, match=message):
            SRIEMTrainer(config, model)
    finally:
        for key, value in saved.items():
            config[key] = value


@pytest.mark.parametrize("form", ["paper", "authors"])
def test_end_to_end_full_ranking(session_root, run_config, form, one_thread):
    result = run_recbole_session(
        "SRIEM",
        DATASET,
        config_dict={**run_config, "epochs": 3, "learning_rate": 0.01, "importance": form},
    )
    test = result["test_result"]
    assert set(test) == {"recall@10", "recall@20", "mrr@10", "mrr@20"}
    assert all(0.0 <= value <= 1.0 for value in test.values())
    assert test["recall@20"] >= test["recall@10"] and test["mrr@20"] >= test["mrr@10"]
    # the sessions have strong item transitions: three epochs beat the 20 most popular items
    assert test["recall@20"] > popularity_recall_at_20(session_root) + 0.1

    if form == "paper":  # RecBole's own loader finds the model back from the checkpoint
        config, model, _, _, _, test_data = load_data_and_model(result["model_file"])
        assert isinstance(model, SRIEM) and config["importance"] == form
        saved = torch.load(result["model_file"], map_location="cpu")["state_dict"]
        assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())


def test_generator_writes_the_file_contract(session_root):
    import yaml

    keys = yaml.safe_load((properties_dir() / "dataset" / f"{DATASET}.yaml").read_text())
    assert {k: keys[k] for k in CONTRACT_KEYS} == CONTRACT_KEYS
    train_items = set()
    for part in ("train", "valid", "test"):
        lines = (session_root / DATASET / f"{DATASET}.{part}.inter").read_text().splitlines()
        assert lines[0] == HEADER.rstrip("\n")
        rows = [line.split("\t") for line in lines[1:]]
        assert rows and all(len(row) == 3 for row in rows)
        prefixes = [row[1].split(" ") for row in rows]
        assert max(map(len, prefixes)) == TINY.max_prefix_length and min(map(len, prefixes)) == 1
        items = {row[2] for row in rows} | {i for p in prefixes for i in p}
        if part == "train":
            train_items = items
        else:  # SR-GNN protocol: no item unseen in training
            assert items <= train_items
    # a session-based dataset without a yaml of its own loads with the contract keys alone
    assert (
        contract_keys_for(DATASET) == {} and contract_keys_for("no-such-sessions") == CONTRACT_KEYS
    )



# the session-based benchmarks refuse bad options in one line, before loading any data
BENCHMARK_CASES = [
    BadInput("benchmarks", "`--dataset` without `--data-path`", "benchmarks/session_based.py",
             ("--dataset", "yoochoose-sample"), "--dataset and --data-path go together"),
    BadInput("benchmarks", "a data folder without the converted files", "benchmarks/session_based.py",
             ("--dataset", "yoochoose-sample", "--data-path", "{tmp}"),
             "no yoochoose-sample.train.inter"),
    BadInput("benchmarks", "`--seeds 0`", "benchmarks/session_based.py", ("--seeds", "0"),
             "--seeds must be at least 1, got 0"),
    BadInput("benchmarks", "an unknown SRIEM variant", "benchmarks/sriem_variants.py",
             ("--rows", "paper/cosine"), "--rows paper/cosine: expected FORM/SCHEDULE"),
    BadInput("benchmarks", "`--repeats 0`", "benchmarks/sriem_speed.py", ("--repeats", "0"),
             "--repeats must be at least 1, got 0"),
]


@pytest.mark.parametrize("case", BENCHMARK_CASES, ids=lambda case: case.id)
def test_benchmark_bad_options(case, tmp_path):
    check(case, tmp_path)
