"""DIGINETICA (CIKM Cup 2016) ``train-item-views.csv`` (``;``-separated
``sessionId;userId;itemId;timeframe;eventdate``) with SR-GNN's preparation (see ``docs/converter.md``):
items in a session sorted by ``timeframe``, sessions dated by ``eventdate``, the last 7 days
are the test set. No direct public download address exists (the files are behind the
competition's sign-up), so ``--raw`` is needed."""

from __future__ import annotations

from pathlib import Path

from recbole_session.convert.readers import Column, read_table
from recbole_session.convert.registry import SESSION_BASED, recipe
from recbole_session.convert.session_based import Clicks, sr_gnn_dataset


@recipe("diginetica", kind=SESSION_BASED, files=("train-item-views.csv",))
def load_diginetica(source: Path, params: dict):
    """DIGINETICA ``train-item-views.csv``, SR-GNN protocol (test = last 7 days)."""
    frame = read_table(
        source,
        # the official header says sessionId/itemId; SR-GNN's script reads session_id/item_id
        [Column(("sessionId", "session_id"), "int", "session"), Column(("itemId", "item_id"), "int", "item"),
         Column(("timeframe",), "int", "timeframe"), Column(("eventdate",), "date", "date")],
        sep=";",
    )
    clicks = Clicks(frame["session"], frame["item"], frame["date"], order=frame["timeframe"])
    return sr_gnn_dataset(clicks, params)
