r"""
SRIEM
################################################

Reference:
    Zhiqiang Pan, Fei Cai, Yanxiang Ling and Maarten de Rijke. "Rethinking Item Importance in
    Session-based Recommendation." in SIGIR 2020.

Reference code:
    https://github.com/nudtzpan/SRIEM (read for the ``importance: authors`` variant)
"""

from __future__ import annotations

import math
from logging import getLogger

import torch
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.model.loss import BPRLoss
from torch import nn

from recbole_session.literals import short

IMPORTANCE_FORMS = ("paper", "authors", "paper_literal")


class SRIEM(SequentialRecommender):
    r"""SR-IEM: an importance extraction module (IEM) weighs the items of a session by their
    average affinity to the *other* items; the weighted sum is the long-term preference
    :math:`z_l`, the last item the current interest :math:`z_s`, and
    :math:`z_h = W_0 [z_l; z_s]` is scored against every item embedding (cross-entropy).

    Three forms of the IEM, chosen by ``importance`` (config); all mask the diagonal of C, take
    :math:`\beta = softmax(\alpha)` over the real items only, and differ in Q, K, C and the
    divisor of Eq. (4):

    - ``paper``, Eqs. (1)-(5) with the scaling inside the sigmoid, as the authors' code has it:
      :math:`Q = \sigma(E W_q)`, :math:`K = \sigma(E W_k)` with :math:`W_q, W_k \in
      R^{d \times l}` (``attention_size`` = l), :math:`C = \sigma(Q K^T / \sqrt{d})`,
      :math:`\alpha_i = \frac{1}{t} \sum_{j \ne i} C_{ij}` (Eq. 4 divides by the length t).
    - ``authors``, the authors' published code: linear :math:`Q = E W_q`, :math:`K = E W_k`
      (their code uses l = d), :math:`C = \sigma(Q K^T / \sqrt{d})`,
      :math:`\alpha_i = \frac{1}{t-1} \sum_{j \ne i} C_{ij}` (divisor 1 when t = 1). (Their
      code also adds a bias to :math:`W_0`; every form here follows Eq. 7, which has none.)
    - ``paper_literal``, Eq. (3) as printed, :math:`C = \sigma(Q K^T) / \sqrt{d}`, otherwise as
      ``paper``. It cannot learn: Q and K lie in (0, 1)^l, so :math:`Q K^T \approx l/4` (25
      for l = 100) and :math:`\sigma(Q K^T)` is exactly 1.0 in float32; C is the constant
      :math:`1/\sqrt{d}`, every item of a session gets the same weight (z_l is the session
      mean) and :math:`W_q, W_k` get exactly zero gradients. Kept to reproduce that trap.

    Training uses the categorical cross-entropy of the softmax over all items (``loss_type:
    CE``), as the authors' code does; Eq. (10) writes a binary cross-entropy over the softmax
    outputs, whose extra terms the code leaves out.

    Padding (item id 0) never gets weight, whether the sequence is right-padded (as RecBole's
    datasets give it) or left-padded: real items are found from the ids, and the current
    interest is the last real item. A session of one item gets importance 1 (its affinity row is
    empty after masking, so :math:`\alpha = 0`, and the softmax over one item is 1).
    """

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        self.embedding_size = config["embedding_size"]
        self.attention_size = config["attention_size"]
        self.importance_form = config["importance"]
        if self.importance_form not in IMPORTANCE_FORMS:
            raise ValueError(
                f"SRIEM: importance must be one of {IMPORTANCE_FORMS}, got {short(self.importance_form)}"
            )
        if self.importance_form == "paper_literal":
            getLogger().warning(
                "SRIEM importance: paper_literal computes C = sigmoid(QK^T)/sqrt(d) = 1/sqrt(d) "
                "exactly: uniform item weights, W_q and W_k never learn"
            )
        self.loss_type = config["loss_type"]

        self.item_embedding = nn.Embedding(self.n_items, self.embedding_size, padding_idx=0)
        self.query = nn.Linear(self.embedding_size, self.attention_size, bias=False)  # W_q
        self.key = nn.Linear(self.embedding_size, self.attention_size, bias=False)  # W_k
        self.fusion = nn.Linear(2 * self.embedding_size, self.embedding_size, bias=False)  # W_0
        self.scale = math.sqrt(self.embedding_size)  # sqrt(d) in Eq. (3)

        if self.loss_type == "BPR":
            self.loss_fct = BPRLoss()
        elif self.loss_type == "CE":
            self.loss_fct = nn.CrossEntropyLoss()
        else:
            raise NotImplementedError("Make sure 'loss_type' in ['BPR', 'CE']!")

        self._reset_parameters()

    def _reset_parameters(self) -> None:
        # U(-1/sqrt(d), 1/sqrt(d)) for every weight, as the authors' code (and SR-GNN) do
        stdv = 1.0 / math.sqrt(self.embedding_size)
        for weight in self.parameters():
            weight.data.uniform_(-stdv, stdv)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()  # padding embeds to nothing

    def affinity(self, item_seq_emb: torch.Tensor) -> torch.Tensor:
        """The affinity matrix C of Eq. (3) in the chosen form, [B, L, L]."""
        query, key = self.query(item_seq_emb), self.key(item_seq_emb)
        if self.importance_form == "authors":
            return torch.sigmoid(query @ key.transpose(1, 2) / self.scale)
        product = torch.sigmoid(query) @ torch.sigmoid(key).transpose(1, 2)
        if self.importance_form == "paper_literal":
            return torch.sigmoid(product) / self.scale
        return torch.sigmoid(product / self.scale)

    def importance(
        self, item_seq_emb: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Item importance of Eqs. (4)-(5): ``(alpha, beta)``, each [B, L]; ``mask`` [B, L] is
        True on real items. ``beta`` sums to 1 over the real items and is 0 on padding."""
        length = mask.sum(dim=1, keepdim=True)  # t, [B, 1]
        others = mask.unsqueeze(1) & mask.unsqueeze(2)
        others &= ~torch.eye(mask.size(1), dtype=torch.bool, device=mask.device)  # no self-affinity
        row_sum = (self.affinity(item_seq_emb) * others).sum(dim=2)
        if self.importance_form == "authors":
            divisor = (length - 1).clamp(min=1)
        else:
            divisor = length.clamp(min=1)
        alpha = row_sum / divisor
        # alpha lies in [0, 1] in every form, so exp() cannot overflow and needs no max shift;
        # the clamp keeps an all-padding row at 0 instead of 0/0
        weight = torch.exp(alpha) * mask
        beta = weight / weight.sum(dim=1, keepdim=True).clamp(min=torch.finfo(weight.dtype).tiny)
        return alpha, beta

    @staticmethod
    def last_positions(mask: torch.Tensor) -> torch.Tensor:
        """Index of the last real item of every row, for right or left padding, [B]."""
        positions = torch.arange(1, mask.size(1) + 1, device=mask.device)
        return (positions * mask).argmax(dim=1)

    def forward(
        self, item_seq: torch.Tensor, item_seq_len: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The session representation z_h, [B, d]. Real items are read from the ids (non-zero),
        so ``item_seq_len`` is not needed; it is accepted for RecBole's calling convention."""
        mask = item_seq.gt(0)
        item_seq_emb = self.item_embedding(item_seq)
        _, beta = self.importance(item_seq_emb, mask)
        long_term = (beta.unsqueeze(2) * item_seq_emb).sum(dim=1)  # z_l, Eq. (6)
        current = self.gather_indexes(item_seq_emb, self.last_positions(mask))  # z_s
        return self.fusion(torch.cat([long_term, current], dim=1))  # z_h, Eq. (7)

    def calculate_loss(self, interaction):
        item_seq = interaction[self.ITEM_SEQ]
        item_seq_len = interaction[self.ITEM_SEQ_LEN]
        seq_output = self.forward(item_seq, item_seq_len)
        pos_items = interaction[self.POS_ITEM_ID]
        if self.loss_type == "BPR":
            neg_items = interaction[self.NEG_ITEM_ID]
            pos_score = torch.sum(seq_output * self.item_embedding(pos_items), dim=-1)
            neg_score = torch.sum(seq_output * self.item_embedding(neg_items), dim=-1)
            return self.loss_fct(pos_score, neg_score)
        logits = seq_output @ self.item_embedding.weight.transpose(0, 1)  # Eq. (8)
        return self.loss_fct(logits, pos_items)  # softmax + cross-entropy, Eqs. (9)-(10)

    def predict(self, interaction):
        item_seq = interaction[self.ITEM_SEQ]
        item_seq_len = interaction[self.ITEM_SEQ_LEN]
        seq_output = self.forward(item_seq, item_seq_len)
        test_item_emb = self.item_embedding(interaction[self.ITEM_ID])
        return torch.mul(seq_output, test_item_emb).sum(dim=1)

    def full_sort_predict(self, interaction):
        item_seq = interaction[self.ITEM_SEQ]
        item_seq_len = interaction[self.ITEM_SEQ_LEN]
        seq_output = self.forward(item_seq, item_seq_len)
        return seq_output @ self.item_embedding.weight.transpose(0, 1)
