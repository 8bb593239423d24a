"""Steam v2 reviews (Kang and McAuley, SASRec): ``steam_reviews.json[.gz]``, one Python-literal
dict per line (single quotes: not JSON), parsed with ``ast.literal_eval``, never ``eval``.
Users are ``username``, items ``product_id``, times the review ``date`` (``YYYY-MM-DD``, day
resolution, read as midnight UTC; the reference used local time, which shifts every time by
the same offset). A username may hold any character, so users are written as the 1-based
rank of their name in sorted order (deterministic)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recbole_session.convert.readers import Events, parse_dates, read_python_literals
from recbole_session.convert.registry import Download, recipe

# no checksum is published for this file: the first download records its own
STEAM = Download("https://datarepo.eng.ucsd.edu/mcauley_group/data/steam/steam_reviews.json.gz")


@recipe("steam", files=("steam_reviews.json",), download=STEAM)
def load_steam(source: Path, params: dict) -> Events:
    """Steam v2 ``steam_reviews.json[.gz]`` (username, product_id, date)."""
    raw = read_python_literals(source, {"username": "user", "product_id": "item", "date": "date"})
    time = parse_dates(source, raw["date"], "date", lines=raw["line"].to_numpy())
    names = np.unique(raw["user"].to_numpy().astype(str))
    user = np.searchsorted(names, raw["user"].to_numpy().astype(str)) + 1
    return Events(user, raw["item"].to_numpy(), time)
