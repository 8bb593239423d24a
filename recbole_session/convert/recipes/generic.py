"""Generic session-aware recipes: any RecBole atomic ``.inter`` file with user, item and
timestamp fields (``atomic``), and any delimited text file with user, item and time columns
(``csv``). Columns are found by header name, by number from 0 (``--user-col 0``), or, for a file
without header (``--no-header``), by the names given with ``--names``. Both name their output
after the input file unless ``--name`` is given; ids are kept as tokens."""

from __future__ import annotations

from pathlib import Path

from recbole_session.convert.readers import Column, Events, names_list, read_events
from recbole_session.convert.registry import TABLE_OPTIONS, recipe

SEPARATORS = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";"}


def _header(params: dict) -> bool:
    header = params.get("header", True)
    return header if isinstance(header, bool) else str(header).lower() in ("1", "true", "yes")


def _read(source: Path, params: dict, keys: tuple[str, str, str], sep: str) -> Events:
    user, item, time = (str(params[key]) for key in keys)
    events, _read_columns = read_events(
        source, params, Column((user,), "str", "user"), Column((item,), "str", "item"),
        Column((time,), "time", "time"), sep=sep, header=_header(params), names=names_list(params.get("names")))
    return events


@recipe("atomic", generic=True, options=TABLE_OPTIONS)
def load_atomic(source: Path, params: dict) -> Events:
    """A RecBole atomic ``.inter`` file (``user_id:token item_id:token timestamp:float``)."""
    return _read(source, params, ("user_field", "item_field", "time_field"), "\t")


@recipe("csv", generic=True, options=TABLE_OPTIONS)
def load_csv(source: Path, params: dict) -> Events:
    """A delimited file with user, item and time columns (``--user-col`` ...)."""
    sep = str(params["sep"])
    return _read(source, params, ("user_col", "item_col", "time_col"), SEPARATORS.get(sep, sep))
