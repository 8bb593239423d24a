"""Evaluation protocols on a hand-made dataset: exact candidates, hand-computed metrics,
one-pass scores equal RecBole's sampled-path scores, and RecBole's own full ranking."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from recbole.data import data_preparation
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import init_seed

from recbole_session.evaluation import (
    dataset_history,
    evaluate_protocols,
    evaluate_protocols_detailed,
    parse_protocols,
)
from recbole_session.evaluation.protocols import score_rows
from recbole_session.quick_start import make_config
from recbole_session.utils import create_dataset, get_model, get_trainer

# Hand-made data: item tokens 1..200; interaction counts: items 1-5: 4, 6-20: 3, 21-40: 2,
# 41-200: 1. Each user's items are listed in time order (the last one is the test target).
USERS = {
    "A": list(range(1, 61)),
    "B": list(range(1, 41)) + list(range(61, 81)),
    "C": list(range(1, 21)) + list(range(81, 101)),
    "D": list(range(1, 6)) + list(range(101, 131)),
    "E": list(range(131, 201)),
}
# the 100 most popular items each user never touched (ties by numeric token order)
POPULAR = {
    "A": list(range(61, 161)),
    "B": list(range(41, 61)) + list(range(81, 161)),
    "C": list(range(21, 81)) + list(range(101, 141)),
    "D": list(range(6, 101)) + list(range(131, 136)),
    "E": list(range(1, 101)),
}


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_atomic")
    (root / "tiny").mkdir()
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    for user, items in USERS.items():
        lines += [f"{user}\t{item}\t{1000 * t}" for t, item in enumerate(items)]
    (root / "tiny" / "tiny.inter").write_text("\n".join(lines) + "\n")
    return root


def tiny_setup(tiny_root, model="SASRec", **extra):
    config = make_config(model, "tiny", None, {
        "data_path": str(tiny_root), "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "MAX_ITEM_LIST_LENGTH": 20, "hidden_size": 8, "inner_size": 16, "n_layers": 1, "n_heads": 1,
        "embedding_size": 8, "use_gpu": False, "state": "ERROR", "eval_batch_size": 3, **extra,
    })
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    return config, dataset, train, valid, test


def tokens(dataset, field, ids):
    return [str(t) for t in dataset.id2token(field, np.asarray(ids))]


@pytest.fixture(scope="module")
def tiny(tiny_root):
    return tiny_setup(tiny_root)


def test_history_and_counts_cover_all_splits(tiny):
    config, dataset, *_ = tiny
    history = dataset_history(dataset)
    for user, items in USERS.items():
        uid = dataset.token2id("user_id", user)
        # the item lists keep only 20 items; the history must still hold all of them
        assert sorted(int(t) for t in tokens(dataset, "item_id", history.user_items[uid])) == items
    counts = {int(t): int(c) for t, c in zip(tokens(dataset, "item_id", np.arange(1, dataset.item_num)),
                                              history.counts[1:])}
    expected = {i: 4 if i <= 5 else 3 if i <= 20 else 2 if i <= 40 else 1 for i in range(1, 201)}
    assert counts == expected


def test_popular_negatives_exact(tiny):
    _, dataset, *_ = tiny
    negatives = dataset_history(dataset).popular_negatives(100)
    for user, expected in POPULAR.items():
        got = tokens(dataset, "item_id", negatives[dataset.token2id("user_id", user)])
        assert [int(t) for t in got] == expected, user


def test_random_negatives_exclude_history_and_are_paired(tiny_root, tiny):
    _, dataset, *_ = tiny
    history = dataset_history(dataset)
    first = history.random_negatives(100, seed=7)
    other_seed = history.random_negatives(100, seed=8)
    # another model (its own dataset object), with the global RNGs in another state
    np.random.seed(99)
    torch.manual_seed(99)
    _, dataset2, *_ = tiny_setup(tiny_root, model="GRU4Rec")
    second = dataset_history(dataset2).random_negatives(100, seed=7)
    for user, items in USERS.items():
        mine = tokens(dataset, "item_id", first[dataset.token2id("user_id", user)])
        assert len(set(mine)) == 100  # without replacement
        assert not set(map(int, mine)) & set(items)  # never an item the user touched
        assert set(map(int, mine)) <= set(range(1, 201))
        assert mine == tokens(dataset2, "item_id", second[dataset2.token2id("user_id", user)])
        assert mine != tokens(dataset, "item_id", other_seed[dataset.token2id("user_id", user)])
    # uniform over the free items: across users, far more than 100 distinct items are drawn
    assert len(np.unique(first[1:])) > 150


class FixedScores(SequentialRecommender):
    """A test model whose scores are a fixed (user, item) table."""

    def __init__(self, config, dataset, table):
        super().__init__(config, dataset)
        self.user_field = config["USER_ID_FIELD"]
        self.register_buffer("table", table)
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def full_sort_predict(self, interaction):
        return self.table[interaction[self.user_field]]

    def predict(self, interaction):
        return self.table[interaction[self.user_field], interaction[self.ITEM_ID]]


# rank of each user's test item among random100 candidates, popular100 candidates, and extra
# items above it in full ranking only
RANKS = {"A": (1, 1, 0), "B": (3, 12, 0), "C": (11, 2, 10), "D": (20, 25, 0), "E": (2, 20, 0)}


def test_metrics_on_hand_computed_ranking(tiny):
    config, dataset, _, _, test = tiny
    history = dataset_history(dataset)
    seed = config["eval_negatives_seed"]
    rand, pop = history.random_negatives(100, seed), history.popular_negatives(100)
    table = torch.zeros(dataset.user_num, dataset.item_num)
    for user, (r, q, x) in RANKS.items():
        uid = dataset.token2id("user_id", user)
        target = dataset.token2id("item_id", str(USERS[user][-1]))
        table[uid, target] = 0.5
        only_random = [i for i in rand[uid] if i not in set(pop[uid])][: r - 1]
        only_popular = [i for i in pop[uid] if i not in set(rand[uid])][: q - 1]
        touched = set(history.user_items[uid])
        elsewhere = [i for i in range(1, dataset.item_num)
                     if i not in set(rand[uid]) | set(pop[uid]) and i not in touched][:x]
        assert (len(only_random), len(only_popular), len(elsewhere)) == (r - 1, q - 1, x)
        table[uid, only_random + only_popular + elsewhere] = 1.0
    model = FixedScores(config, dataset, table)
    result = evaluate_protocols_detailed(model, test, config, ["random100", "popular100", "full"], dataset=dataset)

    ranks = {"random100": [r for r, _, _ in RANKS.values()], "popular100": [q for _, q, _ in RANKS.values()],
             "full": [r + q - 1 + x for r, q, x in RANKS.values()]}
    order = [list(USERS).index(u) for u in result.users]
    for protocol, values in ranks.items():
        values = np.array(values)[order]
        for k in (10, 20):
            hit = (values <= k).astype(float)
            ndcg = np.where(values <= k, 1 / np.log2(values + 1), 0.0)
            mrr = np.where(values <= k, 1 / values, 0.0)
            for name, expected in (("hit", hit), ("recall", hit), ("ndcg", ndcg), ("mrr", mrr)):
                np.testing.assert_allclose(result.per_user[f"{protocol}/{name}@{k}"], expected, atol=1e-9)
                assert result.metrics[f"{protocol}/{name}@{k}"] == round(expected.mean(), 4)
    # a few means written out by hand: random ranks 1, 3, 11, 20, 2
    assert result.metrics["random100/recall@10"] == 0.6
    assert result.metrics["random100/ndcg@10"] == round((1 + 0.5 + 1 / math.log2(3)) / 5, 4)
    assert result.metrics["popular100/mrr@20"] == round((1 + 1 / 12 + 1 / 2 + 1 / 20) / 5, 4)
    assert result.metrics["full/hit@20"] == 0.4  # full ranks 1, 14, 22, 44, 21


def test_one_pass_scores_equal_recbole_sampled_path(tiny_root):
    # RecBole's sampled path predicts eval_batch_size copies at a time: keep them few
    config, dataset, train, valid, test = tiny_setup(tiny_root, eval_batch_size=512)
    init_seed(3, True)
    model = get_model("SASRec")(config, train._dataset)
    protocols = ["random100", "popular100", "full", "uni100", "pop100"]
    one_pass = evaluate_protocols_detailed(model, test, config, protocols, dataset=dataset, scoring="full_sort")
    sampled = evaluate_protocols_detailed(model, test, config, protocols, dataset=dataset, scoring="predict")
    assert one_pass.metrics == sampled.metrics
    assert one_pass.fingerprints == sampled.fingerprints
    for key, values in one_pass.per_user.items():
        np.testing.assert_array_equal(values, sampled.per_user[key])

    # the scores themselves, batch by batch: full_sort_predict gathered vs predict per pair
    negatives = dataset_history(dataset).random_negatives(100, config["eval_negatives_seed"])
    model.eval()
    with torch.no_grad():
        for interaction, _, positive_u, positive_i in test:
            keep = torch.zeros(len(interaction), dataset.item_num, dtype=torch.bool)
            keep.scatter_(1, torch.as_tensor(negatives[interaction["user_id"].numpy()]), True)
            keep[positive_u, positive_i] = True
            a = score_rows(model, interaction, keep, "full_sort", "item_id", test._dataset, 64)
            b = score_rows(model, interaction, keep, "predict", "item_id", test._dataset, 64)
            assert torch.isfinite(a).sum() == torch.isfinite(b).sum() == 101 * len(interaction)
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_full_protocol_is_recboles_full_ranking(tiny):
    config, dataset, train, valid, test = tiny
    init_seed(4, True)
    model = get_model("SASRec")(config, train._dataset)
    trainer = get_trainer(config["MODEL_TYPE"], "SASRec")(config, model)
    recbole = trainer.evaluate(valid, load_best_model=False)
    ours = evaluate_protocols(model, valid, config, ["full"], dataset=dataset)
    assert ours == {f"full/{k}": float(v) for k, v in recbole.items()}
    # without the dataset it is rebuilt from the config: same candidates, same values
    assert evaluate_protocols(model, valid, config, "full,random100") == evaluate_protocols(
        model, valid, config, ["full", "random100"], dataset=dataset)


def test_recbole_sampled_modes_are_seeded(tiny):
    config, dataset, train, _, test = tiny
    model = get_model("SASRec")(config, train._dataset)
    a = evaluate_protocols_detailed(model, test, config, ["uni100", "pop100"], dataset=dataset)
    np.random.seed(123)  # RecBole's sampler draws from a private state, not the global one
    b = evaluate_protocols_detailed(model, test, config, ["uni100", "pop100"], dataset=dataset)
    assert a.metrics == b.metrics and a.fingerprints == b.fingerprints
    assert set(a.metrics) == {f"{p}/{m}@{k}" for p in ("uni100", "pop100")
                              for m in ("recall", "mrr", "ndcg", "hit") for k in (10, 20)}


def test_bad_input_is_named(tiny_root, tiny):
    config, dataset, train, _, test = tiny
    model = get_model("SASRec")(config, train._dataset)
    assert [p.name for p in parse_protocols("[random100, full]")] == ["random100", "full"]  # CLI form
    with pytest.raises(ValueError, match="unknown evaluation protocol 'top5'"):
        parse_protocols("random100,top5")
    with pytest.raises(ValueError, match="popular141: user 'A' touched 60 of 200 items, so only 140"):
        evaluate_protocols(model, test, config, ["popular141"], dataset=dataset)
    sampled_config, _, _, _, sampled_test = tiny_setup(tiny_root, eval_args={
        "split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "uni100"})
    with pytest.raises(TypeError, match="full-sort eval dataloader"):
        evaluate_protocols(model, sampled_test, sampled_config)


def test_session_benchmark_files(tmp_path):
    """Session-based benchmark files (one row per prefix): a session's history is every item
    of its rows, counts are its interactions, and the protocols run on them."""
    sessions = {"s1": [1, 2, 3, 4], "s2": [2, 5, 6], "s3": [7, 8, 2, 9], "s4": [10, 11, 12], "s5": [3, 13, 14]}
    parts = {"train": ["s1", "s2"], "valid": ["s3"], "test": ["s4", "s5"]}
    folder = tmp_path / "bench"
    folder.mkdir()
    for part, names in parts.items():
        lines = ["session_id:token\titem_id_list:token_seq\titem_id:token"]
        for name in names:
            items = sessions[name]
            lines += [f"{name}\t{' '.join(map(str, items[:i]))}\t{items[i]}" for i in range(1, len(items))]
        (folder / f"bench.{part}.inter").write_text("\n".join(lines) + "\n")
    # items 15..40 only appear in a filler session of the training file, so popularity has ties
    with open(folder / "bench.train.inter", "a") as handle:
        filler = list(range(15, 41))
        handle.writelines(f"s9\t{' '.join(map(str, filler[max(0, i - 10):i]))}\t{filler[i]}\n"
                          for i in range(1, len(filler)))
    config = make_config("SASRec", "bench", None, {
        "data_path": str(tmp_path), "USER_ID_FIELD": "session_id", "load_col": {"inter": ["session_id", "item_id_list", "item_id"]},
        "benchmark_filename": ["train", "valid", "test"], "alias_of_item_id": ["item_id_list"],
        "MAX_ITEM_LIST_LENGTH": 10, "hidden_size": 8, "inner_size": 16, "n_layers": 1, "n_heads": 1,
        "use_gpu": False, "state": "ERROR", "eval_args": {"order": "TO", "mode": "full"}})
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    history = dataset_history(dataset)
    for name, items in sessions.items():
        got = history.user_items[dataset.token2id("session_id", name)]
        assert sorted(int(t) for t in tokens(dataset, "item_id", got)) == sorted(items)
    assert history.counts[dataset.token2id("item_id", "2")] == 3
    assert history.counts[dataset.token2id("item_id", "40")] == 1
    model = get_model("SASRec")(config, train._dataset)
    result = evaluate_protocols_detailed(model, test, config, ["random10", "popular10", "full"], dataset=dataset)
    assert result.users == ["s4", "s4", "s5", "s5"]  # one value per prefix row
    s5 = history.popular_negatives(10)[dataset.token2id("session_id", "s5")]
    # most popular first (2: 3 times; 1, 4..12 ...: once each), never an item of s5
    assert [int(t) for t in tokens(dataset, "item_id", s5)] == [2, 1, 4, 5, 6, 7, 8, 9, 10, 11]


def test_the_build_path_gives_the_protocols_its_dataset_and_nothing_is_rebuilt(tiny_root, tmp_path, monkeypatch):
    """``build`` records the dataset its loaders came from: the protocols read it (a Ray trial
    runs in another folder, where a relative data_path names nothing), and score as a rebuild
    from the config would."""
    from recbole_session.build import build
    from recbole_session.evaluation import protocols

    monkeypatch.chdir(tmp_path)
    config = make_config("SASRec", "tiny", None, {
        "data_path": str(tiny_root), "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "MAX_ITEM_LIST_LENGTH": 20, "hidden_size": 8, "inner_size": 16, "n_layers": 1, "n_heads": 1,
        "use_gpu": False, "state": "ERROR", "eval_batch_size": 3})
    built = build(config, trainer=False)
    for loader in (built.valid_data, built.test_data):
        assert protocols.whole_dataset_for(loader, config) is built.dataset
    rebuilt = protocols.create_dataset(config)
    rebuilt.build()
    ours = evaluate_protocols(built.model, built.valid_data, config, "full,random100")
    assert ours == evaluate_protocols(built.model, built.valid_data, config, "full,random100", dataset=rebuilt)
    # the files are gone: nothing reads them again
    config["data_path"] = str(tmp_path / "nowhere")
    assert evaluate_protocols(built.model, built.test_data, config, "random100")
