"""MovieLens-100K from the recbole wheel (offline): the session-aware preparation (see
``docs/converter.md``) applied to ``recbole/dataset_example/ml-100k/ml-100k.inter``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from recbole_session.convert.errors import ConvertError
from recbole_session.convert.readers import Column, Events, read_events
from recbole_session.convert.registry import EVENT_OPTIONS, recipe


def bundled() -> Path:
    """The copy in the installed recbole package, found without importing recbole (and torch)."""
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        raise ConvertError("recipe 'ml-100k' reads the copy bundled with recbole, which is not installed "
                           "(pip install recbole, or give the file with --raw)")
    return Path(next(iter(spec.submodule_search_locations))) / "dataset_example" / "ml-100k" / "ml-100k.inter"


@recipe("ml-100k", files=("ml-100k.inter",), bundled=bundled, options=EVENT_OPTIONS)
def load_ml_100k(source: Path, params: dict) -> Events:
    """MovieLens-100K, RecBole atomic file (bundled with recbole)."""
    events, _read = read_events(source, params, Column(("user_id:token",), "int", "user"),
                                Column(("item_id:token",), "int", "item"),
                                Column(("timestamp:float",), "time", "time"), sep="\t")
    return events
