"""Dataset statistics as in the papers' Table 1, the filter funnel, and their console tables."""

from __future__ import annotations

import numpy as np

QUANTILES = (25, 50, 75, 95)
# the funnel step that dropped the most -> how to keep more (None: the user's own selection)
KEEP_MORE = {
    "keep": None,
    "min_rating": "a lower --min-rating",
    "min_item_inter": "a lower --min-item-inter (now {min_item_inter})",
    "min_user_inter": "a lower --min-user-inter (now {min_user_inter})",
    "max_user_inter": "--max-user-inter 0 (keeps every row of a user)",
    "short_sessions": {"drop_user": "--short-sessions drop_session (drops only the short session, not its user)",
                       "drop_session": "a lower --min-session-length (now {min_session_length})"},
    "min_sessions": "a lower --min-sessions (now {min_sessions}) or a shorter --session-gap (more sessions per user)",
}


def _quantiles(counts: np.ndarray) -> dict[str, float]:
    if len(counts) == 0:
        return {f"q{q}": 0.0 for q in QUANTILES}
    return {f"q{q}": float(np.percentile(counts, q)) for q in QUANTILES}


def session_aware_stats(user_code: np.ndarray, item_code: np.ndarray, session: np.ndarray) -> dict:
    """Users, items, rows, density over distinct (user, item) pairs, the share of rows that
    repeat an earlier pair, and the quartiles (plus the 95th percentile, as the reference
    prints) of items per user, sessions per user and items per session. Rows are sorted by
    user and time, sessions numbered 1.. densely in that order."""
    return combine_session_aware([session_aware_part(user_code, item_code, session)])


def session_aware_part(user_code: np.ndarray, item_code: np.ndarray, session: np.ndarray,
                       n_items: int = 0) -> dict:
    """The counts behind :func:`session_aware_stats` for some of the users (all of each one's
    rows; sessions numbered 1.. densely among them), to be summed by
    :func:`combine_session_aware`: distinct items as a mask (of at least ``n_items`` codes),
    the per-user and per-session counts as arrays."""
    rows = len(session)
    new_user = np.r_[True, user_code[1:] != user_code[:-1]] if rows else np.zeros(0, bool)
    user = np.cumsum(new_user) - 1
    pairs = 0
    if rows:
        # rows come sorted by user: a stable sort of the pair key runs over presorted stretches
        key = np.sort(user.astype(np.int64) * (int(item_code.max()) + 1) + item_code, kind="stable")
        pairs = 1 + int(np.count_nonzero(key[1:] != key[:-1]))
    new_session = np.r_[True, session[1:] != session[:-1]] if rows else np.zeros(0, bool)
    return {
        "users": int(new_user.sum()),
        "items": np.bincount(item_code, minlength=n_items) > 0 if rows else np.zeros(n_items, bool),
        "rows": rows,
        "sessions": int(session.max()) if rows else 0,
        "pairs": pairs,
        "per_user": np.bincount(user) if rows else np.zeros(0, np.int64),
        "sessions_per_user": np.bincount(user, weights=new_session).astype(np.int64) if rows else np.zeros(0, np.int64),
        "per_session": np.bincount(session)[1:] if rows else np.zeros(0, np.int64),
    }


def combine_session_aware(parts: list[dict]) -> dict:
    """:func:`session_aware_stats` from the :func:`session_aware_part` of disjoint users, in
    output order."""
    users, rows, sessions, pairs = (sum(part[key] for part in parts) for key in ("users", "rows", "sessions", "pairs"))
    present = np.zeros(max(len(part["items"]) for part in parts), bool)
    for part in parts:
        present[: len(part["items"])] |= part["items"]
    items = int(np.count_nonzero(present))

    def joined(key: str) -> np.ndarray:
        return np.concatenate([part[key] for part in parts])

    return {
        "users": users,
        "items": items,
        "rows": rows,
        "sessions": sessions,
        "pairs": pairs,
        "density": pairs / users / items if users and items else 0.0,
        "repeat_share": 1 - pairs / rows if rows else 0.0,
        "items_per_user": _quantiles(joined("per_user")),
        "sessions_per_user": _quantiles(joined("sessions_per_user")),
        "items_per_session": _quantiles(joined("per_session")),
    }


def format_session_aware(name: str, stats: dict) -> str:
    """A Table-1-like block: one header line, one line of values (quantiles as Q1/Q2/Q3)."""
    def q(key: str) -> str:
        d = stats[key]
        return "/".join(f"{d[f'q{p}']:g}" for p in (25, 50, 75))

    header = ["dataset", "users", "items", "rows", "sessions", "density", "repeats",
              "items/user Q1/Q2/Q3", "sessions/user Q1/Q2/Q3", "items/session Q1/Q2/Q3"]
    values = [name, f"{stats['users']:,}", f"{stats['items']:,}", f"{stats['rows']:,}",
              f"{stats['sessions']:,}", f"{100 * stats['density']:.4f}%", f"{100 * stats['repeat_share']:.1f}%",
              q("items_per_user"), q("sessions_per_user"), q("items_per_session")]
    return _table(header, [values])


def format_session_based(name: str, stats: dict) -> str:
    header = ["dataset", "clicks", "items", "train sessions", "valid sessions", "test sessions",
              "train examples", "valid examples", "test examples", "avg length"]
    valid = stats["valid"]
    values = [name, f"{stats['clicks']:,}", f"{stats['items']:,}",
              f"{stats['train']['sessions']:,}",
              "= test" if valid.get("same_as") == "test" else f"{valid['sessions']:,}",
              f"{stats['test']['sessions']:,}",
              f"{stats['train']['examples']:,}",
              "= test" if valid.get("same_as") == "test" else f"{valid['examples']:,}",
              f"{stats['test']['examples']:,}",
              f"{stats['average_length']:.2f}"]
    return _table(header, [values])


def format_funnel(steps: list[dict]) -> str:
    """The funnel as a table: one line per step with what it kept."""
    header = ["step", "rule", "rows", "users", "items", "sessions"]

    def n(value) -> str:
        return "-" if value is None else f"{value:,}"

    return _table(header, [[s["step"], s["rule"], n(s["rows"]), n(s.get("users")), n(s["items"]), n(s["sessions"])]
                           for s in steps])


def funnel_warning(steps: list[dict], params: dict) -> str | None:
    """When the filters (after the user's own selections) dropped more than half of the users or
    of the rows: which step dropped the most, and the flag that keeps more; else ``None``."""
    selected = [s for s in steps if s["step"] in ("read", "keep", "min_rating")]
    start, end = selected[-1], steps[-1]
    if start.get("users") is None:
        return None
    if end["users"] * 2 >= start["users"] and end["rows"] * 2 >= start["rows"]:
        return None
    filters = steps[len(selected):]
    previous = [start, *filters[:-1]]
    drops = [(prev["users"] - s["users"], prev["rows"] - s["rows"], s) for prev, s in zip(previous, filters)]
    users, rows, worst = max(drops, key=lambda d: (d[0], d[1]))
    advice = KEEP_MORE.get(worst["step"])
    if isinstance(advice, dict):
        advice = advice.get(str(params.get("short_sessions", "drop_user")))
    text = (f"the filters kept {end['users']:,} of {start['users']:,} users and {end['rows']:,} of "
            f"{start['rows']:,} rows; {worst['step']} ({worst['rule']}) dropped the most "
            f"({users:,} users, {rows:,} rows)")
    if advice:
        text += "; to keep more: " + advice.format(**{k: params.get(k) for k in
                                                        ("min_item_inter", "min_user_inter", "min_session_length",
                                                         "min_sessions")})
    return text


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)
