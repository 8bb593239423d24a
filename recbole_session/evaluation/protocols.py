"""Evaluate one trained model under several candidate protocols in one pass over the data.

For each batch of a RecBole full-sort eval dataloader, the model scores every item once
(``full_sort_predict``: one forward pass per user). Each protocol then keeps the scores of its
candidates (the row's positives plus that protocol's negatives) and sets the others to -inf,
and RecBole's own ``Collector`` and ``Evaluator`` rank and score the row exactly as RecBole's
sampled evaluation does with its ``-inf``-filled score matrix. ``full_unseen`` keeps every item
but those the row's user interacted with before its target (the target stays a candidate). A
model without
``full_sort_predict`` is scored through ``predict`` on the (row, candidate) pairs: RecBole's
sampled path, copying the row once per candidate.

Each row is one target (RecBole's full-sort loader of a sequential dataset yields one row per
target, whatever the split: one per user under leave-one-out, one per event of the held-out
session under ``eval_split: last_session``). The rows whose target opens a new session
(:func:`session_opens`) are also reported as their own slice, ``open/<protocol>/<metric>``.
"""

from __future__ import annotations

import hashlib
import inspect
import weakref
from dataclasses import dataclass, field
from logging import getLogger
from typing import Any

import numpy as np
import torch
from recbole.data.interaction import Interaction
from recbole.evaluator import Collector, Evaluator
from recbole.evaluator.base_metric import TopkMetric

from recbole_session.evaluation.candidates import (
    PAPER_PROTOCOLS,
    DatasetHistory,
    Protocol,
    RecBoleNegatives,
    as_numpy,
    history_from_dataset,
    parse_protocols,
)
from recbole_session.lookup import create_dataset

DEFAULT_NEGATIVES_SEED = 12345
SCORING_MODES = ("auto", "full_sort", "predict")
# RecBole's metric_decimal_place default, for a config without it
DEFAULT_DECIMALS = 4

# whole dataset -> its DatasetHistory / its PriorItems; eval split -> the whole dataset rebuilt for it
_HISTORIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_PRIORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_REBUILT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


# prefix of the metric keys of the rows whose target opens a new session
OPEN_SLICE = "open"


@dataclass
class ProtocolResult:
    """Means (``metrics``, flat ``"<protocol>/<metric>@k"`` keys, RecBole's rounding), per-row
    values (``per_user``, same keys, one value per eval row in loader order, for paired tests),
    the rows' user tokens (a user appears once per target: once under leave-one-out, once per
    event of the held-out session under ``eval_split: last_session``), a fingerprint of each
    protocol's candidates, whether each row's target opens a new session (``opens``, see
    :func:`session_opens`) and the means over those rows (``open_metrics``, keys
    ``"open/<protocol>/<metric>@k"``; empty when no row opens a session)."""

    metrics: dict[str, float] = field(default_factory=dict)
    per_user: dict[str, np.ndarray] = field(default_factory=dict)
    users: list[str] = field(default_factory=list)
    fingerprints: dict[str, str] = field(default_factory=dict)
    opens: list[bool] = field(default_factory=list)
    open_metrics: dict[str, float] = field(default_factory=dict)

    @property
    def n_targets(self) -> int:
        """Eval rows, one target each."""
        return len(self.users)

    @property
    def n_open(self) -> int:
        """Rows whose target opens a new session."""
        return int(sum(self.opens))

    def to_json(self, decimals: int = 6) -> dict[str, Any]:
        return {
            "metrics": self.metrics,
            "users": self.users,
            "fingerprints": self.fingerprints,
            "per_user": {k: np.round(v.astype(np.float64), decimals).tolist() for k, v in self.per_user.items()},
            "opens": [bool(flag) for flag in self.opens],
            "open_metrics": self.open_metrics,
        }


def session_opens(interaction: Interaction, config: Any) -> np.ndarray:
    """Per row of a sequential eval batch, whether its target opens a new session: its session
    id differs from the last history item's (without a session field: the time gap to it
    exceeds ``session_gap``). All False for rows without a history list (general models) or
    without either field."""
    n_rows = len(interaction)
    length_field = config["ITEM_LIST_LENGTH_FIELD"]
    if length_field not in interaction:
        return np.zeros(n_rows, dtype=bool)
    session, time_field, suffix = config["SESSION_ID_FIELD"], config["TIME_FIELD"], config["LIST_SUFFIX"]
    last = (interaction[length_field].long() - 1).clamp(min=0).view(-1, 1)
    if session and session in interaction and session + suffix in interaction:
        prev = interaction[session + suffix].gather(1, last).squeeze(1)
        return (interaction[session] != prev).cpu().numpy()
    if config["session_gap"] and time_field in interaction and time_field + suffix in interaction:
        prev = interaction[time_field + suffix].gather(1, last).squeeze(1)
        return ((interaction[time_field] - prev) > config["session_gap"]).cpu().numpy()
    return np.zeros(n_rows, dtype=bool)


def remember_whole_dataset(dataset: Any, *loaders: Any) -> None:
    """Record ``dataset`` as the whole dataset behind ``loaders`` (what ``data_preparation``
    split it into): :func:`whole_dataset_for` then returns it instead of rebuilding it from the
    config. The build path calls this; a rebuild reads the files again, and at a relative
    ``data_path`` a process in another folder (a Ray trial) would not find them."""
    for loader in loaders:
        _REBUILT[loader._dataset] = dataset


def whole_dataset_for(eval_data: Any, config: Any) -> Any:
    """The whole dataset (all splits) behind an eval dataloader: the one
    :func:`remember_whole_dataset` recorded, else rebuilt from ``config`` the way
    ``data_preparation`` builds it (cached per eval split)."""
    split = eval_data._dataset
    if split not in _REBUILT:
        dataset = create_dataset(config)
        dataset.build()  # the same row layout as the dataset the loaders came from
        _REBUILT[split] = dataset
    return _REBUILT[split]


def dataset_history(dataset: Any) -> DatasetHistory:
    """Cached :func:`history_from_dataset`."""
    if dataset not in _HISTORIES:
        _HISTORIES[dataset] = history_from_dataset(dataset)
    return _HISTORIES[dataset]


@dataclass
class PriorItems:
    """Every interaction of a whole dataset ordered by (user, time), for ``full_unseen``: the
    items of a user before a time ``t`` are ``items[offsets[u]:searchsorted(keys, key(u, t))]``."""

    keys: np.ndarray  # user * span + (time - origin), sorted
    items: np.ndarray
    offsets: np.ndarray  # internal user id -> index of its first interaction
    origin: float
    span: float

    def key(self, users: np.ndarray, times: np.ndarray) -> np.ndarray:
        return users.astype(np.float64) * self.span + (times.astype(np.float64) - self.origin)

    def before(self, users: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row, item) pairs: for each row ``r``, the items of ``users[r]`` strictly before
        ``times[r]``."""
        starts = self.offsets[users]
        counts = np.searchsorted(self.keys, self.key(users, times), side="left") - starts
        counts = np.maximum(counts, 0)
        rows = np.repeat(np.arange(len(users)), counts)
        index = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts) + np.repeat(starts, counts)
        return rows, self.items[index]


def prior_items(dataset: Any) -> PriorItems | None:
    """Cached :class:`PriorItems` of a whole dataset (None without a time field). A built
    sequential dataset holds one row per target, so each sequence's first item is taken from
    the item and time lists of its length-1 row."""
    time_field = dataset.time_field
    if time_field is None or time_field not in dataset.inter_feat.columns:
        return None
    if dataset not in _PRIORS:
        feat = dataset.inter_feat
        users = [as_numpy(feat[dataset.uid_field]).astype(np.int64)]
        items = [as_numpy(feat[dataset.iid_field]).astype(np.int64)]
        times = [as_numpy(feat[time_field]).astype(np.float64)]
        list_field = getattr(dataset, "item_id_list_field", None)
        time_list = f"{time_field}{dataset.config['LIST_SUFFIX']}"
        if list_field in feat.columns and time_list in feat.columns:
            first = as_numpy(feat[dataset.item_list_length_field]).reshape(-1) == 1
            users.append(users[0][first])
            items.append(as_numpy(feat[list_field])[first, 0].astype(np.int64))
            times.append(as_numpy(feat[time_list])[first, 0].astype(np.float64))
        users, items, times = np.concatenate(users), np.concatenate(items), np.concatenate(times)
        origin = float(times.min()) if len(times) else 0.0
        span = float(times.max() - origin + 1.0) if len(times) else 1.0
        table = PriorItems(np.zeros(0), items, np.zeros(0, dtype=np.int64), origin, span)
        keys = table.key(users, times)
        order = np.argsort(keys, kind="stable")
        table.keys, table.items = keys[order], items[order]
        table.offsets = np.searchsorted(users[order], np.arange(dataset.user_num), side="left")
        _PRIORS[dataset] = table
    return _PRIORS[dataset]


def unseen_keep(interaction: Interaction, uids: np.ndarray, split: Any, priors: PriorItems | None,
                n_items: int, device: torch.device) -> torch.Tensor:
    """``full_unseen`` candidates of a batch: every item but the row's items before its target
    (the row's item list, and with a time field every item of the user at an earlier time, so
    a list cut at ``MAX_ITEM_LIST_LENGTH`` loses nothing)."""
    keep = torch.ones(len(uids), n_items, dtype=torch.bool, device=device)
    list_field = getattr(split, "item_id_list_field", None)
    if list_field is not None and list_field in interaction:
        lists = interaction[list_field]
        rows = torch.arange(len(uids), device=device).unsqueeze(1).expand_as(lists)
        keep[rows[lists > 0], lists[lists > 0]] = False
    if priors is not None and split.time_field in interaction:
        rows, items = priors.before(uids, interaction[split.time_field].cpu().numpy())
        keep[torch.as_tensor(rows, device=device), torch.as_tensor(items, device=device)] = False
    return keep


def _has_full_sort(model: torch.nn.Module) -> bool:
    from recbole.model.abstract_recommender import AbstractRecommender

    method = getattr(type(model), "full_sort_predict", None)
    return method is not None and method is not AbstractRecommender.full_sort_predict


def predict_pairs(model: torch.nn.Module, interaction: Interaction, rows: torch.Tensor,
                  items: torch.Tensor, iid_field: str, dataset: Any, batch_size: int) -> torch.Tensor:
    """RecBole's sampled path: copy row ``rows[j]`` with its item set to ``items[j]``, join
    the item features, and ``predict`` (in chunks of ``batch_size`` copies)."""
    scores = []
    for start in range(0, len(rows), batch_size):
        part = interaction[rows[start : start + batch_size]]
        part.update(Interaction({iid_field: items[start : start + batch_size]}))
        part = dataset.join(part).to(rows.device)
        scores.append(model.predict(part).view(-1))
    return torch.cat(scores) if scores else torch.zeros(0, device=rows.device)


def score_rows(model: torch.nn.Module, interaction: Interaction, keep: torch.Tensor, scoring: str,
               iid_field: str, dataset: Any, batch_size: int) -> torch.Tensor:
    """``(rows, n_items)`` scores of the items marked in ``keep`` (others -inf): from one
    ``full_sort_predict`` per row, or from ``predict`` on each (row, item) pair."""
    n_rows, n_items = keep.shape
    if scoring == "full_sort":
        scores = model.full_sort_predict(interaction).view(n_rows, n_items).float()
        return scores.masked_fill(~keep, -np.inf)
    rows, items = keep.nonzero(as_tuple=True)
    scores = torch.full(keep.shape, -np.inf, device=keep.device)
    scores[rows, items] = predict_pairs(model, interaction, rows, items, iid_field, dataset, batch_size).float()
    return scores


# what the collector can gather from eval batches alone (no training-split statistics)
_BATCH_NEEDS = {"rec.topk", "rec.items", "rec.meanrank", "rec.score"}


def ranking_evaluator(config: Any) -> Evaluator:
    """RecBole's ``Evaluator`` for ``config["metrics"]``, minus metrics that need statistics of
    the training split (``ItemCoverage``, ``AveragePopularity``, ...), which are skipped."""
    evaluator = Evaluator(config)
    skipped = [m for m, c in evaluator.metric_class.items() if not set(c.metric_need) <= _BATCH_NEEDS]
    if skipped:
        getLogger().warning(f"evaluate_protocols skips metrics that need training-split data: {skipped}")
        evaluator.metrics = [m for m in evaluator.metrics if m not in skipped]
        evaluator.metric_class = {m: c for m, c in evaluator.metric_class.items() if m not in skipped}
    return evaluator


def _per_user(evaluator: Evaluator, struct: Any) -> dict[str, np.ndarray]:
    """Per-row values of RecBole's top-k metrics, from the metric classes' own ``metric_info``."""
    out = {}
    for name, metric in evaluator.metric_class.items():
        if not isinstance(metric, TopkMetric):
            continue
        pos_index, pos_len = metric.used_info(struct)
        params = inspect.signature(metric.metric_info).parameters
        values = metric.metric_info(pos_index, pos_len) if "pos_len" in params else metric.metric_info(pos_index)
        for k in metric.topk:
            out[f"{name}@{k}"] = np.asarray(values[:, k - 1], dtype=np.float64)
    return out


def evaluate_protocols_detailed(
    model: torch.nn.Module,
    eval_data: Any,
    config: Any,
    protocols: Any = None,
    dataset: Any = None,
    scoring: str = "auto",
) -> ProtocolResult:
    """Evaluate ``model`` on a RecBole full-sort eval dataloader under every protocol.

    Args:
        model: a trained RecBole model.
        eval_data: the valid or test dataloader of ``data_preparation`` (full-sort mode).
        config: the run's Config (metrics, topk, ``eval_protocols``, ``eval_negatives_seed``).
        protocols: names (list or comma-separated); default ``config["eval_protocols"]``.
        dataset: the whole dataset the loaders came from (all splits; the histories are
            taken from it); rebuilt from ``config`` when not given.
        scoring: ``auto`` (one ``full_sort_predict`` pass when the model has it, else
            ``predict``), ``full_sort`` or ``predict``.
    """
    from recbole.data.dataloader import FullSortEvalDataLoader

    if not isinstance(eval_data, FullSortEvalDataLoader):
        raise TypeError(
            f"evaluate_protocols needs a full-sort eval dataloader (eval_args mode 'full'), got "
            f"{type(eval_data).__name__}: the protocols choose their own candidates"
        )
    if scoring not in SCORING_MODES:
        raise ValueError(f"scoring must be one of {SCORING_MODES}, got '{scoring}'")
    if scoring == "auto":
        scoring = "full_sort" if _has_full_sort(model) else "predict"
    names = protocols if protocols is not None else (config["eval_protocols"] or PAPER_PROTOCOLS)
    plan = parse_protocols(names)
    seed = config["eval_negatives_seed"]
    seed = DEFAULT_NEGATIVES_SEED if seed is None else int(seed)

    split = eval_data._dataset
    dataset = dataset if dataset is not None else whole_dataset_for(eval_data, config)
    if (dataset.user_num, dataset.item_num) != (split.user_num, split.item_num):
        raise ValueError(
            f"the dataset given has {dataset.user_num} users / {dataset.item_num} items but the "
            f"eval data {split.user_num} / {split.item_num}: pass the dataset the loaders came from"
        )
    history = dataset_history(dataset)
    uid_field, iid_field = split.uid_field, split.iid_field
    n_items = split.item_num
    batch_size = int(config["eval_batch_size"])

    eval_users = np.unique(as_numpy(split.inter_feat[uid_field]))
    per_user_negatives: dict[str, np.ndarray] = {}
    samplers: dict[str, RecBoleNegatives] = {}
    fingerprints: dict[str, str] = {}
    digests: dict[str, Any] = {}
    for p in plan:
        if p.kind == "random":
            per_user_negatives[p.name] = history.random_negatives(p.n, seed, eval_users)
        elif p.kind == "popular":
            per_user_negatives[p.name] = history.popular_negatives(p.n, eval_users)
        elif p.kind in ("uni", "pop"):
            samplers[p.name] = RecBoleNegatives(dataset, p.kind, p.n, seed)
            digests[p.name] = hashlib.sha1()
        if p.name in per_user_negatives:
            fingerprints[p.name] = history.fingerprint(per_user_negatives[p.name], eval_users)
        elif p.kind == "full":
            fingerprints[p.name] = hashlib.sha1(history.token_rank().tobytes()).hexdigest()[:16]
        elif p.kind == "full_unseen":
            fingerprints[p.name] = hashlib.sha1(b"full_unseen" + history.token_rank().tobytes()).hexdigest()[:16]
    priors = prior_items(dataset) if any(p.kind == "full_unseen" for p in plan) else None

    device = next(model.parameters()).device if any(True for _ in model.parameters()) else torch.device("cpu")
    collectors = {p.name: Collector(config) for p in plan}
    users: list[str] = []
    opens: list[bool] = []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for interaction, history_index, positive_u, positive_i in eval_data:
                interaction = interaction.to(device)
                positive_u, positive_i = positive_u.to(device), positive_i.to(device)
                uids = interaction[uid_field].cpu().numpy()
                n_rows = len(uids)
                users += [str(t) for t in history.user_tokens[uids]]
                opens += session_opens(interaction, config).tolist()

                keeps: dict[str, torch.Tensor] = {}
                for p in plan:
                    keep = torch.zeros(n_rows, n_items, dtype=torch.bool, device=device)
                    if p.kind == "full_unseen":
                        keep = unseen_keep(interaction, uids, split, priors, n_items, device)
                    elif p.kind == "full":
                        keep[:] = True
                        if history_index is not None:  # general models: RecBole masks history
                            keep[history_index[0].to(device), history_index[1].to(device)] = False
                    else:
                        if p.name in per_user_negatives:
                            negatives = per_user_negatives[p.name][uids]
                        else:
                            # RecBole samples per positive; a sequential row has exactly one
                            targets = positive_i.new_zeros(n_rows)
                            targets[positive_u] = positive_i
                            negatives = samplers[p.name].sample(uids, targets.cpu().numpy())
                            digests[p.name].update(history.token_rank()[negatives].tobytes())
                        keep.scatter_(1, torch.as_tensor(negatives, device=device), True)
                    keep[positive_u, positive_i] = True
                    keep[:, 0] = False  # padding is never a candidate
                    keeps[p.name] = keep

                if scoring == "full_sort":
                    union = torch.ones(n_rows, n_items, dtype=torch.bool, device=device)
                else:  # score each pair that some protocol needs, once
                    union = torch.stack(list(keeps.values())).any(0)
                scores = score_rows(model, interaction, union, scoring, iid_field, split, batch_size)
                for p in plan:
                    collectors[p.name].eval_batch_collect(
                        scores.masked_fill(~keeps[p.name], -np.inf), interaction, positive_u, positive_i
                    )
    finally:
        model.train(was_training)

    for name, digest in digests.items():
        fingerprints[name] = digest.hexdigest()[:16]
    result = ProtocolResult(users=users, fingerprints=fingerprints, opens=opens)
    evaluator = ranking_evaluator(config)
    for p in plan:
        collectors[p.name].model_collect(model)
        struct = collectors[p.name].get_data_struct()
        for key, value in evaluator.evaluate(struct).items():
            result.metrics[f"{p.name}/{key}"] = float(value)
        for key, values in _per_user(evaluator, struct).items():
            result.per_user[f"{p.name}/{key}"] = values
    decimals = config["metric_decimal_place"]
    result.open_metrics = slice_means(result.per_user, np.asarray(opens, dtype=bool), OPEN_SLICE,
                                      DEFAULT_DECIMALS if decimals is None else int(decimals))
    return result


def slice_means(per_user: dict[str, np.ndarray], rows: np.ndarray, name: str, decimals: int) -> dict[str, float]:
    """``{"<name>/<key>": mean over the marked rows}`` of per-row values, rounded as RecBole
    rounds its means; empty when no row is marked."""
    if not rows.any():
        return {}
    return {f"{name}/{key}": round(float(values[rows].mean()), decimals) for key, values in per_user.items()}


def evaluate_protocols(model: torch.nn.Module, eval_data: Any, config: Any, protocols: Any = None,
                       **kwargs: Any) -> dict[str, float]:
    """Flat ``{"random100/recall@10": ..., "full/ndcg@10": ...}`` of
    :func:`evaluate_protocols_detailed` (same arguments)."""
    return evaluate_protocols_detailed(model, eval_data, config, protocols, **kwargs).metrics


__all__ = [
    "OPEN_SLICE",
    "Protocol",
    "PriorItems",
    "ProtocolResult",
    "dataset_history",
    "evaluate_protocols",
    "evaluate_protocols_detailed",
    "predict_pairs",
    "prior_items",
    "score_rows",
    "session_opens",
    "slice_means",
    "remember_whole_dataset",
    "whole_dataset_for",
]
