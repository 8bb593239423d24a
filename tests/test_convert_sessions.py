"""Each session-aware filter and the gap boundary on hand-made rows, with exact outputs."""

from __future__ import annotations

import pandas as pd
import pytest

from recbole_session.convert.sessions import SessionFilters, session_aware

# every filter off: only the session split and the per-user session rules we set
OFF = dict(min_item_inter=0, min_user_inter=0, max_user_inter=0, min_sessions=1, min_session_length=1)
DAY = 86_400


def rows(*triples) -> pd.DataFrame:
    return pd.DataFrame(triples, columns=["user", "item", "time"])


def run(frame: pd.DataFrame, **kw) -> list[tuple]:
    out = session_aware(frame, SessionFilters(**{**OFF, **kw}))
    return list(out[["user", "item", "time", "session", "dwell"]].itertuples(index=False, name=None))


def test_gap_equal_to_threshold_stays_in_the_session():
    frame = rows((1, "a", 0), (1, "b", DAY), (1, "c", 2 * DAY + 1))
    assert run(frame) == [(1, "a", 0, 1, DAY), (1, "b", DAY, 1, 0), (1, "c", 2 * DAY + 1, 2, 0)]
    # inclusive: the equal gap splits too
    assert [r[3] for r in run(frame, session_gap_inclusive=True)] == [1, 2, 3]
    assert [r[3] for r in run(frame, session_gap=DAY + 1)] == [1, 1, 1]


def test_sorted_by_user_then_time_ties_keep_file_order_and_sessions_numbered_densely():
    frame = rows((2, "x", 50), (1, "b", 10), (2, "y", 50), (1, "a", 5), (2, "z", 10))
    assert run(frame) == [
        (1, "a", 5, 1, 5), (1, "b", 10, 1, 0),
        (2, "z", 10, 2, 40), (2, "x", 50, 2, 0), (2, "y", 50, 2, 0),
    ]


def test_item_filter_counts_rows():
    frame = rows((1, "a", 0), (1, "rare", 1), (2, "a", 0), (2, "b", 1), (1, "b", 2))
    assert [r[1] for r in run(frame, min_item_inter=2)] == ["a", "b", "a", "b"]


def test_user_filter_runs_after_the_item_filter():
    # user 2 has 3 rows, but one is a rare item: after the item filter only 2 remain
    frame = rows((1, "a", 0), (1, "b", 1), (1, "a", 2), (2, "a", 0), (2, "b", 1), (2, "rare", 2))
    assert {r[0] for r in run(frame, min_item_inter=2, min_user_inter=3)} == {1}
    assert {r[0] for r in run(frame, min_user_inter=3)} == {1, 2}


def test_last_n_rows_per_user_by_time():
    frame = rows((1, "a", 40), (1, "b", 10), (1, "c", 30), (1, "d", 20), (2, "e", 0))
    assert [(r[0], r[1]) for r in run(frame, max_user_inter=2)] == [(1, "c"), (1, "a"), (2, "e")]


def test_min_sessions_drops_users_with_one_session():
    frame = rows((1, "a", 0), (1, "b", 1), (2, "a", 0), (2, "b", 2 * DAY))
    assert {r[0] for r in run(frame, min_sessions=2)} == {2}


def test_short_session_drops_the_user_or_only_the_session():
    frame = rows((1, "a", 0), (1, "b", 1), (1, "c", 3 * DAY), (1, "d", 6 * DAY), (1, "e", 6 * DAY + 5),
                 (2, "a", 0), (2, "b", 1), (2, "c", 3 * DAY), (2, "d", 3 * DAY + 1))
    # reference: user 1 has a one-item session, so user 1 goes
    assert {r[0] for r in run(frame, min_session_length=2)} == {2}
    # ASARS: only that session goes; user 1 keeps two sessions, renumbered densely
    kept = run(frame, min_session_length=2, short_sessions="drop_session")
    assert [(r[0], r[1], r[3]) for r in kept] == [
        (1, "a", 1), (1, "b", 1), (1, "d", 2), (1, "e", 2), (2, "a", 3), (2, "b", 3), (2, "c", 4), (2, "d", 4)]
    # then min_sessions counts the sessions left
    assert {r[0] for r in run(frame, min_session_length=2, short_sessions="drop_session", min_sessions=3)} == set()


def test_split_first_cuts_sessions_before_the_item_filter():
    # a rare item bridges two far-apart rows: filtered first (reference) the gap is 2 days,
    # cut first (ASARS) both rows stay in one session
    frame = rows((1, "a", 0), (1, "rare", DAY), (1, "b", 2 * DAY), (2, "a", 0), (2, "b", 1))
    reference = run(frame, min_item_inter=2)
    asars = run(frame, min_item_inter=2, split_first=True)
    assert [r[3] for r in reference] == [1, 2, 3, 3]
    assert [r[3] for r in asars] == [1, 1, 2, 2]
    # dwell is the gap to the next kept row of the session
    assert [r[4] for r in asars] == [2 * DAY, 0, 1, 0]


def test_everything_filtered_gives_an_empty_frame():
    out = session_aware(rows((1, "a", 0)), SessionFilters())
    assert len(out) == 0 and list(out.columns) == ["user", "item", "time", "session", "dwell"]


def test_filters_from_config_cast_and_check():
    f = SessionFilters.from_config({"session_gap": "3600", "split_first": "true", "min_sessions": 10.0,
                                    "unrelated": 1})
    assert (f.session_gap, f.split_first, f.min_sessions) == (3600.0, True, 10)
    with pytest.raises(ValueError, match="short_sessions"):
        SessionFilters.from_config({"short_sessions": "drop_everything"})
