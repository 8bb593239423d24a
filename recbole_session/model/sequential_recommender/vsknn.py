r"""
VSKNN
################################################

Reference:
    Malte Ludewig and Dietmar Jannach. "Evaluation of session-based recommendation algorithms."
    User Modeling and User-Adapted Interaction 28(4-5): 331-390, 2018.

    Noemi Latifi, Noemi Mauro and Dietmar Jannach. "Session-aware recommendation: A surprising
    quest for the state-of-the-art." Information Sciences 573: 291-315, 2021 (V-SKNN as a
    session-aware baseline).

Reference code:
    https://github.com/rn5l/session-rec, ``algorithms/knn/vsknn.py`` (``VMContextKNN``), read
    for the weightings, the similarity normalisations and the defaults; see docs/vsknn.md for
    where this implementation differs.
"""

from __future__ import annotations

import numpy as np
import torch
from recbole.model.abstract_recommender import SequentialRecommender
from torch import nn

from recbole_session.cli import UsageError
from recbole_session.model.layers import session_starts, valid_positions

# position weight of the i-th of the n events of the current session (session-rec's `weighting`)
WEIGHTINGS = ("same", "div", "linear", "log", "quadratic")
# decay of a neighbour's score by the step back to the newest current item it shares
# (session-rec's `weighting_score`, step 1 = the newest event)
SCORE_WEIGHTINGS = WEIGHTINGS
SIMILARITIES = ("vec", "cosine", "jaccard")
# the linear weightings lose a tenth per step (session-rec's 0.1)
LINEAR_STEP = 0.1
# session-rec's log weighting: 1 / log10(steps back + 1.7)
LOG_OFFSET = 1.7
# elements of a [rows, sessions] or [rows, items] block at once: bounds the memory of a batch
BLOCK_ELEMENTS = 1 << 22


def position_weight(name: str, rank: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
    """Weight of the ``rank``-th (1-based) of ``length`` events of the current session: the
    newest event (rank = length) weighs 1 in every form."""
    back = (length - rank).to(torch.float64)  # events after this one
    if name == "same":
        return torch.ones_like(back)
    if name == "div":
        return rank / length.clamp(min=1).to(torch.float64)
    if name == "linear":  # session-rec's `if i <= 10` cut is replaced by a floor at 0 (docs/vsknn.md)
        return (1.0 - LINEAR_STEP * back).clamp(min=0.0)
    if name == "log":
        return 1.0 / torch.log10(back + LOG_OFFSET)
    return (rank / length.clamp(min=1).to(torch.float64)) ** 2  # quadratic


def score_decay(name: str, step: torch.Tensor) -> torch.Tensor:
    """Decay of a neighbour's similarity by ``step`` (1 = the newest event of the current
    session is the newest one the neighbour shares, 2 = the one before, ...)."""
    step = step.to(torch.float64)
    if name == "same":
        return torch.ones_like(step)
    if name == "div":
        return 1.0 / step
    if name == "linear":  # session-rec goes negative after 10 steps; floored at 0 here
        return (1.0 - LINEAR_STEP * step).clamp(min=0.0)
    if name == "log":
        return 1.0 / torch.log10(step + LOG_OFFSET)
    return 1.0 / step**2  # quadratic


class VSKNN(SequentialRecommender):
    r"""V-SKNN: session-based kNN with a position-weighted current session (Ludewig & Jannach
    2018, "vector multiplication SKNN").

    "Training" indexes the training sessions once, when the model is built on the train split's
    dataset: every event of the train rows (their histories and targets) grouped by session,
    ``(user, session_id)``, as a binary session x item matrix, with each session's newest time.
    For an evaluation row:

    1. the *current session* is the last session of the row's history (the shared layout of
       :func:`~recbole_session.model.layers.session_starts`): the target's own session when the
       target continues it; when the target opens a new session (session-rec never predicts
       those) the newest finished one. Without session ids the whole history window
       (``MAX_ITEM_LIST_LENGTH`` items) is the current session;
    2. the i-th of its n events weighs ``weighting(i, n)`` (``div``: i / n, the newest 1); an
       item seen twice takes its newest weight;
    3. candidates are the indexed sessions sharing an item with it, except the current session
       itself (under leave-one-out its earlier events are training rows); the ``sample_size``
       most recent of them are kept (0: all);
    4. similarity (``vec``): the dot product of the weighted current vector with the
       candidate's binary vector, divided by the number of distinct current items; ``cosine``
       divides by ``sqrt(sum of squared weights) * sqrt(|candidate|)``; ``jaccard`` is the
       unweighted set overlap;
    5. the ``k`` most similar candidates are the neighbours; an item's score is the sum, over the
       neighbours holding it, of similarity x ``weighting_score(step)``, where step counts back
       from the newest current event to the newest one the neighbour shares (``same``: the plain
       sum); ``remind: False`` zeroes the current session's items, ``normalize`` divides a row
       by its maximum (ranking-neutral).

    There is nothing to learn: a dummy parameter and a zero loss let RecBole's Trainer run its
    one epoch (``epochs: 1`` in the yaml), as RecBole's ``Pop`` does.
    """

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        self.k = int(config["k"])
        self.sample_size = int(config["sample_size"])
        self.weighting = config["weighting"]
        self.weighting_score = config["weighting_score"]
        self.similarity = config["similarity"]
        self.remind = bool(config["remind"])
        self.normalize = bool(config["normalize"])
        for key, value, allowed in (("weighting", self.weighting, WEIGHTINGS),
                                    ("weighting_score", self.weighting_score, SCORE_WEIGHTINGS),
                                    ("similarity", self.similarity, SIMILARITIES)):
            if value not in allowed:
                raise UsageError(f"VSKNN: {key} '{value}' is not one of {', '.join(allowed)}")
        if self.k < 1 or self.sample_size < 0:
            raise UsageError(f"VSKNN: k must be at least 1 and sample_size at least 0 (0: all), "
                             f"got k={self.k}, sample_size={self.sample_size}")

        suffix = config["LIST_SUFFIX"]
        self.SESSION_ID = config["SESSION_ID_FIELD"]
        self.SESSION_SEQ = f"{self.SESSION_ID}{suffix}" if self.SESSION_ID else None
        self.TIME = config["TIME_FIELD"]
        self.TIME_SEQ = f"{self.TIME}{suffix}" if self.TIME else None
        # sessions come from the session list field; a dataset without it (RecBole's benchmark
        # files, a dataset loaded without session_id) has one session per user: its window
        self.use_sessions = self.SESSION_SEQ in dataset.field2type and self.SESSION_ID in dataset.field2type

        # nothing to learn; RecBole's Trainer needs a parameter to build its optimizer
        self.dummy = nn.Parameter(torch.zeros(1))
        self._index(dataset)

    # ------------------------------------------------------------------ index (the "training")
    def _session_keys(self, users: torch.Tensor, sessions: torch.Tensor) -> torch.Tensor:
        """One int64 per (user, session id); ids at or above the index's base match nothing."""
        keys = users.long() * self.session_base + sessions.long()
        return torch.where(sessions.long() < self.session_base, keys, torch.full_like(keys, -1))

    def _index(self, dataset) -> None:
        """The training sessions as a binary sparse (COO) [sessions, items] matrix, each session's recency
        rank and the sorted (session, item) pairs, from every event of the train rows."""
        feat = dataset.inter_feat
        item_seq, length = feat[self.ITEM_SEQ], feat[self.ITEM_SEQ_LEN]
        rows, width = item_seq.shape
        valid = valid_positions(length, width)
        users = feat[self.USER_ID] if self.USER_ID in feat else torch.zeros(rows, dtype=torch.long)
        if self.use_sessions:
            seq_sessions, target_sessions = feat[self.SESSION_SEQ].long(), feat[self.SESSION_ID].long()
        else:
            seq_sessions = torch.zeros_like(item_seq)
            target_sessions = torch.zeros(rows, dtype=torch.long)
        if self.TIME_SEQ in feat and self.TIME in feat:
            seq_times, target_times = feat[self.TIME_SEQ].double(), feat[self.TIME].double()
        else:  # no times (benchmark files): a later row is a later event
            target_times = torch.arange(rows, dtype=torch.float64)
            seq_times = target_times.unsqueeze(1).expand(rows, width)

        # events: the histories' items (a user's first events are in no target) and the targets
        ev_users = torch.cat([users.unsqueeze(1).expand(rows, width)[valid], users])
        ev_sessions = torch.cat([seq_sessions[valid], target_sessions])
        ev_items = torch.cat([item_seq[valid], feat[self.POS_ITEM_ID]]).long()
        ev_times = torch.cat([seq_times[valid], target_times])
        self.session_base = int(ev_sessions.max().item()) + 1 if len(ev_sessions) else 1
        keys, session_of = torch.unique(self._session_keys(ev_users, ev_sessions), return_inverse=True)
        n_sessions = len(keys)

        newest = torch.full((n_sessions,), -np.inf, dtype=torch.float64).scatter_reduce(
            0, session_of, ev_times, reduce="amax")
        # recency as a unique rank (ties by index), so the "most recent" sample is deterministic
        order = np.lexsort((np.arange(n_sessions), newest.numpy()))
        recency = torch.empty(n_sessions, dtype=torch.long)
        recency[torch.from_numpy(order)] = torch.arange(n_sessions)

        pairs = torch.unique(session_of * self.n_items + ev_items)  # sorted, one per (session, item)
        pair_sessions, pair_items = pairs // self.n_items, pairs % self.n_items
        ones = torch.ones(len(pairs), dtype=torch.float32)
        shape = (n_sessions, self.n_items)
        matrix = torch.sparse_coo_tensor(torch.stack([pair_sessions, pair_items]), ones, shape,
                                         check_invariants=True).coalesce()
        # non-persistent: rebuilt from the train split whenever the model is built (a checkpoint
        # reload builds it on the same data), so checkpoints stay small
        self.register_buffer("session_keys", keys, persistent=False)
        self.register_buffer("session_items", matrix, persistent=False)
        self.register_buffer("item_sessions", matrix.t().coalesce(), persistent=False)
        self.register_buffer("session_sizes", torch.bincount(pair_sessions, minlength=n_sessions).float(),
                             persistent=False)
        self.register_buffer("session_recency", recency, persistent=False)
        self.register_buffer("pair_keys", pairs, persistent=False)

    @property
    def n_sessions(self) -> int:
        return len(self.session_keys)

    # ------------------------------------------------------------------ scoring
    def current_session(
        self, item_seq: torch.Tensor, item_seq_len: torch.Tensor, sessions: torch.Tensor | None
    ) -> torch.Tensor:
        """(B, L) bool: the positions of the history's last session (all valid positions when
        there are no session ids)."""
        valid = valid_positions(item_seq_len, item_seq.size(1))
        if sessions is None:
            return valid
        segment = torch.cumsum(session_starts(valid, sessions).long(), dim=1)
        last = segment.gather(1, (item_seq_len - 1).clamp(min=0).unsqueeze(1))
        return valid & (segment == last)

    def forward(
        self,
        item_seq: torch.Tensor,
        item_seq_len: torch.Tensor,
        sessions: torch.Tensor | None = None,
        users: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Scores of every item for every row, [B, n_items]; ``sessions`` is the history's
        session id list (None: the window is the session), ``users`` the rows' users (for
        leaving the current session out of its own neighbours)."""
        rows_per_block = max(1, BLOCK_ELEMENTS // max(self.n_sessions, self.n_items, 1))
        blocks = []
        for start in range(0, item_seq.size(0), rows_per_block):
            part = slice(start, start + rows_per_block)
            blocks.append(self._score_block(item_seq[part], item_seq_len[part],
                                            None if sessions is None else sessions[part],
                                            None if users is None else users[part]))
        return torch.cat(blocks) if blocks else item_seq.new_zeros((0, self.n_items), dtype=torch.float)

    def _score_block(self, item_seq, item_seq_len, sessions, users) -> torch.Tensor:
        batch, device = item_seq.size(0), item_seq.device
        current = self.current_session(item_seq, item_seq_len, sessions)
        rank = torch.cumsum(current.long(), dim=1) * current  # 1-based event index, 0 elsewhere
        length = current.sum(dim=1)  # n events
        # an item's newest rank in the current session (0: not in it); its weight is that event's
        last_rank = torch.zeros(batch, self.n_items, dtype=torch.long, device=device).scatter_reduce(
            1, item_seq, rank, reduce="amax")
        last_rank[:, 0] = 0  # padding
        in_current = last_rank > 0
        weight = position_weight(self.weighting, last_rank, length.unsqueeze(1)) * in_current
        distinct = in_current.sum(dim=1, keepdim=True).double()

        # shared items and weighted dot product with every indexed session: [S, I] @ [I, 2B]
        stacked = torch.cat([in_current.float(), weight.float()], dim=0).t()
        products = torch.sparse.mm(self.session_items, stacked).t().double()  # [2B, S]
        overlap, dot = products[:batch], products[batch:]
        candidate = overlap > 0
        if users is not None:  # the current session is not its own neighbour
            own_id = (sessions.gather(1, (item_seq_len - 1).clamp(min=0).unsqueeze(1)).squeeze(1)
                      if sessions is not None else torch.zeros_like(users))
            own = torch.searchsorted(self.session_keys, self._session_keys(users, own_id))
            own = own.clamp(max=self.n_sessions - 1)
            is_own = self.session_keys[own] == self._session_keys(users, own_id)
            candidate[is_own.nonzero().squeeze(1), own[is_own]] = False
        if 0 < self.sample_size < self.n_sessions:  # the most recent sample_size candidates
            recency = torch.where(candidate, self.session_recency.unsqueeze(0), -1)
            newest, _ = recency.topk(self.sample_size, dim=1)
            candidate &= recency >= newest[:, -1:].clamp(min=0)

        if self.similarity == "vec":
            sim = dot / distinct.clamp(min=1)
        elif self.similarity == "cosine":
            norm = (weight**2).sum(dim=1, keepdim=True).sqrt() * self.session_sizes.double().sqrt().unsqueeze(0)
            sim = dot / norm.clamp(min=torch.finfo(torch.float64).tiny)
        else:  # jaccard
            sim = overlap / (distinct + self.session_sizes.double().unsqueeze(0) - overlap).clamp(min=1)
        sim = torch.where(candidate, sim, torch.zeros_like(sim))
        top_sim, top_sessions = sim.topk(min(self.k, self.n_sessions), dim=1)  # [B, k]
        neighbour = top_sim > 0

        # step back to the newest current event whose item the neighbour holds
        queries = top_sessions.unsqueeze(2) * self.n_items + item_seq.unsqueeze(1)  # [B, k, L]
        found = torch.searchsorted(self.pair_keys, queries).clamp(max=len(self.pair_keys) - 1)
        shared = (self.pair_keys[found] == queries) & current.unsqueeze(1)
        back = (length.unsqueeze(1) - rank + 1).unsqueeze(1).expand_as(queries)
        step = torch.where(shared, back, torch.full_like(back, item_seq.size(1) + 1)).amin(dim=2)
        contribution = torch.where(neighbour, top_sim * score_decay(self.weighting_score, step),
                                   torch.zeros_like(top_sim))

        spread = torch.zeros(batch, self.n_sessions, dtype=torch.float32, device=device)
        spread.scatter_(1, top_sessions, contribution.float())
        scores = torch.sparse.mm(self.item_sessions, spread.t()).t()  # [B, I]
        if not self.remind:
            scores = scores.masked_fill(in_current, 0.0)
        if self.normalize:
            scores = scores / scores.amax(dim=1, keepdim=True).clamp(min=torch.finfo(scores.dtype).tiny)
        return scores

    def _inputs(self, interaction) -> tuple:
        sessions = interaction[self.SESSION_SEQ] if self.use_sessions and self.SESSION_SEQ in interaction else None
        users = interaction[self.USER_ID] if self.USER_ID in interaction else None
        return interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN], sessions, users

    def calculate_loss(self, interaction):
        # the index is built in __init__: a zero loss with a gradient path, as RecBole's Pop
        return (self.dummy * 0.0).sum()

    def predict(self, interaction):
        scores = self.forward(*self._inputs(interaction))
        return scores.gather(1, interaction[self.ITEM_ID].unsqueeze(1)).squeeze(1)

    def full_sort_predict(self, interaction):
        return self.forward(*self._inputs(interaction))
