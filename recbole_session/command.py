"""The training command line: ``python run_recbole_session.py --model=M --dataset=D
[--config_files "a.yaml b.yaml"] [--seeds=1,2,3] [--nproc=N ...] [--key=value ...]``.

Any ``--key=value`` that is not an option below overrides a RecBole config key. Errors are one
line with exit code 2; Ctrl+C during training names the best checkpoint saved so far and the
command that evaluates it, with exit code 130.
"""

from __future__ import annotations

import shlex
import sys

from recbole_session.cli import EXIT_INTERRUPTED, ArgumentParser, UsageError, fail, parse_overrides
from recbole_session.distributed import DISTRIBUTED_DEFAULTS, run
from recbole_session.evaluation.results import format_mean_std
from recbole_session.seeds import parse_seeds, run_seeds
from recbole_session.training import TrainingInterrupted

PROG = "run_recbole_session.py"


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog=PROG,
        description="Train and test a recbole-session or RecBole model; any other --key=value "
        "overrides a RecBole config key (e.g. --epochs=1 --train_batch_size=512).",
    )
    parser.add_argument("--model", "-m", default="SessionBERT4Rec", help="model name (ours or RecBole's)")
    parser.add_argument("--dataset", "-d", default="ml-100k", help="dataset name (folder under data_path)")
    parser.add_argument("--config_files", default=None, help="space-separated yaml config files")
    parser.add_argument("--seeds", default=None,
                        help="comma-separated seeds (e.g. 1,2,3): one run per seed, then mean ± std")
    for key, default in DISTRIBUTED_DEFAULTS.items():
        parser.add_argument(f"--{key}", type=type(default), default=default,
                            help="RecBole distributed option" if key != "nproc" else "processes (GPUs) to train on")
    return parser


def interrupted_message(err: KeyboardInterrupt) -> str:
    """The one line printed on Ctrl+C."""
    model_file = getattr(err, "model_file", None)
    if model_file:
        return (f"interrupted: the best checkpoint so far is {model_file}; evaluate it with: "
                f"python -m recbole_session.evaluate {shlex.quote(model_file)}")
    if isinstance(err, TrainingInterrupted):
        return "interrupted before the first validation: no checkpoint was saved"
    return "interrupted before training started: nothing was saved"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args, rest = build_parser().parse_known_args(argv)
    try:
        overrides = parse_overrides(rest)
        config_files = args.config_files.split() if args.config_files else None
        if args.seeds is not None:
            if args.nproc != 1 or args.world_size > 0:
                raise UsageError("--seeds runs in one process; leave out --nproc / --world_size")
            result = run_seeds(args.model, args.dataset, parse_seeds(args.seeds), config_files, overrides)
            print(format_mean_std(result))
            print(f"results: {result['results_file']}")
            return 0
        run(args.model, args.dataset, config_files, overrides,
            **{key: getattr(args, key) for key in DISTRIBUTED_DEFAULTS})
    except UsageError as err:
        return fail(PROG, err)
    except KeyboardInterrupt as err:
        print(f"{PROG}: {interrupted_message(err)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0
