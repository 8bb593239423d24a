r"""
SessionBERT4Rec
################################################

Reference:
    Jinseok Seol, Youngrok Ko, Sang-goo Lee. "Exploiting Session Information in BERT-based
    Session-aware Sequential Recommendation." In SIGIR 2022 (short paper); extended in
    IEEE Access 2025.

Reference code:
    https://github.com/theeluwin/session-aware-bert4rec

RecBole's :class:`~recbole.model.sequential_recommender.BERT4Rec` with three independent
switches (``properties/model/SessionBERT4Rec.yaml``):

- ``session_token`` (ST): a learnable token, inserted before every session as if it were an
  item; never masked, never a label, not padding for attention. It takes the segment of its
  session and the time of that session's first item. Costs one embedding row.
- ``max_session_segments: m`` (SSE, 0 = off): ``Embedding(m + 1, d)`` added to item and
  position embeddings; the newest session gets m, the one before m - 1, ..., older sessions
  are clamped to 1, padding is 0. Costs ``(m + 1) * d``.
- ``temporal_dim: dT`` (TAS, 0 = off): ``TE(t) = cos(w t + b)`` with learnable ``w, b`` shared
  by all layers; in every layer ``T' = Linear(dT, dT)(TE)`` is concatenated to each head's
  query and key, i.e. scores ``(Q_h K_h^T + T' T'^T) / sqrt(d / h + dT)``. Costs
  ``2 dT + n_layers (dT^2 + dT)``.

With every switch off this is exactly RecBole's BERT4Rec (same parameters, same names, same
scores), except that the inference input keeps the oldest history item where RecBole's
``reconstruct_test_data`` drops it (see :meth:`SessionBERT4Rec._layout`).

Inference knows the request: the MASK token appended to the history carries the target's own
timestamp and session; when the target opens a new session (its session id differs from the last
history item's, or the gap exceeds ``session_gap``) a session token is appended first and the
segment advances.

The layout, the temporal encoding and the temporal attention live in
:mod:`recbole_session.model.session_input`, shared with SessionSASRec and SessionGRU4Rec.
"""

from __future__ import annotations

import random

import torch
from recbole.model.sequential_recommender.bert4rec import BERT4Rec
from torch import nn

from recbole_session.checks import check_values

# the layout, TE and TAS are shared with SessionSASRec and SessionGRU4Rec; TemporalEncoding and
# TemporalMultiHeadAttention stay importable from here
from recbole_session.model.session_input import (  # noqa: F401
    SessionTransformer,
    TemporalEncoding,
    TemporalMultiHeadAttention,
)


class SessionBERT4Rec(SessionTransformer, BERT4Rec):
    r"""BERT4Rec with session token (ST), session segment embedding (SSE) and temporal
    self-attention (TAS); see the module docstring."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        self.train_regime = config["train_regime"] or "prefix"
        self.mask_token_prob = config["mask_token_prob"]
        # RecBole's BERT4Rec key: the share of batches whose only masked token is the row's
        # newest item (the request-time task); the reference trains cloze only (0)
        self.ft_ratio = float(config["ft_ratio"] or 0.0)
        self.mask_random_prob = config["mask_random_prob"]
        # the rules table's checks (recbole_session.checks.RULES), for a config built without them
        check_values(config, keys=("train_regime", "mask_ratio", "ft_ratio", "mask_token_prob", "mask_random_prob"))

        # 0 padding, 1..n_items-1 items, n_items MASK (as BERT4Rec), n_items + 1 session token
        self._init_session_input(config, dataset, session_token_id=self.n_items + 1)
        self._add_transformer_session_modules(config)

    # ------------------------------------------------------------------ network
    def encode(self, item_seq, segments=None, times=None):
        """The Transformer's output at every position [B L H], before the output head."""
        return self._encode(item_seq, segments, times, bidirectional=True)

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        """BERT4Rec's output head (Linear, GELU, LayerNorm), position by position: applied only
        where a prediction is read (the masked positions, the request's MASK)."""
        return self.output_ln(self.output_gelu(self.output_ffn(hidden)))

    def forward(self, item_seq, segments=None, times=None):
        return self.head(self.encode(item_seq, segments, times))  # [B L H]

    def _mask(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Cloze masking of the item tokens (never padding, MASK or session tokens): each is
        chosen with ``mask_ratio``; a chosen one becomes MASK with ``mask_token_prob``, a random
        item with ``mask_random_prob``, else stays. Returns the masked tokens, the chosen
        positions and their labels."""
        is_item = (tokens > 0) & (tokens < self.mask_token)
        draw = torch.rand(tokens.shape, device=tokens.device)
        chosen = is_item & (draw < self.mask_ratio)
        # recycle the draw within the chosen ones (as the reference does)
        how = draw / self.mask_ratio
        to_mask = chosen & (how < self.mask_token_prob)
        to_random = chosen & (how >= self.mask_token_prob) & (how < self.mask_token_prob + self.mask_random_prob)
        random_items = torch.randint_like(tokens, 1, self.n_items)
        masked = torch.where(to_mask, torch.full_like(tokens, self.mask_token), tokens)
        masked = torch.where(to_random, random_items, masked)
        return masked, chosen, tokens[chosen]

    def _mask_newest(self, tokens: torch.Tensor, last: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """RecBole's BERT4Rec fine-tuning batch: only each row's newest token (its target, at
        ``last``) becomes MASK. Returns what :meth:`_mask` returns."""
        chosen = torch.zeros_like(tokens, dtype=torch.bool)
        chosen[torch.arange(tokens.size(0), device=tokens.device), last] = True
        return tokens.masked_fill(chosen, self.mask_token), chosen, tokens[chosen]

    def calculate_loss(self, interaction):
        items, length, times, sessions = self._history(interaction)
        newest_only = self.ft_ratio > 0 and random.random() < self.ft_ratio  # per batch, as RecBole
        if self.train_regime in ("per_user", "window") or newest_only:
            # the training row is the history + its target
            new = self._target(interaction, interaction[self.ITEM_ID])
            tokens, segments, times, last = self._layout(items, length, times, sessions, *new)
        else:
            tokens, segments, times, last = self._layout(items, length, times, sessions)
        masked, chosen, labels = self._mask_newest(tokens, last) if newest_only else self._mask(tokens)
        hidden = self.head(self.encode(masked, segments, times)[chosen])  # [N H]
        if labels.numel() == 0:  # nothing drawn in the whole batch: no signal, keep the graph
            return hidden.sum() * 0.0
        if self.loss_type == "CE":
            logits = hidden @ self.item_embedding.weight[: self.n_items].t() + self.output_bias
            return nn.functional.cross_entropy(logits, labels)
        # BPR against one uniformly drawn negative per masked position
        negatives = torch.randint_like(labels, 1, self.n_items)
        pos = (hidden * self.item_embedding(labels)).sum(-1) + self.output_bias[labels]
        neg = (hidden * self.item_embedding(negatives)).sum(-1) + self.output_bias[negatives]
        return -torch.log(1e-14 + torch.sigmoid(pos - neg)).mean()

    def _request_output(self, interaction) -> torch.Tensor:
        """Hidden state at the MASK appended for the request (the target's time and session)."""
        items, length, times, sessions = self._history(interaction)
        mask = torch.full_like(length, self.mask_token)
        tokens, segments, times, last = self._layout(
            items, length, times, sessions, *self._target(interaction, mask)
        )
        return self.head(self.gather_indexes(self.encode(tokens, segments, times), last))  # [B H]

    def predict(self, interaction):
        test_item = interaction[self.ITEM_ID]
        output = self._request_output(interaction)
        return (output * self.item_embedding(test_item)).sum(-1) + self.output_bias[test_item]

    def full_sort_predict(self, interaction):
        output = self._request_output(interaction)
        return output @ self.item_embedding.weight[: self.n_items].t() + self.output_bias


def reference_parameter_count(
    n_items: int,
    max_len: int,
    hidden_size: int,
    n_layers: int,
    session_token: bool = False,
    max_session_segments: int = 0,
    temporal_dim: int = 0,
) -> int:
    """Trainable parameters of the authors' implementation (``models/bert4rec.py``), from which
    the "#params" column of paper Table 2 comes: token embedding ``V + 2`` rows (+1 with ST),
    position ``L``, a segment embedding of ``m + 1`` rows that exists even when SSE is off,
    ``n_layers`` pre-LN Transformer blocks with feed-forward ``4 d`` and one
    ``W_T = Linear(dT, dT)`` each, ``TE``'s ``w, b``, and a ``Linear(d, V + 1)`` classifier."""
    d, ff = hidden_size, 4 * hidden_size
    vocab = n_items + (3 if session_token else 2)
    block = 4 * (d * d + d) + 2 * (2 * d) + (d * ff + ff) + (ff * d + d)
    block += temporal_dim * temporal_dim + temporal_dim
    return (
        vocab * d
        + max_len * d
        + (max_session_segments + 1) * d
        + n_layers * block
        + 2 * temporal_dim
        + d * (n_items + 1) + (n_items + 1)
    )


def added_parameter_count(
    hidden_size: int,
    n_layers: int,
    session_token: bool = False,
    max_session_segments: int = 0,
    temporal_dim: int = 0,
) -> int:
    """Parameters :class:`SessionBERT4Rec` adds to RecBole's BERT4Rec of the same sizes."""
    added = hidden_size if session_token else 0
    if max_session_segments:
        added += (max_session_segments + 1) * hidden_size
    if temporal_dim:
        added += 2 * temporal_dim + n_layers * (temporal_dim * temporal_dim + temporal_dim)
    return added
