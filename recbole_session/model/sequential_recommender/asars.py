r"""
ASARS
################################################

Reference:
    Mei Wang, Weizhi Li, Yan Yan. "Time-weighted Attentional Session-Aware Recommender System."
    arXiv:1909.05414, 2019.

A session RNN with a user long-term profile (inter-session temporal dynamics) and a triangle
parallel attention network over dwell times. No public code exists: this is built from the
paper; ``docs/asars.md`` says what the paper leaves open and what was measured.

What this implementation does where the paper leaves a choice (each is a ``properties/model/
ASARS.yaml`` key or stated here):

- Variants (``variant``): ``user_att`` (user embedding as attention query over the session RNN
  outputs, eq. 19, then [q; e_u] -> FC), ``user_cat`` ([h; e_u] -> FC), ``time_att`` (dwell
  embeddings through their own RNN, then global attention p_i = tanh(W_s h_time_i + b_s),
  score p_i . h_session_i, eqs. 15-17), ``time_cat`` (dwell embedding concatenated to the item
  input of the RNN), ``time_user`` (time attention and user concatenation: the final model),
  and ``plain`` (the session RNN alone: no user, no dwell; an ablation, not in the paper).
- Triangle parallel attention (eq. 18): the score of each position is computed once and a
  lower-triangular mask gives the softmax of every row k in one matrix product, so one forward
  yields the representation of every prefix. ``attention_scope: session`` (default) lets row k
  see the positions of its own session up to k (the time attention "rewards items that play the
  most important role within session"); ``window`` lets it see every position 0..k of the
  window. Masked entries are -inf (a literal 0 as printed in eq. 18 would still get exp(0)).
- ``time_att_query``: ``session`` scores p_i . h_session_i (eq. 16, default); ``user`` scores
  p_i . e_u with the user embedding (eq. 18 as printed, "p_i^T b_u"; needs ``time_user``).
- Dwell: the converter's ``dwell`` (seconds to the next action of the same session). The dwell
  of item i is only known once item i+1 is clicked, so step i sees the dwell of item i-1 (the
  action gap before item i); the target's own dwell and the gap to the target are never used.
  Bins: Scott's rule, width 3.49 * sigma * n^(-1/3), on the dwell of the TRAINING rows (the
  dataset the model is built with, which RecBole and ``run_recbole_session`` give as the train
  split); the width is a buffer, so it is saved in the checkpoint. Three special bins: padding,
  unknown (the first position of a window) and session start.
- Score (eq. 20): r_k . e_i + b_i with the item embedding shared between input and output and
  a learned item bias; the user bias b_u is constant over the items of a ranking and the
  item-by-dwell-bin bias b_{i,tbin} of eq. 9 would need the target's future dwell, so neither
  is used. Eqs. 11-12 (taste evolution, survival time) are not part of the five evaluated
  variants and are not built.
- ``reset_hidden_at_session``: True restarts the RNN state at every session (eq. 3, "reset when
  switching sessions"); False carries it across the sessions of the window (the paper's
  user-parallel mini-batches can be read either way).
- Losses (``loss_type``): ``BPR``, ``TOP1``, ``hinge`` (eqs. 21-23) over ``neg_sample_num``
  negatives drawn per trained position, and ``CE`` (full softmax). ``neg_distribution``:
  ``batch_popularity`` (in proportion to the item counts of the mini-batch, the paper's
  "local" sampling), ``uniform`` (every item) or ``mixed`` (``neg_mix`` of the draws from the
  batch popularity, the rest uniform). ``neg_exclude``: ``target`` (only that position's
  target), ``seen`` (also the items of the sequence up to that position) or ``history`` (every
  item of the user's training rows, future ones included: the paper's text taken literally).
  Forbidden draws are redrawn (exactly, from the allowed items, when rejection is slow); a
  position with no allowed item in the distribution is left out of the loss.
- ``train_regime: window`` trains every position of a sequence at once (with
  :class:`recbole_session.data.dataset.ASARSDataset`, one window of ``MAX_ITEM_LIST_LENGTH``
  per stretch of a user's training rows, each training target once); ``prefix`` keeps
  RecBole's one-sample-per-prefix data and trains the last position only, as GRU4Rec.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType
from torch import nn
from torch.nn.init import xavier_normal_, xavier_uniform_

# a bad setting is the user's: one line on the command line (a ValueError, as RecBole raises)
from recbole_session.cli import UsageError
from recbole_session.model.layers import session_starts, valid_positions

PAPER_VARIANTS = ("user_att", "user_cat", "time_att", "time_cat", "time_user")
VARIANTS = ("plain", *PAPER_VARIANTS)
LOSS_TYPES = ("BPR", "TOP1", "hinge", "CE")
RNN_TYPES = {"GRU": nn.GRU, "LSTM": nn.LSTM}
TRAIN_REGIMES = ("window", "prefix")
ATTENTION_SCOPES = ("session", "window")
TIME_ATT_QUERIES = ("session", "user")
NEG_DISTRIBUTIONS = ("batch_popularity", "uniform", "mixed")
NEG_EXCLUDES = ("target", "seen", "history")

# how each variant joins the user profile and the dwell time (None: not used)
USER_MODE = {"user_att": "att", "user_cat": "cat", "time_user": "cat"}
DWELL_MODE = {"time_att": "att", "time_cat": "cat", "time_user": "att"}

# dwell bin ids below the value bins
PAD_BIN, UNKNOWN_BIN, SESSION_START_BIN = 0, 1, 2
N_SPECIAL_BINS = 3

# Scott's normal-reference constant: (24 * sqrt(pi)) ** (1/3) = 3.49 (paper eq. 8)
SCOTT_CONSTANT = (24.0 * math.sqrt(math.pi)) ** (1.0 / 3.0)

# forbidden negatives are redrawn this many times before the rows still holding one draw from
# their allowed items exactly (a (rows, n_items) mask: cheap for the few rows left)
NEG_RESAMPLE_ROUNDS = 10


def scott_bin_width(values: np.ndarray) -> float:
    """Scott's rule, 3.49 * sigma * n^(-1/3) (population sigma, as numpy's ``bins='scott'``).
    A constant sample (sigma 0) gets width 1, i.e. a single value bin."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return 1.0
    width = SCOTT_CONSTANT * float(values.std()) * values.size ** (-1.0 / 3.0)
    return width if width > 0 else 1.0


def triangle_attention(
    scores: torch.Tensor, values: torch.Tensor, segments: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention of every prefix at once (paper eq. 18).

    ``scores``: (B, L), one score per position; ``values``: (B, L, H); ``segments``: (B, L)
    session number of each position, or None. Row k of the weight matrix is the softmax of the
    scores of positions j <= k (and, with ``segments``, of k's own session only), so the output
    at k is the attention-weighted sum over that prefix. Returns (outputs (B, L, H), weights
    (B, L, L)). Position k always sees itself, so every row is finite; rows beyond a sequence's
    length see only positions below them, and callers read rows < length only.
    """
    length = scores.size(1)
    allowed = torch.ones(length, length, dtype=torch.bool, device=scores.device).tril().unsqueeze(0)
    if segments is not None:
        allowed = allowed & (segments.unsqueeze(2) == segments.unsqueeze(1))
    logits = scores.unsqueeze(1).expand(-1, length, -1).masked_fill(~allowed, float("-inf"))
    weights = torch.softmax(logits, dim=-1)
    return torch.bmm(weights, values), weights


def negative_weights(distribution: str, batch_items: torch.Tensor, n_items: int, mix: float) -> torch.Tensor:
    """(n_items,) probabilities of drawing each item as a negative (padding 0 never).

    ``batch_popularity``: the item's share of ``batch_items`` (every item occurrence of the
    mini-batch); ``uniform``: every item alike; ``mixed``: ``mix`` times the first plus
    ``1 - mix`` times the second (a draw comes from the batch with probability ``mix``)."""
    uniform = torch.ones(n_items, device=batch_items.device)
    uniform[0] = 0.0
    uniform = uniform / uniform.sum()
    if distribution == "uniform":
        return uniform
    counts = torch.bincount(batch_items, minlength=n_items).to(torch.float)
    counts[0] = 0.0
    popularity = counts / counts.sum()
    if distribution == "batch_popularity":
        return popularity
    return mix * popularity + (1.0 - mix) * uniform


def sample_negatives(
    weights: torch.Tensor,
    n_rows: int,
    num: int,
    forbidden: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(negatives (n_rows, num), usable (n_rows, num) bool): ``num`` items per row drawn with
    replacement from ``weights``, never an item that ``forbidden(rows, items)`` rejects (a bool
    of ``items``' shape; ``rows`` (R,) row indices, ``items`` (R, k)). Forbidden draws are
    redrawn ``NEG_RESAMPLE_ROUNDS`` times; rows that still hold one then draw from ``weights``
    restricted to their allowed items. A row with no allowed item is marked unusable."""
    every = torch.arange(n_rows, device=weights.device)
    negatives = torch.multinomial(weights, n_rows * num, replacement=True, generator=generator).view(n_rows, num)
    bad = forbidden(every, negatives)
    for _ in range(NEG_RESAMPLE_ROUNDS):
        count = int(bad.sum())
        if count == 0:
            return negatives, ~bad
        negatives[bad] = torch.multinomial(weights, count, replacement=True, generator=generator)
        bad = forbidden(every, negatives)
    rows = bad.any(dim=1).nonzero().squeeze(1)
    if rows.numel():
        items = torch.arange(weights.numel(), device=weights.device).expand(rows.numel(), -1)
        allowed = weights.unsqueeze(0) * ~forbidden(rows, items)
        possible = allowed.sum(dim=1) > 0
        if possible.any():
            drawn = torch.multinomial(allowed[possible], num, replacement=True, generator=generator)
            fixed = rows[possible]
            negatives[fixed] = torch.where(bad[fixed], drawn, negatives[fixed])
            bad[fixed] = False
    return negatives, ~bad


def first_positions(item_seq: torch.Tensor, n_items: int) -> torch.Tensor:
    """(B, n_items): the first position of each item in each row of ``item_seq``, or L if the
    item does not occur (padding 0 included: never drawn as a negative)."""
    batch, length = item_seq.shape
    first = torch.full((batch, n_items), length, dtype=torch.long, device=item_seq.device)
    positions = torch.arange(length, device=item_seq.device).expand(batch, -1)
    return first.scatter_reduce(1, item_seq, positions, reduce="amin")


def in_history(users: torch.Tensor, items: torch.Tensor, history_keys: torch.Tensor, n_items: int) -> torch.Tensor:
    """Bool of the broadcast shape of ``users`` and ``items``: is (user, item) among the sorted
    ``history_keys`` (``user * n_items + item``)."""
    keys = users * n_items + items
    if history_keys.numel() == 0:
        return torch.zeros_like(keys, dtype=torch.bool)
    pos = torch.searchsorted(history_keys, keys.contiguous()).clamp(max=history_keys.numel() - 1)
    return history_keys[pos] == keys


class ASARS(SequentialRecommender):
    r"""ASARS: session RNN (GRU/LSTM, hidden state reset at session boundaries or carried) with
    a user long-term profile and dwell-time attention joined by triangle parallel attention,
    predicting the next item at every position of a sequence in one forward pass."""

    # negatives are drawn inside the model, never by RecBole
    input_type = InputType.POINTWISE

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        self.variant = config["variant"]
        self.rnn_type = str(config["rnn_type"]).upper()
        self.loss_type = config["loss_type"]
        self.train_regime = config["train_regime"]
        self.attention_scope = config["attention_scope"]
        self.time_att_query = config["time_att_query"]
        self.neg_distribution = config["neg_distribution"]
        self.neg_exclude = config["neg_exclude"]
        for key, value, allowed in (
            ("variant", self.variant, VARIANTS),
            ("rnn_type", self.rnn_type, tuple(RNN_TYPES)),
            ("loss_type", self.loss_type, LOSS_TYPES),
            ("train_regime", self.train_regime, TRAIN_REGIMES),
            ("attention_scope", self.attention_scope, ATTENTION_SCOPES),
            ("time_att_query", self.time_att_query, TIME_ATT_QUERIES),
            ("neg_distribution", self.neg_distribution, NEG_DISTRIBUTIONS),
            ("neg_exclude", self.neg_exclude, NEG_EXCLUDES),
        ):
            if value not in allowed:
                raise UsageError(f"ASARS: {key} '{value}' is not one of {', '.join(allowed)}")
        neg_args = config["train_neg_sample_args"] or {}
        if neg_args.get("distribution", "none") != "none":
            raise UsageError(
                "ASARS draws its own negatives (neg_distribution): set train_neg_sample_args to "
                "None (ASARS.yaml does)"
            )

        self.embedding_size = config["embedding_size"]
        self.hidden_size = config["hidden_size"]
        self.num_layers = config["num_layers"]
        self.dropout_prob = config["dropout_prob"]
        self.user_embedding_size = config["user_embedding_size"]
        self.dwell_embedding_size = config["dwell_embedding_size"]
        self.reset_at_session = bool(config["reset_hidden_at_session"])
        self.neg_sample_num = config["neg_sample_num"]
        self.neg_mix = float(config["neg_mix"])
        self.hinge_margin = config["hinge_margin"]
        self.user_mode = USER_MODE.get(self.variant)
        self.dwell_mode = DWELL_MODE.get(self.variant)
        if self.time_att_query == "user" and not (self.dwell_mode == "att" and self.user_mode):
            raise UsageError(
                f"ASARS: time_att_query 'user' (eq. 18) needs a variant with both the time "
                f"attention and a user embedding (time_user), not '{self.variant}'"
            )
        if not 0.0 <= self.neg_mix <= 1.0:
            raise UsageError(f"ASARS: neg_mix {self.neg_mix} is not within 0..1")

        suffix = config["LIST_SUFFIX"]
        self.SESSION_ID = config["SESSION_ID_FIELD"]
        self.DWELL = config["DWELL_FIELD"]
        self.TIME = config["TIME_FIELD"]
        self.SESSION_SEQ = f"{self.SESSION_ID}{suffix}" if self.SESSION_ID else None
        self.DWELL_SEQ = f"{self.DWELL}{suffix}" if self.DWELL else None
        self.TIME_SEQ = f"{self.TIME}{suffix}"
        needed = []
        uses_attention = self.dwell_mode == "att" or self.user_mode == "att"
        if self.reset_at_session or self.dwell_mode or (uses_attention and self.attention_scope == "session"):
            needed.append(("SESSION_ID_FIELD", self.SESSION_SEQ))
        if self.dwell_mode:
            needed.append(("DWELL_FIELD", self.DWELL_SEQ))
        for key, field in needed:
            if field is None or field not in dataset.field2type:
                raise UsageError(
                    f"ASARS ({self.variant}, reset_hidden_at_session={self.reset_at_session}, "
                    f"attention_scope={self.attention_scope}) needs the {key} list field '{field}' "
                    f"in dataset '{config['dataset']}'; load it with load_col or set {key}"
                )

        users, items, dwell = self._training_rows(dataset)
        # (user, item) pairs of the training rows, for neg_exclude: history
        self.register_buffer(
            "history_keys", torch.unique(users * self.n_items + items), persistent=False
        )

        # layers
        self.item_embedding = nn.Embedding(self.n_items, self.embedding_size, padding_idx=0)
        self.item_bias = nn.Parameter(torch.zeros(self.n_items))
        self.emb_dropout = nn.Dropout(self.dropout_prob)
        rnn_class = RNN_TYPES[self.rnn_type]
        rnn_input = self.embedding_size
        if self.dwell_mode:
            width = scott_bin_width(dwell)
            value_bins = min(int(dwell.max() // width) + 1 if dwell.size else 1, config["dwell_max_bins"])
            self.register_buffer("dwell_bin_width", torch.tensor(width, dtype=torch.float64))
            self.register_buffer("dwell_value_bins", torch.tensor(value_bins, dtype=torch.long))
            self.dwell_embedding = nn.Embedding(
                value_bins + N_SPECIAL_BINS, self.dwell_embedding_size, padding_idx=PAD_BIN
            )
        if self.dwell_mode == "cat":
            rnn_input += self.dwell_embedding_size
        self.session_rnn = rnn_class(
            input_size=rnn_input, hidden_size=self.hidden_size, num_layers=self.num_layers, batch_first=True
        )
        if self.dwell_mode == "att":
            self.dwell_rnn = rnn_class(
                input_size=self.dwell_embedding_size, hidden_size=self.hidden_size,
                num_layers=self.num_layers, batch_first=True,
            )
            # W_s, b_s (eq. 15); p_i meets h_session (eq. 16) or the user embedding (eq. 18)
            query_size = self.user_embedding_size if self.time_att_query == "user" else self.hidden_size
            self.dwell_attention = nn.Linear(self.hidden_size, query_size)
        if self.user_mode:
            self.user_embedding = nn.Embedding(dataset.num(self.USER_ID), self.user_embedding_size)
        if self.user_mode == "att":
            self.user_attention = nn.Linear(self.hidden_size, self.user_embedding_size)  # eq. 19
        fc_input = self.hidden_size + (self.user_embedding_size if self.user_mode else 0)
        self.dense = nn.Linear(fc_input, self.embedding_size)

        self.apply(self._init_weights)

    # ------------------------------------------------------------------ set-up
    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Embedding):
            xavier_normal_(module.weight)
        elif isinstance(module, nn.Linear):
            xavier_normal_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.GRU, nn.LSTM)):
            for name, param in module.named_parameters():
                if name.startswith("weight"):
                    xavier_uniform_(param)

    def _training_rows(self, dataset) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """Users, items and dwell of the distinct rows the dataset's samples are built from.

        A row appears in many samples (as a target and inside later item lists, or once per
        window), so rows are made distinct by (user, time, item); this works for RecBole's
        prefix samples and for ASARS windows alike.
        """
        feat = dataset.inter_feat
        length = feat[self.ITEM_SEQ_LEN]
        valid = valid_positions(length, feat[self.ITEM_SEQ].size(1))
        user = feat[self.USER_ID]
        users = torch.cat([user.unsqueeze(1).expand_as(valid)[valid], user])
        items = torch.cat([feat[self.ITEM_SEQ][valid], feat[self.ITEM_ID]])
        if self.dwell_mode is None:
            return users, items, np.zeros(0)
        times = torch.cat([feat[self.TIME_SEQ][valid], feat[self.TIME]])
        dwell = torch.cat([feat[self.DWELL_SEQ][valid], feat[self.DWELL]])
        rows = np.stack([users.numpy(), items.numpy(), times.numpy().astype(np.float64)], axis=1)
        _, first = np.unique(rows, axis=0, return_index=True)
        return users, items, dwell.numpy().astype(np.float64)[first]

    # ------------------------------------------------------------------ forward
    def _session_starts(self, interaction, item_seq: torch.Tensor) -> torch.Tensor:
        """(B, L) bool: True where a session begins (position 0 always, padding never)."""
        valid = valid_positions(interaction[self.ITEM_SEQ_LEN], item_seq.size(1))
        sessions = interaction[self.SESSION_SEQ] if self.SESSION_SEQ in interaction else None
        return session_starts(valid, sessions)

    def _run_rnn(self, rnn: nn.RNNBase, x: torch.Tensor, item_seq_len: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
        """RNN outputs (B, L, H). With the reset switch, every session of every sequence runs as
        its own sequence starting from a zero state (the paper's reset when switching
        sessions), all in one call; without it the state is carried over the whole window."""
        if not self.reset_at_session:
            return rnn(x)[0]
        batch, length, dim = x.shape
        valid = valid_positions(item_seq_len, length)
        flat_valid = valid.reshape(-1)
        flat_starts = (starts & valid).reshape(-1)
        segment = torch.cumsum(flat_starts.long(), 0) - 1  # segment id of each flat position
        first = torch.nonzero(flat_starts).squeeze(1)  # flat position where each segment begins
        flat_pos = torch.arange(batch * length, device=x.device)
        seg = segment[flat_valid]
        offset = flat_pos[flat_valid] - first[seg]
        padded = x.new_zeros(first.numel(), int(offset.max()) + 1, dim)
        padded[seg, offset] = x.reshape(-1, dim)[flat_valid]
        # trailing padding never reaches the earlier outputs of a one-directional RNN, so the
        # padded batch needs no packing (on CPU, packed backward was 2x slower than padded).
        # Sessions are grouped by length (up to 2^b steps) so that the many short sessions do
        # not run as long as the longest one: at most twice the real steps instead of ~4x.
        seg_length = torch.bincount(seg, minlength=first.numel())
        bucket = torch.ceil(torch.log2(seg_length.to(torch.float))).long()
        out_seg = x.new_zeros(first.numel(), padded.size(1), rnn.hidden_size)
        for b in torch.unique(bucket).tolist():
            rows = torch.nonzero(bucket == b).squeeze(1)
            steps = min(2**b, padded.size(1))
            out_seg[rows, :steps] = rnn(padded[rows, :steps])[0]
        out = x.new_zeros(batch * length, out_seg.size(-1))
        out[flat_valid] = out_seg[seg, offset]
        return out.view(batch, length, -1)

    def dwell_bins(self, interaction, item_seq: torch.Tensor, item_seq_len: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
        """(B, L) dwell bin ids: step i gets the dwell of item i-1 (the gap before item i)."""
        dwell = interaction[self.DWELL_SEQ].to(torch.float64)
        value = torch.floor(dwell[:, :-1] / self.dwell_bin_width).clamp(0, int(self.dwell_value_bins) - 1)
        bins = torch.full_like(item_seq, UNKNOWN_BIN)
        bins[:, 1:] = torch.where(starts[:, 1:], SESSION_START_BIN, value.long() + N_SPECIAL_BINS)
        valid = valid_positions(item_seq_len, item_seq.size(1))
        return bins.masked_fill(~valid, PAD_BIN)

    def _encode(self, interaction) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(r_k (B, L, embedding_size) of every prefix, attention weights (B, L, L) or None)."""
        item_seq = interaction[self.ITEM_SEQ]
        item_seq_len = interaction[self.ITEM_SEQ_LEN]
        starts = self._session_starts(interaction, item_seq)
        segments = torch.cumsum(starts.long(), dim=1) if self.attention_scope == "session" else None
        x = self.item_embedding(item_seq)
        if self.dwell_mode:
            dwell_emb = self.dwell_embedding(self.dwell_bins(interaction, item_seq, item_seq_len, starts))
        if self.dwell_mode == "cat":
            x = torch.cat([x, dwell_emb], dim=-1)
        h_session = self._run_rnn(self.session_rnn, self.emb_dropout(x), item_seq_len, starts)
        user = self.user_embedding(interaction[self.USER_ID]) if self.user_mode else None

        weights = None
        if self.dwell_mode == "att":
            h_time = self._run_rnn(self.dwell_rnn, self.emb_dropout(dwell_emb), item_seq_len, starts)
            p = torch.tanh(self.dwell_attention(h_time))  # eq. 15
            query = user.unsqueeze(1) if self.time_att_query == "user" else h_session  # eq. 18 / 16
            rep, weights = triangle_attention((p * query).sum(-1), h_session, segments)  # eqs. 16-18
        elif self.user_mode == "att":
            p = torch.tanh(self.user_attention(h_session))
            rep, weights = triangle_attention((p * user.unsqueeze(1)).sum(-1), h_session, segments)  # eq. 19
        else:
            rep = h_session
        if self.user_mode:
            rep = torch.cat([rep, user.unsqueeze(1).expand(-1, rep.size(1), -1)], dim=-1)
        return self.dense(rep), weights

    def forward(self, interaction) -> torch.Tensor:
        """Representation r_k (B, L, embedding_size) of every prefix; row k predicts item k+1."""
        return self._encode(interaction)[0]

    def attention_weights(self, interaction) -> torch.Tensor | None:
        """(B, L, L) triangle attention weights (row k: the weights of prefix k), or None for a
        variant without attention."""
        return self._encode(interaction)[1]

    # ------------------------------------------------------------------ training
    def _targets(self, interaction) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L) next item of every position and the (B, L) mask of positions trained on."""
        item_seq = interaction[self.ITEM_SEQ]
        item_seq_len = interaction[self.ITEM_SEQ_LEN]
        last = (item_seq_len - 1).unsqueeze(1)
        targets = torch.cat([item_seq[:, 1:], torch.zeros_like(item_seq[:, :1])], dim=1)
        targets = targets.scatter(1, last, interaction[self.POS_ITEM_ID].unsqueeze(1))
        if self.train_regime == "window":
            mask = valid_positions(item_seq_len, item_seq.size(1))
        else:
            mask = torch.arange(item_seq.size(1), device=item_seq.device).unsqueeze(0) == last
        return targets, mask

    def negatives(self, interaction, mask: torch.Tensor, targets: torch.Tensor,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(negatives (P, neg_sample_num), usable (P, neg_sample_num)) for the P positions of
        ``mask`` in row-major order, drawn from ``neg_distribution`` and never ``neg_exclude``."""
        item_seq = interaction[self.ITEM_SEQ]
        valid = valid_positions(interaction[self.ITEM_SEQ_LEN], item_seq.size(1))
        batch_items = torch.cat([item_seq[valid], interaction[self.POS_ITEM_ID]])
        weights = negative_weights(self.neg_distribution, batch_items, self.n_items, self.neg_mix)
        rows, cols = mask.nonzero(as_tuple=True)  # position p is (rows[p], cols[p])
        target = targets[rows, cols].unsqueeze(1)
        if self.neg_exclude == "seen":
            first = first_positions(item_seq, self.n_items)

            def forbidden(p: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
                return (neg == target[p]) | (first[rows[p].unsqueeze(1), neg] <= cols[p].unsqueeze(1))
        elif self.neg_exclude == "history":
            user = interaction[self.USER_ID][rows].unsqueeze(1)

            def forbidden(p: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
                return (neg == target[p]) | in_history(user[p], neg, self.history_keys, self.n_items)
        else:

            def forbidden(p: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
                return neg == target[p]

        return sample_negatives(weights, rows.numel(), self.neg_sample_num, forbidden, generator)

    def calculate_loss(self, interaction) -> torch.Tensor:
        reps = self.forward(interaction)
        targets, mask = self._targets(interaction)
        if self.loss_type == "CE":
            logits = reps[mask] @ self.item_embedding.weight.t() + self.item_bias
            return F.cross_entropy(logits, targets[mask])

        negatives, usable = self.negatives(interaction, mask, targets)
        rep, target = reps[mask], targets[mask]  # (P, d), (P,)
        pos = (rep * self.item_embedding(target)).sum(-1, keepdim=True) + self.item_bias[target].unsqueeze(1)
        neg = torch.bmm(self.item_embedding(negatives), rep.unsqueeze(2)).squeeze(2) + self.item_bias[negatives]
        if self.loss_type == "BPR":  # eq. 21
            loss = -F.logsigmoid(pos - neg)
        elif self.loss_type == "TOP1":  # eq. 22, as GRU4Rec's TOP1
            loss = torch.sigmoid(neg - pos) + torch.sigmoid(neg**2)
        else:  # hinge, eq. 23
            loss = torch.clamp(self.hinge_margin - (pos - neg), min=0)
        usable = usable.to(loss.dtype)
        return (loss * usable).sum() / usable.sum().clamp(min=1.0)

    # ------------------------------------------------------------------ evaluation
    def _last(self, interaction) -> torch.Tensor:
        return self.gather_indexes(self.forward(interaction), interaction[self.ITEM_SEQ_LEN] - 1)

    def predict(self, interaction) -> torch.Tensor:
        item = interaction[self.ITEM_ID]
        return (self._last(interaction) * self.item_embedding(item)).sum(-1) + self.item_bias[item]

    def full_sort_predict(self, interaction) -> torch.Tensor:
        return self._last(interaction) @ self.item_embedding.weight.t() + self.item_bias
