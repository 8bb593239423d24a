r"""The session input that SessionBERT4Rec, SessionSASRec and SessionGRU4Rec share.

Reference:
    Jinseok Seol, Youngrok Ko, Sang-goo Lee. "Parameter-efficiently Leveraging Session Information
    in Deep Learning based Session-aware Sequential Recommendation." IEEE Access 13,
    pp. 35555-35566, 2025 (the three additions for attention- and RNN-based models); first for
    BERT4Rec in "Exploiting Session Information in BERT-based Session-aware Sequential
    Recommendation", SIGIR 2022.

Reference code:
    https://github.com/theeluwin/session-aware-bert4rec (``datasets/nwp.py``, ``models/sasrec.py``)

One definition of

- the *layout* (:meth:`SessionInput._layout`): a session token inserted before every session,
  the session segments (newest ``m``, older clamped to 1, padding 0), the time of every token,
  the cut to the newest ``L`` tokens, left or right padding, and the event appended for the
  request (BERT4Rec's MASK, or the session token alone that tells a causal model "a new session
  starts now");
- the temporal encoding ``TE(t) = cos(w t + b)`` (:class:`TemporalEncoding`) and the temporal
  self-attention of the Transformer families (:class:`TemporalMultiHeadAttention`,
  :class:`SessionTransformer`);
- the next-item head of the causal families (:class:`SessionNextItem`: RecBole's SASRec and
  GRU4Rec losses and scores, read at the last token of the layout).

The classes here are mixins of RecBole models (no ``nn.Module`` of their own), so the models keep
RecBole's parameter names and state-dict keys.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from recbole.model.layers import MultiHeadAttention
from torch import nn

from recbole_session.checks import SESSION_CHOICES, check_values
from recbole_session.literals import short
from recbole_session.model.layers import session_starts, valid_positions

# the values each key of the session input accepts: the rules table's (checks.RULES)
CHOICES = SESSION_CHOICES
PADDING_SIDES = CHOICES["padding_side"]


class TemporalEncoding(nn.Module):
    r"""``TE(t) = cos(w t + b)`` with learnable ``w, b`` (dT each).

    The phase is computed in float64: RecBole stores times as float32, whose spacing is 2 s
    near 3e7 s and 128 s near 1.7e9 s, so ``w t`` in float32 would make times a second apart
    (or minutes apart, for raw unix seconds) indistinguishable for the fast frequencies.
    """

    def __init__(self, temporal_dim: int, init_exponents: tuple[float, float]):
        super().__init__()
        low, high = init_exponents
        # reference initialisation (after TGSRec): periods from seconds to decades, b = 0
        self.weight = nn.Parameter(
            torch.from_numpy(1.0 / 10 ** np.linspace(low, high, temporal_dim)).float()
        )
        self.bias = nn.Parameter(torch.zeros(temporal_dim))

    def forward(self, times: torch.Tensor) -> torch.Tensor:
        phase = times.double().unsqueeze(-1) * self.weight.double() + self.bias.double()
        return torch.cos(phase).to(self.weight.dtype)


class TemporalMultiHeadAttention(MultiHeadAttention):
    r"""RecBole's multi-head attention with a temporal term shared by all heads:
    ``softmax((Q_h K_h^T + T' T'^T) / sqrt(d_h + dT))``, ``T' = Linear(dT, dT)(TE)``, which is
    the concatenation ``[Q_h T'] [K_h T']^T`` of the paper computed once for all heads."""

    def __init__(self, n_heads, hidden_size, hidden_dropout_prob, attn_dropout_prob,
                 layer_norm_eps, temporal_dim: int):
        super().__init__(n_heads, hidden_size, hidden_dropout_prob, attn_dropout_prob, layer_norm_eps)
        self.temporal_proj = nn.Linear(temporal_dim, temporal_dim)
        self.scale = math.sqrt(self.attention_head_size + temporal_dim)

    def forward(self, input_tensor, attention_mask, temporal=None):
        query = self.transpose_for_scores(self.query(input_tensor)).permute(0, 2, 1, 3)
        key = self.transpose_for_scores(self.key(input_tensor)).permute(0, 2, 3, 1)
        value = self.transpose_for_scores(self.value(input_tensor)).permute(0, 2, 1, 3)

        scores = torch.matmul(query, key)  # [B h L L]
        if temporal is not None:
            proj = self.temporal_proj(temporal)  # [B L dT]
            scores = scores + torch.matmul(proj, proj.transpose(1, 2)).unsqueeze(1)
            scores = scores / self.scale
        else:
            scores = scores / self.sqrt_attention_head_size
        scores = scores + attention_mask

        probs = self.attn_dropout(self.softmax(scores))
        context = torch.matmul(probs, value).permute(0, 2, 1, 3).contiguous()
        context = context.view(*context.size()[:-2], self.all_head_size)
        hidden = self.out_dropout(self.dense(context))
        return self.LayerNorm(hidden + input_tensor)


class SessionInput:
    r"""Mixin of a RecBole sequential model: the three switches' configuration and the layout.

    The model calls :meth:`_init_session_input` in its ``__init__`` (after RecBole's), then
    :meth:`_add_session_modules`; the keys (``properties/model/<Model>.yaml``):
    ``session_token`` (ST), ``max_session_segments`` (SSE, 0 = off), ``temporal_dim`` (TAS,
    0 = off), ``temporal_init_exponents``, ``padding_side`` and the dataset's ``session_gap``.
    """

    def _init_session_input(self, config, dataset, session_token_id: int,
                            padding_sides: tuple[str, ...] = PADDING_SIDES) -> None:
        """Read the switches once and check them against the dataset's fields.
        ``session_token_id`` is the session token's row of the item embedding (the first row
        after the model's own tokens)."""
        name = type(self).__name__
        self.use_session_token = bool(config["session_token"])
        self.max_session_segments = int(config["max_session_segments"] or 0)
        self.temporal_dim = int(config["temporal_dim"] or 0)
        self.temporal_init_exponents = tuple(config["temporal_init_exponents"]) if self.temporal_dim else None
        self.session_gap = config["session_gap"]
        self.padding_side = config["padding_side"] or "right"
        self.session_token_id = session_token_id
        if self.padding_side not in padding_sides:
            raise ValueError(
                f"{name}: padding_side must be {' or '.join(repr(s) for s in padding_sides)}, "
                f"got {short(self.padding_side)}"
            )

        # field names: the history lists RecBole's SequentialDataset builds, and the target's own
        suffix = config["LIST_SUFFIX"]
        self.TIME = config["TIME_FIELD"]
        self.SESSION = config["SESSION_ID_FIELD"]
        self.TIME_SEQ = self.TIME + suffix if self.TIME else None
        self.SESSION_SEQ = self.SESSION + suffix if self.SESSION else None
        fields = set(dataset.field2type)
        has_time = self.TIME_SEQ in fields
        has_session = self.SESSION_SEQ in fields
        self.use_sessions = self.use_session_token or self.max_session_segments > 0
        self.use_session_ids = self.use_sessions and has_session
        self.use_gap = self.use_sessions and has_time and bool(self.session_gap)
        if self.use_sessions and not (self.use_session_ids or self.use_gap):
            raise ValueError(
                f"{name}: session_token / max_session_segments need sessions: load the "
                f"'{self.SESSION}' field (SESSION_ID_FIELD) or the '{self.TIME}' field with a "
                "session_gap"
            )
        if self.temporal_dim and not has_time:
            raise ValueError(f"{name}: temporal_dim > 0 needs the time field '{self.TIME}' in load_col")
        self.use_time = self.temporal_dim > 0 or self.use_gap

    @property
    def session_switches_on(self) -> bool:
        return self.use_session_token or bool(self.max_session_segments) or bool(self.temporal_dim)

    def _add_session_modules(self, embedding_size: int) -> None:
        """The switches' parameters: one more item-embedding row for the session token (the
        embedding is rebuilt with ``session_token_id + 1`` rows), ``segment_embedding`` and
        ``temporal_encoding``, in this order (the order ``apply`` re-initialises them in)."""
        if self.use_session_token:
            self.item_embedding = nn.Embedding(self.session_token_id + 1, embedding_size, padding_idx=0)
        if self.max_session_segments:
            self.segment_embedding = nn.Embedding(self.max_session_segments + 1, embedding_size, padding_idx=0)
        if self.temporal_dim:
            self.temporal_encoding = TemporalEncoding(self.temporal_dim, self.temporal_init_exponents)

    def _reinit_session_weights(self) -> None:
        """The model's own ``_init_weights`` over every module (the new ones included), with the
        padding segment kept at zero."""
        self.apply(self._init_weights)
        if self.max_session_segments:
            with torch.no_grad():
                self.segment_embedding.weight[0].zero_()

    # ------------------------------------------------------------------ input layout
    def _layout(
        self,
        items: torch.Tensor,
        length: torch.Tensor,
        times: torch.Tensor | None,
        sessions: torch.Tensor | None,
        new_item: torch.Tensor | None = None,
        new_time: torch.Tensor | None = None,
        new_session: torch.Tensor | None = None,
        token_only: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
        """Turn RecBole's right-padded history (plus, optionally, one event appended after it:
        the MASK at inference, the target in the per-user regime) into the model input.

        Session tokens are inserted before each session (the window's first item always starts
        one), then the newest ``L`` tokens are kept, padded on ``padding_side``: right as
        RecBole's models do, or left as the reference does (the newest token is then always
        at position ``L - 1``).
        Where the history is shorter than ``L`` nothing is dropped (RecBole's BERT4Rec
        ``reconstruct_test_data`` drops the oldest item then; with a full history both agree).

        ``token_only``: the appended event shows only as the session token it opens, if it opens
        one and ST is on (the request of a causal model, whose last token predicts the target:
        the reference's evaluation input); else it adds nothing, not even to the segment count.

        Returns ``tokens [B L]``, ``segments [B L]`` (SSE indices, or None),
        ``times [B L]`` (or None) and ``last [B]``, the index of the last token.
        """
        batch, max_len = items.shape
        appended = None
        if new_item is not None:
            # place the appended event at index `length` of a (L + 1)-wide event array
            at = length.unsqueeze(1)
            items = torch.cat([items, items.new_zeros(batch, 1)], 1).scatter(1, at, new_item.unsqueeze(1))
            if times is not None:
                times = torch.cat([times, times.new_zeros(batch, 1)], 1).scatter(
                    1, at, new_time.to(times.dtype).unsqueeze(1)
                )
            if sessions is not None:
                sessions = torch.cat([sessions, sessions.new_zeros(batch, 1)], 1).scatter(
                    1, at, new_session.unsqueeze(1)
                )
            appended = at
            length = length + 1
        width = items.size(1)
        valid = valid_positions(length, width)
        # the events whose item is placed (all but a token-only appended one)
        placed = valid.scatter(1, appended, False) if token_only and appended is not None else valid

        tokens_per_event = placed.long()
        if self.use_sessions:
            starts = session_starts(
                valid,
                sessions if self.use_session_ids else None,
                times,
                self.session_gap if self.use_gap else None,
            )
            session_no = starts.long().cumsum(1)  # 1-based session of every event
            if self.use_session_token:
                tokens_per_event = tokens_per_event + starts.long()
            # the newest session that shows in the input
            n_sessions = (session_no * (tokens_per_event > 0)).amax(1, keepdim=True)  # [B 1]
        end = tokens_per_event.cumsum(1)  # tokens up to and including each event's
        total = end[:, -1]
        drop = (total - max_len).clamp(min=0).unsqueeze(1)
        rank = end - 1 - drop  # where each event's item lands after insertion and cut, 0-based
        # left padding: the row ends at the last column (the newest token always last, positions
        # count back from it); right padding: it starts at the first (RecBole's)
        pad = (max_len - total).clamp(min=0).unsqueeze(1) if self.padding_side == "left" else 0
        position = rank + pad
        dump = max_len  # an extra column that receives everything not kept
        keep = placed & (rank >= 0)
        item_at = torch.where(keep, position, dump)

        tokens = items.new_zeros(batch, max_len + 1).scatter(1, item_at, items)
        out_times = out_segments = None
        if self.use_time:
            out_times = times.new_zeros(batch, max_len + 1).scatter(1, item_at, times)
        if self.max_session_segments:
            # newest session -> m, the one before m - 1, ..., older clamped to 1; padding 0
            segment = (self.max_session_segments - n_sessions + session_no).clamp(min=1)
            out_segments = segment.new_zeros(batch, max_len + 1).scatter(1, item_at, segment)
        if self.use_session_token:
            # a session token sits just before its event's item (or in its place, token-only)
            token_rank = rank - placed.long()
            token_at = torch.where(starts & (token_rank >= 0), token_rank + pad, dump)
            tokens = tokens.scatter(1, token_at, torch.full_like(items, self.session_token_id))
            if out_times is not None:
                out_times = out_times.scatter(1, token_at, times)  # its session's first time
            if out_segments is not None:
                out_segments = out_segments.scatter(1, token_at, segment)
        last = total.clamp(max=max_len) - 1 if self.padding_side == "right" else torch.full_like(total, max_len - 1)
        tokens = tokens[:, :max_len]
        out_times = None if out_times is None else out_times[:, :max_len]
        out_segments = None if out_segments is None else out_segments[:, :max_len]
        return tokens, out_segments, out_times, last

    def _history(self, interaction):
        """The history fields this configuration reads."""
        times = interaction[self.TIME_SEQ] if self.use_time else None
        sessions = interaction[self.SESSION_SEQ] if self.use_session_ids else None
        return interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN], times, sessions

    def _target(self, interaction, item: torch.Tensor):
        """The appended event: ``item`` with the target's own time and session."""
        time = interaction[self.TIME] if self.use_time else None
        session = interaction[self.SESSION] if self.use_session_ids else None
        return item, time, session

    def _with_segments(self, embeddings: torch.Tensor, segments: torch.Tensor | None) -> torch.Tensor:
        """The input embeddings plus SSE's segment embeddings (unchanged when SSE is off)."""
        return embeddings + self.segment_embedding(segments) if self.max_session_segments else embeddings


class SessionTransformer(SessionInput):
    r"""Mixin of RecBole's Transformer models (BERT4Rec, SASRec: ``item_embedding``,
    ``position_embedding``, ``LayerNorm``, ``dropout``, ``trm_encoder``): TAS replaces each
    layer's attention by :class:`TemporalMultiHeadAttention`, and :meth:`_encode` runs the input
    with segments and times under a bidirectional or causal mask."""

    def _add_transformer_session_modules(self, config) -> None:
        """ST, SSE and TE (:meth:`_add_session_modules`), each layer's temporal attention,
        torch's one-kernel gelu, and the re-initialisation when a switch is on."""
        self.temporal_proj_init = config["temporal_proj_init"] or "default"
        check_values(config, keys=("temporal_proj_init",))
        self._add_session_modules(self.hidden_size)
        if self.temporal_dim:
            for layer in self.trm_encoder.layer:
                layer.multi_head_attention = TemporalMultiHeadAttention(
                    self.n_heads, self.hidden_size, self.hidden_dropout_prob,
                    self.attn_dropout_prob, self.layer_norm_eps, self.temporal_dim,
                )
        if config["hidden_act"] == "gelu":
            # RecBole's FeedForward computes gelu as x * 0.5 * (1 + erf(x / sqrt(2))), five tensors
            # of [B, L, inner] of which autograd keeps three; torch's gelu is the same function in
            # one kernel that keeps its input only (about 0.6 GB less at batch 2048 on ml-100k)
            for layer in self.trm_encoder.layer:
                layer.feed_forward.intermediate_act_fn = nn.functional.gelu
        if self.session_switches_on:
            self._reinit_session_weights()
            if self.temporal_dim and self.temporal_proj_init == "default":
                # the reference's W_T: PyTorch's default initialisation (apply() gave it
                # N(0, initializer_range) like Q and K, which is temporal_proj_init: normal)
                for layer in self.trm_encoder.layer:
                    layer.multi_head_attention.temporal_proj.reset_parameters()

    def _encode(self, item_seq: torch.Tensor, segments: torch.Tensor | None, times: torch.Tensor | None,
                bidirectional: bool) -> torch.Tensor:
        """The Transformer's output at every position [B L H]."""
        position_ids = torch.arange(item_seq.size(1), dtype=torch.long, device=item_seq.device)
        position_ids = position_ids.unsqueeze(0).expand_as(item_seq)
        input_emb = self._with_segments(self.item_embedding(item_seq) + self.position_embedding(position_ids), segments)
        input_emb = self.dropout(self.LayerNorm(input_emb))
        attention_mask = self.get_attention_mask(item_seq, bidirectional=bidirectional)
        if self.temporal_dim:
            temporal = self.temporal_encoding(times)
            hidden = input_emb
            for layer in self.trm_encoder.layer:
                hidden = layer.multi_head_attention(hidden, attention_mask, temporal)
                hidden = layer.feed_forward(hidden)
        else:
            hidden = self.trm_encoder(input_emb, attention_mask, output_all_encoded_layers=True)[-1]
        return hidden


class SessionNextItem(SessionInput):
    r"""Mixin of RecBole's causal next-item models (SASRec, GRU4Rec): the input is the history's
    layout with, when the target opens a new session, that session's token appended (the
    request's time, the advanced segment); the output at the last token is scored against the
    item embeddings with RecBole's loss (CE over all items, or BPR against its sampled negative).

    Training on RecBole's prefix rows this gives the labels of the reference's next-item training
    (``datasets/nwp.py``): a session token's label is the first item of its session, and the item
    just before a session token has none (no row predicts from it). The model defines
    ``forward(tokens, last, segments, times) -> [B H]``."""

    def _input(self, interaction) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """``(tokens, last, segments, times)`` of the request (the row's target)."""
        items, length, times, sessions = self._history(interaction)
        request = self._target(interaction, torch.zeros_like(length)) if self.use_session_token else ()
        tokens, segments, times, last = self._layout(items, length, times, sessions, *request, token_only=True)
        return tokens, last, segments, times

    def _item_weights(self) -> torch.Tensor:
        """The item rows of the output layer (the session token's row is no candidate)."""
        return self.item_embedding.weight[: self.n_items]

    def calculate_loss(self, interaction):
        seq_output = self.forward(*self._input(interaction))
        pos_items = interaction[self.POS_ITEM_ID]
        if self.loss_type == "BPR":
            neg_items = interaction[self.NEG_ITEM_ID]
            pos_score = (seq_output * self.item_embedding(pos_items)).sum(-1)
            neg_score = (seq_output * self.item_embedding(neg_items)).sum(-1)
            return self.loss_fct(pos_score, neg_score)
        return self.loss_fct(seq_output @ self._item_weights().t(), pos_items)

    def predict(self, interaction):
        seq_output = self.forward(*self._input(interaction))
        return (seq_output * self.item_embedding(interaction[self.ITEM_ID])).sum(-1)

    def full_sort_predict(self, interaction):
        return self.forward(*self._input(interaction)) @ self._item_weights().t()
