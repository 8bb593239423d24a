"""Vectorised session logic shared by every session-aware recipe.

The order of the filters is the reference preprocessing's (SPEC.md section 2), each applied
once: items with too few rows, users with too few rows, the last N rows per user, session
split on a gap strictly greater than ``session_gap``, then users with too few sessions or with
any session that is too short. Input and output are pandas frames with the columns
``user``, ``item`` and ``time`` (integer seconds); no per-row Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class SessionFilters:
    """Thresholds of the session-aware preparation; defaults are the paper's (SPEC.md §2)."""

    session_gap: int = 86_400  # seconds; a gap strictly greater starts a new session
    min_item_inter: int = 5  # drop items with fewer rows (0 = keep all)
    min_user_inter: int = 5  # drop users with fewer rows (0 = keep all)
    max_user_inter: int = 200  # keep the newest rows of each user (0 = keep all)
    min_sessions: int = 2  # drop users with fewer sessions
    min_session_length: int = 2  # drop users having any shorter session

    @classmethod
    def from_config(cls, params: dict) -> SessionFilters:
        known = {k: int(v) for k, v in params.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def sort_by_user_time(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of each user in time order; ties keep file order (a stable sort), as the reference."""
    return df.sort_values(["user", "time"], kind="mergesort").reset_index(drop=True)


def _drop_rare(df: pd.DataFrame, column: str, minimum: int) -> pd.DataFrame:
    if minimum <= 1:
        return df
    counts = df[column].map(df[column].value_counts())
    return df[counts.to_numpy() >= minimum]


def assign_sessions(df: pd.DataFrame, session_gap: int) -> pd.Series:
    """1-based global session numbers for rows sorted by user then time: a new session starts at
    each user's first row and wherever the gap to the previous row is strictly greater than
    ``session_gap`` (an equal gap stays in the session)."""
    user = df["user"].to_numpy()
    time = df["time"].to_numpy()
    new_user = np.ones(len(df), dtype=bool)
    new_user[1:] = user[1:] != user[:-1]
    gap = np.zeros(len(df), dtype=time.dtype)
    gap[1:] = time[1:] - time[:-1]
    starts = new_user | (gap > session_gap)
    return pd.Series(np.cumsum(starts), index=df.index, name="session")


def dwell_times(df: pd.DataFrame) -> np.ndarray:
    """Seconds to the next row of the same session; 0 for a session's last row."""
    time = df["time"].to_numpy()
    session = df["session"].to_numpy()
    dwell = np.zeros(len(df), dtype=np.int64)
    same = session[1:] == session[:-1]
    dwell[:-1] = np.where(same, time[1:] - time[:-1], 0)
    return dwell


def session_aware(df: pd.DataFrame, filters: SessionFilters) -> pd.DataFrame:
    """Apply the session-aware preparation to ``user, item, time`` rows.

    Returns the kept rows sorted by user and time with the extra columns ``session``
    (1-based, numbered in that order) and ``dwell`` (seconds to the next row of the session).
    """
    df = df[["user", "item", "time"]]
    df = _drop_rare(df, "item", filters.min_item_inter)
    df = _drop_rare(df, "user", filters.min_user_inter)
    df = sort_by_user_time(df)
    if filters.max_user_inter > 0:
        from_end = df.groupby("user", sort=False).cumcount(ascending=False)
        df = df[from_end.to_numpy() < filters.max_user_inter].reset_index(drop=True)
    df = df.assign(session=assign_sessions(df, filters.session_gap))

    session_len = df.groupby("session", sort=False)["session"].transform("size")
    per_user = df.groupby("user", sort=False)
    n_sessions = per_user["session"].transform("nunique")
    shortest = session_len.groupby(df["user"], sort=False).transform("min")
    keep = (n_sessions >= filters.min_sessions) & (shortest >= filters.min_session_length)
    df = df[keep.to_numpy()].reset_index(drop=True)
    # renumber sessions densely after the user filter, in (user, time) order
    df["session"] = pd.factorize(df["session"])[0] + 1
    df["dwell"] = dwell_times(df)
    return df
