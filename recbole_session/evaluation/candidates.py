"""Candidate sets of the evaluation protocols, derived only from the dataset and a seed.

Everything here is a function of the whole interaction data (all splits) and
``eval_negatives_seed``: never of a model, of the training RNG or of the dataset class's id
mapping. Items and users are ordered and seeded by their *tokens* (the ids of the atomic
files), so two models trained on the same data see the same candidates even if their dataset
classes map ids differently, and comparisons between them are paired.

- ``random<N>``: N items per user, uniform without replacement, none of them an item the user
  ever touched (train, valid or test);
- ``popular<N>``: the N most popular items (interaction count over all rows) that the user
  never touched; ties broken by the item token (numeric tokens in numeric order);
- ``full_unseen``: every item but those the user interacted with before the target (the
  target itself stays a candidate); ranked in ``protocols.py`` from the row's own history;
- ``uni<N>`` / ``pop<N>``: RecBole's own meaning, drawn by RecBole's ``Sampler`` (uniform, or
  in proportion to popularity; it excludes the items RecBole stores as the user's positives).
"""

from __future__ import annotations

import hashlib
import re
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from recbole_session.cli import UsageError

# protocol name -> (kind, number of negatives); "full" has none
_PROTOCOL = re.compile(r"^(random|popular|uni|pop)(\d+)$")
PAPER_PROTOCOLS = ("random100", "popular100", "full")
# the largest eval_negatives_seed: RecBole's sampled modes (uni<N>, pop<N>) seed numpy's
# RandomState, which takes 0 .. 2**32 - 1
MAX_NEGATIVES_SEED = 2**32 - 1


@dataclass(frozen=True)
class Protocol:
    """One candidate protocol: ``kind`` in {full, full_unseen, random, popular, uni, pop}, ``n``
    negatives."""

    name: str
    kind: str
    n: int = 0


def parse_protocol(name: str) -> Protocol:
    """``"random100"`` -> ``Protocol("random100", "random", 100)``; clear error otherwise."""
    key = str(name).strip().lower()
    if key in ("full", "full_unseen"):
        return Protocol(key, key, 0)
    match = _PROTOCOL.match(key)
    if match is None or int(match.group(2)) < 1:
        raise ValueError(
            f"unknown evaluation protocol '{name}': use full, random<N>, popular<N> (the papers'), "
            "full_unseen (every item the user has not interacted with before the target), "
            "or uni<N>, pop<N> (RecBole's sampled modes), e.g. random100"
        )
    return Protocol(key, match.group(1), int(match.group(2)))


def parse_protocols(names: Any) -> list[Protocol]:
    """A list, or a comma-separated string, of protocol names; duplicates removed."""
    if isinstance(names, str):  # "random100,full" or, from a command line, "[random100, full]"
        names = [part.strip(" '\"") for part in names.strip().strip("[]").split(",") if part.strip(" '\"")]
    protocols: list[Protocol] = []
    for name in names or []:
        protocol = parse_protocol(name)
        if protocol not in protocols:
            protocols.append(protocol)
    if not protocols:
        raise ValueError("no evaluation protocol given (eval_protocols is empty)")
    return protocols


def _token_order_key(token: str) -> tuple:
    """Numeric tokens in numeric order first, then the others as strings."""
    return (0, int(token), "") if token.isdigit() else (1, 0, token)


def as_numpy(column: Any) -> np.ndarray:
    if isinstance(column, torch.Tensor):
        return column.numpy()
    return np.asarray(column)


@dataclass
class DatasetHistory:
    """Per-user item histories and item popularity of a whole RecBole dataset (all splits).

    Ids are RecBole's internal ids of that dataset (0 is padding); tokens are kept to make
    candidates independent of the id mapping.
    """

    user_tokens: np.ndarray  # internal user id -> token
    item_tokens: np.ndarray  # internal item id -> token
    user_items: list  # internal user id -> sorted np.ndarray of internal item ids
    counts: np.ndarray  # internal item id -> number of interactions over all rows
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def n_items(self) -> int:
        return len(self.item_tokens)

    @property
    def n_users(self) -> int:
        return len(self.user_tokens)

    def item_universe(self) -> np.ndarray:
        """Items with at least one interaction, in token order (the candidate pool)."""
        if "universe" not in self._cache:
            ids = np.flatnonzero(self.counts > 0)
            ids = ids[ids > 0]
            order = sorted(range(len(ids)), key=lambda i: _token_order_key(str(self.item_tokens[ids[i]])))
            self._cache["universe"] = ids[np.asarray(order, dtype=np.int64)]
        return self._cache["universe"]

    def popularity_order(self) -> np.ndarray:
        """Items by interaction count, most popular first; ties by token order."""
        if "popular" not in self._cache:
            universe = self.item_universe()
            # a stable sort on -count keeps the token order among equal counts
            self._cache["popular"] = universe[np.argsort(-self.counts[universe], kind="stable")]
        return self._cache["popular"]

    def token_rank(self) -> np.ndarray:
        """internal item id -> position in token order (-1 for padding), for fingerprints."""
        if "rank" not in self._cache:
            rank = np.full(self.n_items, -1, dtype=np.int64)
            universe = self.item_universe()
            rank[universe] = np.arange(len(universe))
            self._cache["rank"] = rank
        return self._cache["rank"]

    def _available(self, uid: int, n: int, protocol: str) -> None:
        free = len(self.item_universe()) - len(self.user_items[uid])
        if free < n:  # a user's mistake (N too large for the data), not the package's
            raise UsageError(
                f"{protocol}: user '{self.user_tokens[uid]}' touched {len(self.user_items[uid])} of "
                f"{len(self.item_universe())} items, so only {free} can be negatives (< {n}); "
                "use a smaller N or filter such users out"
            )

    def _users(self, users: np.ndarray | None) -> np.ndarray:
        if users is None:
            return np.array([u for u in range(1, self.n_users) if len(self.user_items[u])], dtype=np.int64)
        return np.unique(np.asarray(users, dtype=np.int64))

    def _table(self, key: tuple, n: int, users: np.ndarray | None, draw) -> np.ndarray:
        """``(n_users, n)`` table of negatives, filled on demand for ``users`` (default: every
        user with a history); rows of users not asked for stay 0."""
        store = self._cache.setdefault(key, {"table": np.zeros((self.n_users, n), dtype=np.int64),
                                             "done": np.zeros(self.n_users, dtype=bool)})
        users = self._users(users)
        for uid in users[~store["done"][users]]:
            if len(self.user_items[uid]) == 0:
                raise ValueError(f"user '{self.user_tokens[uid]}' has no interaction in the dataset")
            self._available(uid, n, f"{key[0]}{n}")
            store["table"][uid] = draw(uid)
            store["done"][uid] = True
        return store["table"]

    def random_negatives(self, n: int, seed: int, users: np.ndarray | None = None) -> np.ndarray:
        """``(n_users, n)`` internal item ids: per user, ``n`` items drawn uniformly without
        replacement from the items the user never touched. Each user's draw is seeded by
        ``(seed, crc32(user token))``, so it does not depend on the other users, on the id
        mapping or on any global RNG."""
        universe = self.item_universe()
        allowed = np.ones(self.n_items, dtype=bool)

        def draw(uid: int) -> np.ndarray:
            items = self.user_items[uid]
            allowed[items] = False
            pool = universe[allowed[universe]]
            allowed[items] = True
            rng = np.random.default_rng([int(seed), zlib.crc32(str(self.user_tokens[uid]).encode())])
            return rng.choice(pool, size=n, replace=False)

        return self._table(("random", n, int(seed)), n, users, draw)

    def popular_negatives(self, n: int, users: np.ndarray | None = None) -> np.ndarray:
        """``(n_users, n)`` internal item ids: per user, the ``n`` most popular items the
        user never touched, most popular first."""
        order = self.popularity_order()

        def draw(uid: int) -> np.ndarray:
            items = self.user_items[uid]
            head = order[: n + len(items)]
            return head[~np.isin(head, items)][:n]

        return self._table(("popular", n), n, users, draw)

    def fingerprint(self, negatives: np.ndarray, users: np.ndarray | None = None) -> str:
        """A hash of per-user candidates in token space (user token + item tokens' ranks)."""
        digest = hashlib.sha1()
        rank = self.token_rank()
        for uid in self._users(users):
            digest.update(str(self.user_tokens[uid]).encode() + b"\0")
            digest.update(rank[negatives[uid]].tobytes())
        return digest.hexdigest()[:16]


def history_from_dataset(dataset: Any) -> DatasetHistory:
    """Histories and popularity from a whole RecBole dataset, built or not.

    Rows are counted as RecBole holds them: a sequential dataset after ``build()`` has one row
    per *target* (the user's or session's first item only appears in the item list of its
    length-1 row), so the first items are added back from those rows; a not-yet-built or a
    general dataset has one row per interaction. The history also takes every item of the
    item lists, so that truncated prefixes (benchmark files) lose nothing.
    """
    uid_field, iid_field = dataset.uid_field, dataset.iid_field
    feat = dataset.inter_feat
    columns = set(feat.columns)
    users = as_numpy(feat[uid_field]).astype(np.int64)
    items = as_numpy(feat[iid_field]).astype(np.int64)
    count_users, count_items = [users], [items]
    hist_users, hist_items = [users], [items]

    list_field = getattr(dataset, "item_id_list_field", None)
    length_field = getattr(dataset, "item_list_length_field", None)
    if list_field in columns and length_field in columns:
        lists = as_numpy(feat[list_field]).astype(np.int64)
        lengths = as_numpy(feat[length_field]).astype(np.int64).reshape(-1)
        first = lengths == 1
        count_users.append(users[first])
        count_items.append(lists[first, 0])
        rows, cols = np.nonzero(lists)
        hist_users.append(users[rows])
        hist_items.append(lists[rows, cols])

    n_users, n_items = dataset.user_num, dataset.item_num
    counts = np.bincount(np.concatenate(count_items), minlength=n_items).astype(np.int64)
    counts[0] = 0
    hu, hi = np.concatenate(hist_users), np.concatenate(hist_items)
    pairs = np.unique(hu * n_items + hi)
    pu, pi = pairs // n_items, pairs % n_items
    keep = pi > 0
    pu, pi = pu[keep], pi[keep]
    bounds = np.searchsorted(pu, np.arange(n_users + 1))
    user_items = [pi[bounds[u] : bounds[u + 1]] for u in range(n_users)]
    return DatasetHistory(
        user_tokens=np.asarray(dataset.field2id_token[uid_field]),
        item_tokens=np.asarray(dataset.field2id_token[iid_field]),
        user_items=user_items,
        counts=counts,
    )


class RecBoleNegatives:
    """RecBole's ``uni<N>`` / ``pop<N>``: negatives drawn by RecBole's own ``Sampler`` over the
    whole dataset (uniform, or in proportion to item popularity; with replacement across the
    N draws, excluding the items RecBole stores as the user's positives), from a private
    RandomState seeded by ``eval_negatives_seed`` so the global RNG is left alone."""

    def __init__(self, dataset: Any, kind: str, n: int, seed: int):
        from recbole.sampler import Sampler

        distribution = "uniform" if kind == "uni" else "popularity"
        self.sampler = Sampler(["all"], [dataset], distribution).set_phase("all")
        self.n = n
        self.state = np.random.RandomState(int(seed)).get_state()

    def sample(self, user_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        """``(len(user_ids), n)`` negatives, one row per eval row."""
        saved = np.random.get_state()
        np.random.set_state(self.state)
        try:
            flat = self.sampler.sample_by_user_ids(user_ids, item_ids, self.n)
        finally:
            self.state = np.random.get_state()
            np.random.set_state(saved)
        # RecBole lays them out as draw-major: [u0, u1, ..., u0, u1, ...]
        return as_numpy(flat).reshape(self.n, len(user_ids)).T.astype(np.int64)
