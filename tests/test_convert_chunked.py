"""``--chunk-rows`` (issue 29): the raw file read in blocks with text ids kept as codes, the users
sessionized in groups, gives the same files, byte for byte, as the conversion of everything at
once: on every session-aware recipe's fixture (groups of 2 rows, blocks of a few lines), and on a
generated 2M-row UserBehavior-shaped log (``tests/userbehavior_data.py``, seed 0, made in the test:
~60 MB in the temp folder, ~10 s in all), with the ASARS filters and with the reference ones."""

from __future__ import annotations

from pathlib import Path

import pytest
from userbehavior_data import NAMES, write_log

from recbole_session.convert import convert, pipeline, readers
from recbole_session.convert.__main__ import main

FIXTURES = Path(__file__).parent / "fixtures" / "convert"
TINY_BLOCK = 64  # bytes per streamed block: a few lines, so that every fixture spans blocks
TINY_CHUNK_ROWS = 2  # a group per user or two
BUNDLED_CHUNK_ROWS = 1_000  # ml-100k (100k rows): ~100 groups (a group per user takes seconds)
LOOSE = dict(min_item_inter=1, min_user_inter=1, max_user_inter=0, min_sessions=1, min_session_length=1)
TAOBAO = dict(header=False, names=NAMES, user_col="user", item_col="item", time_col="timestamp")
# (recipe, raw file or None for the bundled copy, options)
CASES = {
    "ml-100k": ("ml-100k", None, {}),
    "ml-100k-asars-small": ("ml-100k", None, {"preset": "asars-small"}),
    "ml-100k-newest-50": ("ml-100k", None, {"max_user_inter": 50, "session_gap": 3600,
                                            "short_sessions": "drop_session"}),
    "ml-1m": ("ml-1m", FIXTURES / "ratings.dat", LOOSE),
    "ml-20m-weight": ("ml-20m", FIXTURES / "ratings.csv", {**LOOSE, "weight": "rating"}),
    "taobao-readme": ("csv", FIXTURES / "UserBehavior.csv",
                      {**TAOBAO, "keep": ["behavior=pv,buy"], "type_col": "behavior", "session_gap": 3600,
                       "min_item_inter": 1, "min_user_inter": 1, "min_sessions": 1}),
    "taobao-ms": ("csv", FIXTURES / "UserBehavior.csv", {**TAOBAO, **LOOSE, "time_unit": "ms", "type_col": "behavior"}),
    "csv-text-ids": ("csv", FIXTURES / "events.csv",
                     {**LOOSE, "sep": ";", "user_col": "who", "item_col": "what", "time_col": "when"}),
    "atomic": ("atomic", FIXTURES / "events.inter", {**LOOSE, "weight": "rating:float"}),
    "steam": ("steam", FIXTURES / "steam_reviews.json", LOOSE),
}
GENERATED_ROWS = 2_000_000
GENERATED_CHUNK_ROWS = 300_000  # 7 groups of users
GENERATED_BLOCK = 4 << 20  # 15 blocks of the ~60 MB file


def outputs(folder: Path) -> dict[str, bytes]:
    return {file.name: file.read_bytes() for file in sorted(folder.iterdir())}


def both_ways(recipe: str, raw: Path | None, options: dict, out: Path, chunk_rows: int) -> None:
    """Convert at once and in chunks; every file the same."""
    options = dict(options)
    preset = options.pop("preset", None)
    whole = convert(recipe, raw=raw, out=out / "whole", name="d", preset=preset, verbose=False, chunk_rows=0,
                    **options)
    chunked = convert(recipe, raw=raw, out=out / "chunked", name="d", preset=preset, verbose=False,
                      chunk_rows=chunk_rows, **options)
    assert outputs(chunked) == outputs(whole)


@pytest.mark.parametrize("case", sorted(CASES))
def test_fixtures_convert_the_same_in_chunks(case, tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "READ_BLOCK_BYTES", TINY_BLOCK)
    recipe, raw, options = CASES[case]
    both_ways(recipe, raw, options, tmp_path, chunk_rows=TINY_CHUNK_ROWS if raw else BUNDLED_CHUNK_ROWS)


def test_generated_userbehavior_log_converts_the_same_in_chunks(tmp_path, monkeypatch):
    """2M rows (generated here, seed 0): ASARS's filters (split first, drop short sessions) and
    the reference ones (newest 200 rows per user, drop the users of short sessions) after --keep."""
    raw = tmp_path / "UserBehavior.csv"
    write_log(raw, GENERATED_ROWS)
    monkeypatch.setattr(readers, "READ_BLOCK_BYTES", GENERATED_BLOCK)
    both_ways("csv", raw, {**TAOBAO, "type_col": "behavior", "preset": "asars"}, tmp_path / "asars",
              GENERATED_CHUNK_ROWS)
    both_ways("csv", raw, {**TAOBAO, "keep": ["behavior=pv,buy"], "session_gap": 3600}, tmp_path / "reference",
              GENERATED_CHUNK_ROWS)


def test_default_chunks_only_big_files(tmp_path, monkeypatch):
    """Without --chunk-rows: chunks for a raw file of AUTO_CHUNK_BYTES or more, else at once."""
    used = []
    real = pipeline.prepare
    monkeypatch.setattr(pipeline, "prepare", lambda events, filters, chunk_rows: used.append(chunk_rows)
                        or real(events, filters, chunk_rows))
    convert("ml-1m", raw=FIXTURES / "ratings.dat", out=tmp_path / "a", verbose=False, **LOOSE)
    monkeypatch.setattr(pipeline, "AUTO_CHUNK_BYTES", 1)
    convert("ml-1m", raw=FIXTURES / "ratings.dat", out=tmp_path / "b", verbose=False, **LOOSE)
    assert used == [0, pipeline.DEFAULT_CHUNK_ROWS]


def test_command_line_flag(tmp_path, capsys):
    args = ["ml-1m", "--raw", str(FIXTURES / "ratings.dat"), "--min-item-inter", "1", "--min-user-inter", "1",
            "--max-user-inter", "0", "--min-sessions", "1", "--min-session-length", "1", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "a"), "--chunk-rows", "0"]) == 0
    assert main([*args, "--out", str(tmp_path / "b"), "--chunk-rows", "3"]) == 0
    assert outputs(tmp_path / "b" / "ml-1m") == outputs(tmp_path / "a" / "ml-1m")
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "c"), "--chunk-rows", "-1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["python -m recbole_session.convert: error: --chunk-rows: expected a row count >= 0 "
                   "(0: all at once), not -1"]
    assert not (tmp_path / "c").exists()


def test_a_bad_value_is_named_as_without_chunks(tmp_path, monkeypatch):
    """The streamed read finds the bad block; the error names file, line and field as usual."""
    monkeypatch.setattr(readers, "READ_BLOCK_BYTES", TINY_BLOCK)
    raw = tmp_path / "UserBehavior.csv"
    raw.write_text((FIXTURES / "UserBehavior.csv").read_text() + "4,10,100,pv,soon\n")
    messages = []
    for chunk_rows in (0, TINY_CHUNK_ROWS):
        with pytest.raises(Exception) as err:
            convert("csv", raw=raw, out=tmp_path / "out", verbose=False, chunk_rows=chunk_rows, **TAOBAO, **LOOSE)
        messages.append(str(err.value))
    assert messages[0] == messages[1]
    assert "line 11" in messages[0] and "timestamp" in messages[0]
