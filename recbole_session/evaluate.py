"""Re-evaluate a saved checkpoint under any protocols, without training.

    python -m recbole_session.evaluate CHECKPOINT [--protocols random100,popular100,full]
        [--split valid,test] [--data_path DIR] [--eval_negatives_seed N] [--out STEM]

The checkpoint (``saved/<Model>-<time>.pth`` of any run) holds its Config: the dataset is
rebuilt from it exactly as RecBole's ``load_data_and_model`` does (``--data_path`` points it at
the atomic files when the run was made from another folder), the weights are loaded, and the
model is evaluated on each split under each protocol. Results are printed and saved as
``<STEM>.results.json`` / ``.md`` (default: next to the checkpoint).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import torch
from recbole.data import data_preparation
from recbole.utils import init_seed

import recbole_session  # noqa: F401  (shims and registration)
from recbole_session.evaluation import evaluate_protocols_detailed, parse_protocols
from recbole_session.evaluation.results import save_run_results
from recbole_session.utils import create_dataset, get_model


def load_checkpoint(path: str | Path, data_path: str | None = None,
                    overrides: dict[str, Any] | None = None) -> tuple[Any, Any, Any, Any, Any]:
    """``(config, model, dataset, valid_data, test_data)`` from a RecBole checkpoint, as
    ``recbole.quick_start.load_data_and_model`` builds them, on CPU unless CUDA is there."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    checkpoint = torch.load(path, map_location=device)
    if not isinstance(checkpoint, dict) or "config" not in checkpoint or "state_dict" not in checkpoint:
        raise ValueError(f"{path}: field 'config' or 'state_dict' missing: not a RecBole checkpoint")
    config = checkpoint["config"]
    # an unpickled Config skips the numpy aliases RecBole's metrics (np.float) rely on
    config.compatibility_settings()
    if data_path is not None:
        config["data_path"] = os.path.join(data_path, config["dataset"])
    config["device"] = torch.device(device)
    config["use_gpu"] = device == "cuda"
    for key, value in (overrides or {}).items():
        config[key] = value
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"], config["reproducibility"])
    # built on the train split, as in training and in RecBole's load_data_and_model: a model may
    # size layers from its training rows (ASARS's dwell bins), which valid's rows would not match
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    model.load_state_dict(checkpoint["state_dict"])
    model.load_other_parameter(checkpoint.get("other_parameter"))
    return config, model, dataset, valid_data, test_data


def reevaluate(path: str | Path, protocols: Any, splits: tuple[str, ...] = ("valid", "test"),
               data_path: str | None = None, seed: int | None = None,
               out: str | Path | None = None) -> dict[str, Any]:
    """Evaluate a checkpoint; returns ``{split}_protocols`` dicts, ``n_params`` and
    ``results_file``."""
    parse_protocols(protocols)  # fail on a bad name before loading anything
    overrides = {"eval_protocols": protocols}
    if seed is not None:
        overrides["eval_negatives_seed"] = seed
    config, model, dataset, valid_data, test_data = load_checkpoint(path, data_path, overrides)
    loaders = {"valid": valid_data, "test": test_data}
    details = {split: evaluate_protocols_detailed(model, loaders[split], config, dataset=dataset) for split in splits}
    result: dict[str, Any] = {f"{split}_protocols": d.metrics for split, d in details.items()}
    result["n_params"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    result["model_file"] = str(path)
    stem = Path(out) if out is not None else Path(path).with_suffix("")
    result["results_file"] = str(save_run_results(result, config, details, stem))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recbole_session.evaluate",
                                     description="Re-evaluate a saved checkpoint under any protocols.")
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
            raise ValueError(f"--split must name valid and/or test, got '{args.split}'")
        protocols = [p.name for p in parse_protocols(args.protocols)]
        result = reevaluate(args.checkpoint, protocols, splits, args.data_path,
                            args.eval_negatives_seed, args.out)
    except (FileNotFoundError, ValueError) as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2
    for split in splits:
        for key, value in result[f"{split}_protocols"].items():
            print(f"{split}/{key}\t{value:.4f}")
    print(f"n_params\t{result['n_params']}")
    print(f"results: {result['results_file']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
