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

With ``chunk_rows`` (the converter's ``--chunk-rows``), the steps after the selections run on
groups of consecutive users (in output order) of about that many rows each: every step from
there on is per user, but for the item filter, which reads the item counts of the whole input
(computed first). The funnel and the statistics are summed over the groups (distinct items as
masks), sessions are numbered on from group to group, and only each group's kept input rows and
session numbers are kept (:class:`Partitioned`), so the working memory is that of one group; the
output is the same, byte for byte.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from recbole_session.convert.errors import option_error
from recbole_session.convert.readers import Coded, Events
from recbole_session.convert.stats import (
    combine_session_aware,
    session_aware_part,
    session_aware_stats,
)
from recbole_session.literals import short

OFF = "off"  # the funnel rule of a step that did not run
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
    split). Items come as a mask of the item codes present; the funnel keeps their count, or,
    with ``masks`` (one group of users), the mask itself, so that groups can be merged."""

    steps: list[dict] = field(default_factory=list)
    masks: bool = False

    def add(self, step: str, rule: str, rows: int, users: int, items: np.ndarray | int,
            sessions: int | None = None) -> None:
        if not self.masks:
            items = int(np.count_nonzero(items)) if isinstance(items, np.ndarray) else int(items)
        self.steps.append({"step": step, "rule": rule, "rows": int(rows), "users": int(users),
                           "items": items, "sessions": None if sessions is None else int(sessions)})

    def same(self, step: str, rule: str) -> None:
        """A step that changed nothing (a filter that is off)."""
        self.steps.append({**self.steps[-1], "step": step, "rule": rule})

    def merge(self, group: list[dict]) -> None:
        """Add one group's steps (masks) to the groups' running total (the same steps)."""
        if len(self.steps) < len(group):
            self.steps = [{**s, "items": s["items"].copy()} for s in group]
            return
        for total, step in zip(self.steps, group):
            total["rows"] += step["rows"]
            total["users"] += step["users"]
            total["items"] |= step["items"]
            if total["sessions"] is not None:
                total["sessions"] += step["sessions"]
            if total["rule"] == OFF:  # a group left empty skips a filter that the others ran
                total["rule"] = step["rule"]


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

    def time_min(self) -> Any:
        return self.time.min()

    def stats(self) -> dict:
        return session_aware_stats(self.user_code, self.item_code, self.session)

    def pieces(self) -> Iterator[tuple[Any, Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]]:
        """The output rows as ``(user, item, time, session, dwell, fields)``: here one piece."""
        yield self.user, self.item, self.time, self.session, self.dwell, self.fields


@dataclass
class Partitioned:
    """:func:`prepare`'s result with ``chunk_rows``: per group of users (in output order) the
    kept input rows (sorted by user and time) and their sessions (numbered on across groups),
    the merged statistics and funnel; the output columns are made one group at a time."""

    events: Events
    groups: list[tuple[np.ndarray, np.ndarray]]
    stats_parts: list[dict]
    funnel: Funnel

    def __len__(self) -> int:
        return sum(len(rows) for rows, _ in self.groups)

    def time_min(self) -> Any:
        time = np.asarray(self.events.time)
        return min(time[rows].min() for rows, _ in self.groups if len(rows))

    def stats(self) -> dict:
        return combine_session_aware(self.stats_parts)

    def pieces(self) -> Iterator[tuple[Any, Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]]:
        time = np.asarray(self.events.time)
        for rows, session in self.groups:
            kept_time = time[rows]
            yield (take(self.events.user, rows), take(self.events.item, rows), kept_time, session,
                   dwell_times(session, kept_time), {k: take(v, rows) for k, v in self.events.fields.items()})


def encode(values: Any, sort: bool) -> tuple[np.ndarray, int]:
    """Integer codes of ``values`` (in sorted order of the values when ``sort``) and the number
    of codes. Small-range integer ids are their own codes (no hashing); text ids are dictionary-
    encoded by arrow, or come as codes already (:class:`Coded`)."""
    if isinstance(values, Coded):  # already codes (the streamed read)
        n = len(values.dictionary)
        if not sort:
            return values.codes, n
        rank = np.empty(n, dtype=np.int32 if n < 2**31 else np.int64)
        rank[pc.sort_indices(values.dictionary).to_numpy()] = np.arange(n)
        return rank[values.codes], n
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
    """``values[index]`` for a numpy or an arrow array or a :class:`Coded`."""
    if isinstance(values, Coded):
        return values.take(index)
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values.take(pa.array(index))
    return np.asarray(values)[index]


def _present(codes: np.ndarray, n: int) -> np.ndarray:
    """Which of the ``n`` codes occur in ``codes``."""
    return np.bincount(codes, minlength=n) > 0 if len(codes) else np.zeros(n, dtype=bool)


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


def prepare(events: Events, filters: SessionFilters, chunk_rows: int = 0) -> Prepared | Partitioned:
    """Apply the selections and the session-aware preparation to ``events``; with
    ``chunk_rows`` > 0 and more selected rows than that, by groups of users of about that many
    rows (:class:`Partitioned`, the same output)."""
    user_codes, n_users = encode(events.user, sort=True)
    item_codes, n_items = encode(events.item, sort=False)
    time = np.asarray(events.time)
    funnel = Funnel()
    item_counts = np.bincount(item_codes, minlength=n_items)
    user_counts = np.bincount(user_codes, minlength=n_users)
    funnel.add("read", "every row", len(events), np.count_nonzero(user_counts), item_counts > 0)
    kept = _Kept(user_codes, item_codes)
    for step, text, mask in events.selections:
        kept = kept.where(mask if kept.row is None else mask[kept.row])
        item_counts = np.bincount(kept.item, minlength=n_items)
        user_counts = np.bincount(kept.user, minlength=n_users)
        funnel.add(step, text, len(kept), np.count_nonzero(user_counts), item_counts > 0)
    if 0 < chunk_rows < len(kept):
        return _by_groups(events, kept, time, user_counts, item_counts, filters, funnel, chunk_rows)
    kept = _per_user(kept, time, user_counts, item_counts, filters, funnel, events.unit)
    session = np.cumsum(_group_starts(kept.session))  # dense, 1-based, in output order
    row = kept.rows()
    return Prepared(take(events.user, row), take(events.item, row), kept.time, session,
                    dwell_times(session, kept.time), {k: take(v, row) for k, v in events.fields.items()},
                    kept.user, kept.item, funnel)


def _by_groups(events: Events, kept: _Kept, time: np.ndarray, user_counts: np.ndarray, item_counts: np.ndarray,
               filters: SessionFilters, funnel: Funnel, chunk_rows: int) -> Partitioned:
    """:func:`_per_user` on groups of consecutive users (user codes are in output order) of
    about ``chunk_rows`` selected rows each; the item filter uses the counts of every row."""
    n_items = len(item_counts)
    before = np.cumsum(user_counts) - user_counts  # selected rows of the users before each
    of_user = before // chunk_rows
    # 16-bit group numbers: a scan per group finds its rows (in input order) without a row-sized
    # index of every row
    group = of_user.astype(np.int16 if of_user[-1] < 2**15 else np.int64)[kept.user]
    n_groups = int(of_user[-1]) + 1
    del before, of_user
    row_type = np.int32 if len(events) < 2**31 else np.int64  # half the memory of the kept rows
    groups, parts, merged, numbered = [], [], Funnel(masks=True), 0
    for number in range(n_groups):
        index = np.flatnonzero(group == number)
        if len(index) == 0:
            continue
        part = _Kept(kept.user[index], kept.item[index], index if kept.row is None else kept.row[index])
        local = Funnel(masks=True)
        users = np.bincount(part.user, minlength=len(user_counts))
        local.add("selected", "", len(part), np.count_nonzero(users), _present(part.item, n_items))
        part = _per_user(part, time, users, item_counts, filters, local, events.unit)
        merged.merge(local.steps[1:])
        session = np.cumsum(_group_starts(part.session))  # 1-based inside the group
        parts.append(session_aware_part(part.user, part.item, session, n_items))
        if len(part):
            groups.append((part.rows().astype(row_type), session + numbered))
            numbered += int(session[-1])
    for step in merged.steps:
        funnel.add(step["step"], step["rule"], step["rows"], step["users"], step["items"], step["sessions"])
    return Partitioned(events, groups, parts, funnel)


def _per_user(kept: _Kept, time: np.ndarray, user_counts: np.ndarray, item_counts: np.ndarray,
              filters: SessionFilters, funnel: Funnel, unit: int) -> _Kept:
    """The steps after the selections: every one is per user but the item filter, which uses
    ``item_counts`` (of every selected row); ``user_counts`` are ``kept``'s rows per user."""
    n_users, n_items = len(user_counts), len(item_counts)
    gap = filters.session_gap * unit
    rule = f"a gap {'>=' if filters.session_gap_inclusive else '>'} {filters.session_gap:g} s starts a session"
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
                   np.count_nonzero(user_counts), _present(kept.item, n_items), kept.sessions())
    else:
        funnel.same("min_item_inter", OFF)
    if filters.min_user_inter > 1:
        good = user_counts >= filters.min_user_inter
        kept = kept.where(good[kept.user])
        funnel.add("min_user_inter", f"users with >= {filters.min_user_inter} rows", len(kept),
                   np.count_nonzero(good & (user_counts > 0)), _present(kept.item, n_items), kept.sessions())
    else:
        funnel.same("min_user_inter", OFF)

    if not filters.split_first:
        kept = _sorted(kept, time, filters.max_user_inter)
    elif filters.max_user_inter > 0:
        kept = kept.where(_last_n(kept.user, filters.max_user_inter))
    if filters.max_user_inter > 0:
        funnel.add("max_user_inter", f"each user's newest {filters.max_user_inter} rows", len(kept),
                   funnel.steps[-1]["users"], _present(kept.item, n_items), kept.sessions())
    else:
        funnel.same("max_user_inter", OFF)

    if kept.session is None:
        start = session_starts(kept.user, kept.time, gap, filters.session_gap_inclusive)
        kept.session = np.cumsum(start) - 1
        funnel.add("split", rule, len(kept), funnel.steps[-1]["users"], funnel.steps[-1]["items"], start.sum())

    return _session_filters(kept, n_items, filters, funnel)


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
        funnel.add(step, rule, len(kept), users, _present(kept.item, n_items), kept.sessions())

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
        funnel.same("short_sessions", OFF)
    if filters.min_sessions > 1 and len(kept):
        user_group = np.cumsum(_group_starts(kept.user)) - 1
        n_sessions = np.bincount(user_group, weights=_group_starts(kept.session))
        kept = kept.where(n_sessions[user_group] >= filters.min_sessions)
        record("min_sessions", f"users with >= {filters.min_sessions} sessions")
    else:
        funnel.same("min_sessions", OFF)
    return kept


def session_aware(df: pd.DataFrame, filters: SessionFilters) -> pd.DataFrame:
    """:func:`prepare` on a frame of ``user, item, time`` rows (seconds); returns the kept rows
    as a frame with the extra columns ``session`` and ``dwell``."""
    out = prepare(Events(df["user"].to_numpy(), df["item"].to_numpy(), df["time"].to_numpy()), filters)
    return pd.DataFrame({"user": out.user, "item": out.item, "time": out.time, "session": out.session,
                         "dwell": out.dwell}, copy=False)
