"""Vectorised session logic shared by every session-aware recipe.

Reference order (SPEC.md section 2, the SessionBERT4Rec code), each filter applied once: items
with too few rows, users with too few rows, the last N rows per user, session split on a gap
strictly greater than ``session_gap``, then users with too few sessions or with any session
that is too short. The ASARS preset (``split_first``) splits the raw rows into sessions first
and then filters items, drops short sessions and users with too few sessions, as that paper
describes. Everything is numpy on integer codes: no per-row Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

DROP_USER = "drop_user"
DROP_SESSION = "drop_session"


@dataclass(frozen=True)
class SessionFilters:
    """Thresholds of the session-aware preparation; the defaults are the reference's (SPEC.md §2),
    the values used are in ``properties/dataset/<name>.yaml``."""

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
            raise ValueError(f"short_sessions must be {DROP_USER} or {DROP_SESSION}, not {filters.short_sessions!r}")
        return filters


def _codes(values: np.ndarray, sort: bool) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of ``values`` (in sorted order of the values when ``sort``) and the values
    of the codes. Small-range integer ids are their own codes (no hashing)."""
    if np.issubdtype(values.dtype, np.integer) and len(values):
        low, high = int(values.min()), int(values.max())
        if high - low < max(4 * len(values), 1 << 20):
            return values - low, np.arange(low, high + 1, dtype=values.dtype)
    return pd.factorize(values, sort=sort)


def _count_mask(codes: np.ndarray, keep: np.ndarray, minimum: int) -> np.ndarray:
    """``keep`` and the code of the row has at least ``minimum`` kept rows."""
    if minimum <= 1:
        return keep
    counts = np.bincount(codes[keep], minlength=int(codes.max()) + 1 if len(codes) else 0)
    return keep & (counts[codes] >= minimum)


def _stable_order(user: np.ndarray, time: np.ndarray) -> np.ndarray:
    """Row order by user then time; ties keep file order (as the reference's stable sort)."""
    if len(time) and np.issubdtype(time.dtype, np.integer):
        low, span = int(time.min()), int(time.max()) - int(time.min()) + 1
        if (int(user.max()) + 1) * span < 2**62:
            # one stable sort of a combined key instead of two (integer times only)
            return np.argsort(user.astype(np.int64) * span + (time - low), kind="stable")
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
    index = np.arange(len(user))
    group = np.cumsum(_group_starts(user)) - 1
    ends = np.append(np.flatnonzero(_group_starts(user))[1:], len(user))  # one past each group
    return ends[group] - index <= n


def dwell_times(session: np.ndarray, time: np.ndarray) -> np.ndarray:
    """Seconds to the next row of the same session; 0 for a session's last row."""
    dwell = np.zeros(len(time), dtype=time.dtype)
    if len(time) > 1:
        same = session[1:] == session[:-1]
        dwell[:-1] = np.where(same, time[1:] - time[:-1], 0)
    return dwell


def session_aware(df: pd.DataFrame, filters: SessionFilters) -> pd.DataFrame:
    """Apply the session-aware preparation to ``user, item, time`` rows.

    Returns the kept rows sorted by user (sorted ids) and time with the extra columns
    ``session`` (1-based, dense, numbered in that order) and ``dwell`` (seconds to the next row
    of the same session).
    """
    user_codes, user_values = _codes(df["user"].to_numpy(), sort=True)
    item_codes = _codes(df["item"].to_numpy(), sort=False)[0]
    time = df["time"].to_numpy()
    keep = np.ones(len(df), dtype=bool)

    if filters.split_first:
        # ASARS: sessions are cut on the raw rows, then the support filters run
        order = _stable_order(user_codes, time)
        start = session_starts(user_codes[order], time[order], filters.session_gap, filters.session_gap_inclusive)
        session = np.empty(len(df), dtype=np.int64)
        session[order] = np.cumsum(start) - 1
        keep = _count_mask(item_codes, keep, filters.min_item_inter)
        keep = _count_mask(user_codes, keep, filters.min_user_inter)
        order = order[keep[order]]
        if filters.max_user_inter > 0:
            order = order[_last_n(user_codes[order], filters.max_user_inter)]
        session = session[order]
    else:
        keep = _count_mask(item_codes, keep, filters.min_item_inter)
        keep = _count_mask(user_codes, keep, filters.min_user_inter)
        rows = np.flatnonzero(keep)
        order = rows[_stable_order(user_codes[rows], time[rows])]
        if filters.max_user_inter > 0:
            order = order[_last_n(user_codes[order], filters.max_user_inter)]
        start = session_starts(user_codes[order], time[order], filters.session_gap, filters.session_gap_inclusive)
        session = np.cumsum(start) - 1

    order, session = _session_filters(order, session, user_codes, filters)
    time = time[order]
    session = np.cumsum(_group_starts(session))  # dense, 1-based, in output order
    return pd.DataFrame({
        "user": np.asarray(user_values)[user_codes[order]],
        "item": df["item"].to_numpy()[order],
        "time": time,
        "session": session,
        "dwell": dwell_times(session, time),
    }, copy=False)


def _session_filters(order: np.ndarray, session: np.ndarray, user_codes: np.ndarray,
                     filters: SessionFilters) -> tuple[np.ndarray, np.ndarray]:
    """Short sessions (drop the user, or only the session) and users with too few sessions.
    ``order``: row indices sorted by user and time; ``session``: their session numbers (equal
    numbers are contiguous)."""
    user = user_codes[order]
    session_code = np.cumsum(_group_starts(session)) - 1
    length = np.bincount(session_code)
    short = length[session_code] < filters.min_session_length
    if filters.short_sessions == DROP_SESSION:
        keep = ~short
    else:
        user_group = np.cumsum(_group_starts(user)) - 1
        user_has_short = np.bincount(user_group, weights=short).astype(bool) if len(user) else short
        keep = ~user_has_short[user_group] if len(user) else short
    order, session, user = order[keep], session[keep], user[keep]
    if len(order) == 0:
        return order, session
    starts = _group_starts(session)
    user_group = np.cumsum(_group_starts(user)) - 1
    n_sessions = np.bincount(user_group, weights=starts)
    keep = n_sessions[user_group] >= filters.min_sessions
    return order[keep], session[keep]
