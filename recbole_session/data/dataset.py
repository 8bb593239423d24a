"""Model-specific dataset classes, found by :func:`recbole_session.utils.get_dataset_class`
as ``<Model>Dataset``; every model without one uses RecBole's ``SequentialDataset``."""

from __future__ import annotations

import numpy as np
import torch
from recbole.data.dataset import SequentialDataset

__all__: list[str] = ["SessionBERT4RecDataset"]


class SessionBERT4RecDataset(SequentialDataset):
    """RecBole's ``SequentialDataset`` with two changes for SessionBERT4Rec:

    - the time field (and so ``<time>_list``) is kept in float64: RecBole's float32 spaces
      representable times 2 s apart near 3e7 s and 128 s apart near 1.7e9 s, which the
      temporal encoding's fast frequencies would see as noise;
    - ``train_regime: per_user`` keeps one training row per user, the newest prefix (the
      reference's regime: one whole sequence per user per epoch, cloze-masked afresh; the
      model appends that row's target to its history). ``prefix`` keeps RecBole's rows
      (every prefix of every user).
    """

    def _dataframe_to_interaction(self, data):
        interaction = super()._dataframe_to_interaction(data)
        if self.time_field is not None and self.time_field in data:
            interaction[self.time_field] = torch.from_numpy(
                data[self.time_field].to_numpy(dtype=np.float64, copy=True)
            )
        return interaction

    def build(self):
        datasets = super().build()
        if (self.config["train_regime"] or "prefix") == "per_user" and datasets:
            train = datasets[0]
            users = train.inter_feat[self.uid_field].numpy()
            # rows of a user keep RecBole's order (augmented per user in time order, then a
            # stable time sort), so a user's last row is the newest prefix
            _, first_in_reversed = np.unique(users[::-1], return_index=True)
            newest = np.sort(len(users) - 1 - first_in_reversed)
            train.inter_feat = train.inter_feat[torch.from_numpy(newest)]
        return datasets
