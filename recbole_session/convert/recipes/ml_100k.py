"""MovieLens-100K from the recbole wheel (offline): the session-aware preparation of
SPEC.md section 2 applied to ``recbole/dataset_example/ml-100k/ml-100k.inter``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import recbole

from recbole_session.convert import recipe
from recbole_session.convert.atomic import write_inter, write_json
from recbole_session.convert.sessions import SessionFilters, session_aware

BUNDLED = Path(recbole.__file__).resolve().parent / "dataset_example" / "ml-100k" / "ml-100k.inter"


@recipe("ml-100k")
def convert_ml_100k(raw: Path | None, out_dir: Path, params: dict) -> dict:
    source = raw if raw is not None else BUNDLED
    if source.is_dir():
        source = source / "ml-100k.inter"
    df = pd.read_csv(
        source,
        sep="\t",
        usecols=["user_id:token", "item_id:token", "timestamp:float"],
        dtype={"user_id:token": str, "item_id:token": str, "timestamp:float": "int64"},
    ).rename(columns={"user_id:token": "user", "item_id:token": "item", "timestamp:float": "time"})
    rows = session_aware(df, SessionFilters.from_config(params))
    origin = int(rows["time"].min())
    # relative seconds: float32 (RecBole's float fields) keeps them far better than unix time
    rows["time"] = rows["time"] - origin
    stats = {
        "dataset": "ml-100k",
        "source": str(source),
        "time_origin": origin,
        "users": int(rows["user"].nunique()),
        "items": int(rows["item"].nunique()),
        "rows": len(rows),
        "sessions": int(rows["session"].nunique()),
        "params": params,
    }
    write_inter(rows, out_dir / "ml-100k.inter")
    write_json(stats, out_dir / "ml-100k.stats.json")
    return stats
