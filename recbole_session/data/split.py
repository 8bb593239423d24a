"""The evaluation splits of a session-aware sequential dataset (config key ``eval_split``).

- ``loo`` (the default): RecBole's leave-one-out in time order, the papers' protocol: each
  user's newest event is the test target, the one before it the valid target.
- ``last_session``: each user's newest session is the test session and the session before it the
  valid session (Latifi, Mauro, Jannach, Information Sciences 573, 2021; the session-rec
  framework). **Every event** of a held-out session is a target, given everything of the user
  before it in time: the earlier events of the same session, and for a test target the whole
  valid session. Training rows are the targets of the earlier sessions only. Users with fewer
  than :data:`MIN_SPLIT_SESSIONS` sessions keep all their rows in training.

A sequential dataset holds one row per target after RecBole's data augmentation (every prefix
of a user's time-ordered events), so ``last_session`` only assigns those rows to the three parts
by the session of their target (:func:`last_session_parts`); the histories stay RecBole's.
Sessions are ordered by their first event's time.
"""

from __future__ import annotations

from typing import Any

import numpy as np

LEAVE_ONE_OUT = "loo"
LAST_SESSION = "last_session"
EVAL_SPLITS = (LEAVE_ONE_OUT, LAST_SESSION)
# a valid and a test session need at least one earlier session to train on
MIN_SPLIT_SESSIONS = 3
# RecBole's leave-one-out mode whose valid and test parts last_session replaces
LEAVE_ONE_MODE = "valid_and_test"
# labels of :func:`last_session_parts`, in the order of RecBole's built datasets
TRAIN, VALID, TEST = 0, 1, 2


def eval_split(config: Any) -> str:
    """The config's ``eval_split`` (``loo`` when the key is unset)."""
    return config["eval_split"] or LEAVE_ONE_OUT


def split_problem(config: Any) -> str | None:
    """Why ``config`` cannot use its ``eval_split`` (what it expects, in words), or None.

    ``last_session`` replaces RecBole's leave-one-out of the default ``eval_args`` (split
    ``{'LS': 'valid_and_test'}``); RecBole never splits benchmark files, which come split."""
    split = eval_split(config)
    if split not in EVAL_SPLITS:
        return f"one of {', '.join(EVAL_SPLITS)}"
    if split == LEAVE_ONE_OUT:
        return None
    if config["benchmark_filename"]:
        return (f"{LEAVE_ONE_OUT} with benchmark_filename (the .train/.valid/.test files come split; "
                f"{LAST_SESSION} splits a dataset's one .inter file)")
    args = config["eval_args"] if isinstance(config["eval_args"], dict) else {}
    if args.get("split") != {"LS": LEAVE_ONE_MODE}:
        return (f"{LEAVE_ONE_OUT} with eval_args split {args.get('split')} ({LAST_SESSION} takes the place "
                f"of RecBole's leave-one-out: eval_args split {{'LS': '{LEAVE_ONE_MODE}'}})")
    return None


def session_places(users: np.ndarray, sessions: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For events ``(user, session, time)``: ``(from_end, count)`` per event, the place of its
    session among the user's sessions counted from the newest (0: the user's newest session)
    and the user's number of sessions. Sessions are ordered by their first event's time (ties
    by session id)."""
    if len(users) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    pairs, inverse = np.unique(np.stack([users, sessions], axis=1), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    start = np.full(len(pairs), np.inf)
    np.minimum.at(start, inverse, times.astype(np.float64))
    order = np.lexsort((start, pairs[:, 0]))  # by user, then by the session's first event
    sorted_users = pairs[order, 0]
    new_user = np.r_[True, sorted_users[1:] != sorted_users[:-1]]
    group = np.cumsum(new_user) - 1
    group_start = np.flatnonzero(new_user)
    count = np.bincount(group)[group]
    rank = np.arange(len(order)) - group_start[group]
    from_end = np.empty(len(pairs), dtype=np.int64)
    n_sessions = np.empty(len(pairs), dtype=np.int64)
    from_end[order] = count - 1 - rank
    n_sessions[order] = count
    return from_end[inverse], n_sessions[inverse]


def last_session_parts(from_end: np.ndarray, n_sessions: np.ndarray) -> np.ndarray:
    """:data:`TRAIN`, :data:`VALID` or :data:`TEST` per row, from :func:`session_places` of
    the row's target: the newest session is test, the one before it valid, for users with at
    least :data:`MIN_SPLIT_SESSIONS` sessions; every other row trains."""
    parts = np.full(len(from_end), TRAIN, dtype=np.int64)
    held_out = n_sessions >= MIN_SPLIT_SESSIONS
    parts[held_out & (from_end == 0)] = TEST
    parts[held_out & (from_end == 1)] = VALID
    return parts
