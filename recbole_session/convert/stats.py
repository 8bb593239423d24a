"""Dataset statistics as in the papers' Table 1, and their console table."""

from __future__ import annotations

import numpy as np
import pandas as pd

QUANTILES = (25, 50, 75, 95)


def _quantiles(counts: np.ndarray) -> dict[str, float]:
    if len(counts) == 0:
        return {f"q{q}": 0.0 for q in QUANTILES}
    return {f"q{q}": float(np.percentile(counts, q)) for q in QUANTILES}


def session_aware_stats(rows: pd.DataFrame) -> dict:
    """Users, items, rows, density and the quartiles (plus the 95th percentile, as the reference
    prints) of items per user, sessions per user and items per session."""
    # rows are sorted by user and time, sessions numbered 1.. densely in that order
    user_values = rows["user"].to_numpy()
    session = rows["session"].to_numpy()
    new_user = np.r_[True, user_values[1:] != user_values[:-1]] if len(rows) else np.zeros(0, bool)
    user = np.cumsum(new_user) - 1
    users = int(new_user.sum())
    items = int(len(pd.unique(rows["item"].to_numpy())))
    sessions = int(session.max()) if len(session) else 0
    per_user = np.bincount(user) if len(user) else np.zeros(0)
    new_session = np.r_[True, session[1:] != session[:-1]] if len(rows) else np.zeros(0, bool)
    sessions_per_user = np.bincount(user, weights=new_session).astype(np.int64) if len(user) else np.zeros(0)
    per_session = np.bincount(session)[1:] if len(session) else np.zeros(0)
    return {
        "users": users,
        "items": items,
        "rows": len(rows),
        "sessions": sessions,
        "density": len(rows) / users / items if users and items else 0.0,
        "items_per_user": _quantiles(per_user),
        "sessions_per_user": _quantiles(sessions_per_user),
        "items_per_session": _quantiles(per_session),
    }


def format_session_aware(name: str, stats: dict) -> str:
    """A Table-1-like block: one header line, one line of values (quantiles as Q1/Q2/Q3)."""
    def q(key: str) -> str:
        d = stats[key]
        return "/".join(f"{d[f'q{p}']:g}" for p in (25, 50, 75))

    header = ["dataset", "users", "items", "rows", "sessions", "density",
              "items/user Q1/Q2/Q3", "sessions/user Q1/Q2/Q3", "items/session Q1/Q2/Q3"]
    values = [name, f"{stats['users']:,}", f"{stats['items']:,}", f"{stats['rows']:,}",
              f"{stats['sessions']:,}", f"{100 * stats['density']:.4f}%",
              q("items_per_user"), q("sessions_per_user"), q("items_per_session")]
    return _table(header, [values])


def format_session_based(name: str, stats: dict) -> str:
    header = ["dataset", "clicks", "items", "train sessions", "valid sessions", "test sessions",
              "train examples", "valid examples", "test examples", "avg length"]
    values = [name, f"{stats['clicks']:,}", f"{stats['items']:,}",
              *(f"{stats[part]['sessions']:,}" for part in ("train", "valid", "test")),
              *(f"{stats[part]['examples']:,}" for part in ("train", "valid", "test")),
              f"{stats['average_length']:.2f}"]
    return _table(header, [values])


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)
