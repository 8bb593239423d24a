"""The bad-input contract, shared by every command's table-driven test.

Each :class:`BadInput` is one thing a user (or an attacker) can feed a command. The contract:
exit code 2, exactly one line on stderr that contains ``message`` (which names the file, line and
field, or the option, and what was expected), no traceback, and nothing left behind in the
case's folder but what the case itself put there. The README's troubleshooting table is made
from these cases by :func:`readme_section` (``python tests/bad_input.py --readme`` writes it,
tests/test_readme.py checks it), so the two cannot drift apart.

A test module lists its cases (``CASES = [BadInput(...), ...]``), parametrizes over them and calls
:func:`check`.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import io
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2
LINUX_CAPABILITY_VERSION_3 = 0x20080522


def drop_permission_override() -> None:
    """Make file permissions apply to this process: root drops CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH (any other user is subject to them anyway). For a case's command run
    as a subprocess (a "module:function" that calls this first)."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    header, data = Header(LINUX_CAPABILITY_VERSION_3, 0), (Data * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capget")
    keep = ~((1 << CAP_DAC_OVERRIDE) | (1 << CAP_DAC_READ_SEARCH)) & 0xFFFFFFFF
    data[0].effective &= keep
    data[0].permitted &= keep
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset")


MARKER = "ran"  # a crafted file that runs code creates this file in the case's folder


class Gadget:
    """Pickles as ``target(*args)``: what a crafted pickle makes the unpickler call."""

    def __init__(self, target: Callable, args: tuple) -> None:
        self.target, self.args = target, args

    def __reduce__(self):
        return self.target, self.args


def touch_gadget(folder: Path) -> Gadget:
    """A gadget that creates :data:`MARKER` in ``folder`` when unpickled."""
    return Gadget(os.system, (f"touch {folder / MARKER}",))


def write(name: str, content: str | bytes, mode: int | None = None) -> Callable[[Path], None]:
    """A setup writing ``content`` to ``<case folder>/<name>`` (in text, ``{tmp}`` is the case
    folder), with ``mode`` when given."""
    def setup(folder: Path) -> None:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.replace("{tmp}", str(folder)).encode())
        if mode is not None:
            path.chmod(mode)
    return setup


def steps(*setups: Callable[[Path], None]) -> Callable[[Path], None]:
    """A setup running ``setups`` in order."""
    def setup(folder: Path) -> None:
        for one in setups:
            one(folder)
    return setup


def sigint_default() -> None:
    """``preexec_fn`` of a child the test interrupts with SIGINT. A shell's background job starts
    with SIGINT ignored and Python keeps an inherited SIG_IGN, so without this the child would not
    see the Ctrl+C the test sends when the suite itself runs as a background job."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@dataclass(frozen=True)
class BadInput:
    area: str  # the README table's group: "training", "checkpoint", "converter", "download", "tune", ...
    input: str  # what the user gave, in a few words (the README's first column)
    command: str  # "module:function" called as function(argv) -> exit code, or "run_recbole_session.py"
    argv: tuple[str, ...]  # "{tmp}" is replaced by the case's folder
    message: str  # a substring of the one stderr line (the README's second column)
    setup: Callable[[Path], None] | None = None  # writes the case's input files into its folder
    subprocess: bool = False  # run as a real process (signals, imports, whole-process effects)
    keep: tuple[str, ...] = field(default=())  # names the command may legitimately leave (glob)

    @property
    def id(self) -> str:
        return f"{self.area}: {self.input}"


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str


def _argv(case: BadInput, folder: Path) -> list[str]:
    return [arg.replace("{tmp}", str(folder)) for arg in case.argv]


def run(case: BadInput, folder: Path, env: dict[str, str] | None = None) -> Outcome:
    """Run the case's command on its argv, in ``folder`` (the working directory)."""
    argv = _argv(case, folder)
    if case.subprocess or case.command.endswith(".py"):
        if case.command.endswith(".py"):
            cmd = [sys.executable, str(REPO / case.command), *argv]
        else:
            module, _, function = case.command.partition(":")
            cmd = [sys.executable, "-c", f"import sys; from {module} import {function} as f; sys.exit(f(sys.argv[1:]))", *argv]
        proc = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=600,
                              env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})
        return Outcome(proc.returncode, proc.stdout, proc.stderr)
    module, _, function = case.command.partition(":")
    main = getattr(importlib.import_module(module), function)
    out, err = io.StringIO(), io.StringIO()
    cwd = Path.cwd()
    os.chdir(folder)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse exits on its own errors
                code = exc.code if isinstance(exc.code, int) else 2
    finally:
        os.chdir(cwd)
    return Outcome(int(code or 0), out.getvalue(), err.getvalue())


def _tree(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


def check(case: BadInput, folder: Path, env: dict[str, str] | None = None) -> Outcome:
    """Set the case up in ``folder``, run it and assert the contract."""
    folder.mkdir(parents=True, exist_ok=True)
    if case.setup is not None:
        case.setup(folder)
    before = _tree(folder)
    outcome = run(case, folder, env)
    lines = [line for line in outcome.stderr.splitlines() if line.strip()]
    assert outcome.code == 2, f"{case.id}: exit code {outcome.code}, stderr:\n{outcome.stderr}"
    assert "Traceback" not in outcome.stderr + outcome.stdout, f"{case.id}: traceback:\n{outcome.stderr}"
    assert len(lines) == 1, f"{case.id}: expected one stderr line, got {len(lines)}:\n{outcome.stderr}"
    assert case.message in lines[0], f"{case.id}: {case.message!r} not in {lines[0]!r}"
    left = {p for p in _tree(folder) - before
            if not any(Path(p).match(pattern) for pattern in case.keep)}
    assert not left, f"{case.id}: left behind {sorted(left)}"
    return outcome


def collect_cases() -> list[BadInput]:
    """The cases of every test module: its module-level lists whose names end in ``CASES``
    (``CASES``, ``LOCAL_CASES``, ...), each case once, in file order."""
    tests = Path(__file__).resolve().parent
    if str(tests) not in sys.path:  # test modules import their helpers (bad_input, ...) by name
        sys.path.insert(0, str(tests))
    cases: list[BadInput] = []
    seen: set[int] = set()
    for path in sorted(tests.glob("test_*.py")):
        if "BadInput" not in path.read_text(encoding="utf-8"):
            continue
        module = importlib.import_module(path.stem)
        for name, value in vars(module).items():
            if not name.endswith("CASES") or not isinstance(value, (list, tuple)):
                continue
            for case in value:
                # by name: a module may import this file as bad_input or as tests.bad_input
                if type(case).__name__ == "BadInput" and id(case) not in seen:
                    seen.add(id(case))
                    cases.append(case)
    return cases


def troubleshooting_table() -> str:
    """The README's troubleshooting table over every case of the suite
    (``python tests/bad_input.py`` prints it)."""
    return markdown_table(collect_cases())


def markdown_table(cases: list[BadInput]) -> str:
    """The troubleshooting table: one row per case, grouped by area."""
    rows = ["| where | what you gave | what it says (one line, exit code 2) |", "|---|---|---|"]
    for case in sorted(cases, key=lambda c: c.area):
        rows.append(f"| {case.area} | {case.input} | `{case.message}` |".replace("\n", " "))
    return "\n".join(rows)


# the README shows at most this many cases of each area, spread over the area's list
README_CASES_PER_AREA = 6
README = REPO / "README.md"
README_SECTION = "troubleshooting"  # README.md's <!-- BEGIN troubleshooting --> block


def readme_cases(cases: list[BadInput], per_area: int = README_CASES_PER_AREA) -> list[BadInput]:
    """A representative subset: per area, ``per_area`` cases evenly spread over its cases in
    file order (the first and the last included), so that every kind of mistake shows."""
    chosen: list[BadInput] = []
    for area in sorted({case.area for case in cases}):
        group = [case for case in cases if case.area == area]
        if len(group) <= per_area:
            chosen += group
            continue
        picks = sorted({round(i * (len(group) - 1) / (per_area - 1)) for i in range(per_area)})
        chosen += [group[i] for i in picks]
    return chosen


def readme_section() -> str:
    """The body of README.md's troubleshooting block: a representative subset, then every case
    folded (``python tests/bad_input.py --readme`` writes it there; tests/test_readme.py checks
    that the two are equal)."""
    cases = collect_cases()
    return "\n".join([
        markdown_table(readme_cases(cases)), "",
        f"<details><summary>Every case the tests check ({len(cases)})</summary>", "",
        markdown_table(cases), "", "</details>",
    ])


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))  # the test modules import ``tests.bad_input`` and the package
    if sys.argv[1:] == ["--readme"]:
        from recbole_session.files import update_section

        update_section(README, README_SECTION, readme_section())
        print(f"wrote the {README_SECTION} section of {README}")
    elif sys.argv[1:]:
        sys.exit("usage: python tests/bad_input.py [--readme]  (prints every case; --readme rewrites README.md's table)")
    else:
        print(troubleshooting_table())
