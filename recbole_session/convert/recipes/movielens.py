"""MovieLens-1M (``ratings.dat``) and MovieLens-20M (``ratings.csv``), as the reference
preprocessing reads them: every ML-1M rating is kept (``rating >= 1``), ML-20M keeps ratings
of 4 and more (``min_rating`` in ``properties/dataset/<name>.yaml``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.compute as pc

from recbole_session.convert import Download, recipe
from recbole_session.convert.readers import Column, read_table

# GroupLens publishes an MD5 sidecar next to each archive (ml-1m.zip.md5, ml-20m.zip.md5)
ML_1M = Download("https://files.grouplens.org/datasets/movielens/ml-1m.zip",
                 checksum="md5:c4d9eecfca2ab87c1945afe126590906", member="ml-1m/ratings.dat")
ML_20M = Download("https://files.grouplens.org/datasets/movielens/ml-20m.zip",
                  checksum="md5:cd245b17a1ae2cc31bb14903e1204af3", member="ml-20m/ratings.csv")


def _ratings(params: dict):
    """Rows to keep: ratings of at least ``min_rating`` (all rows without one), in arrow."""
    minimum = params.get("min_rating")
    if minimum is None:
        return None
    return lambda columns: pc.greater_equal(columns["rating"], float(minimum))


@recipe("ml-1m", files=("ratings.dat",), download=ML_1M)
def load_ml_1m(source: Path, params: dict) -> pd.DataFrame:
    """MovieLens-1M ``ratings.dat`` (``UserID::MovieID::Rating::Timestamp``, no header)."""
    frame = read_table(
        source,
        [Column(("UserID",), "int", "user"), Column(("MovieID",), "int", "item"),
         Column(("Rating",), "num", "rating"), Column(("Timestamp",), "time", "time")],
        sep="::", header=False, names=["UserID", "MovieID", "Rating", "Timestamp"], keep=_ratings(params),
    )
    return frame  # session_aware reads user, item and time


@recipe("ml-20m", files=("ratings.csv",), download=ML_20M)
def load_ml_20m(source: Path, params: dict) -> pd.DataFrame:
    """MovieLens-20M ``ratings.csv`` (``userId,movieId,rating,timestamp`` with header)."""
    frame = read_table(
        source,
        [Column(("userId",), "int", "user"), Column(("movieId",), "int", "item"),
         Column(("rating",), "num", "rating"), Column(("timestamp",), "time", "time")],
        sep=",", keep=_ratings(params),
    )
    return frame  # session_aware reads user, item and time
