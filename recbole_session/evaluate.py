"""Re-evaluate a saved checkpoint under any protocols, without training.

    python -m recbole_session.evaluate CHECKPOINT [--protocols random100,popular100,full]
        [--split valid,test] [--data_path DIR] [--eval_negatives_seed N] [--out STEM]

The checkpoint (``saved/<Model>-<time>.pth`` of any run) holds its Config as plain values: it
is read with torch's weights-only unpickler (nothing in the file can run code, see
:mod:`recbole_session.checkpoint`), the Config is rebuilt from those values, the dataset and
model are built as in training (:func:`recbole_session.build.from_checkpoint`: the model on the
train split, so a model that learns from its training data is rebuilt exactly), the weights
are loaded and the model is evaluated on each split under each protocol. The data must be
where the run had it, or under ``--data_path`` (the folder holding ``<dataset>/``): nothing is
converted, downloaded or created at a path taken from the file. Results are printed and saved
as ``<STEM>.results.json`` / ``.md`` (default: next to the checkpoint); both paths are checked
before anything is loaded, so that a folder that cannot be written fails at once, not after the
evaluation.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from recbole_session.build import Built, count_parameters, from_checkpoint
from recbole_session.checkpoint import CheckpointError
from recbole_session.cli import EXIT_INTERRUPTED, ArgumentParser, UsageError, exit_with, fail
from recbole_session.evaluation import evaluate_protocols_detailed, parse_protocols
from recbole_session.evaluation.candidates import MAX_NEGATIVES_SEED
from recbole_session.evaluation.results import save_run_results
from recbole_session.files import check_output, write_error
from recbole_session.literals import short

PROG = "python -m recbole_session.evaluate"
SPLITS = ("valid", "test")
RESULT_SUFFIXES = (".results.json", ".results.md")  # what save_run_results writes after the stem


def load_checkpoint(path: str | Path, data_path: str | None = None,
                    overrides: dict[str, Any] | None = None) -> tuple[Any, Any, Any, Any, Any]:
    """``(config, model, dataset, valid_data, test_data)`` from a checkpoint (see
    :func:`recbole_session.build.from_checkpoint`, which returns all of it)."""
    built: Built = from_checkpoint(path, data_path, overrides)
    return built.config, built.model, built.dataset, built.valid_data, built.test_data


def reevaluate(path: str | Path, protocols: Any, splits: tuple[str, ...] = ("valid", "test"),
               data_path: str | None = None, seed: int | None = None,
               out: str | Path | None = None) -> dict[str, Any]:
    """Evaluate a checkpoint; returns ``{split}_protocols`` dicts, ``n_params`` and
    ``results_file``. Every argument is checked (type, value, the output paths) before anything
    is loaded: a :class:`~recbole_session.cli.UsageError` in one line."""
    _check_arguments(path, protocols, splits, data_path, seed, out)
    plan = parse_protocols(protocols)  # fail on a bad name before loading anything
    stem = Path(out) if out is not None else Path(path).with_suffix("")
    if Path(path).is_file():  # else loading the checkpoint says what is wrong with it
        _check_outputs(stem, given=out is not None)
    overrides = {"eval_protocols": protocols}
    if seed is not None:
        overrides["eval_negatives_seed"] = seed
    built = from_checkpoint(path, data_path, overrides)
    _check_candidates(plan, built)
    loaders = {"valid": built.valid_data, "test": built.test_data}
    details = {split: evaluate_protocols_detailed(built.model, loaders[split], built.config, dataset=built.dataset)
               for split in splits}
    result: dict[str, Any] = {f"{split}_protocols": d.metrics for split, d in details.items()}
    result["n_params"] = count_parameters(built.model)
    result["model_file"] = str(path)
    try:
        result["results_file"] = str(save_run_results(result, built.config, details, stem))
    except OSError as err:  # a full disk: the checks above cannot see it coming
        raise write_error(f"{stem}.results.json", err, "--out") from None
    return result


def _check_arguments(path: Any, protocols: Any, splits: Any, data_path: Any, seed: Any, out: Any) -> None:
    """The types and values of :func:`reevaluate`'s arguments, at the door (a wrong type would
    otherwise be a TypeError deep inside RecBole, after the dataset was loaded)."""
    where = "reevaluate"
    if not isinstance(path, (str, os.PathLike)):
        raise UsageError(f"{where}: path expects a checkpoint path (str or Path), got {type(path).__name__}")
    for name, value in (("data_path", data_path), ("out", out)):
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise UsageError(f"{where}: {name} expects a path (str or Path) or None, got {type(value).__name__}")
    if not isinstance(protocols, (str, list, tuple)) or not all(isinstance(p, str) for p in
                                                                ([] if isinstance(protocols, str) else protocols)):
        raise UsageError(f"{where}: protocols expects a comma-separated string or a list of names such as "
                         f"'random100', got {short(protocols)}")
    if isinstance(splits, str) or not isinstance(splits, (list, tuple)) or not splits \
            or any(s not in SPLITS for s in splits):
        raise UsageError(f"{where}: splits expects a tuple of 'valid' and/or 'test', got {short(splits)}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_NEGATIVES_SEED):
        raise UsageError(f"--eval_negatives_seed expects an integer from 0 to {MAX_NEGATIVES_SEED} (2**32 - 1), "
                         f"got {short(seed)}")


def _check_outputs(stem: Path, given: bool) -> None:
    """Both results files can be written (a folder in the way, a folder without permission)."""
    option = "--out" if given else "results file"
    if given and os.path.isdir(stem):
        raise UsageError(f"--out {stem}: is a folder; --out takes a stem (e.g. {stem / 'run'} writes "
                         f"{stem / 'run'}{RESULT_SUFFIXES[0]})")
    for suffix in RESULT_SUFFIXES:
        check_output(f"{stem}{suffix}", option,
                     hint="choose a writable folder" + ("" if given else " with --out STEM"))


def _check_candidates(plan: list[Any], built: Built) -> None:
    """A sampled protocol needs N items besides the target: refused at once when the dataset does
    not have them, instead of partway through the evaluation."""
    items = built.dataset.item_num - 1  # RecBole's id 0 is padding
    for protocol in plan:
        if protocol.n > items - 1:
            raise UsageError(f"--protocols {protocol.name}: {protocol.n} negatives, but dataset "
                             f"'{built.config['dataset']}' has {items} items (at most {items - 1} negatives "
                             "besides the target)")


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog=PROG, description="Re-evaluate a saved checkpoint under any protocols.")
    parser.add_argument("checkpoint", help="a .pth file saved by a run")
    parser.add_argument("--protocols", default="random100,popular100,full",
                        help="comma-separated: full, random<N>, popular<N>, uni<N>, pop<N>")
    parser.add_argument("--split", default="valid,test", help="valid, test or valid,test")
    parser.add_argument("--data_path", default=None, help="folder holding <dataset>/ (default: the run's)")
    parser.add_argument("--eval_negatives_seed", type=int, default=None,
                        help=f"0 to {MAX_NEGATIVES_SEED} (default: the run's)")
    parser.add_argument("--out", default=None, help="results stem (default: the checkpoint's path)")
    args = parser.parse_args(argv)
    splits = tuple(dict.fromkeys(s.strip() for s in args.split.split(",") if s.strip()))  # each once
    try:
        if not splits or any(s not in SPLITS for s in splits):
            raise UsageError(f"--split must name valid and/or test, got {short(args.split)}")
        try:
            protocols = [p.name for p in parse_protocols(args.protocols)]
        except ValueError as err:
            raise UsageError(f"--protocols: {err}") from None
        result = reevaluate(args.checkpoint, protocols, splits, args.data_path,
                            args.eval_negatives_seed, args.out)
    except (UsageError, CheckpointError) as err:
        return fail(PROG, err)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted: no results were written", file=sys.stderr)
        return EXIT_INTERRUPTED
    for split in splits:
        for key, value in result[f"{split}_protocols"].items():
            print(f"{split}/{key}\t{value:.4f}")
    print(f"n_params\t{result['n_params']}")
    print(f"results: {result['results_file']}")
    return 0


if __name__ == "__main__":
    exit_with(main())
