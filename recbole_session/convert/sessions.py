"""Vectorised session logic shared by every session-aware recipe, with a per-step funnel.

Reference order (the SessionBERT4Rec preprocessing; see ``docs/converter.md``), each filter
applied once: items with too few rows, users with too few rows, the last N rows per user,
session split on a gap strictly greater than ``session_gap``, then users with too few sessions
or with any session that is too short. The ASARS preset (``split_first``) splits the raw rows
into sessions first and then filters items, drops short sessions and users with too few
sessions, as that paper describes. Selections of the input (``--keep``, a minimum rating) come
before everything. Ids become integer codes (arrow dictionary codes for text ids, so no Python
object per row); everything else is numpy on those codes: no per-row Python loop.

The funnel records rows, users, items and sessions (``None`` until sessions are cut) after
every step, so that a user sees which filter dropped the data.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from recbole_session.convert.errors import option_error
from recbole_session.convert.readers import Events
from recbole_session.literals import short

DROP_USER = "drop_user"
DROP_SESSION = "drop_session"
# parameter -> command-line flag, for messages
FLAGS = {
    "session_gap": "--session-gap", "min_item_inter": "--min-item-inter", "min_user_inter": "--min-user-inter",
    "max_user_inter": "--max-user-inter", "min_sessions": "--min-sessions",
    "min_session_length": "--min-session-length", "short_sessions": "--short-sessions",
}


@dataclass(frozen=True)
class SessionFilters:
    """Thresholds of the session-aware preparation; the defaults are the reference's, the values
    used are in ``properties/dataset/<name>.yaml``."""

    session_gap: float = 86_400  # seconds; a gap strictly greater starts a new session
    session_gap_inclusive: bool = False  # True: a gap equal to session_gap also starts one
    min_item_inter: int = 5  # drop items with fewer rows (0 or 1 = keep all)
    min_user_inter: int = 5  # drop users with fewer rows (0 or 1 = keep all)
    max_user_inter: int = 200  # keep the newest rows of each user (0 = keep all)
    min_sessions: int = 2  # drop users with fewer sessions
    min_session_length: int = 2  # sessions shorter than this are "short"
    short_sessions: str = DROP_USER  # drop_user: the user goes (reference); drop_session: the session
    split_first: bool = False  # split raw rows into sessions before the item/user filters (ASARS)

    @classmethod
    def from_config(cls, params: dict) -> SessionFilters:
        values = {}
        for f in fields(cls):
            if f.name not in params or params[f.name] is None:
                continue
            value = params[f.name]
            if f.type == "bool":
                value = value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
            elif f.type == "int":
                value = int(value)
            elif f.type == "float":
                value = float(value)
            values[f.name] = value
        filters = cls(**values)
        if filters.short_sessions not in (DROP_USER, DROP_SESSION):
            raise option_error(FLAGS["short_sessions"],
                               f"short_sessions must be {DROP_USER} or {DROP_SESSION}, not {short(filters.short_sessions)}")
        if not filters.session_gap >= 0:
            raise option_error(FLAGS["session_gap"], f"expected seconds >= 0, not {filters.session_gap:g}")
        for name in ("min_item_inter", "min_user_inter", "max_user_inter", "min_sessions", "min_session_length"):
            if getattr(filters, name) < 0:
                raise option_error(FLAGS[name], f"expected a count >= 0, not {getattr(filters, name)}")
        return filters


@dataclass
class Funnel:
    """Rows, users, items and sessions after each step (``sessions`` is ``None`` before the
    split)."""

    steps: list[dict] = field(default_factory=list)

    def add(self, step: str, rule: str, rows: int, users: int, items: int, sessions: int | None = None) -> None:
        self.steps.append({"step": step, "rule": rule, "rows": int(rows), "users": int(users),
                           "items": int(items), "sessions": None if sessions is None else int(sessions)})

    def same(self, step: str, rule: str) -> None:
        """A step that changed nothing (a filter that is off)."""
        self.steps.append({**self.steps[-1], "step": step, "rule": rule})


@dataclass
class Prepared:
    """The kept rows sorted by user (sorted ids) and time: ``user``/``item`` values and extra
    fields (numpy or arrow arrays), ``time`` (in the input's unit), ``session`` (1-based, dense,
    numbered in that order), ``dwell`` (time to the next row of the same session, 0 for a
    session's last row), the integer codes of users (in sorted order of the ids) and items, and
    the funnel."""

    user: Any
    item: Any
    time: np.ndarray
    session: np.ndarray
    dwell: np.ndarray
    fields: dict[str, Any]
    user_code: np.ndarray
    item_code: np.ndarray
    funnel: Funnel

    def __len__(self) -> int:
        return len(self.time)


def encode(values: Any, sort: bool) -> tuple[np.ndarray, int]:
    """Integer codes of ``values`` (in sorted order of the values when ``sort``) and the number
    of codes. Small-range integer ids are their own codes (no hashing); text ids are dictionary-
    encoded by arrow."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        encoded = pc.dictionary_encode(values)
        if isinstance(encoded, pa.ChunkedArray):
            encoded = encoded.combine_chunks()
        indices = encoded.indices.to_numpy()
        if not sort:
            return indices, len(encoded.dictionary)
        rank = np.empty(len(encoded.dictionary), dtype=np.int64)
        rank[pc.sort_indices(encoded.dictionary).to_numpy()] = np.arange(len(encoded.dictionary))
        return rank[indices], len(rank)
    values = np.asarray(values)
    if np.issubdtype(values.dtype, np.integer) and len(values):
        low, high = int(values.min()), int(values.max())
        small = max(4 * len(values), 1 << 20)
        if 0 <= low and high < small:  # the ids themselves (unused codes stay empty), 32-bit
            return values.astype(np.int32) if high < 2**31 else values, high + 1
        if high - low < small:
            return (values - low).astype(np.int32) if high - low < 2**31 else values - low, high - low + 1
    codes, uniques = pd.factorize(values, sort=sort)
    return codes, len(uniques)


def take(values: Any, index: np.ndarray) -> Any:
    """``values[index]`` for a numpy or an arrow array."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values.take(pa.array(index))
    return np.asarray(values)[index]


def _distinct(codes: np.ndarray, n: int) -> int:
    return int(np.count_nonzero(np.bincount(codes, minlength=n))) if len(codes) else 0


def _stable_order(user: np.ndarray, time: np.ndarray) -> np.ndarray:
    """Row order by user then time; ties keep file order (as the reference's stable sort)."""
    if len(time) and np.issubdtype(time.dtype, np.integer):
        low, span = int(time.min()), int(time.max()) - int(time.min()) + 1
        if (int(user.max()) + 1) * span < 2**62:
            # one stable sort of a combined key instead of two (integer times only)
            key = user.astype(np.int64)
            key *= span
            key += time
            key -= low
            return np.argsort(key, kind="stable")
    by_time = np.argsort(time, kind="stable")
    return by_time[np.argsort(user[by_time], kind="stable")]


def _group_starts(codes: np.ndarray) -> np.ndarray:
    starts = np.ones(len(codes), dtype=bool)
    starts[1:] = codes[1:] != codes[:-1]
    return starts


def session_starts(user: np.ndarray, time: np.ndarray, gap: float, inclusive: bool = False) -> np.ndarray:
    """For rows sorted by user then time: True where a session starts (a user's first row, or a
    gap to the previous row strictly greater than ``gap``; ``>=`` when ``inclusive``)."""
    starts = _group_starts(user)
    if len(time) > 1:
        step = np.diff(time)
        starts[1:] |= (step >= gap) if inclusive else (step > gap)
    return starts


def _last_n(user: np.ndarray, n: int) -> np.ndarray:
    """For rows sorted by user: True for each user's last ``n`` rows."""
    if len(user) == 0:
        return np.zeros(0, dtype=bool)
    starts = np.flatnonzero(_group_starts(user))
    size = np.diff(np.append(starts, len(user)))
    long = size > n  # only these users lose rows: their first size - n
    drop = np.zeros(len(user) + 1, dtype=np.int8)
    drop[starts[long]] = 1
    drop[starts[long] + size[long] - n] = -1
    return np.cumsum(drop[:-1], dtype=np.int8) == 0


def dwell_times(session: np.ndarray, time: np.ndarray) -> np.ndarray:
    """Time to the next row of the same session; 0 for a session's last row."""
    dwell = np.zeros(len(time), dtype=time.dtype)
    if len(time) > 1:
        same = session[1:] == session[:-1]
        dwell[:-1] = np.where(same, time[1:] - time[:-1], 0)
    return dwell


@dataclass
class _Kept:
    """The rows still kept, as parallel arrays: user and item codes, the row's index in the
    input, and, once sorted, times and (once cut) session numbers. Filters compress all of them
    at once; times are fetched only when the rows are sorted (less to move before)."""

    user: np.ndarray
    item: np.ndarray
    row: np.ndarray | None = None  # None: every input row, in order
    time: np.ndarray | None = None
    session: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.user)

    def where(self, mask: np.ndarray) -> _Kept:
        # positions, then takes: about three times cheaper than a boolean index per array
        index = np.flatnonzero(mask)
        return _Kept(self.user[index], self.item[index], index if self.row is None else self.row[index],
                     *(None if a is None else a[index] for a in (self.time, self.session)))

    def rows(self) -> np.ndarray:
        return np.arange(len(self)) if self.row is None else self.row

    def sessions(self) -> int | None:
        """Distinct sessions (their numbers are contiguous once cut)."""
        return None if self.session is None else int(_group_starts(self.session).sum()) if len(self) else 0


def prepare(events: Events, filters: SessionFilters) -> Prepared:
    """Apply the selections and the session-aware preparation to ``events``."""
    user_codes, n_users = encode(events.user, sort=True)
    item_codes, n_items = encode(events.item, sort=False)
    time = np.asarray(events.time)
    gap = filters.session_gap * events.unit
    rule = f"a gap {'>=' if filters.session_gap_inclusive else '>'} {filters.session_gap:g} s starts a session"
    funnel = Funnel()
    item_counts = np.bincount(item_codes, minlength=n_items)
    user_counts = np.bincount(user_codes, minlength=n_users)
    funnel.add("read", "every row", len(events), np.count_nonzero(user_counts), np.count_nonzero(item_counts))
    kept = _Kept(user_codes, item_codes)
    for step, text, mask in events.selections:
        kept = kept.where(mask if kept.row is None else mask[kept.row])
        item_counts = np.bincount(kept.item, minlength=n_items)
        user_counts = np.bincount(kept.user, minlength=n_users)
        funnel.add(step, text, len(kept), np.count_nonzero(user_counts), np.count_nonzero(item_counts))

    if filters.split_first:
        # ASARS: sessions are cut on the selected raw rows, then the support filters run
        kept = _sorted(kept, time)
        start = session_starts(kept.user, kept.time, gap, filters.session_gap_inclusive)
        kept.session = np.cumsum(start) - 1
        funnel.add("split", rule, len(kept), funnel.steps[-1]["users"], funnel.steps[-1]["items"], start.sum())

    # items with too few rows (counted over the selected rows), then users with too few rows
    if filters.min_item_inter > 1:
        good = item_counts >= filters.min_item_inter
        kept = kept.where(good[kept.item])
        user_counts = np.bincount(kept.user, minlength=n_users)
        funnel.add("min_item_inter", f"items with >= {filters.min_item_inter} rows", len(kept),
                   np.count_nonzero(user_counts), np.count_nonzero(good & (item_counts > 0)), kept.sessions())
    else:
        funnel.same("min_item_inter", "off")
    if filters.min_user_inter > 1:
        good = user_counts >= filters.min_user_inter
        kept = kept.where(good[kept.user])
        funnel.add("min_user_inter", f"users with >= {filters.min_user_inter} rows", len(kept),
                   np.count_nonzero(good & (user_counts > 0)), _distinct(kept.item, n_items), kept.sessions())
    else:
        funnel.same("min_user_inter", "off")

    if not filters.split_first:
        kept = _sorted(kept, time, filters.max_user_inter)
    elif filters.max_user_inter > 0:
        kept = kept.where(_last_n(kept.user, filters.max_user_inter))
    if filters.max_user_inter > 0:
        funnel.add("max_user_inter", f"each user's newest {filters.max_user_inter} rows", len(kept),
                   funnel.steps[-1]["users"], _distinct(kept.item, n_items), kept.sessions())
    else:
        funnel.same("max_user_inter", "off")

    if kept.session is None:
        start = session_starts(kept.user, kept.time, gap, filters.session_gap_inclusive)
        kept.session = np.cumsum(start) - 1
        funnel.add("split", rule, len(kept), funnel.steps[-1]["users"], funnel.steps[-1]["items"], start.sum())

    kept = _session_filters(kept, n_items, filters, funnel)
    session = np.cumsum(_group_starts(kept.session))  # dense, 1-based, in output order
    row = kept.rows()
    return Prepared(take(events.user, row), take(events.item, row), kept.time, session,
                    dwell_times(session, kept.time), {k: take(v, row) for k, v in events.fields.items()},
                    kept.user, kept.item, funnel)


def _sorted(kept: _Kept, time: np.ndarray, last_n: int = 0) -> _Kept:
    """``kept`` sorted by user and time (``time`` of every input row; ties in input order), cut
    to each user's newest ``last_n`` rows when ``last_n`` > 0 (before the other columns are
    reordered: less to move)."""
    kept_time = time if kept.row is None else time[kept.row]
    order = _stable_order(kept.user, kept_time)
    user = kept.user[order]
    if last_n > 0:
        newest = np.flatnonzero(_last_n(user, last_n))
        order, user = order[newest], user[newest]
    return _Kept(user, kept.item[order], order if kept.row is None else kept.row[order], kept_time[order],
                 None if kept.session is None else kept.session[order])


def _session_filters(kept: _Kept, n_items: int, filters: SessionFilters, funnel: Funnel) -> _Kept:
    """Short sessions (drop the user, or only the session) and users with too few sessions, on
    rows sorted by user and time whose session numbers are contiguous."""

    def record(step: str, rule: str) -> None:
        users = int(_group_starts(kept.user).sum()) if len(kept) else 0
        funnel.add(step, rule, len(kept), users, _distinct(kept.item, n_items), kept.sessions())

    if filters.min_session_length > 1 and len(kept):
        session_code = np.cumsum(_group_starts(kept.session)) - 1
        short = np.bincount(session_code)[session_code] < filters.min_session_length
        if filters.short_sessions == DROP_SESSION:
            keep = ~short
        else:
            user_group = np.cumsum(_group_starts(kept.user)) - 1
            keep = ~np.bincount(user_group, weights=short).astype(bool)[user_group]
        kept = kept.where(keep)
        what = "the user" if filters.short_sessions == DROP_USER else "the session"
        record("short_sessions", f"a session of < {filters.min_session_length} items drops {what}")
    else:
        funnel.same("short_sessions", "off")
    if filters.min_sessions > 1 and len(kept):
        user_group = np.cumsum(_group_starts(kept.user)) - 1
        n_sessions = np.bincount(user_group, weights=_group_starts(kept.session))
        kept = kept.where(n_sessions[user_group] >= filters.min_sessions)
        record("min_sessions", f"users with >= {filters.min_sessions} sessions")
    else:
        funnel.same("min_sessions", "off")
    return kept


def session_aware(df: pd.DataFrame, filters: SessionFilters) -> pd.DataFrame:
    """:func:`prepare` on a frame of ``user, item, time`` rows (seconds); returns the kept rows
    as a frame with the extra columns ``session`` and ``dwell``."""
    out = prepare(Events(df["user"].to_numpy(), df["item"].to_numpy(), df["time"].to_numpy()), filters)
    return pd.DataFrame({"user": out.user, "item": out.item, "time": out.time, "session": out.session,
                         "dwell": out.dwell}, copy=False)
