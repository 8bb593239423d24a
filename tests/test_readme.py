"""The README's "Inside RecBole code" example runs as written (in a fresh folder, where
ml-100k is built on first use)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_example_trains_through_recbole(workdir):
    block = re.search(r"### Inside RecBole code\s+```python\n(.*?)```", README.read_text(), re.S).group(1)
    namespace: dict = {}
    exec(compile(block.replace('{"epochs": 1}', '{"epochs": 1, "show_progress": False, "embedding_size": 16}'),
                 "README.md", "exec"), namespace)
    assert (workdir / "atomic_files" / "ml-100k" / "ml-100k.inter").is_file()
    assert namespace["trainer"].best_valid_result is not None
