"""The options for event logs as they are distributed: a headerless Taobao-shaped file
(``user,item,category,behavior,timestamp``) read by name or column number, ``--keep`` before every
filter, the event type kept as a token field that RecBole loads, the per-filter funnel checked by
hand, density over distinct pairs, ``--time-unit``, and ``--valid-ratio 0`` trained through
RecBole."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from recbole.utils import FeatureType

from recbole_session.convert import convert
from recbole_session.convert.__main__ import main
from recbole_session.quick_start import make_config, run_recbole_session
from recbole_session.utils import create_dataset

FIXTURES = Path(__file__).parent / "fixtures" / "convert"
TAOBAO = FIXTURES / "UserBehavior.csv"  # 10 rows, no header: user,item,category,behavior,timestamp
NAMES = "user,item,category,behavior,timestamp"
# the thresholds of the hand-checked funnel below
SMALL = dict(session_gap=3600, min_item_inter=2, min_user_inter=2, max_user_inter=3, min_sessions=1,
             min_session_length=2, verbose=False)
HEADER = "user_id:token\titem_id:token\ttimestamp:float\tsession_id:token\tdwell:float"
# user 1 keeps its second session (its first, one item after the 3-row cut, goes), user 2's two
# one-item sessions go, user 3 keeps its one session; times relative to the first kept (2000)
EXPECTED = [HEADER, "1\t10\t8000\t1\t100", "1\t11\t8100\t1\t0", "3\t10\t0\t2\t50", "3\t11\t50\t2\t0"]


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_headerless_file_by_names_and_by_column_numbers(tmp_path):
    by_name = convert("csv", raw=TAOBAO, out=tmp_path / "a", header=False, names=NAMES, user_col="user",
                      item_col="item", time_col="timestamp", keep=["behavior=pv,buy"],
                      short_sessions="drop_session", **SMALL)
    assert by_name.name == "UserBehavior"
    assert lines(by_name / "UserBehavior.inter") == EXPECTED
    by_number = convert("csv", raw=TAOBAO, out=tmp_path / "b", header=False, user_col="0", item_col="1",
                        time_col="4", keep=["3=pv,buy"], short_sessions="drop_session", **SMALL)
    assert lines(by_number / "UserBehavior.inter") == EXPECTED
    # the atomic recipe reads a headerless tab-separated file the same way
    tsv = tmp_path / "UserBehavior.inter"
    tsv.write_text(TAOBAO.read_text().replace(",", "\t"))
    atomic = convert("atomic", raw=tsv, out=tmp_path / "c", header=False, user_field="0", item_field="1",
                     time_field="4", keep=["3=pv,buy"], short_sessions="drop_session", **SMALL)
    assert lines(atomic / "UserBehavior.inter") == EXPECTED


def test_command_line_flags(tmp_path, capsys):
    assert main(["csv", "--raw", str(TAOBAO), "--out", str(tmp_path), "--no-header", "--names", NAMES,
                 "--user-col", "user", "--item-col", "item", "--time-col", "timestamp", "--keep", "behavior=pv,buy",
                 "--session-gap", "3600", "--min-item-inter", "2", "--min-user-inter", "2", "--max-user-inter", "3",
                 "--min-sessions", "1", "--short-sessions", "drop_session", "--type-col", "behavior", "--quiet"]) == 0
    assert capsys.readouterr() == ("", "")
    # user 1: a view at 10000, a purchase at 10100
    assert lines(tmp_path / "UserBehavior" / "UserBehavior.inter") == [
        f"{row}\t{kind}" for row, kind in zip(EXPECTED, ["event_type:token", "pv", "buy", "pv", "pv"])]


def test_keep_runs_before_every_filter(tmp_path):
    """A cart row of item 13 is added: counted, it lifts item 13 to the 2 rows the item filter
    asks for; with --keep pv,buy applied first, item 13 has one row and goes."""
    raw = tmp_path / "UserBehavior.csv"
    raw.write_text(TAOBAO.read_text() + "3,13,101,cart,2100\n")
    loose = dict(header=False, names=NAMES, user_col="user", item_col="item", time_col="timestamp",
                 min_item_inter=2, min_user_inter=1, max_user_inter=0, min_sessions=1, min_session_length=1,
                 verbose=False)

    def items(folder: Path) -> set[str]:
        return {row.split("\t")[1] for row in lines(folder / "UserBehavior.inter")[1:]}

    kept = convert("csv", raw=raw, out=tmp_path / "k", keep=["behavior=pv,buy"], **loose)
    assert items(kept) == {"10", "11"}
    funnel = json.loads((kept / "UserBehavior.stats.json").read_text())["funnel"]
    assert [(s["step"], s["rule"], s["rows"]) for s in funnel[:3]] == [
        ("read", "every row", 11), ("keep", "behavior in pv,buy", 9), ("min_item_inter", "items with >= 2 rows", 8)]
    assert items(convert("csv", raw=raw, out=tmp_path / "e", **loose)) == {"10", "11", "13"}


def test_funnel_by_hand_on_ten_rows(tmp_path, capsys):
    """Every count worked out by hand (the file's comments in EXPECTED say why)."""
    folder = convert("csv", raw=TAOBAO, out=tmp_path, header=False, names=NAMES, user_col="user",
                     item_col="item", time_col="timestamp", keep=["behavior=pv,buy"], **{**SMALL, "verbose": True})
    steps = json.loads((folder / "UserBehavior.stats.json").read_text())["funnel"]
    got = [(s["step"], s["rows"], s["users"], s["items"], s["sessions"]) for s in steps]
    assert got == [
        ("read", 10, 3, 4, None),  # items 10, 11, 12, 13
        ("keep", 9, 3, 3, None),  # the cart row (item 12) goes
        ("min_item_inter", 8, 3, 2, None),  # item 13 has one row
        ("min_user_inter", 8, 3, 2, None),  # users have 4, 2 and 2 rows
        ("max_user_inter", 7, 3, 2, None),  # user 1's oldest row goes
        ("split", 7, 3, 2, 5),  # user 1: 1100 | 10000 10100; user 2: 1000 | 50100; user 3: one
        ("short_sessions", 2, 1, 2, 1),  # users 1 and 2 have a one-item session: both go
        ("min_sessions", 2, 1, 2, 1),  # >= 1 session: nothing more goes
    ]
    out, err = capsys.readouterr()
    # two of three users gone: the funnel and the flag that keeps them, without --verbose
    assert "short_sessions" in err and "warning: the filters kept 1 of 3 users and 2 of 9 rows" in err
    assert "--short-sessions drop_session" in err
    assert "min_item_inter" not in out  # the funnel table went to stderr with the warning


def test_verbose_prints_the_funnel_and_no_warning_when_little_is_dropped(tmp_path, capsys):
    assert main(["csv", "--raw", str(FIXTURES / "events.csv"), "--out", str(tmp_path), "--sep", ";",
                 "--user-col", "who", "--item-col", "what", "--time-col", "when", "--min-item-inter", "1",
                 "--min-user-inter", "1", "--min-sessions", "1", "--verbose"]) == 0
    out, err = capsys.readouterr()
    assert "min_item_inter" in out and "every row" in out and "warning" not in err


def test_density_counts_distinct_pairs_and_reports_repeats(tmp_path):
    raw = tmp_path / "repeats.csv"
    raw.write_text("user_id,item_id,timestamp\nu,a,0\nu,b,10\nu,a,20\nu,b,30\nu,a,40\n")
    folder = convert("csv", raw=raw, out=tmp_path, min_item_inter=1, min_user_inter=1, min_sessions=1, verbose=False)
    stats = json.loads((folder / "repeats.stats.json").read_text())
    # 5 rows over 2 distinct pairs of 1 user x 2 items: density 100% (not 250%), 3 of 5 rows repeat
    assert (stats["rows"], stats["pairs"], stats["density"], stats["repeat_share"]) == (5, 2, 1.0, 0.6)


def test_time_unit_ms_gives_the_same_dataset(tmp_path):
    ms = tmp_path / "UserBehavior.csv"
    ms.write_text("".join(",".join([*row.split(",")[:4], str(int(row.split(",")[4]) * 1000)]) + "\n"
                          for row in TAOBAO.read_text().splitlines()))
    common = dict(header=False, names=NAMES, user_col="user", item_col="item", time_col="timestamp",
                  keep=["behavior=pv,buy"], short_sessions="drop_session", **SMALL)
    folder = convert("csv", raw=ms, out=tmp_path / "ms", time_unit="ms", **common)
    assert lines(folder / "UserBehavior.inter") == EXPECTED
    assert json.loads((folder / "UserBehavior.stats.json").read_text())["time_origin"] == 2000


def test_event_type_and_weight_fields_load_in_recbole(tmp_path, workdir):
    raw = tmp_path / "shop.csv"
    raw.write_text("user,item,kind,score,t\n" + "".join(
        f"u{u},i{(u + k) % 4},{'buy' if k % 3 == 0 else 'pv'},{k % 5}.5,{1000 * k + (90000 if k > 3 else 0)}\n"
        for u in range(4) for k in range(8)))
    folder = convert("csv", raw=raw, out=tmp_path / "out", user_col="user", item_col="item", time_col="t",
                     type_col="kind", weight="score", min_item_inter=1, min_user_inter=1, verbose=False)
    assert lines(folder / "shop.inter")[0] == HEADER + "\tevent_type:token\tweight:float"
    config = make_config("GRU4Rec", "shop", [str(folder / "shop.yaml")],
                         {"data_path": str(tmp_path / "out"), "state": "WARNING", "use_gpu": False,
                          "topk": [2], "valid_metric": "ndcg@2"})  # 4 items: RecBole's topk 20 would not fit
    dataset = create_dataset(config)
    assert dataset.field2type["event_type"] == FeatureType.TOKEN
    assert dataset.field2type["weight"] == FeatureType.FLOAT
    kinds = {dataset.id2token("event_type", i) for i in dataset.inter_feat["event_type"].tolist()}
    assert kinds == {"buy", "pv"} and dataset.inter_num == 32


def session_rec_files(folder: Path, seed: int = 0) -> Path:
    """A session-rec pair of files (train/test) with some structure: 300 sessions over 30 items."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = {"train": [], "test": []}
    t = 1_400_000_000
    for session in range(300):
        part = "test" if session >= 260 else "train"
        item = rng.randrange(30)
        for _ in range(rng.randrange(2, 6)):
            rows[part].append(f"{session}\t{item}\t{t}\n")
            item = (item + rng.choice([1, 1, 2])) % 30
            t += 30
        t += 3600
    for part, name in (("train", "clicks_train_full.txt"), ("test", "clicks_test.txt")):
        (folder / name).write_text("SessionId\tItemId\tTime\n" + "".join(rows[part]))
    return folder / "clicks_train_full.txt"


def test_valid_ratio_zero_selects_on_test_and_trains(tmp_path, workdir, capsys):
    raw = session_rec_files(tmp_path / "raw")
    folder = convert("session-rec", raw=raw, out=tmp_path / "out", valid_ratio=0)
    err = capsys.readouterr().err
    assert "warning: --valid-ratio 0" in err and "uses the test set" in err
    assert (folder / "clicks.valid.inter").read_text() == (folder / "clicks.test.inter").read_text()
    stats = json.loads((folder / "clicks.stats.json").read_text())
    assert stats["valid"]["same_as"] == "test"
    result = run_recbole_session("GRU4Rec", "clicks", [str(folder / "clicks.yaml")], {
        "data_path": str(tmp_path / "out"), "epochs": 1, "loss_type": "CE", "train_batch_size": 64,
        "eval_batch_size": 256, "show_progress": False, "state": "WARNING", "use_gpu": False,
        "metrics": ["Recall", "MRR"], "topk": [10], "valid_metric": "MRR@10", "eval_protocols": ["full"],
        "checkpoint_dir": str(workdir / "saved"), "embedding_size": 16, "hidden_size": 16,
    })
    # model selection saw the test examples: the best valid result is the test result
    assert result["best_valid_result"] == pytest.approx(result["test_result"])
