"""README.md runs as written: its "Inside RecBole code" example, every command of its ```bash
blocks (in a fresh folder, in README order, with fewer epochs), and its troubleshooting table is
the one the tests' bad-input cases produce."""

from __future__ import annotations

import glob
import os
import re
import shutil
import signal
import subprocess
import threading
from pathlib import Path

import pytest
import torch
from bad_input import README_SECTION, readme_section

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"


def bash_commands(text: str) -> list[str]:
    """The commands of every ```bash block: continuation lines joined, comments and blank lines
    left out."""
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, re.S | re.M):
        for line in re.sub(r"\s*\\\n\s*", " ", block).splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


COMMANDS = bash_commands(README.read_text(encoding="utf-8"))

SERVE = 'python -m recbole_session.serve "$(ls -t saved/SessionBERT4Rec-*.pth | head -1)" --port 8000'
CURL = 'curl -s -X POST http://127.0.0.1:8000/recommend -d \'{"user": "2", "time": "+864000", "k": 3}\''

# the only commands not run: installing packages and running the suite (this file is in it)
SKIPPED = {
    'pip install "torch==2.13.0" -e ".[test]"': "installs packages (.ci/run runs it)",
    'pip install "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu': "installs packages",
    'pip install -e ".[test]"': "installs packages",
    "python -m pytest -q": "the whole suite, this test included",
}

# what each long command gets appended to run in seconds (options given twice: the last wins)
FAST = {
    "python run_recbole_session.py --model=SessionBERT4Rec --dataset=ml-100k": "--epochs=1",
    "python run_recbole_session.py --model=SessionBERT4Rec --dataset=ml-100k --session_token=False --temporal_dim=0":
        "--epochs=1",
    "python run_recbole_session.py --model=SRIEM --dataset=diginetica-synth": "--epochs=1",
    "python run_recbole_session.py --model=SessionSASRec --dataset=ml-100k": "--epochs=1 --MAX_ITEM_LIST_LENGTH=20",
    "python run_recbole_session.py --model=SessionBERT4Rec --dataset=ml-100k --nproc=2": "--epochs=1 --epoch_steps=4",
    "python run_recbole_session.py --model=SessionGRU4Rec --dataset=ml-100k": "--epochs=1",
    "python run_recbole_session.py --model=ASARS --dataset=ml-100k-asars-small --variant=time_cat --rnn_type=GRU":
        "--epochs=1",
    "python -m recbole_session.tune --model=GRU4Rec --dataset=ml-100k --num-samples=4 --epochs=2 "
    "--out=ray_results/gru4rec": "--num-samples=1 --epochs=1",
    "python run_recbole_session.py --model=GRU4Rec --dataset=ml-100k --config_files=ray_results/gru4rec/best.yaml":
        "--epochs=1",
    "python -m recbole_session.reproduce table2 --dataset ml-100k --seeds 5 --jobs 2 --docs docs/benchmarks.md":
        "--seeds 1 --rows off --epochs=1",
}

# the commands a command uses the outputs of (run first when it is selected alone)
NEEDS = {
    "python run_recbole_session.py --model=SRIEM --dataset=diginetica-synth":
        ["python tests/session_data.py atomic_files"],
    "python run_recbole_session.py --model=ASARS --dataset=ml-100k-asars-small --variant=time_cat --rnn_type=GRU":
        ["python -m recbole_session.convert ml-100k --preset asars-small"],
    'python -m recbole_session.evaluate "$(ls -t saved/SessionBERT4Rec-*.pth | head -1)" '
    "--protocols random100,popular100,full,uni100":
        ["python run_recbole_session.py --model=SessionBERT4Rec --dataset=ml-100k"],
    'python -m recbole_session.recommend "$(ls -t saved/SessionBERT4Rec-*.pth | head -1)" --user 2 --at +864000 --topk 3':
        ["python run_recbole_session.py --model=SessionBERT4Rec --dataset=ml-100k"],
    "python run_recbole_session.py --model=GRU4Rec --dataset=ml-100k --config_files=ray_results/gru4rec/best.yaml":
        ["python -m recbole_session.tune --model=GRU4Rec --dataset=ml-100k --num-samples=4 --epochs=2 "
         "--out=ray_results/gru4rec"],
    SERVE: ["python run_recbole_session.py --model=SessionBERT4Rec --dataset=ml-100k"],
    CURL: [SERVE],
}

# the commands that run until stopped (a server): started in the background, "run" once they print
# the line that says they are ready, stopped with SIGTERM when the module's commands are done
BACKGROUND = {SERVE: r"serving SessionBERT4Rec \(ml-100k\) on http://127\.0\.0\.1:8000"}
START_TIMEOUT_S = 300

# what each command that runs must leave: a file ("file", glob in its folder) or a line it
# printed ("printed", regex on stdout + stderr)
OUTPUT = {
    "python run_recbole_session.py --model=SessionBERT4Rec --dataset=ml-100k":
        ("file", "log/SessionBERT4Rec/SessionBERT4Rec-ml-100k-*.results.json"),
    "python run_recbole_session.py --model=SessionBERT4Rec --dataset=ml-100k --session_token=False --temporal_dim=0":
        ("printed", r"test result"),
    "python run_recbole_session.py --model=SessionBERT4Rec --dataset=ml-100k --nproc=2":
        ("printed", r"results saved to log/SessionBERT4Rec/"),
    "python run_recbole_session.py --model=SessionSASRec --dataset=ml-100k":
        ("file", "log/SessionSASRec/SessionSASRec-ml-100k-*.results.json"),
    "python run_recbole_session.py --model=SessionGRU4Rec --dataset=ml-100k":
        ("file", "log/SessionGRU4Rec/SessionGRU4Rec-ml-100k-*.results.json"),
    "python tests/session_data.py atomic_files": ("file", "atomic_files/diginetica-synth/diginetica-synth.train.inter"),
    "python run_recbole_session.py --model=SRIEM --dataset=diginetica-synth":
        ("file", "log/SRIEM/SRIEM-diginetica-synth-*.results.json"),
    "python -m recbole_session.convert ml-100k --preset asars-small":
        ("file", "atomic_files/ml-100k-asars-small/ml-100k-asars-small.inter"),
    "python run_recbole_session.py --model=ASARS --dataset=ml-100k-asars-small --variant=time_cat --rnn_type=GRU":
        ("file", "log/ASARS/ASARS-ml-100k-asars-small-*.results.json"),
    "python -m recbole_session.convert ml-100k": ("file", "atomic_files/ml-100k/ml-100k.inter"),
    "python -m recbole_session.convert csv --raw tests/fixtures/convert/UserBehavior.csv --no-header "
    "--names user,item,category,behavior,timestamp --user-col user --item-col item --time-col timestamp "
    "--keep behavior=pv,buy --type-col behavior --session-gap 3600 --min-item-inter 1 --min-user-inter 1 "
    "--min-sessions 1 --verbose": ("file", "atomic_files/UserBehavior/UserBehavior.inter"),
    'python -m recbole_session.evaluate "$(ls -t saved/SessionBERT4Rec-*.pth | head -1)" '
    "--protocols random100,popular100,full,uni100": ("printed", r"test/uni100/ndcg@10\s"),
    'python -m recbole_session.recommend "$(ls -t saved/SessionBERT4Rec-*.pth | head -1)" --user 2 --at +864000 --topk 3':
        ("printed", r"(?m)^2,3,\d+,-?[\d.]+$"),
    "python -m recbole_session.tune --model=GRU4Rec --dataset=ml-100k --num-samples=4 --epochs=2 "
    "--out=ray_results/gru4rec": ("file", "ray_results/gru4rec/best.yaml"),
    "python run_recbole_session.py --model=GRU4Rec --dataset=ml-100k --config_files=ray_results/gru4rec/best.yaml":
        ("file", "log/GRU4Rec/GRU4Rec-ml-100k-*.results.json"),
    "python -m recbole_session.reproduce table2 --dataset ml-100k --seeds 5 --jobs 2 --docs docs/benchmarks.md":
        ("file", "reproduce_results/table2_ml-100k.md"),
    "python tests/bad_input.py": ("printed", r"\| where \| what you gave \|"),
    SERVE: ("printed", BACKGROUND[SERVE]),
    CURL: ("printed", r'^\{"user":"2","items":\[\{"item":"\d+","score":-?[\d.e-]+\}(,\{[^}]*\}){2}\],'
           r'"time":\d+(\.\d+)?,"new_session":true,'),
}


def test_every_readme_command_is_run_or_skipped_on_purpose():
    """A new README command needs an OUTPUT entry (or a reason in SKIPPED); the tables hold no
    command the README lost; only installs and the suite itself are skipped."""
    assert len(COMMANDS) == len(set(COMMANDS)), "a README command appears twice: merge them"
    for command in SKIPPED:
        assert command.startswith(("pip install ", "python -m pytest")), command
    run = [c for c in COMMANDS if c not in SKIPPED]
    assert sorted(OUTPUT) == sorted(run), "every README command that runs needs an OUTPUT check"
    for table in (SKIPPED, FAST, NEEDS):
        assert set(table) <= set(COMMANDS), f"not in README.md: {sorted(set(table) - set(COMMANDS))}"
    for command, needs in NEEDS.items():
        for need in needs:
            assert COMMANDS.index(need) < COMMANDS.index(command), f"{need!r} must come before {command!r}"
    text = README.read_text(encoding="utf-8")
    languages = set(re.findall(r"^```(\w*)\n", text, re.M)) - {""}  # closing fences and the layout
    assert languages <= {"bash", "python"}, f"commands in a block the test does not read: {languages}"


class Folder:
    """The fresh folder the README's commands run in, with what a clone has that they use."""

    def __init__(self, path: Path):
        self.path = path
        self.done: dict[str, subprocess.CompletedProcess] = {}
        self.background: list[subprocess.Popen] = []
        (path / "run_recbole_session.py").symlink_to(REPO / "run_recbole_session.py")
        (path / "tests").symlink_to(REPO / "tests")  # fixtures, tests/session_data.py
        (path / "docs").mkdir()  # a copy: reproduce --docs writes into it
        shutil.copy(REPO / "docs" / "benchmarks.md", path / "docs" / "benchmarks.md")

    def run(self, command: str) -> subprocess.CompletedProcess:
        if command not in self.done:
            for need in NEEDS.get(command, []):
                self.run(need)
            line = f"{command} {FAST[command]}" if command in FAST else command
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
            if command in BACKGROUND:
                self.done[command] = self.start(line, env, BACKGROUND[command])
            else:
                self.done[command] = subprocess.run(["bash", "-c", line], cwd=self.path, env=env,
                                                    capture_output=True, text=True, timeout=600)
        return self.done[command]

    def start(self, line: str, env: dict, ready: str) -> subprocess.CompletedProcess:
        """Start a server (exec: the signal reaches it, not a shell) and return once it printed
        ``ready`` (exit code 0 then), or what it printed when it ended before."""
        proc = subprocess.Popen(["bash", "-c", f"exec {line}"], cwd=self.path, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        self.background.append(proc)
        timer = threading.Timer(START_TIMEOUT_S, proc.kill)
        timer.start()
        printed = ""
        try:
            for printed_line in proc.stdout:
                printed += printed_line
                if re.search(ready, printed_line):
                    return subprocess.CompletedProcess(line, 0, printed, "")
        finally:
            timer.cancel()
        return subprocess.CompletedProcess(line, proc.wait(), printed, "")

    def stop(self) -> None:
        for proc in self.background:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.communicate(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Folder:
    folder = Folder(tmp_path_factory.mktemp("readme"))
    yield folder
    folder.stop()


@pytest.mark.parametrize("command", COMMANDS, ids=[f"{i:02d} {c[:70]}" for i, c in enumerate(COMMANDS)])
def test_readme_command(command, folder):
    if command in SKIPPED:
        pytest.skip(SKIPPED[command])
    proc = folder.run(command)
    for need in NEEDS.get(command, []):
        assert folder.done[need].returncode == 0, f"{command} uses the outputs of {need}, which failed"
    printed = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{command}\nexit code {proc.returncode}\n{printed[-3000:]}"
    kind, pattern = OUTPUT[command]
    if kind == "file":
        assert glob.glob(str(folder.path / pattern)), f"{command}: no {pattern}\n{printed[-3000:]}"
    else:
        assert re.search(pattern, printed), f"{command}: printed no line like {pattern!r}\n{printed[-3000:]}"


def test_reproduce_command_writes_its_section_of_docs_benchmarks(folder):
    command = next(c for c in COMMANDS if c.startswith("python -m recbole_session.reproduce table2"))
    assert folder.run(command).returncode == 0
    assert "<!-- BEGIN reproduce-table2-ml-100k -->" in (folder.path / "docs" / "benchmarks.md").read_text()


def test_readme_python_example_trains_through_recbole_and_loads_back(workdir):
    block = re.search(r"### Inside RecBole code\s+```python\n(.*?)```", README.read_text(), re.S).group(1)
    namespace: dict = {}
    exec(compile(block.replace('{"epochs": 1}', '{"epochs": 1, "show_progress": False, "embedding_size": 16}'),
                 "README.md", "exec"), namespace)
    assert (workdir / "atomic_files" / "ml-100k" / "ml-100k.inter").is_file()
    trainer = namespace["trainer"]
    assert trainer.best_valid_result is not None
    # load_data_and_model gave back the trained GRU4Rec: same class, same weights
    loaded = namespace["model"]
    assert type(loaded) is type(trainer.model)
    trained = trainer.model.state_dict()
    assert all(torch.equal(value.cpu(), trained[name].cpu()) for name, value in loaded.state_dict().items())


def test_readme_troubleshooting_table_is_the_tests_cases():
    text = README.read_text(encoding="utf-8")
    begin, end = f"<!-- BEGIN {README_SECTION} -->", f"<!-- END {README_SECTION} -->"
    shown = text[text.index(begin) + len(begin):text.index(end)].strip()
    assert shown == readme_section(), "README.md's table is stale: run python tests/bad_input.py --readme"
