"""MovieLens-1M (``ratings.dat``) and MovieLens-20M (``ratings.csv``), as the reference
preprocessing reads them: every ML-1M rating is kept (``rating >= 1``), ML-20M keeps ratings
of 4 and more (``min_rating`` in ``properties/dataset/<name>.yaml``)."""

from __future__ import annotations

from pathlib import Path

from recbole_session.convert.readers import Column, Events, read_events
from recbole_session.convert.registry import EVENT_OPTIONS, Download, recipe

# GroupLens publishes an MD5 sidecar next to each archive (ml-1m.zip.md5, ml-20m.zip.md5)
ML_1M = Download("https://files.grouplens.org/datasets/movielens/ml-1m.zip",
                 checksum="md5:c4d9eecfca2ab87c1945afe126590906")
ML_20M = Download("https://files.grouplens.org/datasets/movielens/ml-20m.zip",
                  checksum="md5:cd245b17a1ae2cc31bb14903e1204af3")


def _ratings(source: Path, params: dict, names: tuple[str, str, str, str], sep: str, header: bool) -> Events:
    """The rows, with ``rating >= min_rating`` as a selection step (every row without one)."""
    user, item, rating, time = names
    events, read = read_events(source, params, Column((user,), "int", "user"), Column((item,), "int", "item"),
                               Column((time,), "time", "time"), sep=sep, header=header,
                               names=None if header else list(names), columns=[Column((rating,), "num", "rating")])
    minimum = params.get("min_rating")
    if minimum is not None:
        # before --keep: the recipe's own selection comes first
        events.selections.insert(0, ("min_rating", f"{rating} >= {float(minimum):g}", read["rating"] >= float(minimum)))
    return events


@recipe("ml-1m", files=("ratings.dat",), download=ML_1M, options=EVENT_OPTIONS)
def load_ml_1m(source: Path, params: dict) -> Events:
    """MovieLens-1M ``ratings.dat`` (``UserID::MovieID::Rating::Timestamp``, no header)."""
    return _ratings(source, params, ("UserID", "MovieID", "Rating", "Timestamp"), "::", header=False)


@recipe("ml-20m", files=("ratings.csv",), download=ML_20M, options=EVENT_OPTIONS)
def load_ml_20m(source: Path, params: dict) -> Events:
    """MovieLens-20M ``ratings.csv`` (``userId,movieId,rating,timestamp`` with header)."""
    return _ratings(source, params, ("userId", "movieId", "rating", "timestamp"), ",", header=True)
