"""A Taobao UserBehavior-shaped event log generator for tests and benchmarks.

The published ``UserBehavior.csv`` (Tianchi; the ASARS paper's "Tianchi" data) has no header and
the columns ``user_id,item_id,category_id,behavior_type,timestamp``: 100,150,807 rows, 987,994
users, 4,162,024 items, 9,439 categories, the behaviors ``pv`` (~89.7%), ``cart`` (~5.5%),
``fav`` (~2.9%) and ``buy`` (~2.0%), unix seconds in 2017-11-25..2017-12-03. :func:`write_log`
writes that shape with users and items scaled by ``rows``: integer ids (users sparse in 1..1.02M,
items in 1..5.16M at full size), a Zipf-like item popularity, each item in one category, about
101 rows per user (at least 10, long-tailed), and times as bursts of seconds to minutes inside a
visit, hours between visits and a day or more between some, fitted into the 9 days. Rows are
grouped by user (ascending id) and in time order inside a user; written a block of users at a
time, so memory stays a few hundred MB whatever ``rows`` is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

FULL_ROWS, FULL_USERS, FULL_ITEMS, FULL_CATEGORIES = 100_150_807, 987_994, 4_162_024, 9_439
USER_ID_SPAN, ITEM_ID_SPAN = 1_018_011, 5_163_070  # the published ids' ranges
BEHAVIORS = ["pv", "cart", "fav", "buy"]
BEHAVIOR_SHARE = [0.897, 0.055, 0.029, 0.019]
MIN_ROWS_PER_USER = 10
START, END = 1_511_539_200, 1_512_316_800  # 2017-11-25 00:00 .. 2017-12-04 00:00 (UTC+8 days)
# gap kinds: inside a visit, between visits of a day, between days; (share, mean seconds)
GAPS = [(0.82, 60.0), (0.15, 4 * 3600.0), (0.03, 36 * 3600.0)]
ITEM_ZIPF = 0.9
USERS_PER_BLOCK = 50_000
NAMES = "user,item,category,behavior,timestamp"
SEED = 0


def sizes(rows: int) -> tuple[int, int, int]:
    """Users, items and categories for a log of ``rows`` rows (the published ratios)."""
    users = max(1, round(FULL_USERS * rows / FULL_ROWS))
    items = max(1, round(FULL_ITEMS * rows / FULL_ROWS))
    categories = max(1, min(FULL_CATEGORIES, items))
    return users, items, categories


def _rows_per_user(rng: np.random.Generator, users: int, rows: int) -> np.ndarray:
    floor = min(MIN_ROWS_PER_USER, rows // users)
    extra = rng.lognormal(mean=3.8, sigma=1.0, size=users)
    counts = floor + np.floor(extra / extra.sum() * (rows - floor * users)).astype(np.int64)
    counts[: rows - counts.sum()] += 1  # the rounding remainder, one row each
    return counts


def _times(rng: np.random.Generator, counts: np.ndarray) -> np.ndarray:
    """Per user: a start, then gaps of the three kinds; a user whose span exceeds the window
    is compressed into it."""
    n = int(counts.sum())
    kind = rng.choice(len(GAPS), n, p=[share for share, _ in GAPS])
    gap = rng.exponential(1.0, n) * np.array([mean for _, mean in GAPS])[kind]
    first = np.r_[0, np.cumsum(counts)[:-1]]
    gap[first] = 0.0
    offset = np.cumsum(gap)
    offset -= np.repeat(offset[first], counts)
    span = offset[np.cumsum(counts) - 1]
    window = END - START - 1
    scale = np.where(span > window, window / np.maximum(span, 1.0), 1.0)
    offset *= np.repeat(scale, counts)
    span = span * scale
    start = START + rng.random(len(counts)) * (window - span)
    return (np.repeat(start, counts) + offset).astype(np.int64)


def write_log(path: Path, rows: int, seed: int = SEED) -> dict:
    """Write a UserBehavior-shaped CSV (no header) of ``rows`` rows; returns its sizes."""
    rng = np.random.default_rng(seed)
    users, items, categories = sizes(rows)
    user_ids = np.sort(rng.choice(np.arange(1, max(USER_ID_SPAN * users // FULL_USERS, users) + 1), users,
                                  replace=False))
    item_ids = rng.choice(np.arange(1, max(ITEM_ID_SPAN * items // FULL_ITEMS, items) + 1), items, replace=False)
    category_of = rng.integers(1, 2 * categories + 1, items)  # sparse category ids
    popularity = np.cumsum(1.0 / np.arange(1, items + 1) ** ITEM_ZIPF)
    popularity /= popularity[-1]
    counts = _rows_per_user(rng, users, rows)
    behaviors = pa.array(BEHAVIORS)
    schema = pa.schema([("user", pa.int64()), ("item", pa.int64()), ("category", pa.int64()),
                        ("behavior", pa.string()), ("timestamp", pa.int64())])
    seen = np.zeros(items, dtype=bool)
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    with pacsv.CSVWriter(str(path), schema, write_options=options) as writer:
        for block in range(0, users, USERS_PER_BLOCK):
            part = counts[block: block + USERS_PER_BLOCK]
            n = int(part.sum())
            item = np.minimum(np.searchsorted(popularity, rng.random(n)), items - 1)
            seen[item] = True
            behavior = rng.choice(len(BEHAVIORS), n, p=BEHAVIOR_SHARE).astype(np.int32)
            writer.write_table(pa.table({
                "user": np.repeat(user_ids[block: block + USERS_PER_BLOCK], part), "item": item_ids[item],
                "category": category_of[item], "behavior": behaviors.take(pa.array(behavior)),
                "timestamp": _times(rng, part)}, schema=schema))
    return {"rows": rows, "users": users, "items": int(seen.sum()),
            "csv_mb": round(path.stat().st_size / 2**20, 1)}
