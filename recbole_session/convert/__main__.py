"""``python -m recbole_session.convert DATASET [--raw PATH] [--out atomic_files] [--name OUT]
[--preset asars] [--session-gap SECONDS] [--force] [--download] [thresholds ...]``.

Bad input exits with code 2 and one line naming file, line and field (or the option); nothing is
written then. A file in the dataset folder that the converter did not write is replaced only with
``--force`` and never removed (``manifest.py``). Ctrl+C (exit 130) and SIGTERM (exit 143) remove what was being written.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

from recbole_session.cli import EXIT_INTERRUPTED, EXIT_TERMINATED, exit_with
from recbole_session.convert.download import MAX_UNPACK_RATIO
from recbole_session.convert.errors import ConvertError
from recbole_session.convert.params import preset_names
from recbole_session.convert.pipeline import (
    AUTO_CHUNK_BYTES,
    DEFAULT_CHUNK_ROWS,
    DEFAULT_OUT,
    convert,
)
from recbole_session.convert.registry import recipe_names

PROG = "python -m recbole_session.convert"
# (flag, parameter, type, help): thresholds that override properties/dataset/<recipe>.yaml
THRESHOLDS = [
    ("--session-gap", "session_gap", float, "seconds; a strictly greater gap starts a new session"),
    ("--session-gap-inclusive", "session_gap_inclusive", "bool", "a gap equal to --session-gap also splits"),
    ("--min-item-inter", "min_item_inter", int, "drop items with fewer rows"),
    ("--min-user-inter", "min_user_inter", int, "drop users with fewer rows"),
    ("--max-user-inter", "max_user_inter", int, "keep each user's newest rows (0 = all)"),
    ("--min-sessions", "min_sessions", int, "drop users with fewer sessions"),
    ("--min-session-length", "min_session_length", int, "shortest session kept"),
    ("--short-sessions", "short_sessions", str, "drop_user (reference) or drop_session (ASARS)"),
    ("--split-first", "split_first", "bool", "cut sessions on the raw rows before the filters"),
    ("--min-rating", "min_rating", float, "MovieLens: keep ratings >= this"),
    ("--min-item-support", "min_item_support", int, "session-based: drop items with fewer occurrences"),
    ("--test-days", "test_days", float, "session-based: days at the end that form the test set"),
    ("--valid-ratio", "valid_ratio", float, "session-based: share of training sessions for validation "
                                            "(0: the valid file is the test file, SR-GNN's setup)"),
    ("--max-prefix-length", "max_prefix_length", int, "session-based: items kept per prefix"),
    ("--train-fraction", "train_fraction", float, "session-based: most recent share of training examples"),
    ("--user-col", "user_col", str, "csv recipe: user column (name, or number from 0)"),
    ("--item-col", "item_col", str, "csv recipe: item column (name, or number from 0)"),
    ("--time-col", "time_col", str, "csv recipe: time column (name, or number from 0)"),
    ("--sep", "sep", str, "csv recipe: separator (one character, or 'tab')"),
    ("--user-field", "user_field", str, "atomic recipe: user field (name, or number from 0)"),
    ("--item-field", "item_field", str, "atomic recipe: item field (name, or number from 0)"),
    ("--time-field", "time_field", str, "atomic recipe: time field (name, or number from 0)"),
    ("--names", "names", str, "csv and atomic recipes, with --no-header: the column names, a,b,c,..."),
    ("--time-unit", "time_unit", str, "the unit of the raw times: s (default), ms or us"),
    ("--type-col", "type_col", str, "keep this column (e.g. the event type) as the token field event_type"),
    ("--weight", "weight", str, "keep this numeric column (e.g. a rating) as the float field weight"),
]
CHOICES = {"short_sessions": ["drop_user", "drop_session"], "time_unit": ["s", "ms", "us"]}
INTERRUPTED = {signal.SIGINT: EXIT_INTERRUPTED, signal.SIGTERM: EXIT_TERMINATED}


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the bad-input contract), exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, not {text!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog=PROG, allow_abbrev=False,
        description="Convert a raw dataset into session-aware RecBole atomic files "
                    "(session-based datasets: RecBole benchmark files of prefix examples).",
    )
    parser.add_argument("dataset", help=f"recipe: {', '.join(recipe_names())}")
    parser.add_argument("--raw", help="the raw file, or the folder holding it")
    parser.add_argument("--out", default=DEFAULT_OUT, help="output root (RecBole's data_path)")
    parser.add_argument("--name", help="output dataset name (default: the recipe's)")
    parser.add_argument("--preset", choices=preset_names(), help="threshold preset (presets.yaml)")
    parser.add_argument("--force", action="store_true",
                        help="convert again even if up to date, and replace files in the way that the converter "
                             "did not write (only the names it writes; it never removes another file)")
    parser.add_argument("--download", action="store_true",
                        help="download the public raw dump (into --raw, or OUT/.raw/DATASET)")
    parser.add_argument("--max-unpack-ratio", type=float, default=MAX_UNPACK_RATIO,
                        help="refuse an archive that unpacks to more than this many times its size")
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")
    parser.add_argument("--verbose", action="store_true",
                        help="also print the funnel: rows, users, items, sessions after each filter")
    parser.add_argument("--no-header", dest="header", action="store_const", const=False,
                        help="csv and atomic recipes: the file has no header line (name columns with "
                             "--names, or give them by number from 0)")
    parser.add_argument("--keep", action="append", metavar="COLUMN=VALUE[,VALUE]",
                        help="keep only rows whose COLUMN holds one of the values, before every filter "
                             "(repeatable; e.g. --keep behavior=pv,buy)")
    parser.add_argument("--chunk-rows", type=int, metavar="N",
                        help=f"session-aware recipes: read the raw file in blocks and sessionize users in groups "
                             f"of about N rows (low memory, the same output); 0: all at once (default: "
                             f"{DEFAULT_CHUNK_ROWS:,} for a raw file of {AUTO_CHUNK_BYTES >> 20} MiB or more, else 0)")
    for flag, key, kind, text in THRESHOLDS:
        parser.add_argument(flag, dest=key, type=_bool if kind == "bool" else kind, choices=CHOICES.get(key),
                            help=text)
    return parser


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[dict]:
    """While converting, SIGTERM unwinds like Ctrl+C (so staging folders are removed); the dict
    says which signal arrived."""
    got: dict = {"signal": signal.SIGINT}
    if threading.current_thread() is not threading.main_thread():
        yield got
        return

    def handler(signum, _frame):
        got["signal"] = signum
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield got
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.max_unpack_ratio > 0:
        parser.error(f"argument --max-unpack-ratio: expected a number > 0, not {args.max_unpack_ratio:g}")
    overrides = {key: getattr(args, key) for _flag, key, _kind, _text in THRESHOLDS}
    overrides.update(header=args.header, keep=args.keep)
    with sigterm_as_interrupt() as got:
        try:
            convert(args.dataset, raw=args.raw, out=args.out, force=args.force, name=args.name,
                    preset=args.preset, download=True if args.download else None,
                    verbose=not args.quiet, funnel=args.verbose and not args.quiet,
                    max_unpack_ratio=args.max_unpack_ratio, chunk_rows=args.chunk_rows, **overrides)
        except ConvertError as err:
            print(f"{PROG}: error: {err}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            name = "SIGTERM" if got["signal"] == signal.SIGTERM else "interrupted (Ctrl+C)"
            print(f"{PROG}: {name}: stopped; the unfinished output was removed", file=sys.stderr)
            return INTERRUPTED[got["signal"]]
    return 0


if __name__ == "__main__":
    exit_with(main())
