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
import contextlib
import math
import os
import pickle
import signal
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
from recbole_session.files import atomic_path, check_output, write_error
from recbole_session.literals import SHORT_REPR, short
from recbole_session.recommend_history import (
    Fields,
    History,
    SessionRule,
    TimeAxis,
    has_repeats,
)
from recbole_session.recommend_requests import (
    DEFAULT_AT,
    MAX_INPUT_BYTES,
    USER_TYPES,
    At,
    Event,
    RecommendError,
    RecommendWarning,
    Request,
    Requests,
    _as_events,
    _check_columns,
    _number,
    read_events,
    read_requests,
)

# the public names: the request types are defined in recommend_requests, the history in
# recommend_history; both are reached from here
__all__ = ["MAX_INPUT_BYTES", "At", "Event", "RecommendError", "RecommendWarning", "Recommender", "Request",
           "check_checkpoint_path", "has_repeats", "main"]

# the names of the user tables (nn.Embedding over users) a model may have: ASARS', Caser's,
# HGN's, HRM's, SHAN's, NPE's ``user_embedding`` and FPMC's ``UI_emb``
USER_TABLES = ("user", "UI_emb")
OUTPUT_COLUMNS = ["user", "rank", "item", "score"]
# the 0/1 columns of an answer: how it was made
FLAGS = ("new_session", "popular", "new_user", "mean_user")
# the most unknown items or users one warning lists (it says how many more)
MAX_LISTED = 5
# exit status when the reader of stdout went away (`... | head`), as a shell reports SIGPIPE
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE


# ---------------------------------------------------------------------------------- recommender
def check_checkpoint_path(path: str | os.PathLike) -> Path:
    """The checkpoint is a file (what is in it is checked as it is loaded)."""
    path = Path(path)
    if path.is_dir():
        raise RecommendError(f"{path}: is a folder, not a checkpoint")
    if not path.is_file():
        raise RecommendError(f"{path}: no such checkpoint")
    return path


@dataclass
class Scored:
    """The answers to n requests, as arrays: ``items`` / ``scores`` (n, k; -inf past a request's
    own k), the request's absolute ``time`` (NaN when unknown), and per request whether it opened a
    ``new_session``, was answered with the ``popular`` items (no usable event), came from a
    ``new_user`` (a named user the data never had, scored from the request's events) and was
    scored with the ``mean_user`` (the model's user table has no row for it)."""

    items: np.ndarray
    scores: np.ndarray
    time: np.ndarray
    new_session: np.ndarray
    popular: np.ndarray
    new_user: np.ndarray
    mean_user: np.ndarray


class Recommender:
    """Top-k items for requests (user, time) from a trained sequential model.

    ``Recommender.from_checkpoint(path)`` loads a checkpoint of any run (this package's models or
    RecBole's sequential ones); ``Recommender(config, model, dataset)`` wraps a model in hand
    (``dataset``: the whole dataset given to ``data_preparation``). The dataset is read once;
    ``holdout=n`` leaves out each user's newest n events (1: the test loader's history).

    A user the data never had is scored from the request's events (a sequence model needs no user
    id); a model with a user table (ASARS) gets the mean of its trained users for them. On a
    session-based dataset (benchmark files: rows are examples, not a user's events) every request
    is an anonymous session: its items (and, where the data has them, times).
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
        self.session_based = bool(config["benchmark_filename"])
        if self.session_based:
            self.history = History.empty(self.fields, dataset, config["MAX_ITEM_LIST_LENGTH"], self.rule)
        else:
            self.history = History.from_dataset(config, dataset, self.fields, self.rule, holdout)
        self.user_tokens = np.asarray(dataset.field2id_token[self.fields.user])
        self.user_ids = dict(dataset.field2token_id[self.fields.user])
        self._user_index = pd.Index(self.user_tokens)  # vectorised token -> internal id
        self.item_tokens = np.asarray(dataset.field2id_token[self.fields.item])
        self.item_ids = dict(dataset.field2token_id[self.fields.item])
        self.n_items = dataset.item_num
        self.user_tables = [m for name, m in model.named_modules() if isinstance(m, torch.nn.Embedding)
                            and m.num_embeddings == dataset.user_num and _is_user_table(name)]
        if self.session_based:
            # a session's items: its longest prefix row and that row's target (rows repeat prefixes)
            feat = dataset.inter_feat
            lists, targets = feat[self.fields.item + self.fields.suffix].numpy(), feat[self.fields.item].numpy()
            self.has_repeats = bool((lists == targets[:, None]).any())
            item = targets
        else:
            item = self.history.columns[self.fields.item]
            self.has_repeats = has_repeats(self.history.users, item, self.n_items)
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
        path = check_checkpoint_path(path)
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
    def recommend(self, user: Any = None, at: Any = None, k: int = 10, events: Any = None,
                  exclude_seen: bool | None = None) -> list[tuple[str, float]]:
        """The top ``k`` ``(item, score)`` for ``user`` (an original id) at ``at`` (absolute in
        the raw data's unit, ``"+SECONDS"`` after the last known event, default ``"+1"``), after
        the optional fresh ``events`` (``[(item, time), ...]``, a DataFrame or a CSV path). A user
        the data never had is scored from ``events``; ``user=None`` is an anonymous session:
        ``events`` are its items, ``[(item, time), ...]`` (or ``[item, ...]`` on a session-based
        dataset, which has no times)."""
        if user is not None:
            _expect("Recommender.recommend", "user", user, USER_TYPES, "an original user id (str or int) or None")
        _expect("Recommender.recommend", "at", at, (str, int, float, np.integer, np.floating, type(None)),
                "a time: a number, '+SECONDS' or None")
        user = None if user is None else str(user)
        self.check_anonymous(user, f"user {short(user)}")
        fresh = self.session_events(events, "events") if user is None else _as_events(events, user)
        if not fresh and (user is None or not self.known_user(user)):
            what = "an anonymous session needs its events" if user is None else \
                f"unknown user {short(user)}: not in dataset '{self.config['dataset']}'; give its events"
            raise RecommendError(f"{what} (events=[(item, time), ...])")
        request = Request(user, At.parse(at), fresh, k, exclude_seen, "request")
        (answer,) = self.answer([request], stacklevel=3)
        return answer["items"]

    def answer(self, requests: list[Request], batch_size: int | None = None, stacklevel: int = 2) -> list[dict]:
        """Answer requests that each bring their own events (the service's form): one dict per
        request with ``user``, ``items`` (``[(item, score), ...]``), ``time``, ``new_session``,
        ``popular``, ``new_user`` and ``mean_user``. A request's events reach only that request."""
        for r in requests:
            if not isinstance(r, Request):
                raise RecommendError(f"Recommender.answer expects Request objects, got {short(r)}")
            self.check_anonymous(r.user, r.where)
            _positive_k(r.k)
            if r.exclude_seen is not None:
                _expect("Recommender.recommend", "exclude_seen", r.exclude_seen, (bool, np.bool_), "True, False or None")
        users = [r.user for r in requests]
        value = np.array([r.at.value for r in requests], dtype=np.float64)
        relative = np.array([r.at.relative for r in requests], dtype=bool)
        with_events = [i for i, r in enumerate(requests) if r.events]
        events = [(slot, e) for slot, i in enumerate(with_events) for e in requests[i].events]
        slot_of = np.full(len(requests), -1)
        slot_of[with_events] = np.arange(len(with_events))
        slots, usable = self._slots([users[i] for i in with_events], events, stacklevel + 1)
        slot_of[with_events] = np.where(usable, slot_of[with_events], -1)
        ks = np.array([r.k for r in requests], dtype=np.int64)
        exclude = np.array([self.exclude_seen_default if r.exclude_seen is None else bool(r.exclude_seen)
                            for r in requests], dtype=bool)
        scored = self._score(Requests(users, value, relative, [r.where for r in requests]), slot_of, slots,
                             ks, exclude, batch_size, stacklevel + 1)
        out = []
        for i, user in enumerate(users):
            ok = np.isfinite(scored.scores[i])
            out.append({
                "user": user,
                "items": list(zip(self.item_tokens[scored.items[i][ok]].tolist(), scored.scores[i][ok].tolist())),
                "time": None if not math.isfinite(scored.time[i]) else float(scored.time[i]),
                "new_session": bool(scored.new_session[i]), "popular": bool(scored.popular[i]),
                "new_user": bool(scored.new_user[i]), "mean_user": bool(scored.mean_user[i]),
            })
        return out

    def recommend_many(self, requests: Any, k: int = 10, events: Any = None,
                       exclude_seen: bool | None = None, batch_size: int | None = None) -> pd.DataFrame:
        """Answer many requests in batches on the model's device. ``requests``: a DataFrame with
        ``user`` (and ``time``), or an iterable of users or ``(user, time)`` pairs; ``events``
        (every user's fresh events) apply to all requests of their user, and make a user the data
        never had known. Returns one row per recommended item: ``user, rank, item, score, time``
        (the request's absolute time), ``new_session`` (the request opened one), ``popular`` (no
        usable event: the most popular items, score = their number of events), ``new_user`` (a
        user the data never had, scored from its events) and ``mean_user`` (scored with the mean
        of the model's user table)."""
        _positive_k(k)
        if exclude_seen is not None:
            _expect("Recommender.recommend_many", "exclude_seen", exclude_seen, (bool, np.bool_), "True, False or None")
        if batch_size is not None:
            _count("Recommender.recommend_many", "batch_size", batch_size, minimum=1)
        requests = Requests.of(requests)
        for i, user in enumerate(requests.users):
            self.check_anonymous(user, requests.where(i))
        events = _as_events(events) if not _is_event_list(events) else events
        for event in events:
            self.check_anonymous(event.user, event.where)
        owners = list(dict.fromkeys(e.user for e in events))
        slot = {user: s for s, user in enumerate(owners)}
        slots, usable = self._slots(owners, [(slot[e.user], e) for e in events], stacklevel=3)
        slot_of = np.array([slot[u] if u in slot and usable[slot[u]] else -1 for u in requests.users], dtype=np.int64)
        exclude = self.exclude_seen_default if exclude_seen is None else bool(exclude_seen)
        scored = self._score(requests, slot_of, slots, np.full(len(requests), int(k)),
                             np.full(len(requests), exclude), batch_size, stacklevel=3)
        valid = np.isfinite(scored.scores)
        count = valid.sum(1)

        def each(values: np.ndarray) -> np.ndarray:
            return np.repeat(values, count)

        return pd.DataFrame({
            "user": each(np.array(requests.users, dtype=object)),
            "rank": (np.cumsum(valid, 1))[valid],
            "item": self.item_tokens[scored.items[valid]],
            "score": scored.scores[valid],
            "time": each(scored.time),
            "new_session": each(scored.new_session),
            "popular": each(scored.popular),
            "new_user": each(scored.new_user),
            "mean_user": each(scored.mean_user),
        }, copy=False)

    def session_events(self, events: Any, where: str = "events") -> list[Event]:
        """An anonymous session's events, oldest first: ``[(item, time), ...]`` or a DataFrame
        ``item,time``; on a dataset without times (session-based benchmark files) also
        ``[item, ...]``, whose order stands for the times."""
        if events is None:
            return []
        if isinstance(events, pd.DataFrame):
            columns = [str(c) for c in events.columns]
            optional = ("time",) if self.fields.time is None else ()
            _check_columns(where, columns, ("item", "time"), optional=optional)
            times = events["time"] if "time" in columns else range(len(events))
            events = list(zip(events["item"], times))
        if isinstance(events, (str, bytes, dict)) or not isinstance(events, Iterable):
            raise RecommendError(f"{where} expects a list of (item, time) pairs, got {type(events).__name__}")
        out = []
        for i, event in enumerate(events):
            if self.fields.time is None and isinstance(event, USER_TYPES) and not isinstance(event, bool):
                event = (event, i)
            if not (isinstance(event, (tuple, list)) and len(event) == 2):
                expected = "an (item, time) pair" + (" or an item" if self.fields.time is None else "")
                raise RecommendError(f"{where}[{i}] expects {expected}, got {short(event)}")
            item, time = event
            out.append(Event(None, str(item), _number(time, f"{where}[{i}] time"), f"{where}[{i}]"))
        return out

    def check_anonymous(self, user: str | None, where: str) -> None:
        """On a session-based dataset a request names no user: there are none to look up."""
        if self.session_based and user is not None:
            raise RecommendError(f"{where}: dataset '{self.config['dataset']}' is session-based (benchmark files: "
                                 "rows are examples, not users' events): a request is the items of one anonymous "
                                 "session (events, no user)")

    # ----------------------------------------------------------------------- internals

    def _slots(self, owners: list[str | None], events: list[tuple[int, Event]],
               stacklevel: int) -> tuple[History | None, np.ndarray]:
        """The request slots of ``owners`` (one per owner: a user, or None for an anonymous
        session) with their fresh events (``(slot, event)``), events of unknown items skipped with a
        warning; and whether each slot kept an event or continues a known user."""
        if not owners:
            return None, np.zeros(0, bool)
        unknown = [e for _, e in events if e.item not in self.item_ids]
        if unknown:
            listed = _listed([f"{short(e.item)} ({e.where})" for e in unknown])
            warnings.warn(f"{len(unknown)} events with unknown items skipped: {listed}",
                          RecommendWarning, stacklevel=stacklevel)
        kept = [(s, e) for s, e in events if e.item in self.item_ids]
        base = np.array([-1 if u is None else self.user_ids.get(u, -1) for u in owners], dtype=np.int64)
        base = np.where(self.history.known(base), base, -1)
        usable = (base >= 0) | (np.bincount([s for s, _ in kept], minlength=len(owners)) > 0)
        slots = self.history.slots(
            base,
            np.array([s for s, _ in kept], dtype=np.int64),
            np.array([self.item_ids[e.item] for _, e in kept], dtype=np.int64),
            np.array([self.time_axis.relative(e.time) if self.fields.time else e.time for _, e in kept],
                     dtype=np.float64),
            [e.where for _, e in kept],
        )
        return slots, usable

    def _score(self, requests: Requests, slot_of: np.ndarray, slots: History | None, k: np.ndarray,
               exclude: np.ndarray, batch_size: int | None, stacklevel: int) -> Scored:
        """Score requests: from their slot when they have one (``slot_of`` >= 0), else from the
        dataset's history of a known user, else the popular items (a warning)."""
        n, history = len(requests), self.history
        k = np.minimum(k, self.n_items - 1)
        k_max = int(k.max()) if n else 1
        batch_size = int(batch_size or self.config["eval_batch_size"])
        named = np.array([u is not None for u in requests.users], dtype=bool)
        base = self._user_index.get_indexer([u if u is not None else "" for u in requests.users]).astype(np.int64)
        base = np.where(named, base, -1)
        in_slot = slot_of >= 0
        in_base = ~in_slot & history.known(base)
        sources = [(history, np.nonzero(in_base)[0], base), (slots, np.nonzero(in_slot)[0], slot_of)]
        last = np.full(n, np.nan)
        for source, rows, index in sources:
            if len(rows):
                last[rows] = source.last_time[index[rows]]
        scored_rows = in_slot | in_base
        value, relative = requests.value, requests.relative
        if self.fields.time is None:  # no times: a request comes just after the session's last item
            value, relative = np.ones(n), np.ones(n, bool)
        absolute = np.where(relative, self.time_axis.origin + last + value, value)
        time = history.stored(np.where(relative, last + value, value - self.time_axis.origin))
        absolute[~scored_rows & relative] = np.nan
        if self.fields.time is None:
            absolute[:] = np.nan
        for i in np.nonzero(scored_rows & ~np.isfinite(time))[0][:1]:
            raise RecommendError(f"{requests.where(i)}: time {_format_time(absolute[i])} {history.too_far}")
        for i in np.nonzero(scored_rows & (time < last))[0][:1]:
            whose = f"of user {short(requests.users[i])}" if named[i] else "of the session"
            raise RecommendError(
                f"{requests.where(i)}: time {_format_time(absolute[i])} is before the last known event "
                f"{whose} ({_format_time(self.time_axis.absolute(last[i]))})"
            )
        opens = scored_rows & self.rule.opens(np.where(scored_rows, time - last, 0))

        items = np.zeros((n, k_max), dtype=np.int64)
        scores = np.full((n, k_max), -np.inf)
        for i in np.nonzero(~scored_rows)[0]:
            who = f"unknown user {short(requests.users[i])}" if named[i] else "no usable event"
            warnings.warn(f"{requests.where(i)}: {who}: the {k[i]} most popular items (popular=1)",
                          RecommendWarning, stacklevel=stacklevel)
        items[~scored_rows] = self.popular[:k_max]
        scores[~scored_rows] = self.popularity[self.popular[:k_max]]
        guest = np.zeros(n, bool)
        for source, rows, index in sources:
            if not len(rows):
                continue
            guest[rows] = source.guest[index[rows]]
            for start in range(0, len(rows), batch_size):
                batch = rows[start:start + batch_size]
                top_scores, top_items = self._top(source, index[batch], time[batch], opens[batch], k_max,
                                                  exclude[batch])
                items[batch], scores[batch] = top_items, top_scores
        scores[np.arange(k_max)[None, :] >= k[:, None]] = -np.inf  # each request's own k
        mean_user = guest & bool(self.user_tables)
        for i in np.nonzero(mean_user)[0][:1]:
            warnings.warn(f"{requests.where(i)}: {sum(mean_user)} requests without a known user scored with the "
                          f"mean of {self.config['model']}'s user embeddings (mean_user=1)",
                          RecommendWarning, stacklevel=stacklevel)
        return Scored(items, scores, absolute, opens, ~scored_rows, guest & named, mean_user)

    def batch(self, history: History, user: np.ndarray, time: np.ndarray, opens: np.ndarray) -> Interaction:
        """The batch RecBole's test loader would give the model for these requests as target rows:
        the users' newest events as ``<field>_list`` and the request's time and session as the
        target's own; the target item and other target fields are unknown (0)."""
        f = history.fields
        index = torch.from_numpy(user)
        length = history.length[index]
        data = {f.user: torch.from_numpy(history.model_user[user]), f.length: length}
        for name in f.events:
            data[name + f.suffix] = history.lists[name][index]
            data[name] = torch.zeros((len(user),) + history.lists[name].shape[2:], dtype=history.lists[name].dtype)
        if f.time:
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
             k: int, exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        batch = self.batch(history, user, time, opens).to(self.device)
        guests = history.guest[user]
        with _mean_user(self.user_tables if guests.any() else []):
            scores = self.model.full_sort_predict(batch).view(len(user), -1)
        scores[:, 0] = -torch.inf  # padding
        if exclude.any():
            rows, items = history.seen(user)
            keep = exclude[rows]
            flat = torch.from_numpy(rows[keep] * scores.size(1) + items[keep]).to(self.device)
            scores.view(-1).index_fill_(0, flat, -torch.inf)  # one fill (faster than scores[rows, items])
        top_scores, top_items = torch.topk(scores, k, dim=1)
        return top_scores.double().cpu().numpy(), top_items.cpu().numpy()


def _is_user_table(name: str) -> bool:
    return any(hint.lower() in name.split(".")[-1].lower() for hint in USER_TABLES)


@contextlib.contextmanager
def _mean_user(tables: list[torch.nn.Embedding]) -> Iterator[None]:
    """While scoring requests of users a model's user tables have no row for (given as user 0,
    RecBole's padding user, which no event has), their row 0 reads as the mean of the trained users'
    rows (1..): a forward hook, the weights are not touched."""
    def hook(module: torch.nn.Embedding, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        mean = module.weight[1:].mean(dim=0)
        return torch.where((inputs[0] == 0).unsqueeze(-1), mean.to(output.dtype), output)

    handles = [table.register_forward_hook(hook) for table in tables]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _positive_k(k: Any) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise RecommendError(f"k (--topk) must be a positive integer, got {short(k)}")


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
                        help="CSV user,time: many requests (adds the columns time, popular, new_user, mean_user)")
    parser.add_argument("--session", action="append", default=[],
                        help="the items of one anonymous session, oldest first, comma-separated (repeatable); "
                        "for session-based checkpoints (SRIEM, SRGNN, NARM, ... on benchmark files)")
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
                         time=frame["time"].map(_format_time),
                         **{flag: frame[flag].astype(int) for flag in FLAGS if flag in frame})
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


def _session_items(text: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise RecommendError(f"--session {short(text)}: no items; expected items, comma-separated")
    return items


def _answer_sessions(recommender: Recommender, sessions: list[list[str]], args: argparse.Namespace) -> int:
    """``--session ITEMS``: each an anonymous session, answered in the order given."""
    if recommender.fields.time is not None:
        raise RecommendError(f"--session: dataset '{recommender.config['dataset']}' has times: give the session "
                             "as --events rows of a new user id, and that --user")
    requests = []
    for i, items in enumerate(sessions, 1):
        events = recommender.session_events(items, f"--session {i}")
        requests.append(Request(None, At.parse(None), events, args.topk, args.exclude_seen, f"--session {i}"))
    with warnings.catch_warnings():
        warnings.simplefilter("always", RecommendWarning)
        warnings.showwarning = _show
        answers = recommender.answer(requests, args.batch_size)
    rows = [(i, rank, item, score, int(a["popular"])) for i, a in enumerate(answers, 1)
            for rank, (item, score) in enumerate(a["items"], 1)]
    frame = pd.DataFrame(rows, columns=["session", "rank", "item", "score", "popular"])
    frame["time"] = math.nan
    _write(frame, ["session", "rank", "item", "score", "popular"], args.out)
    return 0


def _show(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if sum(map(bool, (args.user, args.requests, args.session))) != 1:
            raise RecommendError("give --user U (one or more), --requests FILE or --session ITEMS")
        if args.session and args.events:
            raise RecommendError("--session carries its own items: --events is for --user and --requests")
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
        sessions = [_session_items(items) for items in args.session]
        recommender = Recommender.from_checkpoint(args.checkpoint, args.data_path)
        if args.session:
            return _answer_sessions(recommender, sessions, args)
        if not args.requests:
            with_events = {e.user for e in events}
            for user in requests.users:
                if not recommender.session_based and not recommender.known_user(user) and user not in with_events:
                    raise RecommendError(f"--user {_shown(user)}: unknown user (not in dataset "
                                         f"'{recommender.config['dataset']}'; give its events with --events)")
        with warnings.catch_warnings():
            warnings.simplefilter("always", RecommendWarning)
            warnings.showwarning = _show
            frame = recommender.recommend_many(requests, k=args.topk, events=events,
                                               exclude_seen=args.exclude_seen, batch_size=args.batch_size)
        columns = OUTPUT_COLUMNS + (["time", "popular", "new_user", "mean_user"] if args.requests else [])
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
