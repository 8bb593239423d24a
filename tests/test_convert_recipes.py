"""Every recipe on a tiny hand-made raw file in its own format, with exact outputs; determinism,
up-to-date skipping, presets and names; the outputs loaded by RecBole itself."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from recbole.data import data_preparation

from recbole_session.convert import ConvertError, convert, recipe_names
from recbole_session.convert.__main__ import main
from recbole_session.convert.registry import load_recipes, recipe_modules
from recbole_session.quick_start import UsageError, ensure_atomic_files, make_config
from recbole_session.utils import create_dataset

FIXTURES = Path(__file__).parent / "fixtures" / "convert"
REPO = Path(__file__).resolve().parents[1]
LOOSE = dict(min_item_inter=1, min_user_inter=1, verbose=False)  # tiny files: no support filters
SA_HEADER = "user_id:token\titem_id:token\ttimestamp:float\tsession_id:token\tdwell:float"
SB_HEADER = "session_id:token\titem_id_list:token_seq\titem_id:token"


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def table(*rows: str, header: str = SA_HEADER) -> list[str]:
    return [header, *rows]


def test_every_recipe_is_registered():
    assert set(recipe_names()) >= {"ml-100k", "ml-1m", "ml-20m", "steam", "diginetica", "yoochoose-1-64",
                                   "yoochoose-1-4", "session-rec", "yoochoose-sample", "atomic", "csv"}


def test_ml_1m(tmp_path, capsys):
    folder = convert("ml-1m", raw=FIXTURES / "ratings.dat", out=tmp_path, min_item_inter=1, min_user_inter=1)
    # user 2 has one session; times relative to the first kept time (50)
    assert lines(folder / "ml-1m.inter") == table(
        "1\t10\t950\t1\t1000", "1\t11\t1950\t1\t0", "1\t12\t99950\t2\t500", "1\t13\t100450\t2\t0",
        "3\t12\t0\t3\t10", "3\t13\t10\t3\t0", "3\t10\t199950\t4\t100", "3\t11\t200050\t4\t0")
    stats = json.loads((folder / "ml-1m.stats.json").read_text())
    assert (stats["users"], stats["items"], stats["rows"], stats["sessions"], stats["time_origin"]) == (2, 4, 8, 4, 50)
    assert stats["items_per_session"] == {"q25": 2.0, "q50": 2.0, "q75": 2.0, "q95": 2.0}
    assert stats["density"] == 1.0
    printed = capsys.readouterr().out
    assert "items/user Q1/Q2/Q3" in printed and "sessions/user Q1/Q2/Q3" in printed and "100.0000%" in printed


def test_ml_20m_keeps_ratings_of_4_and_more(tmp_path):
    folder = convert("ml-20m", raw=FIXTURES, out=tmp_path, **LOOSE)
    # user 8's 4+ ratings span exactly one day between rows: one session, so user 8 goes
    assert lines(folder / "ml-20m.inter") == table(
        "7\t10\t0\t1\t1000", "7\t11\t1000\t1\t0", "7\t13\t89000\t2\t1", "7\t10\t89001\t2\t0")
    again = convert("ml-20m", raw=FIXTURES, out=tmp_path / "b", min_rating=0, **LOOSE)
    assert "7\t12\t2000\t1\t0" in lines(again / "ml-20m.inter")  # every rating kept: 3.5 too


STEAM = table("1\t20\t0\t1\t86400", "1\t21\t86400\t1\t0", "1\t22\t345600\t2\t0", "1\t20\t345600\t2\t0",
              "2\t20\t0\t3\t86400", "2\t21\t86400\t3\t0", "2\t22\t691200\t4\t0", "2\t20\t691200\t4\t0")


def test_steam_plain_and_gzip(tmp_path):
    folder = convert("steam", raw=FIXTURES / "steam_reviews.json", out=tmp_path / "a", **LOOSE)
    assert lines(folder / "steam.inter") == STEAM  # 'Ann Lee' < 'bob' (sorted names); carol has 1 row
    gz = tmp_path / "steam_reviews.json.gz"
    gz.write_bytes(gzip.compress((FIXTURES / "steam_reviews.json").read_bytes()))
    folder = convert("steam", raw=tmp_path, out=tmp_path / "b", **LOOSE)  # the folder: finds the .gz
    assert lines(folder / "steam.inter") == STEAM


def test_diginetica_sr_gnn_protocol(tmp_path):
    folder = convert("diginetica", raw=FIXTURES / "diginetica", out=tmp_path, min_item_support=2,
                     valid_ratio=0.5, verbose=False)
    # session 3 (one click) goes; item 99 (once) goes; session 7 is dated exactly on the split
    # date (max - 7 days) and belongs to neither part; test item 14 is unseen in training
    assert lines(folder / "diginetica.train.inter") == table("1\t11 12\t10", "1\t11\t12", header=SB_HEADER)
    assert lines(folder / "diginetica.valid.inter") == table("2\t10\t11", header=SB_HEADER)
    assert lines(folder / "diginetica.test.inter") == table("4\t10\t12", "5\t11\t12", header=SB_HEADER)
    stats = json.loads((folder / "diginetica.stats.json").read_text())
    assert stats["test"] == {"sessions": 2, "examples": 2} and stats["items"] == 3


def test_yoochoose_fraction_cuts_the_training_examples(tmp_path):
    # 5 training examples, most recent first within a session: s1 (101|100), s2 (101|100 102),
    # (102|100), s3 (102|101), s4 (100|102); 0.6 keeps the last 3, cutting into session 2
    folder = convert("yoochoose-1-4", raw=FIXTURES / "yoochoose-clicks.dat", out=tmp_path,
                     min_item_support=2, train_fraction=0.6, verbose=False)
    assert lines(folder / "yoochoose-1-4.train.inter") == table("2\t100\t102", "3\t101\t102", header=SB_HEADER)
    assert lines(folder / "yoochoose-1-4.valid.inter") == table("4\t102\t100", header=SB_HEADER)
    assert lines(folder / "yoochoose-1-4.test.inter") == table("5\t100\t101", header=SB_HEADER)
    # 1/64 of 5 examples is none: a clear error, nothing written
    with pytest.raises(ConvertError, match="keeps no training example"):
        convert("yoochoose-1-64", raw=FIXTURES / "yoochoose-clicks.dat", out=tmp_path / "x",
                min_item_support=2, verbose=False)
    assert not (tmp_path / "x").exists()


def test_yoochoose_with_an_added_header_and_max_prefix(tmp_path):
    raw = tmp_path / "yoochoose-clicks.dat"
    raw.write_text("session_id,timestamp,item_id,category\n" + (FIXTURES / "yoochoose-clicks.dat").read_text())
    folder = convert("yoochoose-1-4", raw=raw, out=tmp_path / "o", min_item_support=2, train_fraction=0.8,
                     max_prefix_length=1, verbose=False)
    assert lines(folder / "yoochoose-1-4.train.inter") == table(
        "2\t102\t101", "2\t100\t102", "3\t101\t102", header=SB_HEADER)


SESSION_REC = {
    "train": table("1\t100\t101", "2\t100 101\t102", "2\t100\t101", header=SB_HEADER),
    "valid": table("4\t100\t102", header=SB_HEADER),
    "test": table("9\t100\t101", header=SB_HEADER),
}


def test_session_rec_prepared_files(tmp_path):
    folder = convert("session-rec", raw=FIXTURES / "session-rec", out=tmp_path, verbose=False)
    assert folder.name == "tiny"  # named after the file prefix
    for part, expected in SESSION_REC.items():
        assert lines(folder / f"tiny.{part}.inter") == expected
    folder = convert("yoochoose-sample", raw=FIXTURES / "session-rec" / "tiny_train_full.txt", out=tmp_path,
                     verbose=False)
    assert lines(folder / "yoochoose-sample.valid.inter") == SESSION_REC["valid"]
    assert not (folder / "yoochoose-sample.yaml").exists()  # its properties file is in the package


def test_generic_atomic_and_csv(tmp_path):
    # u2 has one session and goes; times relative to u1's first
    expected = table("u1\ta\t0\t1\t100", "u1\tb\t100\t1\t0", "u1\tc\t89900\t2\t100", "u1\ta\t90000\t2\t0")
    folder = convert("atomic", raw=FIXTURES / "events.inter", out=tmp_path, **LOOSE)
    assert folder.name == "events" and lines(folder / "events.inter") == expected
    folder = convert("csv", raw=FIXTURES / "events.csv", out=tmp_path, name="ev", sep=";", user_col="who",
                     item_col="what", time_col="when", **LOOSE)
    assert lines(folder / "ev.inter") == expected
    assert "session_gap" in (folder / "ev.yaml").read_text()


def test_two_runs_give_identical_bytes(tmp_path):
    for out in ("a", "b"):
        convert("ml-1m", raw=FIXTURES / "ratings.dat", out=tmp_path / out, **LOOSE)
        convert("diginetica", raw=FIXTURES / "diginetica", out=tmp_path / out, min_item_support=2,
                valid_ratio=0.5, verbose=False)
    for file in sorted((tmp_path / "a").rglob("*.inter")):
        assert file.read_bytes() == (tmp_path / "b" / file.relative_to(tmp_path / "a")).read_bytes()


def test_rerun_does_nothing_unless_settings_change_or_force(tmp_path, capsys):
    raw = tmp_path / "ratings.dat"
    shutil.copy(FIXTURES / "ratings.dat", raw)
    folder = convert("ml-1m", raw=raw, out=tmp_path, **LOOSE)
    inter = folder / "ml-1m.inter"
    first = inter.stat().st_mtime_ns
    assert main(["ml-1m", "--raw", str(raw), "--out", str(tmp_path), "--min-item-inter", "1",
                 "--min-user-inter", "1"]) == 0
    assert "up to date" in capsys.readouterr().out and inter.stat().st_mtime_ns == first
    # converted from --raw before: a run without --raw and the same settings is up to date too
    assert convert("ml-1m", out=tmp_path, **LOOSE) == folder and inter.stat().st_mtime_ns == first
    convert("ml-1m", raw=raw, out=tmp_path, force=True, **LOOSE)
    assert inter.stat().st_mtime_ns != first
    second = inter.stat().st_mtime_ns
    convert("ml-1m", raw=raw, out=tmp_path, session_gap=90_000, **LOOSE)  # other settings: converted again
    assert inter.stat().st_mtime_ns != second
    assert json.loads((folder / "ml-1m.stats.json").read_text())["settings"]["params"]["session_gap"] == 90_000


def test_asars_preset_and_name(tmp_path):
    folder = convert("ml-1m", raw=FIXTURES / "ratings.dat", out=tmp_path, preset="asars", min_item_inter=1,
                     min_sessions=2, verbose=False)
    assert folder.name == "ml-1m-asars"
    stats = json.loads((folder / "ml-1m-asars.stats.json").read_text())
    params = stats["settings"]["params"]
    assert (params["session_gap"], params["short_sessions"], params["split_first"]) == (3600, "drop_session", True)
    # 1-hour sessions cut the same rows here: users 1 and 3, two sessions each
    assert stats["users"] == 2 and stats["sessions"] == 4
    config = (folder / "ml-1m-asars.yaml").read_text()
    assert "session_gap: 3600" in config and "load_col" in config
    named = convert("ml-1m", raw=FIXTURES / "ratings.dat", out=tmp_path, name="mine", **LOOSE)
    assert sorted(p.name for p in named.iterdir()) == ["mine.inter", "mine.manifest.json", "mine.stats.json",
                                                       "mine.yaml"]


def test_ml_100k_offline_into_recbole(atomic_root, workdir):
    stats = json.loads((atomic_root / "ml-100k" / "ml-100k.stats.json").read_text())
    assert (stats["users"], stats["items"], stats["rows"]) == (173, 1272, 19524)
    config = make_config("GRU4Rec", "ml-100k", None, {"data_path": str(atomic_root), "state": "WARNING"})
    dataset = create_dataset(config)
    assert dataset.inter_num == 19524 and dataset.user_num == 173 + 1 and dataset.item_num == 1272 + 1
    assert {"session_id", "dwell", "timestamp"} <= set(dataset.inter_feat.columns)
    train, _valid, _test = data_preparation(config, dataset)
    batch = next(iter(train))
    assert batch["session_id_list"].shape == batch["item_id_list"].shape
    assert batch["timestamp_list"].max() > 0


def test_session_based_files_load_in_recbole(tmp_path, workdir):
    convert("yoochoose-sample", raw=FIXTURES / "session-rec", out=tmp_path, verbose=False)
    config = make_config("GRU4Rec", "yoochoose-sample", None, {
        "data_path": str(tmp_path), "state": "WARNING", "loss_type": "CE", "train_batch_size": 8,
        "topk": [1], "valid_metric": "ndcg@1"})  # 2 items: RecBole's topk 20 would not fit
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    assert [len(d.dataset) for d in (train, valid, test)] == [3, 1, 1]  # the rows are the examples
    batch = next(iter(train))
    assert batch["item_id_list"].shape == (3, 2) and sorted(batch["item_length"].tolist()) == [1, 1, 2]


def test_quick_start_names_the_convert_command_when_raw_is_missing(tmp_path, workdir):
    config = make_config("GRU4Rec", "diginetica", None, {"data_path": str(tmp_path)})
    with pytest.raises(UsageError) as err:
        ensure_atomic_files(config)
    message = str(err.value)
    assert "python -m recbole_session.convert diginetica --raw PATH" in message and "\n" not in message
    assert not (tmp_path / "diginetica").exists()


def test_every_recipe_module_registers_a_recipe():
    """The discovery rule (recbole_session/convert/registry.py): one module per dataset family
    under recipes/, registered when imported; a module that registers nothing is a mistake."""
    registered = {spec.module for spec in load_recipes().values()}
    modules = recipe_modules()
    assert len(modules) >= 7
    assert [m for m in modules if m not in registered] == []


def test_the_converter_imports_without_torch_or_recbole(tmp_path):
    """Every converter module, the recipes and the command line load no torch, no RecBole and
    none of the package's training modules, through the real package root; finding ml-100k's
    bundled copy does not import recbole."""
    code = """
import sys
import pkgutil, importlib
import recbole_session.convert as convert
for info in pkgutil.walk_packages(convert.__path__, "recbole_session.convert."):
    importlib.import_module(info.name)
convert.recipe_names()
convert.RECIPES["ml-100k"].bundled()
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "recbole", "ray")
               or m in ("recbole_session.config", "recbole_session.utils", "recbole_session.quick_start",
                        "recbole_session.compat"))
print(heavy)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_no_raw_after_a_conversion_says_where_the_data_came_from(tmp_path, capsys):
    convert("ml-1m", raw=FIXTURES / "ratings.dat", out=tmp_path, **LOOSE)
    assert main(["ml-1m", "--out", str(tmp_path), "--min-item-inter", "1", "--min-user-inter", "1"]) == 0
    out = capsys.readouterr().out
    assert "is up to date (converted from" in out and "ratings.dat" in out and "give --raw to convert again" in out
