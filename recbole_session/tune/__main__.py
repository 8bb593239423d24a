"""``python -m recbole_session.tune --model=M --dataset=D [--space FILE] ... [--key=value ...]``

Any ``--key=value`` that is not an option below is a RecBole config key fixed for every
trial (``--epochs=10 --train_batch_size=512``).
"""

from __future__ import annotations

import sys

from recbole_session.cli import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    ArgumentParser,
    UsageError,
    add_renamed,
    exit_with,
    fail,
    parse_overrides,
)
from recbole_session.tune.report import ERROR
from recbole_session.tune.search import tune_model
from recbole_session.tune.settings import (
    ASHA_GRACE_PERIOD,
    ASHA_REDUCTION_FACTOR,
    RANGES,
    SCHEDULERS,
)
from recbole_session.tune.trainable import SCORE

PROG = "python -m recbole_session.tune"


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog=PROG,
        description="Ray Tune search of a recbole-session or RecBole model. Any other "
        "--key=value is a RecBole config key fixed for every trial (e.g. --epochs=10).",
    )
    parser.add_argument("--model", "-m", help="model name (ours or RecBole's)")
    parser.add_argument("--dataset", "-d", help="dataset name (folder under data_path)")
    parser.add_argument("--space", help="search-space yaml (default properties/tune/<model>.yaml)")
    parser.add_argument("--num-samples", type=RANGES["num_samples"].argparse_type(), default=1,
                        help="samples of the space (a grid is run completely for each sample)")
    parser.add_argument("--scheduler", choices=SCHEDULERS, default="asha",
                        help="asha stops bad trials early; fifo runs every trial to the end")
    parser.add_argument("--grace-period", type=RANGES["grace_period"].argparse_type(), default=ASHA_GRACE_PERIOD,
                        help="ASHA: evaluations every trial gets before it can be stopped")
    parser.add_argument("--reduction-factor", type=RANGES["reduction_factor"].argparse_type(),
                        default=ASHA_REDUCTION_FACTOR,
                        help="ASHA: keep 1/factor of the trials at each rung")
    parser.add_argument("--cpus-per-trial", type=RANGES["cpus_per_trial"].argparse_type(), default=1,
                        help="CPUs per trial (torch threads)")
    parser.add_argument("--gpus-per-trial", type=RANGES["gpus_per_trial"].argparse_type(), default=0,
                        help="GPUs per trial (fractions share a GPU)")
    parser.add_argument("--max-concurrent", type=RANGES["max_concurrent"].argparse_type(), default=None,
                        help="at most this many trials at once")
    parser.add_argument("--address", default=None,
                        help="join a Ray cluster (auto, host:port or ray://host:port) instead of starting one")
    parser.add_argument("--num-cpus", type=RANGES["num_cpus"].argparse_type(), default=None,
                        help="CPUs of the local Ray instance (default all)")
    parser.add_argument("--config_files", default=None, help="space-separated RecBole yaml files for every trial")
    add_renamed(parser, "--out", "--output", dest="output", default=None,
                help="output folder (default ray_results/<model>-<dataset>)")
    parser.add_argument("--resume", action="store_true", help="continue the interrupted search in --out")
    parser.add_argument("--keep-checkpoints", action="store_true",
                        help="keep every trial's model file (default: deleted after its test)")
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2, 3), help="Ray Tune's verbosity")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    try:
        overrides = parse_overrides(rest)
        if args.resume and overrides:
            raise UsageError("--resume continues the search as it was started: give no --key=value overrides")
        if args.resume and args.output is None:
            raise UsageError("--resume needs the --out folder of the search to continue")
        result = tune_model(
            args.model, args.dataset, args.space,
            num_samples=args.num_samples, scheduler=args.scheduler,
            cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
            max_concurrent=args.max_concurrent, grace_period=args.grace_period,
            reduction_factor=args.reduction_factor, address=args.address, num_cpus=args.num_cpus,
            resume=args.resume, output=args.output,
            config_file_list=args.config_files.split() if args.config_files else None,
            config_dict=overrides, keep_checkpoints=args.keep_checkpoints, verbose=args.verbose,
        )
    except UsageError as err:
        return fail(PROG, err)
    counts = ", ".join(f"{n} {status}" for status, n in sorted(result.status_counts.items()))
    print(f"{len(result.rows)} trials ({counts}); outputs in {result.output}")
    if result.best is not None:
        best = result.rows[0]
        print(f"best trial {best['trial']}: {SCORE} {best[SCORE]}; retrain with "
              f"--config_files {result.output / 'best.yaml'}")
    if result.interrupted:
        print(f"the search was interrupted: continue it with {PROG} --resume --out {result.output}")
        return EXIT_INTERRUPTED
    failed = [row for row in result.rows if row["status"] == ERROR]
    if result.best is None and failed and len(failed) == len(result.rows):
        first = min(failed, key=lambda row: row["trial"])
        print(f"{PROG}: every trial failed; the first, {first['trial']}: {first['error']} "
              f"(traceback: {first['trial_dir'] or result.output}/error.txt)", file=sys.stderr)
        return EXIT_FAILED
    return 0


if __name__ == "__main__":
    exit_with(main())
