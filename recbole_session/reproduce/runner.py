"""Train and evaluate one (row, seed) of a reproduction, resumably, in worker processes.

This is the one module of :mod:`recbole_session.reproduce` that calls the package's training
API (:func:`train_and_evaluate`), so that a change of that API is ported here only. A run is
:func:`recbole_session.build.build` (dataset, dataloaders, model), then the model's trainer, fit
and the best checkpoint, with two changes
that every row of a comparison shares: the trainer is wrapped by
:func:`~recbole_session.trainer.with_protocol_validation` (selection on ``valid_protocol``,
epochs of ``epoch_steps`` steps), and the best model is evaluated on valid and test under the
papers' protocols with per-user values, which are saved in the package's results format
(:func:`~recbole_session.evaluation.results.save_run_results`), so that
:mod:`recbole_session.compare` pairs them.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import inspect
import json
import math
import os
import shutil
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable

import torch

from recbole_session.build import build, count_parameters, create_dataset, make_config
from recbole_session.evaluation import evaluate_protocols_detailed
from recbole_session.evaluation.protocols import session_opens
from recbole_session.evaluation.results import environment, package_version, save_run_results
from recbole_session.literals import load_yaml
from recbole_session.lookup import dataset_class, get_model, get_trainer, trainer_for
from recbole_session.paths import properties_dir
from recbole_session.trainer import with_protocol_validation

PROTOCOLS = ("random100", "popular100", "full")
# the training recipe every row of a comparison shares (SessionBERT4Rec's, or the preset's)
TRAIN_KEYS = ("learner", "learning_rate", "weight_decay", "epochs", "eval_step", "stopping_step",
              "valid_protocol", "valid_metric", "clip_grad_norm")
SIZE_KEYS = ("hidden_size", "n_layers", "n_heads", "inner_size", "hidden_dropout_prob",
             "mask_ratio", "MAX_ITEM_LIST_LENGTH", "max_session_segments", "temporal_dim",
             "padding_side", "temporal_proj_init", "train_regime")
PACKAGE_DIR = Path(__file__).resolve().parents[1]
# the package's modules that a run never executes (see code_sources): reporting, search,
# conversion, serving and the other entry points; a new module counts until it is listed here
NOT_RUN_CODE = ("reproduce/__init__.py", "reproduce/__main__.py", "reproduce/table2.py", "reproduce/figure2.py",
                "compare.py", "tune/", "convert/", "recommend.py", "evaluate.py", "command.py", "training.py",
                "seeds.py", "distributed.py", "quick_start.py", "utils.py")
MODEL_DIR = "model/"
# the packages whose class files count (the root folder names of their files, too)
CODE_PACKAGES = ("recbole", "recbole_session")
CODE_KEY_LENGTH = 12


def _class_files(classes: list[type]) -> set[Path]:
    """The source files of ``classes`` and of every class they inherit from, RecBole's and this
    package's (torch's ``Module`` is torch's code: see :func:`code_key`)."""
    files = set()
    for cls in classes:
        for base in inspect.getmro(cls):
            if base.__module__.split(".")[0] not in CODE_PACKAGES:
                continue
            try:
                files.add(Path(inspect.getsourcefile(base)).resolve())
            except (TypeError, OSError):  # a class made by type() in no file
                continue
    return files


def code_sources(model: str) -> list[Path]:
    """The source files whose code defines a run of ``model``, in a fixed order: the files of
    the model's, its trainer's and its dataset class's classes and of all their bases
    (RecBole's too: a patched RecBole counts), and every module of this package except
    :data:`NOT_RUN_CODE` and the other models' files (a run imports them, runs none of them)."""
    model_class = get_model(model)
    classes = [model_class, get_trainer(model_class.type, model), dataset_class(model, model_class.type)]
    own = _class_files(classes)
    package = {path.resolve() for path in PACKAGE_DIR.rglob("*.py")
               if not path.relative_to(PACKAGE_DIR).as_posix().startswith(NOT_RUN_CODE)}
    other_models = {path for path in package if path.relative_to(PACKAGE_DIR).as_posix().startswith(MODEL_DIR)
                    and path.parent != PACKAGE_DIR / "model" and path.name != "__init__.py" and path not in own}
    return sorted(own | (package - other_models))


def _code_text(path: Path) -> str:
    """The file's code without its comments and docstrings (an edited comment is not new code),
    or its bytes when it does not parse."""
    source = path.read_text(encoding="utf-8", errors="replace")
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.unparse(tree)


@functools.cache  # the code does not change under a running command (its workers import it once)
def code_key(model: str) -> str:
    """A hash of the code that defines a run of ``model``: this package's version, RecBole's
    version, and the code of :func:`code_sources` (each file by its path relative to its
    package, so that the same code in another checkout or virtual environment is the same key).

    Why this rule: a reproduction's runs take hours, so the key must change when anything that
    can change a run's numbers changes, and should not when nothing can. The package's modules
    are hashed whole, not traced import by import, because a module a run uses (the checks, the
    compatibility shims, the protocols' candidates) changes numbers through any function; the
    exceptions are the modules that no run executes (:data:`NOT_RUN_CODE`: the table and
    figure, the statistics, search, conversion, serving, the other commands) and the other
    models' files, so that editing SRIEM does not retrain SessionBERT4Rec. RecBole counts by
    its version and by the files of the model's, trainer's and dataset's class hierarchies.
    Not in the key: torch and the machine (they change numbers too, see docs/evaluation.md,
    "What a seed reproduces", but a run does not become other code by them: every results file
    records them, :func:`~recbole_session.evaluation.results.environment`), the atomic files'
    contents (the data; the dataset's yaml is in :meth:`RunSpec.key`)."""
    import recbole

    digest = hashlib.sha1(f"recbole_session {package_version()}\nrecbole {recbole.__version__}\n".encode())
    for path in code_sources(model):
        root = next((parent for parent in path.parents if parent.name in CODE_PACKAGES), path.parent)
        digest.update(f"\n# {path.relative_to(root.parent).as_posix()}\n{_code_text(path)}".encode())
    return digest.hexdigest()[:CODE_KEY_LENGTH]


@dataclass(frozen=True)
class RunSpec:
    """One training run: a table row's model and overrides on top of the shared settings."""

    label: str
    model: str
    dataset: str
    seed: int
    overrides: dict[str, Any] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)
    config_files: tuple[str, ...] = ()

    def key(self) -> str:
        """Everything that defines the row's runs but the label (a renamed row is the same row)
        and the seed (in the file name)."""
        # the package's yaml files of this model and dataset too: a changed default is a new run,
        # an edited comment is not (the files count by their parsed values)
        package = [properties_dir() / "overall.yaml", properties_dir() / "model" / f"{self.model}.yaml",
                   properties_dir() / "dataset" / f"{self.dataset}.yaml"]
        payload = {"model": self.model, "dataset": self.dataset,
                   "overrides": self.overrides, "shared": self.shared,
                   "config_files": [load_yaml(Path(f).read_text()) for f in self.config_files],
                   "package": [load_yaml(f.read_text()) if f.is_file() else None for f in package]}
        return hashlib.sha1(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]

    def code_key(self) -> str:
        """The code that defines the run (:func:`code_key`)."""
        return code_key(self.model)

    def stem(self, work: Path) -> Path:
        """Where this run is kept, ``<label>-<key>-<code key>-seed<seed>``: a finished run of the
        same key, code and seed under another label (figure 2's m 3 / dT 16 point is table 2's
        full row), else a new name from the label."""
        folder = work / self.dataset
        done = sorted(folder.glob(f"*-{self.key()}-{self.code_key()}-seed{self.seed}.results.json"))
        if done:
            return Path(str(done[0]).removesuffix(".results.json"))
        slug = "".join(c if c.isalnum() else "_" for c in self.label).strip("_").lower()
        return folder / f"{slug}-{self.key()}-{self.code_key()}-seed{self.seed}"

    def stale(self, work: Path) -> list[Path]:
        """Results files of this run (same key and seed) finished by other code: another code
        key, or none (the names before runs had one, ``<label>-<key>-seed<seed>``)."""
        folder = work / self.dataset
        current = results_path(self.stem(work))
        named = [*folder.glob(f"*-{self.key()}-seed{self.seed}.results.json"),
                 *folder.glob(f"*-{self.key()}-*-seed{self.seed}.results.json")]
        return sorted({path for path in named if path != current})


def results_path(stem: Path) -> Path:
    return Path(f"{stem}.results.json")


def new_session_users(test_data: Any, config: Any) -> list[str]:
    """Tokens of the test users whose target opens a new session (:func:`session_opens`: its
    session id differs from the last history item's; without a session field, the time gap
    exceeds ``session_gap``), once per such target."""
    dataset = test_data._dataset
    uid_field = dataset.uid_field
    users = []
    for interaction, *_ in test_data:
        opens = session_opens(interaction, config)
        tokens = dataset.id2token(uid_field, interaction[uid_field].numpy())
        users += [str(t) for t, flag in zip(tokens, opens) if flag]
    return users


def shared_recipe(dataset: str, config_files: list[str], base: dict[str, Any]) -> tuple[dict, dict]:
    """The training recipe of SessionBERT4Rec (its yaml, or a preset among ``config_files``)
    for every row: its batch and ``epoch_steps`` (in the per-user and window regimes, the batch
    ``batches_per_epoch`` gives on this dataset and the steps of one pass over its rows), so that
    rows whose models train on other rows make the same steps of the same batch size between
    validations. Also returns the dataset's size and SessionBERT4Rec's sizes, for the table's
    notes."""
    config = make_config("SessionBERT4Rec", dataset, config_files or None, base)
    data = create_dataset(config)
    users = data.user_num - 1
    rows = len(data.build()[0])  # sets train_batch_size in the per-user and window regimes
    batch = int(config["train_batch_size"])
    per_row = config["train_regime"] in ("per_user", "window")
    recipe = {key: config[key] for key in TRAIN_KEYS}
    # prefix regime: RecBole's rows, epochs of the config's epoch_steps (0: one whole pass)
    steps = math.ceil(rows / batch) if per_row else int(config["epoch_steps"] or 0)
    recipe.update(train_batch_size=batch, batches_per_epoch=0, epoch_steps=steps)
    facts = {"users": users, "train_rows": rows, "items": data.item_num - 1, "interactions": data.inter_num,
             **{key: config[key] for key in SIZE_KEYS}}
    return recipe, facts


def trained_on(device: Any) -> str:
    """Where a run trained, for the tables: ``cpu`` or ``cuda (<GPU name>)`` (a table may join runs
    trained on different machines, resumed from one work folder)."""
    device = torch.device(device)
    return f"cuda ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else device.type


def train_and_evaluate(spec: RunSpec, stem: Path, keep_checkpoint: bool = False) -> dict[str, Any]:
    """Train ``spec`` and write ``<stem>.results.json`` (and ``.md``); returns the result. The
    best model is kept as ``<stem>.pth`` with ``keep_checkpoint``, else deleted.

    The one place that uses the package's training API (see the module docstring)."""
    run_cpu = time.process_time()
    checkpoints = Path(f"{stem}.checkpoint")
    config = make_config(spec.model, spec.dataset, list(spec.config_files) or None, {
        **spec.shared, **spec.overrides, "seed": spec.seed, "checkpoint_dir": str(checkpoints),
        "state": "WARNING", "show_progress": False, "eval_protocols": list(PROTOCOLS),
    })
    built = build(config, trainer=False)
    dataset, train_data, valid_data, test_data, model = (
        built.dataset, built.train_data, built.valid_data, built.test_data, built.model)
    # the model's own trainer class with selection on valid_protocol, for every row
    trainer = with_protocol_validation(trainer_for(config))(config, model)
    trainer.protocol_dataset = dataset

    curve: list[tuple[int, float]] = []
    start, start_cpu = time.perf_counter(), time.process_time()
    trainer.fit(train_data, valid_data, verbose=False, saved=True, show_progress=False,
                callback_fn=lambda epoch, score: curve.append((epoch + 1, float(score))))
    # CPU time of this process (all its threads): what the run costs on an idle machine,
    # whatever else shares the cores
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
    test_result = trainer.evaluate(test_data, load_best_model=True, show_progress=False)
    details = {split: evaluate_protocols_detailed(trainer.model, data, config, dataset=dataset)
               for split, data in (("valid", valid_data), ("test", test_data))}
    best = max(curve, key=lambda point: point[1]) if curve else (0, float("nan"))
    result = {
        "label": spec.label, "key": spec.key(), "code": spec.code_key(), "overrides": spec.overrides, "shared": spec.shared,
        "best_valid_score": trainer.best_valid_score, "best_valid_result": trainer.best_valid_result,
        "test_result": test_result, "n_params": count_parameters(model),
        "valid_protocols": details["valid"].metrics, "test_protocols": details["test"].metrics,
        "train_seconds": round(seconds, 2), "train_cpu_seconds": round(cpu_seconds, 2), "epochs_run": curve[-1][0] if curve else 0,
        "best_epoch": best[0], "valid_curve": curve, "train_batch_size": config["train_batch_size"],
        "new_session_users": new_session_users(test_data, config),
        "n_test_users": len(details["test"].users),
        # the whole run (data, training, evaluation): sums to the command's cost on idle cores
        "run_cpu_seconds": round(time.process_time() - run_cpu, 2),
        "device": trained_on(config["device"]),
        "environment": environment(config["device"]),
    }
    if keep_checkpoint:
        result["model_file"] = str(Path(f"{stem}.pth"))
        os.replace(trainer.saved_model_file, result["model_file"])
    save_run_results(result, config, details, stem)
    shutil.rmtree(checkpoints, ignore_errors=True)
    return result


def _worker_init(threads: int, workdir: str) -> None:
    # RecBole 1.2.1 on pandas 2 / torch 2 warns on every dataset and trainer it builds
    warnings.simplefilter("ignore", FutureWarning)
    warnings.filterwarnings("ignore", module="recbole")
    torch.set_num_threads(threads)
    os.makedirs(workdir, exist_ok=True)
    os.chdir(workdir)  # RecBole's trainer writes ./log_tensorboard


def _run(spec: RunSpec, stem: str, keep_checkpoint: bool) -> dict[str, Any]:
    done = results_path(Path(stem))
    # another command on the same --work may have finished it meanwhile
    result = load_run(done) if done.is_file() else train_and_evaluate(spec, Path(stem), keep_checkpoint)
    return {k: result.get(k) for k in ("label", "train_seconds", "run_cpu_seconds", "best_epoch", "epochs_run",
                                       "test_protocols")}


def unfinished(specs: list[RunSpec], work: Path) -> list[RunSpec]:
    """The specs whose results file of the current code is missing in ``work``: the runs
    :func:`run_all` trains (a run finished by other code is one of them: :meth:`RunSpec.stale`)."""
    work = Path(work).resolve()
    return [spec for spec in specs if not results_path(spec.stem(work)).is_file()]


def run_all(specs: list[RunSpec], work: Path, jobs: int = 1, threads: int = 1,
            progress: Callable[[str], None] = print, keep_checkpoints: bool = False) -> list[Path]:
    """Train every spec whose results file is missing (in ``jobs`` worker processes of
    ``threads`` torch threads each); return the specs' results files, in order.

    A run finished by other code (the package, RecBole or the model changed since:
    :func:`code_key`) is stale: it is trained again and said so, and its file is left where it
    is, never read into the tables. Someone resuming a reproduction expects its tables to be of
    the code they run now; reusing old runs would mix code in one table silently, and refusing
    would stop the command for a change it can make right by training."""
    work = Path(work).resolve()
    paths = [results_path(spec.stem(work)) for spec in specs]
    todo = unfinished(specs, work)
    done = len(specs) - len(todo)
    if done:
        progress(f"{done} of {len(specs)} runs already finished in {work}: not trained again")
    stale = [spec for spec in todo if spec.stale(work)]
    if stale:
        progress(f"{len(stale)} of {len(specs)} runs were finished in {work} by other code (this package, RecBole "
                 f"or the model changed since): stale, trained again (their old files are kept, unused): "
                 + ", ".join(sorted({f"{spec.label} seed {spec.seed}" for spec in stale})))
    if not todo:
        return paths
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"), initializer=_worker_init,
                             initargs=(threads, str(work / "_cwd"))) as pool:
        futures = {pool.submit(_run, spec, str(spec.stem(work)), keep_checkpoints): spec for spec in todo}
        for number, future in enumerate(as_completed(futures), start=done + 1):
            spec = futures[future]
            summary = future.result()
            full = summary["test_protocols"].get("full/ndcg@10", float("nan"))
            elapsed = (time.perf_counter() - started) / 60
            progress(f"[{number}/{len(specs)}] {spec.label}, seed {spec.seed}: test N@10 all {full:.4f}, "
                     f"best epoch {summary['best_epoch']}/{summary['epochs_run']}, "
                     f"{summary['train_seconds']:.0f} s ({elapsed:.1f} min so far)")
    return paths


def load_run(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
