r"""
SessionSASRec
################################################

Reference:
    Jinseok Seol, Youngrok Ko, Sang-goo Lee. "Parameter-efficiently Leveraging Session Information
    in Deep Learning based Session-aware Sequential Recommendation." IEEE Access 13,
    pp. 35555-35566, 2025.

Reference code:
    https://github.com/theeluwin/session-aware-bert4rec (``models/sasrec.py``, ``datasets/nwp.py``)

RecBole's :class:`~recbole.model.sequential_recommender.SASRec` with the three switches of
SessionBERT4Rec (``properties/model/SessionSASRec.yaml``, the same keys):

- ``session_token`` (ST): a learnable token (item row ``n_items``) inserted before every session.
  Its output predicts the first item of its session; the item just before it predicts nothing
  (RecBole's prefix rows give exactly these labels, see
  :class:`~recbole_session.model.session_input.SessionNextItem`). At inference a target that opens
  a new session gets a session token, with the request's time and the advanced segment, as the
  last input: this is how the model learns "a new session starts now". Costs one embedding row.
- ``max_session_segments: m`` (SSE, 0 = off): ``Embedding(m + 1, d)`` added to item and position
  embeddings. Costs ``(m + 1) * d``.
- ``temporal_dim: dT`` (TAS, 0 = off): the temporal term ``T' T'^T`` in every layer's attention
  scores, under SASRec's causal mask. Costs ``2 dT + n_layers (dT^2 + dT)``.

With every switch off and ``padding_side: right`` this is exactly RecBole's SASRec (same
parameters, names and scores). Without ST the request adds no token, as in the reference: SSE and
TAS then see the history only.
"""

from __future__ import annotations

import torch
from recbole.model.sequential_recommender.sasrec import SASRec

from recbole_session.model.session_input import SessionNextItem, SessionTransformer


class SessionSASRec(SessionNextItem, SessionTransformer, SASRec):
    r"""SASRec with session token (ST), session segment embedding (SSE) and temporal
    self-attention (TAS); see the module docstring."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        # 0 padding, 1..n_items-1 items, n_items session token
        self._init_session_input(config, dataset, session_token_id=self.n_items)
        self._add_transformer_session_modules(config)

    def forward(self, item_seq: torch.Tensor, last: torch.Tensor, segments: torch.Tensor | None = None,
                times: torch.Tensor | None = None) -> torch.Tensor:
        """The causal Transformer's output at each row's last token [B H]."""
        return self.gather_indexes(self._encode(item_seq, segments, times, bidirectional=False), last)
