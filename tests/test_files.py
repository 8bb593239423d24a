"""Files the package writes (checkpoints, results, recommendation CSVs) go through
:func:`recbole_session.files.atomic_path`: they get the mode a plain ``open(path, "w")`` gives
under the process's umask, and a replaced file keeps its own mode."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from recbole_session import files

REPO = Path(__file__).resolve().parent.parent

# in a process with the umask set: a new results file, a checkpoint saved through the hook RecBole's
# Trainer uses, a recommendation CSV, a plain open() for reference, and a file replaced in place
SCRIPT = """
import json, os, stat, sys
from pathlib import Path
os.umask(int(sys.argv[2], 8))
import pandas as pd
import recbole_session
from recbole.trainer import trainer
from recbole_session.files import write_atomic
from recbole_session.recommend import _write
folder = Path(sys.argv[1])
write_atomic(folder / "run.results.json", "{}")
trainer.torch.save({"state_dict": {}, "config": {"model": "M"}}, str(folder / "model.pth"))
_write(pd.DataFrame({"user": ["2"], "rank": [1], "item": ["50"], "score": [0.5], "time": [1.0],
                     "popular": [False]}), ["user", "rank", "item", "score"], str(folder / "top.csv"))
open(folder / "plain.txt", "w").close()
(folder / "kept.txt").write_text("old")
os.chmod(folder / "kept.txt", 0o640)
write_atomic(folder / "kept.txt", "new")
modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}
print(json.dumps({**modes, "umask_after": os.umask(0)}))
"""


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_get_the_mode_open_gives_under_the_umask(umask, tmp_path):
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path), f"{umask:o}"], capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    modes = json.loads(out.stdout.strip().splitlines()[-1])
    expected = 0o666 & ~umask
    assert modes["plain.txt"] == expected
    for name in ("run.results.json", "model.pth", "top.csv"):
        assert modes[name] == expected, (name, oct(modes[name]))
    assert modes["kept.txt"] == 0o640  # a replaced file keeps its mode, whatever the umask
    assert modes["umask_after"] == umask  # reading the umask left it as it was
    assert sorted(modes) == sorted(["plain.txt", "run.results.json", "model.pth", "top.csv", "kept.txt",
                                    "umask_after"])  # no temporary file left


def test_umask_is_read_the_same_without_proc(monkeypatch):
    """Where /proc does not show it, the umask is read by setting it and setting it back."""
    from_proc = files.current_umask()
    monkeypatch.setattr(files, "PROC_STATUS", "/nonexistent/status")
    assert files.current_umask() == from_proc
    assert files.current_umask() == from_proc  # and left as it was


def test_a_failed_write_leaves_the_old_file_and_its_mode(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("old")
    path.chmod(0o604)
    with pytest.raises(RuntimeError), files.atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert path.read_text() == "old" and stat.S_IMODE(path.stat().st_mode) == 0o604
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]
