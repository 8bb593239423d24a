"""Paired differences between two models that keep the seeds' variance: a hierarchical
bootstrap over seeds and users, its percentile interval, a bootstrap p-value, and Holm's
correction for the several claims of one table. numpy only.

Why: a paired test over users on per-user values averaged over seeds (what ``compare`` did)
treats the seeds' mean as if it were the model. Another set of seeds trains other models, so a
difference that the seeds' spread could produce reads as significant there. And a user may hold
several evaluated targets (a session split scores one per session): the targets of a user are
not independent, so the user, not the row, is the unit that is drawn (a cluster).

The estimate (B - A) is the mean over seeds of each seed's mean over rows of ``b - a`` (the
difference of the metric as the tables report it). One bootstrap resample:

1. draws ``S`` seeds with replacement from the ``S`` paired seeds (the seed stage), and
2. draws ``U`` users with replacement from the ``U`` users (the cluster stage); a drawn user
   brings all its rows. The users are crossed with the seeds (every seed evaluates the same
   users), so one user draw serves every drawn seed of the resample: drawing users anew for
   each seed would divide the users' own variance by the number of seeds and narrow the
   interval again.

The resample's estimate is the mean over the drawn seeds of the drawn rows' mean difference.
:data:`RESAMPLES` resamples give the 95 % percentile interval (the 2.5 and 97.5 % quantiles of
the estimates) and the two-sided bootstrap p-value ``min(1, 2 min(P*(d <= 0), P*(d >= 0)))``
with the ``(1 + count) / (1 + R)`` rule (never 0). The p-value comes from the same resamples as
the interval so the two cannot disagree: p < 0.05 exactly when 0 is outside the percentile
interval (up to the quantiles' interpolation). A t-test on the users' means would again leave
the seeds out. With one seed the seed stage draws that seed: the interval then holds the users'
variance only (the callers say so).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

# bootstrap resamples per difference: the p-value's resolution is 1 / (RESAMPLES + 1)
RESAMPLES = 2000
# the generator's seed: the same inputs give the same interval and p
RNG_SEED = 12345
CONFIDENCE = 0.95
BETTER, WORSE, NOT_SEPARATED = "better", "worse", "not separated"


@dataclass(frozen=True)
class PairedDifference:
    """B - A with its interval: ``verdict`` is :func:`verdict` of the interval."""

    diff: float
    ci_low: float
    ci_high: float
    p: float
    verdict: str
    seeds: int
    users: int
    rows: int
    resamples: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def verdict(ci_low: float, ci_high: float) -> str:
    """"better" when the interval lies above 0, "worse" below, else "not separated"."""
    if ci_low > 0:
        return BETTER
    if ci_high < 0:
        return WORSE
    return NOT_SEPARATED


def _cluster_sums(diffs: list[np.ndarray], users: list[Sequence[Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Per seed and user: the sum of the rows' differences and the number of rows ([S, U] each).
    Every seed must hold the same users (the clusters are crossed with the seeds)."""
    clusters = sorted({str(u) for u in users[0]})
    index = {user: i for i, user in enumerate(clusters)}
    sums = np.zeros((len(diffs), len(clusters)))
    counts = np.zeros((len(diffs), len(clusters)))
    for s, (diff, seed_users) in enumerate(zip(diffs, users)):
        if {str(u) for u in seed_users} != set(clusters):
            raise ValueError(f"seed {s + 1} of {len(diffs)} evaluated other users than the first: "
                             "the seeds are not on the same dataset split")
        codes = np.array([index[str(u)] for u in seed_users], dtype=np.int64)
        sums[s] = np.bincount(codes, weights=diff, minlength=len(clusters))
        counts[s] = np.bincount(codes, minlength=len(clusters))
    return sums, counts


def paired_difference(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]],
                      users: Sequence[Sequence[Any]] | Sequence[Any], resamples: int = RESAMPLES,
                      seed: int = RNG_SEED, confidence: float = CONFIDENCE) -> PairedDifference:
    """B - A over paired seeds: ``a[s]`` / ``b[s]`` are seed ``s``'s per-row values of one metric
    (the same rows in A and B), ``users`` the rows' user ids, one list for every seed or one per
    seed. See the module docstring for the method."""
    if len(a) != len(b) or not len(a):
        raise ValueError(f"A has {len(a)} seeds and B {len(b)}: pair the same seeds")
    per_seed_users = users if len(users) and not isinstance(users[0], (str, int, np.integer)) else [users] * len(a)
    if len(per_seed_users) != len(a):
        raise ValueError(f"{len(per_seed_users)} user lists for {len(a)} seeds")
    diffs = []
    for s, (x, y, u) in enumerate(zip(a, b, per_seed_users)):
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if not (len(x) == len(y) == len(u)) or not len(x):
            raise ValueError(f"seed {s + 1}: {len(x)} values of A, {len(y)} of B, {len(u)} users: "
                             "every seed needs one value of each per evaluated row")
        diffs.append(y - x)
    sums, counts = _cluster_sums(diffs, list(per_seed_users))
    n_seeds, n_users = sums.shape
    estimate = float(np.mean(sums.sum(1) / counts.sum(1)))

    rng = np.random.default_rng(seed)
    # how often each seed / user is drawn in each resample (multinomial counts: the same
    # distribution as drawing indices with replacement, without an index array per resample)
    seed_draws = rng.multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), size=resamples)
    user_draws = rng.multinomial(n_users, np.full(n_users, 1 / n_users), size=resamples).astype(np.float64)
    # per resample and seed: the drawn users' summed difference over their rows
    per_seed = (user_draws @ sums.T) / (user_draws @ counts.T)
    estimates = (seed_draws * per_seed).sum(1) / n_seeds

    tail = (1 - confidence) / 2
    low, high = np.quantile(estimates, [tail, 1 - tail])
    below = (1 + np.count_nonzero(estimates <= 0)) / (1 + resamples)
    above = (1 + np.count_nonzero(estimates >= 0)) / (1 + resamples)
    p = min(1.0, 2 * min(below, above))
    return PairedDifference(diff=estimate, ci_low=float(low), ci_high=float(high), p=float(p),
                            verdict=verdict(float(low), float(high)), seeds=n_seeds, users=n_users,
                            rows=int(counts[0].sum()), resamples=resamples)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error), in the input order: the i-th
    smallest of m is multiplied by m - i + 1, then made non-decreasing, capped at 1."""
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    factors = len(p) - np.arange(len(p))
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * factors))
    out = np.empty_like(adjusted)
    out[order] = adjusted
    return out.tolist()
