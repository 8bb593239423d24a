"""The package's structure: imports form a DAG, the converter imports without torch or RecBole,
`import recbole_session` is cheap yet RecBole's own lookups find our classes in any import
order, and the one discovery rule leaves no class unfound."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from recbole.data.dataset import SequentialDataset
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.trainer import Trainer

from recbole_session import lookup

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "recbole_session"
# no cycle is tolerated: the import graph is a DAG
KNOWN_CYCLES: set[frozenset[str]] = set()


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)


def _import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (anywhere in the file, functions included)."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path

    def resolve(name: str) -> str | None:
        parts = name.split(".")
        while parts and ".".join(parts) not in modules:
            parts.pop()
        return ".".join(parts) or None

    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        here = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(here[: len(here) - node.level + 1] + ([base] if base else []))
                targets = [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for target in targets:
                found = resolve(target) if target.startswith("recbole_session") else None
                if found and found != module:
                    graph[module].add(found)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_imports_form_a_dag():
    assert set(_cycles(_import_graph())) <= KNOWN_CYCLES


def test_nothing_in_the_package_imports_the_root_or_the_facades():
    """`recbole_session/__init__` (lazy names), `quick_start` and `utils` (gathered public
    names) sit on top: a module below that imported them would close a cycle."""
    graph = _import_graph()
    for top in ("recbole_session", "recbole_session.quick_start", "recbole_session.utils"):
        importers = sorted(m for m, targets in graph.items() if top in targets)
        assert importers == [], (top, importers)


def test_converter_imports_without_torch_or_recbole():
    out = _python("import sys, recbole_session.convert, recbole_session.convert.__main__\n"
                  "print(sorted(m for m in ('torch', 'recbole') if m in sys.modules))")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("first", [
    "import recbole_session",
    "import recbole.quick_start",
    "from recbole_session.trainer import SRIEMTrainer",
    "from recbole_session.model.sequential_recommender.sessionbert4rec import SessionBERT4Rec",
    # the modules the hooks run: a hook fires while RecBole is being imported, so one of these
    # imported first must not import RecBole before its own functions exist
    "import recbole_session.compat",
    "import recbole_session.checkpoint",
])
def test_recboles_own_lookups_find_our_classes_in_any_import_order(first):
    out = _python(f"""
{first}
import recbole_session
import torch
from recbole.utils import get_model, get_trainer, ModelType
from recbole.quick_start import load_data_and_model
import recbole.data.dataset as datasets
assert get_model("SRIEM").__module__ == "recbole_session.model.sequential_recommender.sriem"
assert get_model("SessionBERT4Rec").__name__ == "SessionBERT4Rec" and get_model("ASARS").__name__ == "ASARS"
assert get_trainer(ModelType.SEQUENTIAL, "SRIEM").__name__ == "SRIEMTrainer"
assert get_trainer(ModelType.SEQUENTIAL, "GRU4Rec").__name__ == "Trainer"
assert datasets.ASARSDataset.__module__ == "recbole_session.data.dataset"
assert not hasattr(datasets, "GRU4RecDataset")
assert load_data_and_model.__module__ == "recbole_session.build"
assert not torch.is_anomaly_enabled()
print("ok")
""")
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]


def test_import_recbole_session_alone_imports_neither_torch_nor_recbole():
    out = _python("import sys, recbole_session\nprint(sorted(m for m in ('torch', 'recbole') if m in sys.modules))\n"
                  "print(recbole_session.Config.__module__)")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["[]", "recbole_session.config"]


def test_every_trainer_dataset_and_model_class_is_found_by_the_rule():
    assert lookup.unmatched_classes() == []
    assert lookup.get_trainer(None, "SRIEM").__name__ == "SRIEMTrainer"
    assert lookup.dataset_class("SessionBERT4Rec", None).__name__ == "SessionBERT4RecDataset"


def test_the_rule_reports_a_class_that_no_lookup_would_find():
    def defined(name: str, base: type, module: str) -> type:
        return type(name, (base,), {"__module__": module})

    foo_trainer = defined("FooTrainer", Trainer, "recbole_session.trainer.foo")  # no model Foo
    foo_dataset = defined("FooDataset", SequentialDataset, "recbole_session.data.dataset")
    misnamed = defined("MyModel", SequentialRecommender, "recbole_session.model.sequential_recommender.other")
    base = defined("StepBase", Trainer, "recbole_session.trainer.base")
    sriem = defined("SRIEMTrainer", base, "recbole_session.trainer.base")  # found: its base is fine
    gru = defined("GRU4RecDataset", SequentialDataset, "recbole_session.data.dataset")  # a RecBole model's
    assert lookup.unmatched_classes([foo_trainer, foo_dataset, misnamed, base, sriem, gru]) == [
        "recbole_session.data.dataset.FooDataset",
        "recbole_session.model.sequential_recommender.other.MyModel",
        "recbole_session.trainer.foo.FooTrainer",
    ]


@pytest.mark.parametrize("name, guess", [("sasrec", "SASRec"), ("sessionbert4rec", "SessionBERT4Rec"),
                                         ("GRU4Recc", "GRU4Rec"), ("SRIEMM", "SRIEM")])
def test_unknown_model_says_did_you_mean(name, guess):
    with pytest.raises(lookup.UnknownModelError, match=f"did you mean {guess}\\?"):
        lookup.get_model(name)


# files of the workspace the project grew in, which a clone does not have (spelled in two parts
# so that this file does not match itself)
OUTSIDE = ("SPEC" + ".md", "COMMON" + ".md", "../" + "shared", "shared/" + "papers", "papers/" + "asars")


def _tracked_text_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files"], capture_output=True, text=True, cwd=REPO, check=True).stdout
    files = [REPO / name for name in listed.splitlines()]
    return [f for f in files if f.is_file() and f.suffix in (".py", ".md", ".yaml", ".yml", ".cfg", ".txt", ".toml", "")]


def test_nothing_in_the_repo_cites_a_file_the_repo_lacks():
    """No mention of the workspace's private files, and every relative Markdown link resolves."""
    cited = [f"{f.relative_to(REPO)}: {word}" for f in _tracked_text_files()
             for word in OUTSIDE if word in f.read_text(errors="replace")]
    assert cited == []
    broken = []
    for doc in [f for f in _tracked_text_files() if f.suffix == ".md"]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if "://" not in target and not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(REPO)} -> {target}")
    assert broken == []
