"""YOOCHOOSE (RecSys Challenge 2015) ``yoochoose-clicks.dat`` (``session,timestamp,item,category``,
comma-separated, no header) with SR-GNN's preparation (see ``docs/converter.md``): items in file order,
sessions dated by their last click (to the second), the last day is the test set, and the
training set is the most recent 1/64 (``yoochoose-1-64``) or 1/4 (``yoochoose-1-4``) of the
training examples."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recbole_session.convert.readers import Column, read_table
from recbole_session.convert.registry import SESSION_BASED, Download, recipe
from recbole_session.convert.session_based import Clicks, sr_gnn_dataset

# the challenge's archive is a .7z, which Python cannot extract: the converter downloads it and
# asks for 7-Zip; no checksum is published (the first download records its own)
YOOCHOOSE = Download("https://s3-eu-west-1.amazonaws.com/yc-rdata/yoochoose-data.7z")
NAMES = ["session_id", "timestamp", "item_id", "category"]
MS_PER_S = 1000


def load_yoochoose(source: Path, params: dict):
    frame = read_table(
        source,
        [Column(("session_id",), "int", "session"), Column(("timestamp",), "iso", "time"),
         Column(("item_id",), "int", "item")],
        sep=",", header="auto", names=NAMES,
    )
    # SR-GNN dates a session by its last click's timestamp cut to whole seconds
    date = np.floor_divide(frame["time"], MS_PER_S)
    clicks = Clicks(frame["session"], frame["item"], date)
    return sr_gnn_dataset(clicks, params)


for _name, _share in (("yoochoose-1-64", "1/64"), ("yoochoose-1-4", "1/4")):
    recipe(_name, kind=SESSION_BASED, files=("yoochoose-clicks.dat",), download=YOOCHOOSE,
           description=f"YOOCHOOSE clicks, SR-GNN protocol, most recent {_share} of training")(load_yoochoose)
