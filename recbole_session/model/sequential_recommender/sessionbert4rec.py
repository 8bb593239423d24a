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
"""

from __future__ import annotations

import math
import random

import numpy as np
import torch
from recbole.model.layers import MultiHeadAttention
from recbole.model.sequential_recommender.bert4rec import BERT4Rec
from torch import nn

from recbole_session.literals import short
from recbole_session.model.layers import session_starts, valid_positions


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


class SessionBERT4Rec(BERT4Rec):
    r"""BERT4Rec with session token (ST), session segment embedding (SSE) and temporal
    self-attention (TAS); see the module docstring."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        self.use_session_token = bool(config["session_token"])
        self.max_session_segments = int(config["max_session_segments"] or 0)
        self.temporal_dim = int(config["temporal_dim"] or 0)
        self.train_regime = config["train_regime"] or "prefix"
        self.mask_token_prob = config["mask_token_prob"]
        # RecBole's BERT4Rec key: the share of batches whose only masked token is the row's
        # newest item (the request-time task); the reference trains cloze only (0)
        self.ft_ratio = float(config["ft_ratio"] or 0.0)
        self.mask_random_prob = config["mask_random_prob"]
        self.session_gap = config["session_gap"]
        self.padding_side = config["padding_side"] or "right"
        self.temporal_proj_init = config["temporal_proj_init"] or "default"
        if self.padding_side not in ("left", "right"):
            raise ValueError(
                f"SessionBERT4Rec: padding_side must be 'left' or 'right', got {short(self.padding_side)}"
            )
        if self.temporal_proj_init not in ("default", "normal"):
            raise ValueError(
                "SessionBERT4Rec: temporal_proj_init must be 'default' or 'normal', got "
                f"{short(self.temporal_proj_init)}"
            )
        if self.train_regime not in ("prefix", "per_user", "window"):
            raise ValueError(
                "SessionBERT4Rec: train_regime must be 'prefix', 'per_user' or 'window', got "
                f"{short(self.train_regime)}"
            )
        if not 0 < self.mask_ratio <= 1:
            raise ValueError(f"SessionBERT4Rec: mask_ratio must be in (0, 1], got {self.mask_ratio}")
        if not 0 <= self.ft_ratio <= 1:
            raise ValueError(f"SessionBERT4Rec: ft_ratio must be in [0, 1], got {self.ft_ratio}")
        if self.mask_token_prob + self.mask_random_prob > 1:
            raise ValueError("SessionBERT4Rec: mask_token_prob + mask_random_prob must be <= 1")

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
                "SessionBERT4Rec: session_token / max_session_segments need sessions: load the "
                f"'{self.SESSION}' field (SESSION_ID_FIELD) or the '{self.TIME}' field with a "
                "session_gap"
            )
        if self.temporal_dim and not has_time:
            raise ValueError(
                f"SessionBERT4Rec: temporal_dim > 0 needs the time field '{self.TIME}' in load_col"
            )
        self.use_time = self.temporal_dim > 0 or self.use_gap

        # 0 padding, 1..n_items-1 items, n_items MASK (as BERT4Rec), n_items + 1 session token
        self.session_token_id = self.n_items + 1
        if self.use_session_token:
            self.item_embedding = nn.Embedding(self.n_items + 2, self.hidden_size, padding_idx=0)
        if self.max_session_segments:
            self.segment_embedding = nn.Embedding(
                self.max_session_segments + 1, self.hidden_size, padding_idx=0
            )
        if self.temporal_dim:
            self.temporal_encoding = TemporalEncoding(
                self.temporal_dim, tuple(config["temporal_init_exponents"])
            )
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

        if self.use_session_token or self.max_session_segments or self.temporal_dim:
            self.apply(self._init_weights)
            if self.max_session_segments:
                with torch.no_grad():
                    self.segment_embedding.weight[0].zero_()
            if self.temporal_dim and self.temporal_proj_init == "default":
                # the reference's W_T: PyTorch's default initialisation (apply() above gave it
                # N(0, initializer_range) like Q and K, which is temporal_proj_init: normal)
                for layer in self.trm_encoder.layer:
                    layer.multi_head_attention.temporal_proj.reset_parameters()

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
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
        """Turn RecBole's right-padded history (plus, optionally, one event appended after it:
        the MASK at inference, the target in the per-user regime) into the model input.

        Session tokens are inserted before each session (the window's first item always starts
        one), then the newest ``L`` tokens are kept, padded on ``padding_side``: right as
        RecBole's BERT4Rec does, or left as the reference does (the newest token is then always
        at position ``L - 1``).
        Where the history is shorter than ``L`` nothing is dropped (RecBole's
        ``reconstruct_test_data`` drops the oldest item then; with a full history both agree).

        Returns ``tokens [B L]``, ``segments [B L]`` (SSE indices, or None),
        ``times [B L]`` (or None) and ``last [B]``, the index of the last token.
        """
        batch, max_len = items.shape
        device = items.device
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
            length = length + 1
        width = items.size(1)
        index = torch.arange(width, device=device).unsqueeze(0)
        valid = valid_positions(length, width)

        if self.use_sessions:
            starts = session_starts(
                valid,
                sessions if self.use_session_ids else None,
                times,
                self.session_gap if self.use_gap else None,
            )
            session_no = starts.long().cumsum(1)  # 1-based session of every event
            n_sessions = session_no.gather(1, (length - 1).unsqueeze(1))  # [B 1]
        shift = session_no if self.use_session_token else 0
        total = length + (n_sessions.squeeze(1) if self.use_session_token else 0)
        drop = (total - max_len).clamp(min=0).unsqueeze(1)
        rank = index + shift - drop  # where each event lands after insertion and cut, 0-based
        # left padding: the row ends at the last column (MASK always last, positions count
        # back from the newest token); right padding: it starts at the first (RecBole's)
        pad = (max_len - total).clamp(min=0).unsqueeze(1) if self.padding_side == "left" else 0
        position = rank + pad
        dump = max_len  # an extra column that receives everything not kept
        keep = valid & (rank >= 0)
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
            token_keep = starts & (rank >= 1)
            token_at = torch.where(token_keep, position - 1, dump)
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

    # ------------------------------------------------------------------ network
    def encode(self, item_seq, segments=None, times=None):
        """The Transformer's output at every position [B L H], before the output head."""
        position_ids = torch.arange(item_seq.size(1), dtype=torch.long, device=item_seq.device)
        position_ids = position_ids.unsqueeze(0).expand_as(item_seq)
        input_emb = self.item_embedding(item_seq) + self.position_embedding(position_ids)
        if self.max_session_segments:
            input_emb = input_emb + self.segment_embedding(segments)
        input_emb = self.dropout(self.LayerNorm(input_emb))
        attention_mask = self.get_attention_mask(item_seq, bidirectional=True)
        if self.temporal_dim:
            temporal = self.temporal_encoding(times)
            hidden = input_emb
            for layer in self.trm_encoder.layer:
                hidden = layer.multi_head_attention(hidden, attention_mask, temporal)
                hidden = layer.feed_forward(hidden)
        else:
            hidden = self.trm_encoder(input_emb, attention_mask, output_all_encoded_layers=True)[-1]
        return hidden

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
