"""What a recommendation request is made of, read and checked before any model is loaded: the
request time (:class:`At`), requests and events as given (lists, DataFrames, the ``--requests`` /
``--events`` CSV files), and one request with its own events (:class:`Request`, the service's form).
Every error is a :class:`RecommendError` in one line naming the file, line and field. Imports
neither torch nor RecBole."""

from __future__ import annotations

import csv
import math
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recbole_session.cli import UsageError
from recbole_session.files import os_reason
from recbole_session.literals import short

# the default request time: one second after the user's last known event (the current session)
DEFAULT_AT = "+1"
EVENT_COLUMNS = ("user", "item", "time")
REQUEST_COLUMNS = ("user", "time")
USER_TYPES = (str, int, np.integer)  # an original user id, as text or as a number
# the largest --requests / --events file read (about 8 million requests of "user,+SECONDS"): a
# bigger batch is several runs, and a file of gigabytes is refused before it is read
MAX_INPUT_BYTES = 100 * 2**20


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
    user: str | None  # None: an anonymous session's event
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


@dataclass
class Request:
    """One request of :meth:`Recommender.answer`, with its own fresh events: ``user`` (an original
    id; None: an anonymous session, which then needs events), ``at``, ``events`` (this request's
    alone), ``k`` and ``exclude_seen`` (None: the dataset's default); ``where`` names it in
    messages."""

    user: str | None = None
    at: At = At(float(DEFAULT_AT), True)
    events: list[Event] = field(default_factory=list)
    k: int = 10
    exclude_seen: bool | None = None
    where: str = "request"
