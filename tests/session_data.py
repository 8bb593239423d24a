"""A small DIGINETICA-shaped session generator for tests and benchmarks.

It writes the session-based benchmark file contract of this project (SR-GNN protocol):
``<root>/<name>/<name>.{train,valid,test}.inter`` with the header
``session_id:token  item_id_list:token_seq  item_id:token`` (tab-separated), one row per
prefix example (the target and at most the last ``max_prefix_length`` items before it, oldest
first). ``properties/dataset/diginetica-synth.yaml`` holds the matching RecBole keys.

The sessions have what the real data has and what the models can learn from: a skewed (Zipf)
item popularity, topics (a session mostly stays in one), item-to-item transitions (each item has
a few favourite successors), some off-topic noise clicks, lengths from 2 up to
``max_session_length`` with a DIGINETICA-like mean of about 5, and a time order (the test
sessions are the newest, the validation sessions come just before them). As in the SR-GNN
preparation, valid and test items never seen in training are dropped, and so are sessions left
with fewer than 2 items. It says nothing about real-data quality: it only makes the pipeline run
on data of the right shape.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

HEADER = "session_id:token\titem_id_list:token_seq\titem_id:token\n"
PARTS = ("train", "valid", "test")
# the RecBole keys of the file contract (properties/dataset/diginetica-synth.yaml holds them too);
# pass them in config_dict for a session-based dataset that has no yaml of its own
CONTRACT_KEYS = {
    "USER_ID_FIELD": "session_id",
    "ITEM_ID_FIELD": "item_id",
    "load_col": {"inter": ["session_id", "item_id_list", "item_id"]},
    "benchmark_filename": list(PARTS),
    "alias_of_item_id": ["item_id_list"],
    "MAX_ITEM_LIST_LENGTH": 10,
}


@dataclass(frozen=True)
class SessionShape:
    """The knobs of the generator (defaults: a DIGINETICA-like shape at toy size)."""

    n_sessions: int = 2000
    n_items: int = 400
    n_topics: int = 20
    popularity_exponent: float = 1.1  # Zipf exponent of item popularity within a topic
    mean_extra_length: float = 3.0  # length = 2 + geometric extra items: mean about 5
    max_session_length: int = 15
    successors: int = 3  # favourite next items per item
    follow_probability: float = 0.6  # next click is one of the previous item's successors
    noise_probability: float = 0.1  # next click is off-topic (drawn from global popularity)
    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    max_prefix_length: int = 10
    seed: int = 2020


def contract_keys_for(name: str) -> dict:
    """The contract keys for a dataset without ``properties/dataset/<name>.yaml``; nothing for a
    dataset that has one (its yaml is loaded by our Config)."""
    from recbole_session.paths import properties_dir

    return {} if (properties_dir() / "dataset" / f"{name}.yaml").is_file() else dict(CONTRACT_KEYS)


def generate_sessions(shape: SessionShape) -> list[list[int]]:
    """Sessions of item ids (1-based), oldest session first."""
    rng = np.random.default_rng(shape.seed)
    topic_of = rng.integers(0, shape.n_topics, size=shape.n_items)
    members = [np.flatnonzero(topic_of == t) for t in range(shape.n_topics)]
    members = [m if len(m) else rng.integers(0, shape.n_items, size=1) for m in members]
    # Zipf popularity inside each topic, and over topics (by their most popular item)
    within = [1.0 / np.arange(1, len(m) + 1) ** shape.popularity_exponent for m in members]
    within = [w / w.sum() for w in within]
    topic_weight = 1.0 / np.arange(1, shape.n_topics + 1) ** shape.popularity_exponent
    topic_weight /= topic_weight.sum()
    global_weight = np.zeros(shape.n_items)
    for t, (m, w) in enumerate(zip(members, within)):
        global_weight[m] += topic_weight[t] * w
    global_weight /= global_weight.sum()
    successors = np.stack(
        [
            rng.choice(members[topic_of[i]], size=shape.successors, p=within[topic_of[i]])
            for i in range(shape.n_items)
        ]
    )

    sessions = []
    extra = rng.geometric(1.0 / (1.0 + shape.mean_extra_length), size=shape.n_sessions) - 1
    lengths = np.minimum(2 + extra, shape.max_session_length)
    topics = rng.choice(shape.n_topics, size=shape.n_sessions, p=topic_weight)
    for length, topic in zip(lengths, topics):
        item = rng.choice(members[topic], p=within[topic])
        items = [item]
        for _ in range(length - 1):
            draw = rng.random()
            if draw < shape.noise_probability:
                item = rng.choice(shape.n_items, p=global_weight)
            elif draw < shape.noise_probability + shape.follow_probability:
                item = rng.choice(successors[item])
            else:
                item = rng.choice(members[topic], p=within[topic])
            items.append(item)
        sessions.append([int(i) + 1 for i in items])
    return sessions


def split_by_time(shape: SessionShape, sessions: list[list[int]]) -> dict[str, list[list[int]]]:
    """Newest sessions to test, the ones before them to valid; unseen items dropped."""
    n_test = int(round(len(sessions) * shape.test_fraction))
    n_valid = int(round(len(sessions) * shape.valid_fraction))
    n_train = len(sessions) - n_test - n_valid
    parts = {
        "train": sessions[:n_train],
        "valid": sessions[n_train : n_train + n_valid],
        "test": sessions[n_train + n_valid :],
    }
    seen = {item for session in parts["train"] for item in session}
    for part in ("valid", "test"):
        kept = ([i for i in s if i in seen] for s in parts[part])
        parts[part] = [s for s in kept if len(s) >= 2]
    return parts


def prefix_rows(session_id: str, items: list[int], max_prefix_length: int) -> list[str]:
    """One contract row per target: ``session_id<TAB>prefix<TAB>target``."""
    rows = []
    for end in range(1, len(items)):
        prefix = items[max(0, end - max_prefix_length) : end]
        rows.append(f"{session_id}\t{' '.join(map(str, prefix))}\t{items[end]}\n")
    return rows


def write_session_benchmark(
    root: str | os.PathLike, name: str = "diginetica-synth", shape: SessionShape | None = None
) -> dict:
    """Write ``<root>/<name>/<name>.{train,valid,test}.inter``; returns their statistics."""
    shape = shape or SessionShape()
    parts = split_by_time(shape, generate_sessions(shape))
    folder = Path(root) / name
    folder.mkdir(parents=True, exist_ok=True)
    stats = {"shape": asdict(shape)}
    next_id = 0
    for part in PARTS:
        rows = []
        for items in parts[part]:
            rows += prefix_rows(f"s{next_id}", items, shape.max_prefix_length)
            next_id += 1
        target = folder / f"{name}.{part}.inter"
        temporary = target.with_name(target.name + ".tmp")
        with open(temporary, "w", encoding="utf-8") as out:
            out.write(HEADER)
            out.writelines(rows)
        os.replace(temporary, target)
        stats[part] = {"sessions": len(parts[part]), "rows": len(rows)}
    stats["items"] = len({i for p in parts.values() for s in p for i in s})
    stats["clicks"] = sum(len(s) for p in parts.values() for s in p)
    return stats


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", help="data_path to write <name>/ into")
    parser.add_argument("--name", default="diginetica-synth")
    parser.add_argument("--sessions", type=int, default=SessionShape.n_sessions)
    parser.add_argument("--items", type=int, default=SessionShape.n_items)
    args = parser.parse_args()
    print(
        json.dumps(
            write_session_benchmark(
                args.root, args.name, SessionShape(n_sessions=args.sessions, n_items=args.items)
            )
        )
    )
