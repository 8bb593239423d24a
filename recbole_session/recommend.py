"""Recommendations for a live request: this user, at this time, in the current session or a new one.

    python -m recbole_session.recommend CKPT --user U [--user U2 ...] [--at TIME] [--topk K]
        [--events FILE] [--requests FILE] [--exclude-seen | --keep-seen] [--out FILE]
        [--data_path DIR] [--batch-size N]

and, in code, :class:`Recommender` (``Recommender.from_checkpoint(path).recommend("196", at="+60")``).

A request is answered exactly as RecBole's test loader would present it to the model, with the
request as the target row: the history fields (``item_id_list``, ``item_length``,
``timestamp_list``, ``session_id_list``, ``dwell_list``, ... : every ``<field>_list`` of the
dataset) hold the user's newest ``MAX_ITEM_LIST_LENGTH`` known events, and the target row's own
``timestamp`` / ``session_id`` are the request's time and session; then the model's own
``full_sort_predict`` scores every item. Nothing else is added, so a session-aware model decides
by itself what a new session means (SessionBERT4Rec appends a session token and advances the
segment, as in its evaluation).

Times: ``at`` is either absolute, in the raw data's unit (the converter writes times relative to
the dataset's first time and keeps that origin in ``<dataset>.stats.json``), or ``+SECONDS``
after the user's last known event; the default ``+1`` continues the current session. A request
opens a new session when its gap to the last known event exceeds the dataset's ``session_gap``
(strictly, or also when equal with the converter's ``session_gap_inclusive``): its session id is
then one the dataset has never used.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import pickle
import signal
import stat
import sys
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from recbole.config import Config
from recbole.data.dataset import Dataset
from recbole.data.interaction import Interaction
from recbole.utils import ModelType

from recbole_session.build import from_checkpoint
from recbole_session.cli import ArgumentParser, UsageError, exit_with, fail
from recbole_session.files import atomic_path, check_output, os_reason, write_error
from recbole_session.literals import SHORT_REPR, short

# the default request time: one second after the user's last known event (the current session)
DEFAULT_AT = "+1"
EVENT_COLUMNS = ("user", "item", "time")
REQUEST_COLUMNS = ("user", "time")
USER_TYPES = (str, int, np.integer)  # an original user id, as text or as a number
OUTPUT_COLUMNS = ["user", "rank", "item", "score"]
# the largest --requests / --events file read (about 8 million requests of "user,+SECONDS"): a
# bigger batch is several runs, and a file of gigabytes is refused before it is read
MAX_INPUT_BYTES = 100 * 2**20
# the most unknown items or users one warning lists (it says how many more)
MAX_LISTED = 5
# exit status when the reader of stdout went away (`... | head`), as a shell reports SIGPIPE
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE


class RecommendError(UsageError):
    """Bad input (checkpoint, user, time, events, requests or output), said in one line."""


class RecommendWarning(UserWarning):
    """Something skipped or answered by the popularity fallback (an unknown item or user)."""


# ---------------------------------------------------------------------------------- times
@dataclass(frozen=True)
class At:
    """A request time: ``relative`` seconds after the user's last known event, or ``absolute``
    in the raw data's unit."""

    value: float
    relative: bool

    @classmethod
    def parse(cls, text: Any, where: str = "--at") -> At:
        if text is None or (isinstance(text, str) and not text.strip()):
            text = DEFAULT_AT
        if isinstance(text, At):
            return text
        if isinstance(text, (int, float, np.integer, np.floating)) and not isinstance(text, bool):
            value, relative = float(text), False
        else:
            raw = str(text).strip()
            relative = raw.startswith("+")
            try:
                value = float(raw[1:] if relative else raw)
            except ValueError:
                value = math.nan
            if relative and raw[1:2] in ("+", "-"):
                value = math.nan
        if not math.isfinite(value):
            raise RecommendError(
                f"{where}: {short(text)} is not a time: expected an absolute time in the raw data's unit "
                "(e.g. 874729683) or +SECONDS after the user's last event (e.g. +60)"
            )
        return cls(value, relative)


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
    time: str
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
        return cls(dataset.uid_field, dataset.iid_field, dataset.time_field, session, dwell,
                   config["ITEM_LIST_LENGTH_FIELD"], suffix, events)


class History:
    """Every known event of every user in time order: one flat array per event field, users'
    events contiguous (``offsets``), and the newest ``max_len`` events of each user as RecBole's
    right-padded ``<field>_list`` tensors, so that a batch of requests is one gather."""

    def __init__(self, fields: Fields, users: np.ndarray, columns: dict[str, np.ndarray],
                 n_users: int, max_len: int, next_session: int, rule: SessionRule):
        self.fields, self.users, self.columns = fields, users, columns
        self.n_users, self.max_len, self.next_session, self.rule = n_users, max_len, next_session, rule
        self.offsets = np.searchsorted(users, np.arange(n_users + 1))
        self.counts = np.diff(self.offsets)
        last = np.maximum(self.offsets[1:] - 1, 0)
        self.time_dtype = columns[fields.time].dtype
        self.last_time = columns[fields.time][last].astype(np.float64)
        self.last_session = columns[fields.session][last] if fields.session else None
        start = np.maximum(self.offsets[:-1], self.offsets[1:] - max_len)
        self.length = torch.from_numpy(self.offsets[1:] - start)
        index = start[:, None] + np.arange(max_len)
        valid = np.arange(max_len) < self.length.numpy()[:, None]
        index = np.where(valid, index, 0)
        self.lists = {}
        for name, column in columns.items():
            values = column[index] if len(column) else np.zeros(index.shape, column.dtype)
            shape = valid.shape + (1,) * (values.ndim - 2)
            self.lists[name] = torch.from_numpy(np.where(valid.reshape(shape), values, 0))

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
        return (user >= 0) & (user < self.n_users) & (self.counts[np.clip(user, 0, self.n_users - 1)] > 0)

    def with_events(self, user: np.ndarray, item: np.ndarray, time: np.ndarray, where: list[str]) -> History:
        """A copy with fresh events (internal ids, dataset times, each at or after its user's last
        known event) appended: each continues its user's session or opens a new one by the
        session rule, and the dwell of the event before it becomes the gap when the session goes on
        (the converter's dwell: seconds to the next event of the same session, 0 for the last)."""
        f = self.fields
        time = self.stored(time)
        for i in np.nonzero(~np.isfinite(time))[0][:1]:
            raise RecommendError(f"{where[i]}: time {self.too_far}")
        order = np.lexsort((time, user))
        user, item, time = user[order], item[order], time[order]
        where = [where[i] for i in order]
        for i in range(len(user)):
            if time[i] < self.last_time[user[i]]:
                raise RecommendError(
                    f"{where[i]}: time is before the user's last known event; fresh events come after it"
                )
        n_old = len(self.users)
        users = np.concatenate([self.users, user])
        fresh = np.r_[np.zeros(n_old, bool), np.ones(len(user), bool)]
        columns = {}
        for name, column in self.columns.items():
            new = np.zeros((len(user),) + column.shape[1:], dtype=column.dtype)
            if name == f.item:
                new[:] = item
            elif name == f.time:
                new[:] = time
            columns[name] = np.concatenate([column, new])
        order = np.argsort(users, kind="stable")  # old events first, fresh ones in time order
        users, fresh = users[order], fresh[order]
        columns = {k: v[order] for k, v in columns.items()}
        times = columns[f.time].astype(np.float64)
        next_session = self.next_session
        for at in np.nonzero(fresh)[0]:
            opens = bool(self.rule.opens(times[at] - times[at - 1]))
            if f.session:
                if opens:
                    columns[f.session][at] = next_session
                    next_session += 1
                else:
                    columns[f.session][at] = columns[f.session][at - 1]
            if f.dwell and not opens:
                columns[f.dwell][at - 1] = times[at] - times[at - 1]
        return History(f, users, columns, self.n_users, self.max_len, next_session, self.rule)

    def seen(self, user: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row, item) of every known event of each user of a batch."""
        counts = self.counts[user]
        rows = np.repeat(np.arange(len(user)), counts)
        starts = np.repeat(self.offsets[user] - np.r_[0, np.cumsum(counts)[:-1]], counts)
        return rows, self.columns[self.fields.item][starts + np.arange(len(rows))]


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


# ---------------------------------------------------------------------------------- requests
@dataclass
class Requests:
    """Requests as columns: original user ids, the time values and whether each is relative
    (``+SECONDS``), and where each came from (for messages; default ``request <n>``)."""

    users: list[str]
    value: np.ndarray
    relative: np.ndarray
    wheres: list[str] | None = None

    def where(self, i: int) -> str:
        return self.wheres[i] if self.wheres is not None else f"request {i + 1}"

    def __len__(self) -> int:
        return len(self.users)

    @classmethod
    def parse(cls, users: list[str], times: list[Any], wheres: list[str] | None = None) -> Requests:
        """Times parsed once per distinct value (a batch usually repeats one or a few)."""
        parsed: dict[Any, At] = {}
        value, relative = np.empty(len(users)), np.empty(len(users), dtype=bool)
        if all(at is None for at in times):  # the common case: every request at the default time
            default = At.parse(None)
            value.fill(default.value)
            relative.fill(default.relative)
            times = []
        for i, at in enumerate(times):
            if at is not None and not isinstance(at, str) and pd.isna(at):
                at = None
            key = (type(at), at)
            if key not in parsed:
                where = wheres[i] if wheres is not None else f"request {i + 1}"
                parsed[key] = At.parse(at, f"{where} field 'time'")
            value[i], relative[i] = parsed[key].value, parsed[key].relative
        return cls([str(u) for u in users], value, relative, wheres)

    @classmethod
    def of(cls, requests: Any) -> Requests:
        """A DataFrame (``user`` and optional ``time``), or an iterable of users or (user, time)."""
        if isinstance(requests, Requests):
            return requests
        if isinstance(requests, pd.DataFrame):
            if "user" not in requests.columns:
                raise RecommendError("requests: missing column 'user'")
            users = requests["user"].tolist()
            times = requests["time"].tolist() if "time" in requests.columns else [None] * len(users)
            return cls.parse(users, times)
        # a bare string would be read as one user per character
        if isinstance(requests, (str, bytes, dict)) or not isinstance(requests, Iterable):
            raise RecommendError(f"requests expects a DataFrame or a list of users or (user, time) pairs, got "
                                 f"{type(requests).__name__} (one user: recommend(user))")
        pairs = []
        for i, r in enumerate(requests):
            if isinstance(r, USER_TYPES) and not isinstance(r, bool):
                pairs.append((r, None))
            elif isinstance(r, (tuple, list)) and len(r) == len(REQUEST_COLUMNS):
                pairs.append(tuple(r))
            else:
                raise RecommendError(f"requests[{i}] expects a user (str or int) or a (user, time) pair, "
                                     f"got {short(r)}")
        return cls.parse([u for u, _ in pairs], [t for _, t in pairs])


@dataclass(frozen=True)
class Event:
    user: str
    item: str
    time: float
    where: str


def _as_events(events: Any, user: str | None = None) -> list[Event]:
    """A CSV path, a DataFrame (``user,item,time``; ``item,time`` with ``user`` given), or an
    iterable of (item, time) with ``user`` given / (user, item, time)."""
    if events is None:
        return []
    if isinstance(events, (str, os.PathLike)):
        return read_events(events)
    if isinstance(events, pd.DataFrame):
        columns = [str(c) for c in events.columns]
        _check_columns("events", columns, EVENT_COLUMNS, optional=("user",) if user is not None else ())
        rows = zip(events["user"] if "user" in columns else [user] * len(events), events["item"], events["time"])
    elif isinstance(events, (bytes, dict)) or not isinstance(events, Iterable):
        raise RecommendError(f"events expects a CSV path, a DataFrame or a list of (user, item, time), got "
                             f"{type(events).__name__}")
    else:
        rows = [_event_row(r, user, i) for i, r in enumerate(events)]
    out = []
    for i, (who, item, time) in enumerate(rows, 1):
        where = f"event {i}"
        if who is None:
            raise RecommendError(f"{where}: no user (give (user, item, time))")
        out.append(Event(str(who), str(item), _number(time, f"{where} field 'time'"), where))
    return out


def _event_row(row: Any, user: str | None, i: int) -> tuple:
    if isinstance(row, (tuple, list)) and len(row) == len(EVENT_COLUMNS):
        return tuple(row)
    if isinstance(row, (tuple, list)) and len(row) == len(EVENT_COLUMNS) - 1 and user is not None:
        return (user, *row)
    expected = "(user, item, time)" + (" or (item, time)" if user is not None else "")
    raise RecommendError(f"events[{i}] expects {expected}, got {short(row)}")


def _number(value: Any, where: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise RecommendError(f"{where}: {short(value)} is not a number (a time in the raw data's unit)")
    return number


def _check_columns(name: str, columns: list[str], expected: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
    for column in columns:
        if column not in expected:
            raise RecommendError(f"{name}: unknown column {short(column)}; expected {','.join(expected)}")
    for column in expected:
        if columns.count(column) > 1:
            raise RecommendError(f"{name}: column {column!r} given twice; expected {','.join(expected)}")
    for column in expected:
        if column not in columns and column not in optional:
            raise RecommendError(f"{name}: missing column {column!r}; expected {','.join(expected)}")


def _read_csv(path: str | Path, expected: tuple[str, ...], optional: tuple[str, ...] = ()) -> Iterator[tuple[int, dict[str, str]]]:
    """The rows of a UTF-8 CSV file (a byte-order mark allowed) of at most
    :data:`MAX_INPUT_BYTES`, checked before it is read; every error names the file and line."""
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise RecommendError(f"{path}: no such file") from None
    except OSError as err:
        raise RecommendError(f"{path}: cannot read: {os_reason(err)}") from None
    if stat.S_ISDIR(info.st_mode):
        raise RecommendError(f"{path}: is a folder, not a CSV file")
    if not stat.S_ISREG(info.st_mode):  # a pipe or a device may never end
        raise RecommendError(f"{path}: not a regular file")
    if info.st_size > MAX_INPUT_BYTES:
        raise RecommendError(f"{path}: {info.st_size} bytes, more than the limit of {MAX_INPUT_BYTES} "
                             f"({MAX_INPUT_BYTES // 2**20} MiB); split it into several files")
    try:
        with open(path, "rb") as handle:
            reader = csv.reader(_text_lines(handle, path))
            try:
                header = next(reader, None)
                if header is None:
                    raise RecommendError(f"{path}: empty file; expected the header {','.join(expected)}")
                header = [h.strip() for h in header]
                _check_columns(str(path), header, expected, optional)
                for row in reader:
                    if not row or not any(v.strip() for v in row):
                        continue
                    if len(row) != len(header):
                        raise RecommendError(f"{path} line {reader.line_num}: {len(row)} fields, expected "
                                             f"{len(header)} ({','.join(header)})")
                    yield reader.line_num, {h: v.strip() for h, v in zip(header, row)}
            except csv.Error as err:  # a field past csv's limit, a NUL byte, an open quote at the end
                raise RecommendError(f"{path} line {reader.line_num}: not a CSV row ({err})") from None
    except OSError as err:
        raise RecommendError(f"{path}: cannot read: {os_reason(err)}") from None


def _text_lines(handle, path: Path) -> Iterator[str]:
    """Lines decoded one by one, so that a byte that is not UTF-8 is named with its line; the first
    may start with the byte-order mark that spreadsheets write. Stops at :data:`MAX_INPUT_BYTES`
    (the file may have grown since it was measured)."""
    read = 0
    for number, raw in enumerate(handle, start=1):
        read += len(raw)
        if read > MAX_INPUT_BYTES:
            raise RecommendError(f"{path}: more than the limit of {MAX_INPUT_BYTES} bytes "
                                 f"({MAX_INPUT_BYTES // 2**20} MiB); split it into several files")
        try:
            yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as err:
            raise RecommendError(f"{path} line {number}: not UTF-8 text (byte 0x{raw[err.start]:02x} at "
                                 f"position {err.start + 1}); save the file as UTF-8") from None


def read_events(path: str | Path) -> list[Event]:
    """``user,item,time`` rows (original ids, times in the raw data's unit)."""
    events = []
    for line, row in _read_csv(path, EVENT_COLUMNS):
        where = f"{path} line {line}"
        for column in ("user", "item"):
            if not row[column]:
                raise RecommendError(f"{where} field '{column}': empty")
        events.append(Event(row["user"], row["item"], _number(row["time"], f"{where} field 'time'"), where))
    return events


def read_requests(path: str | Path) -> Requests:
    """``user,time`` rows; ``time`` absolute, ``+SECONDS`` or empty (the default ``+1``)."""
    users, times, wheres = [], [], []
    for line, row in _read_csv(path, REQUEST_COLUMNS, optional=("time",)):
        where = f"{path} line {line}"
        if not row["user"]:
            raise RecommendError(f"{where} field 'user': empty")
        users.append(row["user"])
        times.append(row.get("time"))
        wheres.append(where)
    if not users:
        raise RecommendError(f"{path}: no requests, only the header; expected rows user,time")
    return Requests.parse(users, times, wheres)


# ---------------------------------------------------------------------------------- recommender
def has_repeats(users: np.ndarray, items: np.ndarray, n_items: int) -> bool:
    """Whether some user has some item twice. Without repeats a user's items are never a next
    item in the data, so recommendations leave them out by default (``--exclude-seen``)."""
    return len(np.unique(users.astype(np.int64) * n_items + items)) < len(items)


class Recommender:
    """Top-k items for requests (user, time) from a trained sequential model.

    ``Recommender.from_checkpoint(path)`` loads a checkpoint of any run (this package's models or
    RecBole's sequential ones); ``Recommender(config, model, dataset)`` wraps a model in hand
    (``dataset``: the whole dataset given to ``data_preparation``). The dataset is read once;
    ``holdout=n`` leaves out each user's newest n events (1: the test loader's history).
    """

    def __init__(self, config: Config, model: torch.nn.Module, dataset: Dataset, holdout: int = 0):
        _expect("Recommender", "config", config, Config, "a RecBole Config")
        _expect("Recommender", "model", model, torch.nn.Module, "a RecBole model (a torch.nn.Module)")
        _expect("Recommender", "dataset", dataset, Dataset,
                "the RecBole Dataset given to data_preparation (not a split or a dataloader)")
        _count("Recommender", "holdout", holdout, minimum=0)
        if config["MODEL_TYPE"] != ModelType.SEQUENTIAL:
            raise RecommendError(f"model {config['model']} is not a sequential recommender; recommend serves "
                                 "sequential models (this package's, SASRec, BERT4Rec, GRU4Rec, ...)")
        self.config, self.model, self.dataset = config, model.eval(), dataset
        self.device = torch.device(config["device"]) if config["device"] is not None else torch.device("cpu")
        self.fields = Fields.of(config, dataset)
        self.time_axis = TimeAxis.of(config)
        self.rule = SessionRule.of(config)
        self.history = History.from_dataset(config, dataset, self.fields, self.rule, holdout)
        self.user_tokens = np.asarray(dataset.field2id_token[self.fields.user])
        self.user_ids = dict(dataset.field2token_id[self.fields.user])
        self._user_index = pd.Index(self.user_tokens)  # vectorised token -> internal id
        self.item_tokens = np.asarray(dataset.field2id_token[self.fields.item])
        self.item_ids = dict(dataset.field2token_id[self.fields.item])
        item, user = self.history.columns[self.fields.item], self.history.users
        self.n_items = dataset.item_num
        self.has_repeats = has_repeats(user, item, self.n_items)
        popularity = np.bincount(item, minlength=self.n_items).astype(np.float64)
        popularity[0] = -np.inf
        self.popular = np.argsort(-popularity, kind="stable")
        self.popularity = popularity

    @classmethod
    def from_checkpoint(cls, path: str | Path, data_path: str | Path | None = None, holdout: int = 0) -> Recommender:
        _expect("Recommender.from_checkpoint", "path", path, (str, os.PathLike), "a file path (str or Path)")
        if data_path is not None:
            _expect("Recommender.from_checkpoint", "data_path", data_path, (str, os.PathLike),
                    "a folder path (str or Path) or None")
            data_path = str(data_path)
        _count("Recommender.from_checkpoint", "holdout", holdout, minimum=0)
        path = Path(path)
        if path.is_dir():
            raise RecommendError(f"{path}: is a folder, not a checkpoint")
        if not path.is_file():
            raise RecommendError(f"{path}: no such checkpoint")
        try:
            built = from_checkpoint(path, data_path)
        except (ValueError, FileNotFoundError) as err:  # CheckpointError, UsageError included
            raise RecommendError(str(err).splitlines()[0]) from None
        except (pickle.UnpicklingError, EOFError, RuntimeError, KeyError, AttributeError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise RecommendError(f"{path}: cannot load this checkpoint ({first})") from None
        return cls(built.config, built.model, built.dataset, holdout)

    @property
    def exclude_seen_default(self) -> bool:
        return not self.has_repeats

    def known_user(self, user: Any) -> bool:
        """Whether the dataset has events of this original user id."""
        _expect("Recommender.known_user", "user", user, USER_TYPES, "an original user id (str or int)")
        internal = self.user_ids.get(str(user), -1)
        return bool(self.history.known(np.array([internal]))[0])

    # ----------------------------------------------------------------------- API
    def recommend(self, user: Any, at: Any = None, k: int = 10, events: Any = None,
                  exclude_seen: bool | None = None) -> list[tuple[str, float]]:
        """The top ``k`` ``(item, score)`` for ``user`` (an original id) at ``at`` (absolute in
        the raw data's unit, ``"+SECONDS"`` after the last known event, default ``"+1"``), after
        the optional fresh ``events`` (``[(item, time), ...]``, a DataFrame or a CSV path)."""
        _expect("Recommender.recommend", "user", user, USER_TYPES, "an original user id (str or int)")
        _expect("Recommender.recommend", "at", at, (str, int, float, np.integer, np.floating, type(None)),
                "a time: a number, '+SECONDS' or None")
        user = str(user)
        if not self.known_user(user):
            raise RecommendError(f"unknown user {short(user)}: not in dataset '{self.config['dataset']}'")
        frame = self.recommend_many([(user, at)], k=k, events=_as_events(events, user), exclude_seen=exclude_seen)
        return list(zip(frame["item"], frame["score"].astype(float)))

    def recommend_many(self, requests: Any, k: int = 10, events: Any = None,
                       exclude_seen: bool | None = None, batch_size: int | None = None) -> pd.DataFrame:
        """Answer many requests in batches on the model's device. ``requests``: a DataFrame with
        ``user`` (and ``time``), or an iterable of users or ``(user, time)`` pairs. Returns one row
        per recommended item: ``user, rank, item, score, time`` (the request's absolute time),
        ``new_session`` (the request opened one), ``popular`` (unknown user: the most popular
        items, score = their number of events)."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise RecommendError(f"k (--topk) must be a positive integer, got {short(k)}")
        if exclude_seen is not None:
            _expect("Recommender.recommend_many", "exclude_seen", exclude_seen, (bool, np.bool_), "True, False or None")
        if batch_size is not None:
            _count("Recommender.recommend_many", "batch_size", batch_size, minimum=1)
        requests = Requests.of(requests)
        history = self._with_events(_as_events(events) if not _is_event_list(events) else events)
        exclude = self.exclude_seen_default if exclude_seen is None else bool(exclude_seen)
        batch_size = int(batch_size or self.config["eval_batch_size"])
        k = min(int(k), self.n_items - 1)

        n = len(requests)
        user = self._user_index.get_indexer(requests.users).astype(np.int64)  # -1: unknown
        known = history.known(user)
        value, relative = requests.value, requests.relative
        safe_user = np.where(known, user, 0)
        last = history.last_time[safe_user]
        absolute = np.where(relative, self.time_axis.origin + last + value, value)
        time = history.stored(np.where(relative, last + value, value - self.time_axis.origin))
        absolute[~known & relative] = np.nan
        for i in np.nonzero(known & ~np.isfinite(time))[0][:1]:
            raise RecommendError(f"{requests.where(i)}: time {_format_time(absolute[i])} {history.too_far}")
        early = np.nonzero(known & (time < last))[0]
        if len(early):
            i = early[0]
            raise RecommendError(
                f"{requests.where(i)}: time {_format_time(absolute[i])} is before the last known event "
                f"of user {short(requests.users[i])} ({_format_time(self.time_axis.absolute(last[i]))})"
            )
        opens = known & self.rule.opens(time - last)

        items = np.zeros((n, k), dtype=np.int64)
        scores = np.full((n, k), -np.inf)
        for i in np.nonzero(~known)[0]:
            warnings.warn(f"{requests.where(i)}: unknown user {short(requests.users[i])}: the {k} most popular "
                          "items (popular=1)", RecommendWarning, stacklevel=2)
        items[~known] = self.popular[:k]
        scores[~known] = self.popularity[self.popular[:k]]
        rows = np.nonzero(known)[0]
        for start in range(0, len(rows), batch_size):
            batch = rows[start:start + batch_size]
            top_scores, top_items = self._top(history, user[batch], time[batch], opens[batch], k, exclude)
            items[batch], scores[batch] = top_items, top_scores

        valid = np.isfinite(scores)
        count = valid.sum(1)
        frame = pd.DataFrame({
            "user": np.repeat(np.array(requests.users, dtype=object), count),
            "rank": (np.cumsum(valid, 1))[valid],
            "item": self.item_tokens[items[valid]],
            "score": scores[valid],
            "time": np.repeat(absolute, count),
            "new_session": np.repeat(opens, count),
            "popular": np.repeat(~known, count),
        }, copy=False)
        return frame

    # ----------------------------------------------------------------------- internals
    def _with_events(self, events: list[Event]) -> History:
        if not events:
            return self.history
        unknown_items = [e for e in events if e.item not in self.item_ids]
        unknown_users = [e for e in events if not self.known_user(e.user)]
        if unknown_items:
            listed = _listed([f"{short(e.item)} ({e.where})" for e in unknown_items])
            warnings.warn(f"{len(unknown_items)} events with unknown items skipped: {listed}",
                          RecommendWarning, stacklevel=3)
        if unknown_users:
            listed = _listed([f"{short(e.user)} ({e.where})" for e in unknown_users])
            warnings.warn(f"{len(unknown_users)} events of unknown users skipped (no history to add "
                          f"them to): {listed}", RecommendWarning, stacklevel=3)
        skip = {id(e) for e in unknown_items + unknown_users}
        kept = [e for e in events if id(e) not in skip]
        if not kept:
            return self.history
        return self.history.with_events(
            np.array([self.user_ids[e.user] for e in kept], dtype=np.int64),
            np.array([self.item_ids[e.item] for e in kept], dtype=np.int64),
            np.array([self.time_axis.relative(e.time) for e in kept], dtype=np.float64),
            [e.where for e in kept],
        )

    def batch(self, history: History, user: np.ndarray, time: np.ndarray, opens: np.ndarray) -> Interaction:
        """The batch RecBole's test loader would give the model for these requests as target rows:
        the users' newest events as ``<field>_list`` and the request's time and session as the
        target's own; the target item and other target fields are unknown (0)."""
        f = history.fields
        index = torch.from_numpy(user)
        length = history.length[index]
        data = {f.user: index.clone(), f.length: length}
        for name in f.events:
            data[name + f.suffix] = history.lists[name][index]
            data[name] = torch.zeros((len(user),) + history.lists[name].shape[2:], dtype=history.lists[name].dtype)
        data[f.time] = torch.from_numpy(time).to(data[f.time].dtype)
        if f.session:
            session = np.where(opens, history.next_session, history.last_session[user])
            data[f.session] = torch.from_numpy(session).to(data[f.session].dtype)
        if f.dwell:
            # the last event's dwell: the gap to the request when the session goes on, else 0
            gap = np.where(opens, 0.0, time - history.last_time[user])
            dwell = data[f.dwell + f.suffix].clone()
            dwell[torch.arange(len(user)), length - 1] = torch.from_numpy(gap).to(dwell.dtype)
            data[f.dwell + f.suffix] = dwell
        return Interaction(data)

    @torch.inference_mode()
    def _top(self, history: History, user: np.ndarray, time: np.ndarray, opens: np.ndarray,
             k: int, exclude: bool) -> tuple[np.ndarray, np.ndarray]:
        batch = self.batch(history, user, time, opens).to(self.device)
        scores = self.model.full_sort_predict(batch).view(len(user), -1)
        scores[:, 0] = -torch.inf  # padding
        if exclude:
            rows, items = history.seen(user)
            flat = torch.from_numpy(rows * scores.size(1) + items).to(self.device)
            scores.view(-1).index_fill_(0, flat, -torch.inf)  # one fill (faster than scores[rows, items])
        top_scores, top_items = torch.topk(scores, k, dim=1)
        return top_scores.double().cpu().numpy(), top_items.cpu().numpy()


def _shown(text: str) -> str:
    """A user's text as given, or its bounded repr when it is long."""
    return text if len(text) <= SHORT_REPR else short(text)


def _listed(names: list[str]) -> str:
    """The first :data:`MAX_LISTED` names, and how many more (a warning stays one short line)."""
    more = f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else ""
    return ", ".join(names[:MAX_LISTED]) + more


def _expect(function: str, name: str, value: Any, types: type | tuple[type, ...], expected: str) -> None:
    """Refuse an argument of the wrong type at the door, in one line, rather than with a
    TypeError deep inside pandas or torch."""
    if isinstance(value, types) and (not isinstance(value, bool) or bool in _as_tuple(types)):
        return
    raise RecommendError(f"{function}: {name} expects {expected}, got {type(value).__name__} {short(value)}")


def _as_tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def _count(function: str, name: str, value: Any, minimum: int) -> None:
    """``value`` is an int (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise RecommendError(f"{function}: {name} expects an integer >= {minimum}, got {short(value)}")


def _is_event_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Event) for v in value)


def _format_time(value: float) -> str:
    if not math.isfinite(value):
        return ""
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**53 else repr(float(value))


# ---------------------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m recbole_session.recommend",
                     description="Top-k items for users at a time, from a saved checkpoint "
                     "(CSV user,rank,item,score in the dataset's original ids).")
    parser.add_argument("checkpoint", help="a .pth file saved by a run")
    parser.add_argument("--user", action="append", default=[], help="an original user id (repeatable)")
    parser.add_argument("--at", default=DEFAULT_AT,
                        help="absolute time in the raw data's unit, or +SECONDS after the user's last "
                        f"known event (default {DEFAULT_AT}: the current session)")
    parser.add_argument("--topk", type=int, default=10, help="items per request (default 10)")
    parser.add_argument("--events", default=None, help="CSV user,item,time of fresh events (original ids)")
    parser.add_argument("--requests", default=None,
                        help="CSV user,time: many requests (adds the columns time and popular)")
    seen = parser.add_mutually_exclusive_group()
    seen.add_argument("--exclude-seen", dest="exclude_seen", action="store_true", default=None,
                      help="leave out the user's items (default when no user has an item twice)")
    seen.add_argument("--keep-seen", dest="exclude_seen", action="store_false",
                      help="keep the user's items (default when the data has repeats)")
    parser.add_argument("--out", default=None, help="output CSV (default: stdout)")
    parser.add_argument("--data_path", default=None, help="folder holding <dataset>/ (default: the run's)")
    parser.add_argument("--batch-size", type=int, default=None, help="requests per batch (default: eval_batch_size)")
    return parser


def _write(frame: pd.DataFrame, columns: list[str], out: str | None) -> None:
    # scores are the model's float32 values: their shortest repr reads back to the same float32
    frame = frame.assign(score=[str(np.float32(v)) for v in frame["score"]],
                         time=frame["time"].map(_format_time), popular=frame["popular"].astype(int))
    if out is None:
        frame.to_csv(sys.stdout, columns=columns, index=False, lineterminator="\n")
        return
    try:
        with atomic_path(out) as tmp:
            frame.to_csv(tmp, columns=columns, index=False, lineterminator="\n")
    except OSError as err:  # a full disk, a folder removed meanwhile: nothing half-written is left
        raise RecommendError(str(write_error(out, err, "--out"))) from None


def _check_out(args: argparse.Namespace) -> None:
    """``--out`` can be written, and is none of the files read: a CSV written over the checkpoint or
    the requests would destroy them. Checked before anything is loaded."""
    if args.out is None:
        return
    check_output(args.out, "--out")
    for option, given in (("the checkpoint", args.checkpoint), ("--requests", args.requests),
                          ("--events", args.events)):
        if given is not None and os.path.exists(args.out) and os.path.exists(given) \
                and os.path.samefile(args.out, given):
            raise RecommendError(f"--out {args.out}: is {option} file; choose another output name")


def _show(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if bool(args.user) == bool(args.requests):
            raise RecommendError("give --user U (one or more) or --requests FILE")
        if args.topk < 1:
            raise RecommendError(f"--topk must be a positive integer, got {args.topk}")
        if args.batch_size is not None and args.batch_size < 1:
            raise RecommendError(f"--batch-size must be a positive integer, got {args.batch_size}")
        _check_out(args)
        # read every input before the model: bad input fails fast
        if args.requests:
            requests = read_requests(args.requests)
        else:
            at = At.parse(args.at)
            requests = Requests.parse(args.user, [at] * len(args.user), [f"--user {_shown(u)}" for u in args.user])
        events = read_events(args.events) if args.events else []
        recommender = Recommender.from_checkpoint(args.checkpoint, args.data_path)
        if not args.requests:
            for user in requests.users:
                if not recommender.known_user(user):
                    raise RecommendError(f"--user {_shown(user)}: unknown user (not in dataset "
                                         f"'{recommender.config['dataset']}')")
        with warnings.catch_warnings():
            warnings.simplefilter("always", RecommendWarning)
            warnings.showwarning = _show
            frame = recommender.recommend_many(requests, k=args.topk, events=events,
                                               exclude_seen=args.exclude_seen, batch_size=args.batch_size)
        columns = OUTPUT_COLUMNS + (["time", "popular"] if args.requests else [])
        _write(frame, columns, args.out)
        if args.out is None:
            sys.stdout.flush()  # here, where a closed pipe is caught, not at the interpreter's exit
    except UsageError as err:  # RecommendError, and the output checks' errors
        return fail(parser.prog, err)
    except BrokenPipeError:
        # the reader has what it wanted: no traceback, and nothing more to flush into the pipe
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return 0


if __name__ == "__main__":
    exit_with(main())
