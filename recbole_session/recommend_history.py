"""The events a recommendation is made from: every known event of every user, rebuilt once from
RecBole's sequential rows, as RecBole's right-padded ``<field>_list`` tensors (:class:`History`);
request slots (a user's events and a request's fresh ones); the dataset's time origin
(:class:`TimeAxis`) and its rule for a new session (:class:`SessionRule`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from recbole_session.recommend_requests import RecommendError

# the column that stands for the events' times in a dataset without a time field (session-based
# benchmark files): their order
ORDER = "__order__"


@dataclass(frozen=True)
class TimeAxis:
    """Raw times <-> the dataset's times (seconds after ``origin``, the converter's
    ``time_origin``; 0 for atomic files written by anything else)."""

    origin: float

    @classmethod
    def of(cls, config) -> TimeAxis:
        stats = Path(config["data_path"]) / f"{config['dataset']}.stats.json"
        if stats.is_file():
            origin = json.loads(stats.read_text(encoding="utf-8")).get("time_origin")
            if isinstance(origin, (int, float)) and not isinstance(origin, bool):
                return cls(origin)
        return cls(0)

    def relative(self, raw: float) -> float:
        return float(raw) - self.origin

    def absolute(self, relative: float) -> float:
        return float(relative) + self.origin


# ---------------------------------------------------------------------------------- history
@dataclass(frozen=True)
class Fields:
    """The field names the batch needs, read from the Config and the dataset."""

    user: str
    item: str
    time: str | None  # None: session-based benchmark files (no times)
    session: str | None
    dwell: str | None
    length: str
    suffix: str
    events: tuple[str, ...]  # every field that has a ``<field><suffix>`` history list

    @classmethod
    def of(cls, config, dataset) -> Fields:
        suffix = config["LIST_SUFFIX"]
        names = set(dataset.inter_feat.columns)
        events = tuple(f for f in dataset.inter_feat.columns if f + suffix in names)
        session = config["SESSION_ID_FIELD"] if config["SESSION_ID_FIELD"] in events else None
        dwell = config["DWELL_FIELD"] if config["DWELL_FIELD"] in events else None
        time = dataset.time_field if dataset.time_field in names else None  # benchmark files may have none
        return cls(dataset.uid_field, dataset.iid_field, time, session, dwell,
                   config["ITEM_LIST_LENGTH_FIELD"], suffix, events)


class History:
    """Every known event of every user (or request slot) in time order: one flat array per event
    field, a user's events contiguous (``offsets``), and the newest ``max_len`` events of each as
    RecBole's right-padded ``<field>_list`` tensors, so that a batch of requests is one gather.

    ``model_user`` is the user id the model is given for each row (the user itself for the
    dataset's history; for a request slot the known user it continues, or 0, RecBole's padding
    user, for a user the data never had: ``guest``). Without a time field (session-based
    benchmark files) the events' order stands for their times (:data:`ORDER`)."""

    def __init__(self, fields: Fields, users: np.ndarray, columns: dict[str, np.ndarray],
                 n_users: int, max_len: int, next_session: int, rule: SessionRule,
                 model_user: np.ndarray | None = None, guest: np.ndarray | None = None):
        self.fields, self.users, self.columns = fields, users, columns
        self.n_users, self.max_len, self.next_session, self.rule = n_users, max_len, next_session, rule
        self.model_user = np.arange(n_users) if model_user is None else model_user
        self.guest = np.zeros(n_users, bool) if guest is None else guest
        self.offsets = np.searchsorted(users, np.arange(n_users + 1))
        self.counts = np.diff(self.offsets)
        last = np.maximum(self.offsets[1:] - 1, 0)
        self.time_key = fields.time or ORDER
        self.time_dtype = columns[self.time_key].dtype
        self.last_time = columns[self.time_key][last].astype(np.float64) if len(users) else np.zeros(n_users)
        self.last_session = columns[fields.session][last] if fields.session and len(users) else None
        start = np.maximum(self.offsets[:-1], self.offsets[1:] - max_len)
        self.length = torch.from_numpy(self.offsets[1:] - start)
        index = start[:, None] + np.arange(max_len)
        valid = np.arange(max_len) < self.length.numpy()[:, None]
        index = np.where(valid, index, 0)
        self.lists = {}
        for name in fields.events:
            column = columns[name]
            values = column[index] if len(column) else np.zeros(index.shape + column.shape[1:], column.dtype)
            shape = valid.shape + (1,) * (values.ndim - 2)
            self.lists[name] = torch.from_numpy(np.where(valid.reshape(shape), values, 0))

    @classmethod
    def empty(cls, fields: Fields, dataset, max_len: int, rule: SessionRule) -> History:
        """No known user: the base of a session-based dataset, whose rows are examples, not
        events; every request brings its session's items."""
        columns = {}
        for name in fields.events:
            column = dataset.inter_feat[name].numpy()
            columns[name] = np.zeros((0,) + column.shape[1:], dtype=column.dtype)
        columns.setdefault(fields.time or ORDER, np.zeros(0, np.float64))
        return cls(fields, np.zeros(0, np.int64), columns, 0, max_len, 0, rule)

    @classmethod
    def from_dataset(cls, config, dataset, fields: Fields, rule: SessionRule, holdout: int = 0) -> History:
        """Rebuild the events from RecBole's sequential rows (row i of a user: the history list
        and its target): a user's events are the first row's one-item list, then every row's
        target. ``holdout`` leaves out each user's newest events (1: the history the test loader
        sees under leave-one-out, 2: valid's)."""
        if config["benchmark_filename"]:
            raise RecommendError(
                f"dataset '{config['dataset']}' is made of benchmark files (one row per example, "
                "not per event): recommend needs a session-aware dataset with a user's events"
            )
        feat = dataset.inter_feat
        user = feat[fields.user].numpy()
        order = np.argsort(user, kind="stable")  # RecBole's rows are in time order: stays per user
        user = user[order]
        first = np.r_[True, user[1:] != user[:-1]] if len(user) else np.zeros(0, bool)
        if (feat[fields.length].numpy()[order][first] != 1).any():
            raise RecommendError("dataset rows are not RecBole's sequential prefixes: a user's first row "
                                 "should hold a one-item history")
        target_at = np.arange(len(user)) + np.cumsum(first)
        first_at = target_at[first] - 1
        n = len(user) + int(first.sum())
        users = np.empty(n, dtype=np.int64)
        users[target_at], users[first_at] = user, user[first]
        columns = {}
        for name in fields.events:
            target = feat[name].numpy()[order]
            history = feat[name + fields.suffix].numpy()[order]
            column = np.empty((n,) + target.shape[1:], dtype=target.dtype)
            column[target_at], column[first_at] = target, history[first, 0]
            columns[name] = column
        if holdout:
            from_end = _rank_from_end(users)
            keep = from_end >= holdout
            if (np.bincount(users[keep], minlength=dataset.user_num)[np.unique(users)] == 0).any():
                raise RecommendError(f"holdout={holdout} leaves a user without events")
            users, columns = users[keep], {k: v[keep] for k, v in columns.items()}
        next_session = dataset.num(fields.session) if fields.session else 0
        return cls(fields, users, columns, dataset.user_num, config["MAX_ITEM_LIST_LENGTH"],
                   next_session, rule)

    def stored(self, time: np.ndarray) -> np.ndarray:
        """Times as the dataset stores them (RecBole keeps float32 unless the dataset class keeps
        float64, as SessionBERT4RecDataset does), so that they compare with the known events'."""
        with np.errstate(over="ignore"):  # past the type's range: inf, refused by the callers
            return np.asarray(time, dtype=np.float64).astype(self.time_dtype).astype(np.float64)

    @property
    def too_far(self) -> str:
        """Why a time that overflows the dataset's time type is refused (float32 ends near 3.4e38)."""
        return f"is beyond the dataset's times ({self.time_dtype}, at most {np.finfo(self.time_dtype).max:.3g})"

    def known(self, user: np.ndarray) -> np.ndarray:
        if not self.n_users:
            return np.zeros(np.shape(user), bool)
        return (user >= 0) & (user < self.n_users) & (self.counts[np.clip(user, 0, self.n_users - 1)] > 0)

    def slots(self, base: np.ndarray, slot: np.ndarray, item: np.ndarray, time: np.ndarray,
              where: list[str]) -> History:
        """A history of ``len(base)`` request slots: slot ``s`` holds the known events of user
        ``base[s]`` (none when -1: a user the data never had, or an anonymous session), then its
        fresh events (``slot``, ``item``: internal ids, ``time``: dataset times, each at or
        after the slot's last known event). Each fresh event continues its session or opens a new
        one by the session rule (a slot's first event always opens one), and the dwell of the
        event before it becomes the gap when the session goes on (the converter's dwell: seconds
        to the next event of the same session, 0 for the last). The dataset's history is left as
        it is: requests with events of their own do not see each other's."""
        f, n_slots = self.fields, len(base)
        time = self.stored(time)
        for i in np.nonzero(~np.isfinite(time))[0][:1]:
            raise RecommendError(f"{where[i]}: time {self.too_far}")
        order = np.lexsort((time, slot))
        slot, item, time = slot[order], item[order], time[order]
        where = [where[i] for i in order]
        known = base >= 0
        # per slot: its known user's last time, number of events and first row (none: -inf, 0, 0);
        # indexed by the known slots only, so that a history without users (session-based) works too
        last, old, first = np.full(n_slots, -np.inf), np.zeros(n_slots, np.int64), np.zeros(n_slots, np.int64)
        last[known], old[known], first[known] = (self.last_time[base[known]], self.counts[base[known]],
                                                 self.offsets[base[known]])
        for i in np.nonzero(time < last[slot])[0][:1]:
            raise RecommendError(f"{where[i]}: time is before the user's last known event; fresh events come after it")
        total = old + np.bincount(slot, minlength=n_slots)
        start = np.cumsum(total) - total
        users = np.repeat(np.arange(n_slots), total)
        # the known events' rows in the dataset's arrays and in the slots', then the fresh ones'
        within = np.arange(old.sum()) - np.repeat(np.cumsum(old) - old, old)
        source, target = np.repeat(first, old) + within, np.repeat(start, old) + within
        fresh = start[slot] + old[slot] + _rank_in_group(slot)
        columns = {}
        for name, column in self.columns.items():
            new = np.zeros((len(users),) + column.shape[1:], dtype=column.dtype)
            new[target] = column[source]
            if name == f.item:
                new[fresh] = item
            elif name == self.time_key:
                new[fresh] = time
            columns[name] = new
        times = columns[self.time_key].astype(np.float64)
        next_session = self.next_session
        for at in fresh:
            opens = at == start[users[at]] or bool(self.rule.opens(times[at] - times[at - 1]))
            if f.session:
                if opens:
                    columns[f.session][at] = next_session
                    next_session += 1
                else:
                    columns[f.session][at] = columns[f.session][at - 1]
            if f.dwell and not opens:
                columns[f.dwell][at - 1] = times[at] - times[at - 1]
        return History(f, users, columns, n_slots, self.max_len, next_session, self.rule,
                       model_user=np.where(known, base, 0), guest=~known)

    def seen(self, user: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row, item) of every known event of each user of a batch."""
        counts = self.counts[user]
        rows = np.repeat(np.arange(len(user)), counts)
        starts = np.repeat(self.offsets[user] - np.r_[0, np.cumsum(counts)[:-1]], counts)
        return rows, self.columns[self.fields.item][starts + np.arange(len(rows))]


def _rank_in_group(groups: np.ndarray) -> np.ndarray:
    """For sorted group labels: 0 for each group's first element, 1 for the next, ..."""
    return np.arange(len(groups)) - np.searchsorted(groups, groups, side="left")


def _rank_from_end(users: np.ndarray) -> np.ndarray:
    """For contiguous user groups: 0 for each user's last element, 1 for the one before, ..."""
    ends = np.searchsorted(users, users, side="right")
    return ends - 1 - np.arange(len(users))


@dataclass(frozen=True)
class SessionRule:
    """When a gap opens a new session: the dataset's ``session_gap`` (None: never), strictly
    greater, or also equal with the converter's ``session_gap_inclusive``."""

    gap: float | None
    inclusive: bool = False

    @classmethod
    def of(cls, config) -> SessionRule:
        convert = config["convert"] if "convert" in config else None
        inclusive = bool((convert or {}).get("session_gap_inclusive", False))
        gap = config["session_gap"] if "session_gap" in config else None
        return cls(float(gap) if gap else None, inclusive)

    def opens(self, gap: np.ndarray) -> np.ndarray:
        gap = np.asarray(gap, dtype=np.float64)
        if self.gap is None:
            return np.zeros(gap.shape, bool)
        return (gap >= self.gap) if self.inclusive else (gap > self.gap)


def has_repeats(users: np.ndarray, items: np.ndarray, n_items: int) -> bool:
    """Whether some user has some item twice. Without repeats a user's items are never a next
    item in the data, so recommendations leave them out by default (``--exclude-seen``)."""
    return len(np.unique(users.astype(np.int64) * n_items + items)) < len(items)
