"""Session-based datasets (the SR-GNN protocol of SR-IEM; see ``docs/converter.md``), vectorised.

SR-GNN's ``preprocess.py``, step by step: sessions keep the order of their first row in the
file; items inside a session are in file order (YOOCHOOSE) or sorted by a key (DIGINETICA's
``timeframe``); a session's date is the date of its last row in the file. Sessions of length 1
are dropped, then items with fewer than 5 occurrences, then sessions left with fewer than 2
items. The test sessions are those dated after ``max date - test_days`` (strictly; sessions
dated exactly on the split date belong to neither part, as in SR-GNN), the training sessions
those dated before it, both sorted by date (stable). Test items never seen in training are
removed and test sessions left with fewer than 2 items dropped. Every prefix of a session is an
example (targets from the last item backwards, as SR-GNN lists them); YOOCHOOSE 1/64 and 1/4
keep the most recent fraction of the training examples.

Our addition: a validation split, the most recent ``valid_ratio`` of the training sessions that
remain (the SR-IEM authors tuned on the test set; we do not by default). ``valid_ratio`` 0
reproduces their setup knowingly: the valid file is then a copy of the test file, so that
RecBole's model selection uses the test set. Output: RecBole benchmark files
``<name>.{train,valid,test}.inter`` of ``session_id, item_id_list, item_id`` rows, each prefix
cut to its last ``max_prefix_length`` items. A funnel records clicks, items and sessions after
each step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from recbole_session.convert.errors import ConvertError, option_error

SECONDS_PER_DAY = 86_400
PARTS = ("train", "valid", "test")


@dataclass
class Clicks:
    """Raw click rows in file order: session ids, item ids, an optional within-session sort key
    (``None``: file order) and a per-row date in seconds."""

    session: np.ndarray
    item: np.ndarray
    date: np.ndarray
    order: np.ndarray | None = None


@dataclass
class Sessions:
    """Sessions as flat arrays: ``items[offsets[i]:offsets[i + 1]]`` is session ``ids[i]``,
    dated ``dates[i]``."""

    ids: np.ndarray
    dates: np.ndarray
    offsets: np.ndarray
    items: np.ndarray

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.ids)

    def row_session(self) -> np.ndarray:
        return np.repeat(np.arange(len(self)), self.lengths)

    def take(self, index: np.ndarray) -> Sessions:
        """Sessions ``index`` (positions or a boolean mask), in that order."""
        index = np.flatnonzero(index) if index.dtype == bool else index
        lengths = self.lengths[index]
        offsets = np.r_[0, np.cumsum(lengths)]
        rows = np.arange(offsets[-1]) - np.repeat(offsets[:-1] - self.offsets[:-1][index], lengths)
        return Sessions(self.ids[index], self.dates[index], offsets, self.items[rows])

    def keep_rows(self, mask: np.ndarray) -> Sessions:
        lengths = np.bincount(self.row_session()[mask], minlength=len(self))
        return Sessions(self.ids, self.dates, np.r_[0, np.cumsum(lengths)], self.items[mask])

    def drop_short(self, minimum: int) -> Sessions:
        return self.take(self.lengths >= minimum)

    def sort_by_date(self) -> Sessions:
        return self.take(np.argsort(self.dates, kind="stable"))


def funnel_step(funnel: list[dict], step: str, rule: str, *parts: Sessions) -> None:
    """Record clicks, items and sessions of ``parts`` (together) after ``step``."""
    items = np.concatenate([p.items for p in parts]) if parts else np.zeros(0)
    funnel.append({"step": step, "rule": rule, "rows": int(sum(len(p.items) for p in parts)), "users": None,
                   "items": int(len(pd.unique(items))), "sessions": int(sum(len(p) for p in parts))})


def build_sessions(clicks: Clicks, date_of: str = "last") -> Sessions:
    """Group click rows into sessions, in order of each session's first row. ``date_of``:
    ``last`` (the date of the session's last row in the file, SR-GNN) or ``max``."""
    codes, ids = pd.factorize(clicks.session, sort=False)
    if clicks.order is None:
        rows = np.argsort(codes, kind="stable")
    else:
        by_key = np.argsort(clicks.order, kind="stable")
        rows = by_key[np.argsort(codes[by_key], kind="stable")]
    lengths = np.bincount(codes, minlength=len(ids))
    grouped = pd.Series(clicks.date).groupby(codes, sort=True)
    dates = (grouped.last() if date_of == "last" else grouped.max()).to_numpy()
    return Sessions(np.asarray(ids), dates, np.r_[0, np.cumsum(lengths)], clicks.item[rows])


def sr_gnn_split(sessions: Sessions, params: dict, funnel: list[dict]) -> tuple[Sessions, Sessions, float]:
    """SR-GNN's filters and time split; returns the training and test sessions (sorted by
    date) and the split date."""
    minimum = int(params["min_session_length"])
    funnel_step(funnel, "read", "every click", sessions)
    sessions = sessions.drop_short(minimum)
    funnel_step(funnel, "min_session_length", f"sessions of >= {minimum} clicks", sessions)
    support = int(params["min_item_support"])
    if support > 1 and len(sessions.items):
        codes = pd.factorize(sessions.items)[0]
        sessions = sessions.keep_rows(np.bincount(codes)[codes] >= support)
    funnel_step(funnel, "min_item_support", f"items with >= {support} clicks", sessions)
    sessions = sessions.drop_short(minimum)
    funnel_step(funnel, "min_session_length", f"sessions left with >= {minimum} clicks", sessions)
    if len(sessions) == 0:
        raise ConvertError("no session is left after the length and item-support filters")
    split = float(sessions.dates.max()) - float(params["test_days"]) * SECONDS_PER_DAY
    train = sessions.take(sessions.dates < split).sort_by_date()
    test = sessions.take(sessions.dates > split).sort_by_date()
    funnel_step(funnel, "split", f"test = the last {float(params['test_days']):g} days (sessions on the split "
                "date go)", train, test)
    return train, test, split


def drop_unseen(test: Sessions, train: Sessions, minimum: int, funnel: list[dict]) -> Sessions:
    """Remove test items never seen in training, then sessions left too short."""
    test = test.keep_rows(np.isin(test.items, np.unique(train.items))).drop_short(minimum)
    funnel_step(funnel, "unseen_test_items", "test items seen in training", train, test)
    return test


@dataclass
class Examples:
    """Prefix examples of some sessions: session index, target row, first prefix row."""

    session: np.ndarray
    target: np.ndarray
    start: np.ndarray

    def __len__(self) -> int:
        return len(self.session)

    def take(self, index: np.ndarray) -> Examples:
        return Examples(self.session[index], self.target[index], self.start[index])


def expand(sessions: Sessions, max_prefix: int) -> Examples:
    """Every prefix of every session, targets from each session's last item backwards."""
    count = np.maximum(sessions.lengths - 1, 0)
    session = np.repeat(np.arange(len(sessions)), count)
    first = np.r_[0, np.cumsum(count)][:-1]
    back = np.arange(count.sum()) - np.repeat(first, count)  # 0 for the last item, 1 before...
    target = sessions.offsets[1:][session] - 1 - back
    start = np.maximum(sessions.offsets[:-1][session], target - max_prefix)
    return Examples(session, target, start)


def examples_table(sessions: Sessions, ex: Examples) -> dict[str, pa.Array]:
    """The benchmark rows: session id, space-separated prefix (oldest first), target item."""
    lengths = ex.target - ex.start
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    flat = np.arange(offsets[-1]) - np.repeat(offsets[:-1] - ex.start, lengths)
    tokens = pa.array(sessions.items).cast(pa.string())
    prefix = pa.LargeListArray.from_arrays(pa.array(offsets), tokens.take(pa.array(flat)))
    return {
        "session": pa.array(sessions.ids[ex.session]),
        "prefix": pc.binary_join(prefix, " "),
        "item": tokens.take(pa.array(ex.target)),
    }


def benchmark(train: Sessions, test: Sessions, params: dict) -> tuple[dict[str, dict], dict]:
    """Train/valid/test example tables and their statistics.

    ``train_fraction`` < 1 keeps the most recent ``int(n * fraction)`` training examples
    (SR-GNN's YOOCHOOSE 1/64 and 1/4); the most recent ``valid_ratio`` of the sessions those
    examples come from (rounded up) become the validation split; with ``valid_ratio`` 0 the
    valid part is the test part (selection on the test set, as SR-GNN did).
    """
    max_prefix = int(params["max_prefix_length"])
    fraction = float(params.get("train_fraction", 1.0))
    ratio = float(params["valid_ratio"])
    if not 0 <= ratio < 1:
        raise option_error("--valid-ratio", f"expected a share >= 0 and < 1, not {ratio:g}")
    if not 0 < fraction <= 1:
        raise option_error("--train-fraction", f"expected a share > 0 and <= 1, not {fraction:g}")
    if max_prefix < 1:
        raise option_error("--max-prefix-length", f"expected at least 1, not {max_prefix}")
    if len(test) == 0:
        raise ConvertError("the test split is empty (check test_days and the input's time range)")
    ex = expand(train, max_prefix)
    if fraction < 1:
        keep = int(len(ex) * fraction)
        if keep == 0:
            raise ConvertError(f"train_fraction {fraction} keeps no training example of {len(ex)}")
        ex = ex.take(np.arange(len(ex) - keep, len(ex)))
    first = int(ex.session[0]) if len(ex) else len(train)
    touched = len(train) - first
    n_valid = math.ceil(ratio * touched)
    if touched < 1 or (ratio > 0 and (touched < 2 or n_valid >= touched)):
        raise ConvertError(f"too few training sessions ({touched}) to carve a validation split")
    cut = len(train) - n_valid
    in_valid = ex.session >= cut
    test_examples = expand(test, max_prefix)
    parts = {
        "train": (train, ex.take(~in_valid)),
        "valid": (train, ex.take(in_valid)) if ratio > 0 else (test, test_examples),
        "test": (test, test_examples),
    }
    tables = {part: examples_table(s, e) for part, (s, e) in parts.items()}
    used_train = train.take(np.arange(first, len(train)))
    lengths = np.r_[used_train.lengths, test.lengths]
    stats = {
        "clicks": int(lengths.sum()),
        "items": int(len(np.unique(np.r_[used_train.items, test.items]))),
        "average_length": float(lengths.mean()),
        "train": {"sessions": int(cut - first), "examples": int((~in_valid).sum())},
        "valid": ({"sessions": int(n_valid), "examples": int(in_valid.sum())} if ratio > 0 else
                  {"sessions": len(test), "examples": len(test_examples), "same_as": "test"}),
        "test": {"sessions": len(test), "examples": len(test_examples)},
    }
    return tables, stats


def sr_gnn_dataset(clicks: Clicks, params: dict) -> tuple[dict[str, dict], dict]:
    """SR-GNN's preparation of a raw click log into benchmark tables and statistics."""
    funnel: list[dict] = []
    train, test, split = sr_gnn_split(build_sessions(clicks, "last"), params, funnel)
    if len(train) == 0:
        raise ConvertError("the training split is empty (check test_days and the input's time range)")
    test = drop_unseen(test, train, int(params["min_session_length"]), funnel)
    tables, stats = benchmark(train, test, params)
    return tables, {**stats, "split_date": split, "funnel": funnel}


def prepared_dataset(train_clicks: Clicks, test_clicks: Clicks, params: dict) -> tuple[dict[str, dict], dict]:
    """A log already split into training and test sessions (the session-rec framework's
    ``*_train_full.txt`` / ``*_test.txt``): items ordered by time inside a session, a session
    dated by its last time; short sessions and unseen test items removed as above."""
    minimum = int(params["min_session_length"])
    funnel: list[dict] = []
    train, test = build_sessions(train_clicks, "max"), build_sessions(test_clicks, "max")
    funnel_step(funnel, "read", "every click (train and test files)", train, test)
    train, test = train.drop_short(minimum).sort_by_date(), test.drop_short(minimum).sort_by_date()
    funnel_step(funnel, "min_session_length", f"sessions of >= {minimum} clicks", train, test)
    if len(train) == 0:
        raise ConvertError("no training session has 2 items or more")
    test = drop_unseen(test, train, minimum, funnel)
    tables, stats = benchmark(train, test, params)
    return tables, {**stats, "funnel": funnel}
