r"""
SessionGRU4Rec
################################################

Reference:
    Jinseok Seol, Youngrok Ko, Sang-goo Lee. "Parameter-efficiently Leveraging Session Information
    in Deep Learning based Session-aware Sequential Recommendation." IEEE Access 13,
    pp. 35555-35566, 2025 (the three additions "designed to be easily integrated into both
    RNN-based and attention-based models"; the RNN form is not public).

Reference code (the attention-based forms and the next-item input):
    https://github.com/theeluwin/session-aware-bert4rec

RecBole's :class:`~recbole.model.sequential_recommender.GRU4Rec` with the same three switches
(``properties/model/SessionGRU4Rec.yaml``):

- ``session_token`` (ST): a learnable token (item row ``n_items``) inserted before every session
  in the input sequence, labelled with its session's first item; a target that opens a new
  session gets one as the last input at inference (as SessionSASRec). Costs ``embedding_size``.
- ``max_session_segments: m`` (SSE, 0 = off): ``Embedding(m + 1, embedding_size)`` added to the
  item embeddings. Costs ``(m + 1) * embedding_size``.
- ``temporal_dim: dT`` (0 = off): the temporal encoding ``TE(t) = cos(w t + b)`` of each event's
  time joined to the GRU's input. ``temporal_join: add`` (the default) adds
  ``Linear(dT, embedding_size)(TE)`` to the item embedding, as a Transformer adds its position
  embedding; costs ``2 dT + (dT + 1) * embedding_size``. ``concat`` feeds ``[embedding; TE]`` to
  the GRU, whose input weights grow by ``3 * hidden_size * dT`` (3.8 % of the model at the
  default sizes on ml-100k against add's 0.7 %: the journal's budget is 1 %). An RNN has no
  pairwise scores for TAS's ``T' T'^T`` to join, so the encoding enters where the item does;
  ``docs/session_families.md`` says why add is the default and what concat measured.

With every switch off this is exactly RecBole's GRU4Rec (same parameters, names and scores).
The input is right-padded (the GRU reads each row from its first event).
"""

from __future__ import annotations

import torch
from recbole.model.sequential_recommender.gru4rec import GRU4Rec
from torch import nn

from recbole_session.checks import check_values
from recbole_session.model.session_input import SessionNextItem


class SessionGRU4Rec(SessionNextItem, GRU4Rec):
    r"""GRU4Rec with session token (ST), session segment embedding (SSE) and the temporal
    encoding joined to the RNN input; see the module docstring."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.temporal_join = config["temporal_join"] or "add"
        check_values(config, keys=("temporal_join",))  # the rules table's (recbole_session.checks.RULES)
        # 0 padding, 1..n_items-1 items, n_items session token; right padding only
        self._init_session_input(config, dataset, session_token_id=self.n_items, padding_sides=("right",))
        self._add_session_modules(self.embedding_size)
        if self.temporal_dim:
            if self.temporal_join == "add":
                self.temporal_proj = nn.Linear(self.temporal_dim, self.embedding_size)
            else:
                self.gru_layers = nn.GRU(
                    input_size=self.embedding_size + self.temporal_dim,
                    hidden_size=self.hidden_size,
                    num_layers=self.num_layers,
                    bias=False,
                    batch_first=True,
                )
        if self.session_switches_on:
            self._reinit_session_weights()

    def forward(self, item_seq: torch.Tensor, last: torch.Tensor, segments: torch.Tensor | None = None,
                times: torch.Tensor | None = None) -> torch.Tensor:
        """The GRU's output at each row's last token, projected to the item space [B E]."""
        emb = self._with_segments(self.item_embedding(item_seq), segments)
        if self.temporal_dim:
            temporal = self.temporal_encoding(times)
            if self.temporal_join == "add":
                emb = emb + self.temporal_proj(temporal)
            else:
                emb = torch.cat([emb, temporal], -1)
        gru_output, _ = self.gru_layers(self.emb_dropout(emb))
        return self.gather_indexes(self.dense(gru_output), last)
