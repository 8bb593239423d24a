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
                               f"short_sessions must be {DROP_USER} or {DROP_SESSION}, not {filters.short_sessions!r}")
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
        if 0 <= low and high < small:
            return values, high + 1  # the ids themselves (no copy); unused codes are empty
        if high - low < small:
            return values - low, high - low + 1
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
    ends = np.append(starts[1:], len(user))  # one past each group
    end_of_row = np.repeat(ends, np.diff(np.append(starts, len(user))))
    return end_of_row - np.arange(len(user)) <= n


def dwell_times(session: np.ndarray, time: np.ndarray) -> np.ndarray:
    """Time to the next row of the same session; 0 for a session's last row."""
    dwell = np.zeros(len(time), dtype=time.dtype)
    if len(time) > 1:
        same = session[1:] == session[:-1]
        dwell[:-1] = np.where(same, time[1:] - time[:-1], 0)
    return dwell


def prepare(events: Events, filters: SessionFilters) -> Prepared:
    """Apply the selections and the session-aware preparation to ``events``."""
    user_codes, n_users = encode(events.user, sort=True)
    item_codes, n_items = encode(events.item, sort=False)
    time = events.time
    gap = filters.session_gap * events.unit
    funnel = Funnel()
    item_counts = np.bincount(item_codes, minlength=n_items)
    user_counts = np.bincount(user_codes, minlength=n_users)
    funnel.add("read", "every row", len(events), np.count_nonzero(user_counts), np.count_nonzero(item_counts))
    keep = None  # None: every row
    for step, rule, mask in events.selections:
        keep = mask if keep is None else keep & mask
        item_counts = np.bincount(item_codes[keep], minlength=n_items)
        user_counts = np.bincount(user_codes[keep], minlength=n_users)
        funnel.add(step, rule, int(item_counts.sum()), np.count_nonzero(user_counts), np.count_nonzero(item_counts))
    rows = np.arange(len(events)) if keep is None else np.flatnonzero(keep)

    session_of_row = None
    if filters.split_first:
        # ASARS: sessions are cut on the selected raw rows, then the support filters run
        order = rows[_stable_order(user_codes[rows], time[rows])]
        start = session_starts(user_codes[order], time[order], gap, filters.session_gap_inclusive)
        session_of_row = np.zeros(len(events), dtype=np.int64)
        session_of_row[order] = np.cumsum(start) - 1
        funnel.add("split", f"a gap {'>=' if filters.session_gap_inclusive else '>'} {filters.session_gap:g} s "
                   "starts a session", len(order), funnel.steps[-1]["users"], funnel.steps[-1]["items"], start.sum())

    def sessions_of(selected: np.ndarray) -> int | None:
        return None if session_of_row is None else _distinct(session_of_row[selected], len(events))

    # items with too few rows (counted over the selected rows), then users with too few rows
    if filters.min_item_inter > 1:
        good = item_counts >= filters.min_item_inter
        rows = rows[good[item_codes[rows]]]
        user_counts = np.bincount(user_codes[rows], minlength=n_users)
        funnel.add("min_item_inter", f"items with >= {filters.min_item_inter} rows", len(rows),
                   np.count_nonzero(user_counts), np.count_nonzero(good & (item_counts > 0)), sessions_of(rows))
    else:
        funnel.same("min_item_inter", "off")
    if filters.min_user_inter > 1:
        good = user_counts >= filters.min_user_inter
        rows = rows[good[user_codes[rows]]]
        funnel.add("min_user_inter", f"users with >= {filters.min_user_inter} rows", len(rows),
                   np.count_nonzero(good & (user_counts > 0)), _distinct(item_codes[rows], n_items), sessions_of(rows))
    else:
        funnel.same("min_user_inter", "off")

    if filters.split_first:
        if len(rows) < len(order):
            alive = np.zeros(len(events), dtype=bool)
            alive[rows] = True
            order = order[alive[order]]
    else:
        order = rows[_stable_order(user_codes[rows], time[rows])]
    if filters.max_user_inter > 0:
        order = order[_last_n(user_codes[order], filters.max_user_inter)]
        sessions = None if session_of_row is None else _distinct(session_of_row[order], len(events))
        funnel.add("max_user_inter", f"each user's newest {filters.max_user_inter} rows", len(order),
                   funnel.steps[-1]["users"], _distinct(item_codes[order], n_items), sessions)
    else:
        funnel.same("max_user_inter", "off")

    if session_of_row is None:
        start = session_starts(user_codes[order], time[order], gap, filters.session_gap_inclusive)
        session = np.cumsum(start) - 1
        funnel.add("split", f"a gap {'>=' if filters.session_gap_inclusive else '>'} {filters.session_gap:g} s "
                   "starts a session", len(order), funnel.steps[-1]["users"], funnel.steps[-1]["items"], start.sum())
    else:
        session = session_of_row[order]

    order, session = _session_filters(order, session, user_codes, item_codes, n_items, filters, funnel)
    time = time[order]
    session = np.cumsum(_group_starts(session))  # dense, 1-based, in output order
    return Prepared(take(events.user, order), take(events.item, order), time, session,
                    dwell_times(session, time), {k: take(v, order) for k, v in events.fields.items()},
                    user_codes[order], item_codes[order], funnel)


def _session_filters(order: np.ndarray, session: np.ndarray, user_codes: np.ndarray, item_codes: np.ndarray,
                     n_items: int, filters: SessionFilters, funnel: Funnel) -> tuple[np.ndarray, np.ndarray]:
    """Short sessions (drop the user, or only the session) and users with too few sessions.
    ``order``: row indices sorted by user and time; ``session``: their session numbers (equal
    numbers are contiguous)."""

    def record(step: str, rule: str) -> None:
        kept_user = user_codes[order]
        funnel.add(step, rule, len(order), _group_starts(kept_user).sum() if len(order) else 0,
                   _distinct(item_codes[order], n_items), _group_starts(session).sum() if len(order) else 0)

    user = user_codes[order]
    if filters.min_session_length > 1 and len(order):
        session_code = np.cumsum(_group_starts(session)) - 1
        length = np.bincount(session_code)
        short = length[session_code] < filters.min_session_length
        if filters.short_sessions == DROP_SESSION:
            keep = ~short
        else:
            user_group = np.cumsum(_group_starts(user)) - 1
            user_has_short = np.bincount(user_group, weights=short).astype(bool)
            keep = ~user_has_short[user_group]
        order, session, user = order[keep], session[keep], user[keep]
        what = "the user" if filters.short_sessions == DROP_USER else "the session"
        record("short_sessions", f"a session of < {filters.min_session_length} items drops {what}")
    else:
        funnel.same("short_sessions", "off")
    if filters.min_sessions > 1 and len(order):
        user_group = np.cumsum(_group_starts(user)) - 1
        n_sessions = np.bincount(user_group, weights=_group_starts(session))
        keep = n_sessions[user_group] >= filters.min_sessions
        order, session = order[keep], session[keep]
        record("min_sessions", f"users with >= {filters.min_sessions} sessions")
    else:
        funnel.same("min_sessions", "off")
    return order, session


def session_aware(df: pd.DataFrame, filters: SessionFilters) -> pd.DataFrame:
    """:func:`prepare` on a frame of ``user, item, time`` rows (seconds); returns the kept rows
    as a frame with the extra columns ``session`` and ``dwell``."""
    out = prepare(Events(df["user"].to_numpy(), df["item"].to_numpy(), df["time"].to_numpy()), filters)
    return pd.DataFrame({"user": out.user, "item": out.item, "time": out.time, "session": out.session,
                         "dwell": out.dwell}, copy=False)
