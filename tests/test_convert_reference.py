"""The ml-1m recipe equals the reference preprocessing (SessionBERT4Rec's ``preprocess.py``).

The reference is re-implemented here directly and slowly, as its loop is written: count-based
item then user filters, then per user (in order of first appearance) a stable sort by time, the
last 200 rows, a new session id whenever the gap to the previous row exceeds one day, and the
user kept only with >= 2 sessions and no session shorter than 2. Its output is compared with
the vectorised recipe's on a random raw file that hits every branch (ties, gaps of exactly one
day, users over 200 rows, rare items, one-session users, one-item sessions).
"""

from __future__ import annotations

import random
from collections import Counter

import pandas as pd

from recbole_session.convert import convert

DAY = 86_400


def reference_rows(path, min_item=5, min_user=5, max_len=200, window=DAY, min_sessions=2, min_len=2):
    rows = []
    with open(path) as fh:
        for line in fh:
            uid, iid, rating, ts = line.strip().split("::")
            if int(rating) >= 1:
                rows.append((int(uid), int(iid), int(ts)))
    item_count = Counter(iid for _, iid, _ in rows)
    rows = [r for r in rows if item_count[r[1]] >= min_item]
    user_count = Counter(uid for uid, _, _ in rows)
    rows = [r for r in rows if user_count[r[0]] >= min_user]
    by_user: dict[int, list] = {}
    for uid, iid, ts in rows:
        by_user.setdefault(uid, []).append((iid, ts))
    out, sid = [], 0
    for uid, user_rows in by_user.items():
        user_rows = sorted(user_rows, key=lambda r: r[1])[-max_len:]
        sid += 1
        previous = user_rows[0][1]
        tba, sizes = [], {}
        for iid, ts in user_rows:
            if ts - previous > window:
                sid += 1
            tba.append((uid, iid, sid, ts))
            sizes[sid] = sizes.get(sid, 0) + 1
            previous = ts
        if len(sizes) < min_sessions or min(sizes.values()) < min_len:
            continue
        out.extend(tba)
    return out


def write_random_ratings(path, seed=8):
    rng = random.Random(seed)
    lines = []
    for user in rng.sample(range(1, 500), 90):
        t = rng.randrange(10**9, 10**9 + 10**7)
        for _session in range(rng.choice([1, 2, 3, 5, 8, 30])):
            t += rng.choice([DAY + 1, 3 * DAY, 40 * DAY])  # a new session
            for _ in range(rng.choice([1, 2, 2, 3, 5, 10, 40])):
                item = rng.randrange(1, 60) if rng.random() < 0.9 else rng.randrange(1000, 5000)
                lines.append((user, item, rng.randint(1, 5), t))
                t += rng.choice([0, 0, 30, 600, 3600, DAY])  # ties and a gap of exactly one day
    rng.shuffle(lines)  # the file is not sorted by time (ML-1M is not either)
    path.write_text("".join(f"{u}::{i}::{r}::{t}\n" for u, i, r, t in lines))


def by_user_sessions(rows):
    """user -> [(item, time, session index within the user)], independent of id numbering."""
    out: dict[str, list] = {}
    first: dict = {}
    for uid, iid, sid, ts in rows:
        first.setdefault(uid, {}).setdefault(sid, len(first[uid]))
        out.setdefault(str(uid), []).append((str(iid), ts, first[uid][sid]))
    return out


def test_ml_1m_recipe_equals_the_reference_preprocessing(tmp_path):
    raw = tmp_path / "ratings.dat"
    write_random_ratings(raw)
    expected = reference_rows(raw)
    folder = convert("ml-1m", raw=raw, out=tmp_path / "out", verbose=False)
    inter = pd.read_csv(folder / "ml-1m.inter", sep="\t", dtype=str)
    stats = pd.read_json(folder / "ml-1m.stats.json", typ="series")
    origin = int(stats["time_origin"])
    ours = [(u, i, s, int(float(t)) + origin) for u, i, t, s in
            inter[["user_id:token", "item_id:token", "timestamp:float", "session_id:token"]].itertuples(index=False)]
    assert len(expected) > 1000  # the fixture keeps enough rows to mean something
    assert len({r[0] for r in expected}) >= 20
    assert by_user_sessions(ours) == by_user_sessions(expected)
    # the branches were hit: a kept user was cut to 200 rows, and most users were dropped
    assert max(Counter(r[0] for r in expected).values()) == 200
    assert len({r[0] for r in expected}) < 80
