"""Model-specific dataset classes, found as ``<Model>Dataset`` by the rule of
:mod:`recbole_session.lookup`, and their base :class:`SessionSequentialDataset` (the evaluation
split of ``eval_split``), which every other sequential model uses."""

from __future__ import annotations

import math

import numpy as np
import torch
from recbole.data.dataset import SequentialDataset

from recbole_session.cli import UsageError
from recbole_session.data.split import (
    LAST_SESSION,
    MIN_SPLIT_SESSIONS,
    TEST,
    TRAIN,
    VALID,
    eval_split,
    last_session_parts,
    session_places,
    split_problem,
)

__all__: list[str] = ["ASARSDataset", "SessionBERT4RecDataset", "SessionGRU4RecDataset", "SessionSASRecDataset",
                      "SessionSequentialDataset", "SessionTimeDataset"]


def window_ends(users: np.ndarray, window: int) -> np.ndarray:
    """Bool mask over RecBole's prefix samples (rows of each user in sequence order): keep the
    last sample of each user and every ``window``-th one before it. A kept sample holds up to
    ``window`` items and, trained at every position, predicts the targets of the ``window``
    samples ending at it, so the kept samples cover each training target exactly once."""
    order = np.argsort(users, kind="stable")
    sorted_users = users[order]
    new_user = np.ones(len(users), dtype=bool)
    new_user[1:] = sorted_users[1:] != sorted_users[:-1]
    group_start = np.maximum.accumulate(np.where(new_user, np.arange(len(users)), 0))
    group_size = np.bincount(np.cumsum(new_user) - 1)[np.cumsum(new_user) - 1]
    rank_from_end = group_start + group_size - 1 - np.arange(len(users))
    keep = np.zeros(len(users), dtype=bool)
    keep[order] = rank_from_end % window == 0
    return keep


class SessionSequentialDataset(SequentialDataset):
    """RecBole's ``SequentialDataset`` with the evaluation split of ``eval_split``
    (:mod:`recbole_session.data.split`): ``loo`` is RecBole's leave-one-out, untouched;
    ``last_session`` holds out each user's last session for test and the one before it for
    validation, every event of them a target.

    The package's dataset classes derive from it, and every other sequential model (SASRec,
    GRU4Rec, BERT4Rec, SRIEM, ...) gets it from :func:`recbole_session.lookup.dataset_class`
    where RecBole would give ``SequentialDataset``. The split takes the place of
    ``leave_one_out`` in RecBole's ``build`` (after the data augmentation and the time sort),
    so RecBole's dataloaders, trainers and evaluators see three ordinary built datasets.
    """

    def build(self):
        problem = split_problem(self.config)
        if problem is not None:
            raise UsageError(f"bad value eval_split: {self.config['eval_split']}: eval_split expects {problem}")
        return super().build()

    def leave_one_out(self, group_by, leave_one_mode):
        if eval_split(self.config) != LAST_SESSION:
            return super().leave_one_out(group_by, leave_one_mode)
        return self.last_session_split()

    def last_session_split(self) -> list:
        """``[train, valid, test]``: RecBole's rows (one per target) by the session of their
        target (:func:`~recbole_session.data.split.last_session_parts`), in RecBole's
        leave-one-out order (users in order of their first row, each user's rows in time order)."""
        session_field = self.config["SESSION_ID_FIELD"]
        if not session_field or session_field not in self.inter_feat:
            raise UsageError(f"eval_split: {LAST_SESSION} needs the session field {session_field!r} in the "
                             f"interactions (SESSION_ID_FIELD, load_col; the converter writes it)")
        feat, suffix = self.inter_feat, self.config["LIST_SUFFIX"]
        users = feat[self.uid_field].numpy()
        sessions = feat[session_field].numpy()
        times = feat[self.time_field].numpy()
        # a user's first event is no target, yet its session is one of the user's sessions:
        # take it from the item list of the user's length-1 row
        first = feat[self.item_list_length_field].numpy() == 1
        from_end, n_sessions = session_places(
            np.concatenate([users, users[first]]),
            np.concatenate([sessions, feat[session_field + suffix].numpy()[first, 0]]),
            np.concatenate([times, feat[self.time_field + suffix].numpy()[first, 0]]),
        )
        parts = last_session_parts(from_end[: len(users)], n_sessions[: len(users)])
        order = np.concatenate([np.asarray(index, dtype=np.int64) for index in self._grouped_index(users)]
                               or [np.zeros(0, dtype=np.int64)])
        self._drop_unused_col()
        datasets = [self.copy(self.inter_feat[torch.from_numpy(order[parts[order] == part])])
                    for part in (TRAIN, VALID, TEST)]
        kept = np.unique(users[n_sessions[: len(users)] < MIN_SPLIT_SESSIONS]).size
        self.logger.info(
            f"eval_split {LAST_SESSION}: {len(datasets[0])} training rows, {len(datasets[1])} valid and "
            f"{len(datasets[2])} test targets; {kept} users with fewer than {MIN_SPLIT_SESSIONS} sessions "
            "keep all their rows in training")
        return datasets


class ASARSDataset(SessionSequentialDataset):
    """:class:`SessionSequentialDataset` with a per-user training regime for ASARS.

    ASARS predicts every position of a sequence in one forward pass (triangle parallel
    attention), so RecBole's one-sample-per-prefix training data would train each target up to
    ``MAX_ITEM_LIST_LENGTH`` times. With ``train_regime: window`` the train split keeps one
    sample per ``MAX_ITEM_LIST_LENGTH`` training rows of each user (each training target is then
    predicted exactly once per epoch); the valid and test splits are RecBole's, untouched.
    ``train_regime: prefix`` keeps RecBole's samples.
    """

    def build(self):
        datasets = super().build()
        if self.config["train_regime"] != "window" or self.benchmark_filename_list is not None:
            return datasets
        train = datasets[0]
        keep = window_ends(train.inter_feat[self.uid_field].numpy(), self.max_item_list_len)
        datasets[0] = train.copy(train.inter_feat[np.nonzero(keep)[0]])
        return datasets


class SessionTimeDataset(SessionSequentialDataset):
    """:class:`SessionSequentialDataset` whose time field (and so ``<time>_list``) is kept in
    float64: RecBole's float32 spaces representable times 2 s apart near 3e7 s and 128 s apart
    near 1.7e9 s, which the temporal encoding's fast frequencies would see as noise. The base of
    the dataset classes of the models with the session input
    (:mod:`recbole_session.model.session_input`)."""

    def _dataframe_to_interaction(self, data):
        interaction = super()._dataframe_to_interaction(data)
        if self.time_field is not None and self.time_field in data:
            interaction[self.time_field] = torch.from_numpy(
                data[self.time_field].to_numpy(dtype=np.float64, copy=True)
            )
        return interaction


class SessionSASRecDataset(SessionTimeDataset):
    """SessionSASRec's rows: RecBole's (every prefix of every user), times in float64."""


class SessionGRU4RecDataset(SessionTimeDataset):
    """SessionGRU4Rec's rows: RecBole's (every prefix of every user), times in float64."""


class SessionBERT4RecDataset(SessionTimeDataset):
    """:class:`SessionTimeDataset` (times in float64) with the training regimes of
    SessionBERT4Rec:

    - ``train_regime: per_user`` keeps one training row per user, the newest prefix (the
      reference's regime: one whole sequence per user per epoch, cloze-masked afresh; the
      model appends that row's target to its history). ``window`` keeps the newest prefix
      and every ``MAX_ITEM_LIST_LENGTH``-th one before it, so that the rows' windows (history
      plus target, cut to ``L``) tile each user's training sequence: every training interaction
      is in exactly one row per epoch, which is the per-user regime of the reference whenever a
      history is longer than ``L``. ``prefix`` keeps RecBole's rows (every prefix of every
      user). With ``batches_per_epoch: K`` (> 0) these regimes set ``train_batch_size`` to
      ``ceil(rows / K)``, so that an epoch is K optimizer steps on any dataset (the reference's
      ML-1M recipe, batch 128 for 1,196 users, is about 10).
    """

    def build(self):
        datasets = super().build()
        regime = self.config["train_regime"] or "prefix"
        if regime not in ("per_user", "window") or not datasets:
            return datasets
        train = datasets[0]
        users = train.inter_feat[self.uid_field].numpy()
        # rows of a user keep RecBole's order (augmented per user in time order, then a stable
        # time sort), so a user's last row is the newest prefix; a row and the one L rows
        # before it hold adjacent windows once the model appends the target and cuts to L
        if regime == "per_user":
            _, first_in_reversed = np.unique(users[::-1], return_index=True)
            rows = np.sort(len(users) - 1 - first_in_reversed)
        else:
            rows = np.nonzero(window_ends(users, self.max_item_list_len))[0]
        train.inter_feat = train.inter_feat[torch.from_numpy(rows)]
        batches = int(self.config["batches_per_epoch"] or 0)
        if batches > 0:
            # read by RecBole's train dataloader, which data_preparation builds after this
            self.config["train_batch_size"] = max(1, math.ceil(len(rows) / batches))
        return datasets
