"""MovieLens-100K from the recbole wheel (offline): the session-aware preparation of SPEC.md
section 2 applied to ``recbole/dataset_example/ml-100k/ml-100k.inter``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from recbole_session.convert import recipe
from recbole_session.convert.readers import Column, read_table


def bundled() -> Path:
    import recbole

    return Path(recbole.__file__).resolve().parent / "dataset_example" / "ml-100k" / "ml-100k.inter"


@recipe("ml-100k", files=("ml-100k.inter",), bundled=bundled)
def load_ml_100k(source: Path, params: dict) -> pd.DataFrame:
    """MovieLens-100K, RecBole atomic file (bundled with recbole)."""
    return read_table(source, [Column(("user_id:token",), "int", "user"),
                               Column(("item_id:token",), "int", "item"),
                               Column(("timestamp:float",), "time", "time")], sep="\t")
