"""The converter replaces or removes only the files it wrote itself (``<name>.manifest.json``
lists them with their sizes and sha256): a user's file in the way is refused unless ``--force``,
and ``--force`` replaces only the names the conversion writes, never removing another file.
(The refusals' one-line messages are cases of tests/test_bad_input_convert.py.)"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from recbole_session.convert import convert
from recbole_session.convert.__main__ import main

FIXTURES = Path(__file__).parent / "fixtures" / "convert"
RAW = FIXTURES / "ratings.dat"
LOOSE = ["--min-item-inter", "1", "--min-user-inter", "1", "--quiet"]
OTHER = ["--min-sessions", "1"]  # other settings (and other rows): a plain run converts again
USERS_YAML = "# my own settings\nepochs: 3\n"


def ml1m(out: Path, *extra: str) -> int:
    return main(["ml-1m", "--raw", str(RAW), "--out", str(out), *LOOSE, *extra])


def manifest(folder: Path) -> dict[str, dict]:
    return json.loads((folder / f"{folder.name}.manifest.json").read_text())["files"]


def listed_as_written(folder: Path) -> dict[str, dict]:
    """What the manifest should say about the folder's files that it lists."""
    return {name: {"size": (folder / name).stat().st_size,
                   "sha256": hashlib.sha256((folder / name).read_bytes()).hexdigest()} for name in manifest(folder)}


def test_force_replaces_a_dataset_the_converter_wrote(tmp_path, capsys):
    assert ml1m(tmp_path / "out") == 0
    assert ml1m(tmp_path / "fresh", *OTHER) == 0  # what the second conversion should give
    folder, fresh = tmp_path / "out" / "ml-1m", tmp_path / "fresh" / "ml-1m"
    before = (folder / "ml-1m.inter").read_bytes()
    assert ml1m(tmp_path / "out", "--force", *OTHER) == 0
    assert (folder / "ml-1m.inter").read_bytes() == (fresh / "ml-1m.inter").read_bytes() != before
    assert sorted(p.name for p in folder.iterdir()) == ["ml-1m.inter", "ml-1m.manifest.json", "ml-1m.stats.json"]
    assert manifest(folder) == listed_as_written(folder)
    assert sorted(manifest(folder)) == ["ml-1m.inter", "ml-1m.stats.json"]
    assert capsys.readouterr().err == ""


def test_force_never_removes_a_users_file(tmp_path, capsys):
    assert ml1m(tmp_path) == 0
    folder = tmp_path / "ml-1m"
    (folder / "ml-1m.yaml").write_text(USERS_YAML)  # a name the converter writes for other settings
    (folder / "notes.txt").write_text("mine\n")
    assert main(["ml-1m", "--raw", str(RAW), "--out", str(tmp_path), "--min-item-inter", "1",
                 "--min-user-inter", "1", "--force"]) == 0
    assert (folder / "ml-1m.yaml").read_text() == USERS_YAML
    assert (folder / "notes.txt").read_text() == "mine\n"
    assert sorted(manifest(folder)) == ["ml-1m.inter", "ml-1m.stats.json"]
    err = capsys.readouterr().err
    assert f"note: left {folder / 'ml-1m.yaml'} as it is (ml-1m.manifest.json does not list it)" in err


def test_a_first_conversion_keeps_a_users_yaml(tmp_path):
    """ml-100k converted on first use (datafiles.ensure_atomic_files calls convert when the data
    files are missing) into a folder that holds only the user's ml-100k.yaml."""
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    (folder / "ml-100k.yaml").write_text(USERS_YAML)
    assert convert("ml-100k", out=tmp_path, verbose=False) == folder
    assert (folder / "ml-100k.yaml").read_text() == USERS_YAML
    assert sorted(p.name for p in folder.iterdir()) == ["ml-100k.inter", "ml-100k.manifest.json",
                                                        "ml-100k.stats.json", "ml-100k.yaml"]
    assert convert("ml-100k", out=tmp_path, force=True, verbose=False) == folder
    assert (folder / "ml-100k.yaml").read_text() == USERS_YAML


def test_a_plain_conversion_of_its_own_dataset_behaves_as_before(tmp_path, capsys):
    assert ml1m(tmp_path, "--weight", "Rating") == 0  # writes ml-1m.yaml (an extra field to load)
    folder = tmp_path / "ml-1m"
    assert sorted(manifest(folder)) == ["ml-1m.inter", "ml-1m.stats.json", "ml-1m.yaml"]
    stamp = (folder / "ml-1m.inter").stat().st_mtime_ns
    assert main(["ml-1m", "--raw", str(RAW), "--out", str(tmp_path), "--min-item-inter", "1",
                 "--min-user-inter", "1", "--weight", "Rating"]) == 0
    assert "up to date" in capsys.readouterr().out and (folder / "ml-1m.inter").stat().st_mtime_ns == stamp
    # other settings and no yaml: converted again, and its own former ml-1m.yaml removed as before
    assert ml1m(tmp_path, *OTHER) == 0
    assert ml1m(tmp_path / "fresh", *OTHER) == 0
    assert (folder / "ml-1m.inter").read_bytes() == (tmp_path / "fresh" / "ml-1m" / "ml-1m.inter").read_bytes()
    assert sorted(p.name for p in folder.iterdir()) == ["ml-1m.inter", "ml-1m.manifest.json", "ml-1m.stats.json"]
    assert manifest(folder) == listed_as_written(folder)


def test_a_file_changed_after_conversion_is_the_users(tmp_path, capsys):
    assert ml1m(tmp_path, "--weight", "Rating") == 0
    folder = tmp_path / "ml-1m"
    edited = (folder / "ml-1m.inter").read_text() + "9\t9\t9\t9\t0\t1\n"
    (folder / "ml-1m.inter").write_text(edited)
    assert ml1m(tmp_path, "--weight", "Rating", *OTHER) == 2
    assert "ml-1m.inter: already there and not written by the converter (changed since" in capsys.readouterr().err
    assert (folder / "ml-1m.inter").read_text() == edited
    # an edited file that the new conversion does not write stays, even with --force
    (folder / "ml-1m.yaml").write_text(USERS_YAML)
    assert ml1m(tmp_path, "--force") == 0
    assert (folder / "ml-1m.yaml").read_text() == USERS_YAML
    assert (folder / "ml-1m.inter").read_text() != edited
    assert sorted(manifest(folder)) == ["ml-1m.inter", "ml-1m.stats.json"]


def test_a_dataset_converted_before_manifests_is_replaced_only_with_force(tmp_path, capsys):
    assert ml1m(tmp_path) == 0
    folder = tmp_path / "ml-1m"
    (folder / "ml-1m.manifest.json").unlink()  # as an older converter left it
    before = (folder / "ml-1m.inter").read_bytes()
    assert ml1m(tmp_path) == 0  # same settings: up to date, nothing written
    assert not (folder / "ml-1m.manifest.json").exists()
    assert ml1m(tmp_path, *OTHER) == 2
    err = capsys.readouterr().err
    assert "converted before the converter kept one" in err and "--force replaces" in err
    assert (folder / "ml-1m.inter").read_bytes() == before
    assert not (folder / "ml-1m.manifest.json").exists()
    capsys.readouterr()
    assert main(["ml-1m", "--raw", str(RAW), "--out", str(tmp_path), "--min-item-inter", "1",
                 "--min-user-inter", "1", "--force", *OTHER]) == 0
    assert (folder / "ml-1m.inter").read_bytes() != before
    assert manifest(folder) == listed_as_written(folder)
    assert "note:" not in capsys.readouterr().err  # it replaced them: nothing was left in place
