"""The hierarchical bootstrap of ``recbole_session.evaluation.stats`` on hand-made inputs: exact
intervals, users as clusters, the seeds' noise, determinism, Holm and the verdict words."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy import stats as scipy_stats

from recbole_session.evaluation.stats import (
    BETTER,
    NOT_SEPARATED,
    RESAMPLES,
    WORSE,
    holm,
    paired_difference,
    verdict,
)

USERS = [f"u{i}" for i in range(40)]


def test_a_constant_shift_gives_the_shift_as_interval():
    """B = A + shift on every row of every seed: every resample's estimate is the shift."""
    a = np.random.default_rng(0).random((3, len(USERS)))
    for shift, word in ((0.25, BETTER), (-0.25, WORSE)):
        result = paired_difference(a, a + shift, USERS)
        assert result.diff == pytest.approx(shift, abs=1e-12)
        assert result.ci_low == pytest.approx(shift, abs=1e-12) and result.ci_high == pytest.approx(shift, abs=1e-12)
        # no resample on the other side of 0: the smallest p the resamples can give
        assert result.p == pytest.approx(2 / (RESAMPLES + 1))
        assert result.verdict == word
        assert (result.seeds, result.users, result.rows, result.resamples) == (3, len(USERS), len(USERS), RESAMPLES)


def test_identical_runs_are_not_separated():
    a = np.random.default_rng(1).random((2, len(USERS)))
    result = paired_difference(a, a.copy(), USERS)
    assert (result.diff, result.ci_low, result.ci_high, result.p) == (0.0, 0.0, 0.0, 1.0)
    assert result.verdict == NOT_SEPARATED


def test_users_are_clusters_not_rows():
    """One seed; user x holds 3 rows of difference 1, user y one row of 0. The estimate is the
    rows' mean, 3/4; a resample draws two users: {x, x} gives 1, {y, y} 0 (a quarter of the
    resamples each) and {x, y} 3/4, so the 95 % interval is exactly [0, 1]. Drawing the 4 rows
    instead would give other values (e.g. 1/4 and 1/2)."""
    users = ["x", "x", "y", "x"]
    a = [[0.0, 0.0, 0.0, 0.0]]
    b = [[1.0, 1.0, 0.0, 1.0]]
    result = paired_difference(a, b, users)
    assert result.diff == 0.75 and (result.users, result.rows) == (2, 4)
    assert (result.ci_low, result.ci_high) == (0.0, 1.0)
    assert result.verdict == NOT_SEPARATED
    # about a quarter of the resamples is at 0, so p is about 2 x 1/4
    assert 0.4 < result.p < 0.6
    # the users given per seed are the same thing
    assert paired_difference(a, b, [users]) == result


def test_seed_noise_widens_the_interval_that_users_alone_give():
    """The reviewer's case: B - A is 0.1 on average, but the seeds move it by +-0.2. On values
    averaged over seeds (one 'seed') the users alone separate the rows, and so does a paired
    t-test over users; resampling the seeds too does not."""
    rng = np.random.default_rng(2)
    n = 200
    seed_effect = np.array([0.30, -0.10, 0.10])
    a = np.zeros((len(seed_effect), n))
    b = seed_effect[:, None] + rng.normal(0, 0.05, (len(seed_effect), n))
    users = [str(u) for u in range(n)]
    averaged = paired_difference(a.mean(0, keepdims=True), b.mean(0, keepdims=True), users)
    both = paired_difference(a, b, users)
    assert both.diff == pytest.approx(averaged.diff) == pytest.approx(b.mean())
    assert averaged.verdict == BETTER and averaged.p < 0.01
    assert scipy_stats.ttest_rel(b.mean(0), a.mean(0)).pvalue < 1e-10
    assert both.verdict == NOT_SEPARATED and both.p > 0.05
    assert both.ci_low < 0 < both.ci_high
    assert both.ci_high - both.ci_low > 10 * (averaged.ci_high - averaged.ci_low)


def test_deterministic_and_seeded():
    rng = np.random.default_rng(3)
    a, b = rng.random((3, len(USERS))), rng.random((3, len(USERS)))
    first = paired_difference(a, b, USERS)
    assert paired_difference(a, b, USERS) == first
    other = paired_difference(a, b, USERS, seed=7)
    assert other.diff == first.diff and (other.ci_low, other.ci_high) != (first.ci_low, first.ci_high)


def test_five_seeds_of_a_thousand_users_take_well_under_a_second():
    rng = np.random.default_rng(4)
    a = rng.random((5, 1000))
    b = a + rng.normal(0.01, 0.1, a.shape)
    started = time.perf_counter()
    paired_difference(a, b, [str(u) for u in range(1000)])
    assert time.perf_counter() - started < 1.0


def test_unpaired_inputs_are_refused():
    a = np.zeros((2, 3))
    with pytest.raises(ValueError, match="A has 2 seeds and B 1"):
        paired_difference(a, a[:1], ["1", "2", "3"])
    with pytest.raises(ValueError, match="seed 2 of 2 evaluated other users"):
        paired_difference(a, a, [["1", "2", "3"], ["1", "2", "4"]])
    with pytest.raises(ValueError, match="seed 1: 3 values of A, 2 of B"):
        paired_difference(a, a[:, :2], ["1", "2", "3"])


def test_holm_on_a_known_vector():
    """By hand: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04; made
    non-decreasing 0.02, 0.03, 0.06, 0.06; back in the input's order."""
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == [1.0, 1.0]  # capped at 1
    assert holm([0.2]) == [0.2]
    assert holm([]) == []


def test_verdict_words_follow_the_interval():
    assert verdict(0.01, 0.02) == BETTER == "better"
    assert verdict(-0.02, -0.01) == WORSE == "worse"
    assert verdict(-0.01, 0.01) == NOT_SEPARATED == "not separated"
    assert verdict(0.0, 0.1) == NOT_SEPARATED  # an interval that touches 0 does not exclude it
