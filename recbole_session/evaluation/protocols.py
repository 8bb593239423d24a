"""Evaluate one trained model under several candidate protocols in one pass over the data.

For each batch of a RecBole full-sort eval dataloader, the model scores every item once
(``full_sort_predict``: one forward pass per user). Each protocol then keeps the scores of its
candidates (the row's positives plus that protocol's negatives) and sets the others to -inf,
and RecBole's own ``Collector`` and ``Evaluator`` rank and score the row exactly as RecBole's
sampled evaluation does with its ``-inf``-filled score matrix. A model without
``full_sort_predict`` is scored through ``predict`` on the (row, candidate) pairs: RecBole's
sampled path, copying the row once per candidate.
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

# whole dataset -> its DatasetHistory; eval split -> the whole dataset rebuilt for it
_HISTORIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_REBUILT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass
class ProtocolResult:
    """Means (``metrics``, flat ``"<protocol>/<metric>@k"`` keys, RecBole's rounding), per-row
    values (``per_user``, same keys, one value per eval row in loader order, for paired tests),
    the rows' user tokens, and a fingerprint of each protocol's candidates."""

    metrics: dict[str, float] = field(default_factory=dict)
    per_user: dict[str, np.ndarray] = field(default_factory=dict)
    users: list[str] = field(default_factory=list)
    fingerprints: dict[str, str] = field(default_factory=dict)

    def to_json(self, decimals: int = 6) -> dict[str, Any]:
        return {
            "metrics": self.metrics,
            "users": self.users,
            "fingerprints": self.fingerprints,
            "per_user": {k: np.round(v.astype(np.float64), decimals).tolist() for k, v in self.per_user.items()},
        }


def whole_dataset_for(eval_data: Any, config: Any) -> Any:
    """The whole dataset (all splits) behind an eval dataloader, rebuilt from ``config`` the
    way ``data_preparation`` builds it (cached per eval split)."""
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

    device = next(model.parameters()).device if any(True for _ in model.parameters()) else torch.device("cpu")
    collectors = {p.name: Collector(config) for p in plan}
    users: list[str] = []
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

                keeps: dict[str, torch.Tensor] = {}
                for p in plan:
                    keep = torch.zeros(n_rows, n_items, dtype=torch.bool, device=device)
                    if p.kind == "full":
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
    result = ProtocolResult(users=users, fingerprints=fingerprints)
    evaluator = ranking_evaluator(config)
    for p in plan:
        collectors[p.name].model_collect(model)
        struct = collectors[p.name].get_data_struct()
        for key, value in evaluator.evaluate(struct).items():
            result.metrics[f"{p.name}/{key}"] = float(value)
        for key, values in _per_user(evaluator, struct).items():
            result.per_user[f"{p.name}/{key}"] = values
    return result


def evaluate_protocols(model: torch.nn.Module, eval_data: Any, config: Any, protocols: Any = None,
                       **kwargs: Any) -> dict[str, float]:
    """Flat ``{"random100/recall@10": ..., "full/ndcg@10": ...}`` of
    :func:`evaluate_protocols_detailed` (same arguments)."""
    return evaluate_protocols_detailed(model, eval_data, config, protocols, **kwargs).metrics


__all__ = [
    "Protocol",
    "ProtocolResult",
    "dataset_history",
    "evaluate_protocols",
    "evaluate_protocols_detailed",
    "predict_pairs",
    "score_rows",
    "whole_dataset_for",
]
