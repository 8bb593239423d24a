"""``python -m recbole_session.convert DATASET [--raw PATH] [--out atomic_files] [--name OUT]
[--preset asars] [--session-gap SECONDS] [--force] [--download] [thresholds ...]``.

Bad input exits with code 2 and one line naming file, line and field; nothing is written then.
"""

from __future__ import annotations

import argparse
import sys

from recbole_session.convert import DEFAULT_OUT, ConvertError, convert, preset_names, recipe_names

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
    ("--valid-ratio", "valid_ratio", float, "session-based: share of training sessions for validation"),
    ("--max-prefix-length", "max_prefix_length", int, "session-based: items kept per prefix"),
    ("--train-fraction", "train_fraction", float, "session-based: most recent share of training examples"),
    ("--user-col", "user_col", str, "csv recipe: user column"),
    ("--item-col", "item_col", str, "csv recipe: item column"),
    ("--time-col", "time_col", str, "csv recipe: time column (seconds)"),
    ("--sep", "sep", str, "csv recipe: separator (one character, or 'tab')"),
    ("--user-field", "user_field", str, "atomic recipe: user field"),
    ("--item-field", "item_field", str, "atomic recipe: item field"),
    ("--time-field", "time_field", str, "atomic recipe: time field"),
]


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, not {text!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m recbole_session.convert",
        description="Convert a raw dataset into session-aware RecBole atomic files "
                    "(session-based datasets: RecBole benchmark files of prefix examples).",
    )
    parser.add_argument("dataset", help=f"recipe: {', '.join(recipe_names())}")
    parser.add_argument("--raw", help="the raw file, or the folder holding it")
    parser.add_argument("--out", default=DEFAULT_OUT, help="output root (RecBole's data_path)")
    parser.add_argument("--name", help="output dataset name (default: the recipe's)")
    parser.add_argument("--preset", choices=preset_names(), help="threshold preset (presets.yaml)")
    parser.add_argument("--force", action="store_true", help="convert again even if up to date")
    parser.add_argument("--download", action="store_true",
                        help="download the public raw dump (into --raw, or OUT/.raw/DATASET)")
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")
    for flag, key, kind, text in THRESHOLDS:
        choices = ["drop_user", "drop_session"] if key == "short_sessions" else None
        parser.add_argument(flag, dest=key, type=_bool if kind == "bool" else kind, choices=choices, help=text)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    overrides = {key: getattr(args, key) for _flag, key, _kind, _text in THRESHOLDS}
    try:
        convert(args.dataset, raw=args.raw, out=args.out, force=args.force, name=args.name,
                preset=args.preset, download=True if args.download else None,
                verbose=not args.quiet, **overrides)
    except ConvertError as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
