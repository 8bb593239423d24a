"""Generic session-aware recipes: any RecBole atomic ``.inter`` file with user, item and
timestamp fields (``atomic``), and any CSV/TSV with named columns (``csv``). Both name their
output after the input file unless ``--name`` is given; ids are kept as tokens."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from recbole_session.convert import recipe
from recbole_session.convert.readers import Column, read_table

SEPARATORS = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";"}


@recipe("atomic", generic=True)
def load_atomic(source: Path, params: dict) -> pd.DataFrame:
    """A RecBole atomic ``.inter`` file (``user_id:token item_id:token timestamp:float``)."""
    return read_table(source, [Column((params["user_field"],), "str", "user"),
                               Column((params["item_field"],), "str", "item"),
                               Column((params["time_field"],), "time", "time")], sep="\t")


@recipe("csv", generic=True)
def load_csv(source: Path, params: dict) -> pd.DataFrame:
    """A delimited file with named user, item and time columns (``--user-col`` ...)."""
    sep = str(params["sep"])
    sep = SEPARATORS.get(sep, sep)
    return read_table(source, [Column((params["user_col"],), "str", "user"),
                               Column((params["item_col"],), "str", "item"),
                               Column((params["time_col"],), "time", "time")], sep=sep)
