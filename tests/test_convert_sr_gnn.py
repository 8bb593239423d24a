"""The yoochoose recipes equal SR-GNN's ``preprocess.py`` (the preparation SR-IEM used).

SR-GNN's loop is re-implemented here directly and slowly, as written (a dict of sessions filled
line by line, a session dated by its last line, length-1 sessions dropped, items with fewer than
5 occurrences removed, sessions left with fewer than 2 dropped, the last day as test, sessions
sorted by date, unseen test items removed, every prefix an example, the most recent 1/4 of the
training examples kept) and compared, example by example and in order, with the recipe's
train + valid rows and its test rows on a random click file. Dates are read as UTC instead of
SR-GNN's local time (only differences of dates matter).
"""

from __future__ import annotations

import calendar
import random
import time
from collections import Counter
from pathlib import Path

import pytest

from recbole_session.convert import convert

DAY = 86_400


def sr_gnn(path: Path, support=5, test_days=1, fraction=0.25):
    sess_clicks: dict[str, list] = {}
    sess_date: dict[str, float] = {}
    curid, curdate = None, None

    def date(stamp):
        return calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))

    for line in path.read_text().splitlines():
        sessid, stamp, item, _category = line.split(",")
        if curdate and curid != sessid:
            sess_date[curid] = date(curdate)
        curid, curdate = sessid, stamp
        sess_clicks.setdefault(sessid, []).append(item)
    sess_date[curid] = date(curdate)
    for s in list(sess_clicks):
        if len(sess_clicks[s]) == 1:
            del sess_clicks[s], sess_date[s]
    counts = Counter(i for seq in sess_clicks.values() for i in seq)
    for s in list(sess_clicks):
        kept = [i for i in sess_clicks[s] if counts[i] >= support]
        if len(kept) < 2:
            del sess_clicks[s], sess_date[s]
        else:
            sess_clicks[s] = kept
    split = max(sess_date.values()) - DAY * test_days
    train = sorted([(s, d) for s, d in sess_date.items() if d < split], key=lambda x: x[1])
    test = sorted([(s, d) for s, d in sess_date.items() if d > split], key=lambda x: x[1])
    seen = {i for s, _ in train for i in sess_clicks[s]}
    test_seqs = []
    for s, _ in test:
        seq = [i for i in sess_clicks[s] if i in seen]
        if len(seq) >= 2:
            test_seqs.append((s, seq))

    def examples(seqs):
        out = []
        for s, seq in seqs:
            for k in range(1, len(seq)):
                out.append((s, " ".join(seq[:-k]), seq[-k]))
        return out

    tr = examples([(s, sess_clicks[s]) for s, _ in train])
    return tr[-int(len(tr) * fraction):], examples(test_seqs)


def write_clicks(path: Path, seed=3):
    rng = random.Random(seed)
    start = calendar.timegm((2014, 4, 1, 0, 0, 0))
    lines, session = [], 1000
    for _ in range(400):
        session += rng.randint(1, 3)
        t = start + rng.randrange(0, 8 * DAY)
        for _ in range(rng.choice([1, 1, 2, 2, 3, 4, 6, 12])):
            t += rng.randint(0, 300)
            item = int(rng.paretovariate(1.0) * 10) if rng.random() < 0.95 else rng.randint(5000, 6000)
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{rng.randint(0, 999):03d}Z"
            lines.append(f"{session},{stamp},{item},0")
    path.write_text("\n".join(lines) + "\n")


def rows(path: Path) -> list[tuple]:
    return [tuple(line.split("\t")) for line in path.read_text().splitlines()[1:]]


@pytest.mark.parametrize("valid_ratio", [0.1, 0.3])
def test_yoochoose_recipe_equals_sr_gnn(tmp_path, valid_ratio):
    raw = tmp_path / "yoochoose-clicks.dat"
    write_clicks(raw)
    expected_train, expected_test = sr_gnn(raw)
    folder = convert("yoochoose-1-4", raw=raw, out=tmp_path, max_prefix_length=1000, valid_ratio=valid_ratio,
                     verbose=False)
    train, valid, test = (rows(folder / f"yoochoose-1-4.{part}.inter") for part in ("train", "valid", "test"))
    assert len(expected_train) > 100 and len(expected_test) > 20
    assert train + valid == expected_train
    assert test == expected_test
    # the validation rows are whole sessions, the most recent ones of the training part
    assert not {r[0] for r in train} & {r[0] for r in valid}
    assert len({r[0] for r in valid}) >= 1
