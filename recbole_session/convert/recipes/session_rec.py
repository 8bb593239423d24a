"""Click logs already prepared by the session-rec framework: ``<prefix>_train_full.txt`` and
``<prefix>_test.txt``, tab-separated ``SessionId ItemId Time`` (unix seconds, or ``--time-unit``)
with header. The two files are the training and test sessions; the converter orders each
session by time, removes short sessions and test items unseen in training, carves the
validation split from the end of the training time and writes the session-based benchmark
files. ``session-rec`` names its output after the file prefix (or ``--name``);
``yoochoose-sample`` is the same recipe under a fixed name, with its properties in
``properties/dataset/yoochoose-sample.yaml`` (the session-rec YOOCHOOSE sample)."""

from __future__ import annotations

from pathlib import Path

from recbole_session.convert.errors import input_error
from recbole_session.convert.readers import Column, check_file, read_table, time_unit
from recbole_session.convert.registry import SESSION_BASED, recipe
from recbole_session.convert.session_based import Clicks, prepared_dataset

TRAIN_SUFFIX = "_train_full.txt"
TEST_SUFFIX = "_test.txt"


def _clicks(path: Path, unit: int) -> Clicks:
    frame = read_table(path, [Column(("SessionId",), "str", "session"), Column(("ItemId",), "int", "item"),
                              Column(("Time",), "time", "time", unit)], sep="\t")
    time = frame["time"]
    return Clicks(frame["session"].to_numpy(zero_copy_only=False), frame["item"], time / unit if unit > 1 else time,
                  order=time)


def load_session_rec(source: Path, params: dict):
    if not source.name.endswith(TRAIN_SUFFIX):
        raise input_error(source, f"expected a session-rec training file named <prefix>{TRAIN_SUFFIX}")
    test = source.with_name(source.name[: -len(TRAIN_SUFFIX)] + TEST_SUFFIX)
    check_file(test)
    unit = time_unit(params)
    return prepared_dataset(_clicks(source, unit), _clicks(test, unit), params)


recipe("session-rec", kind=SESSION_BASED, files=(f"*{TRAIN_SUFFIX}",), generic=True, options=("time_unit",),
       description="session-rec prepared <prefix>_train_full.txt / _test.txt")(load_session_rec)
recipe("yoochoose-sample", kind=SESSION_BASED, files=(f"*{TRAIN_SUFFIX}",), options=("time_unit",),
       description="the session-rec YOOCHOOSE sample (<prefix>_train_full.txt / _test.txt)")(load_session_rec)
