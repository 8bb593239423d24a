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
as ``<STEM>.results.json`` / ``.md`` (default: next to the checkpoint).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from recbole_session.build import Built, count_parameters, from_checkpoint
from recbole_session.checkpoint import CheckpointError
from recbole_session.cli import EXIT_INTERRUPTED, ArgumentParser, UsageError, fail
from recbole_session.evaluation import evaluate_protocols_detailed, parse_protocols
from recbole_session.evaluation.results import save_run_results

PROG = "python -m recbole_session.evaluate"


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
    ``results_file``."""
    parse_protocols(protocols)  # fail on a bad name before loading anything
    overrides = {"eval_protocols": protocols}
    if seed is not None:
        overrides["eval_negatives_seed"] = seed
    built = from_checkpoint(path, data_path, overrides)
    loaders = {"valid": built.valid_data, "test": built.test_data}
    details = {split: evaluate_protocols_detailed(built.model, loaders[split], built.config, dataset=built.dataset)
               for split in splits}
    result: dict[str, Any] = {f"{split}_protocols": d.metrics for split, d in details.items()}
    result["n_params"] = count_parameters(built.model)
    result["model_file"] = str(path)
    stem = Path(out) if out is not None else Path(path).with_suffix("")
    result["results_file"] = str(save_run_results(result, built.config, details, stem))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog=PROG, description="Re-evaluate a saved checkpoint under any protocols.")
    parser.add_argument("checkpoint", help="a .pth file saved by a run")
    parser.add_argument("--protocols", default="random100,popular100,full",
                        help="comma-separated: full, random<N>, popular<N>, uni<N>, pop<N>")
    parser.add_argument("--split", default="valid,test", help="valid, test or valid,test")
    parser.add_argument("--data_path", default=None, help="folder holding <dataset>/ (default: the run's)")
    parser.add_argument("--eval_negatives_seed", type=int, default=None, help="default: the run's")
    parser.add_argument("--out", default=None, help="results stem (default: the checkpoint's path)")
    args = parser.parse_args(argv)
    splits = tuple(s.strip() for s in args.split.split(",") if s.strip())
    try:
        if not splits or any(s not in ("valid", "test") for s in splits):
            raise UsageError(f"--split must name valid and/or test, got '{args.split}'")
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
    sys.exit(main())
