"""What every command line of the package shares: the one-line error (:class:`UsageError`, exit
code 2), RecBole-style ``--key=value`` overrides parsed as literals, "did you mean" suggestions,
and hiding ``sys.argv`` from RecBole's Config. Imports nothing heavy (no torch, no RecBole)."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any

from recbole_session.literals import parse_literal

# exit status of a command stopped by Ctrl+C (as a shell reports SIGINT)
EXIT_INTERRUPTED = 130
EXIT_USAGE = 2
# exit status of a command stopped by SIGTERM (as a shell reports it)
EXIT_TERMINATED = 143
# a command that ran and failed at its work (a search whose every trial failed): not bad input
EXIT_FAILED = 1


class UsageError(ValueError):
    """A bad name, file or value given by the user: reported as one line, exit code 2 (a
    ValueError, as RecBole raises for a bad config value)."""


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """The choice closest to ``word``: the same name in another case first, else the closest
    spelling (``None`` when nothing is close)."""
    choices = sorted(set(choices))
    same = [c for c in choices if c.lower() == word.lower()]
    if same:
        return same[0]
    lowered = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[close[0]] if close else None


def suggestion(word: str, choices: Iterable[str]) -> str:
    """``": did you mean X?"`` or the empty string."""
    best = did_you_mean(word, choices)
    return f": did you mean {best}?" if best is not None else ""


class Renamed(argparse.Action):
    """An option's old spelling (:func:`add_renamed`): still read, with a one-line notice."""

    def __init__(self, option_strings: list[str], dest: str, new: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.new = new

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"{parser.prog}: {option_string} is now spelled {self.new} (the old spelling still works)",
              file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_renamed(parser: argparse.ArgumentParser, new: str, old: str, **kwargs: Any) -> None:
    """Option ``new`` (one spelling per concept across the commands, RecBole's where RecBole has
    one), and its old spelling ``old``, hidden from the help, read into the same place."""
    action = parser.add_argument(new, **kwargs)
    parser.add_argument(old, dest=action.dest, action=Renamed, new=new, default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS, **({"type": kwargs["type"]} if "type" in kwargs else {}))


@contextlib.contextmanager
def hidden_argv() -> Iterator[None]:
    """RecBole's ``Config`` reads ``--key=value`` from ``sys.argv`` by itself. The API and the
    command lines pass overrides explicitly, so hide the process arguments (a test runner's, or
    a command's own flags) while a Config is built."""
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        yield
    finally:
        sys.argv = saved


def parse_overrides(args: list[str]) -> dict[str, Any]:
    """RecBole-style ``--key=value`` overrides; values are typed as literals (never evaluated):
    ``--epochs=5`` is an int, ``--eval_args="{'mode': 'full'}"`` a dict, ``--x=abc`` a string."""
    overrides: dict[str, Any] = {}
    for arg in args:
        key, sep, value = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        if sep and "-" in key and key.replace("-", "_").isidentifier():
            underscored = key.replace("-", "_")
            raise UsageError(f"bad override '{arg}': config keys are written with underscores, "
                             f"the key is {underscored} (--{underscored}={value})")
        if not sep or not key.isidentifier():
            raise UsageError(f"bad override '{arg}': write overrides as --key=value")
        overrides[key] = parse_literal(value)
    return overrides


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, except that it never takes ``--seed`` for an abbreviation of
    ``--seeds`` (the options it does not know are RecBole config keys) and that its errors are
    one line, like every other error of the package."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def fail(prog: str, err: BaseException | str) -> int:
    """Print the one-line error of a command and return its exit code (2)."""
    text = " ".join(str(err).split())  # one line, whatever the message held
    print(f"{prog}: error: {text}", file=sys.stderr)
    return EXIT_USAGE


def exit_with(code: int) -> None:
    """A command's exit with ``code``, from its ``__main__``. After a stop by a signal, CPython
    may still hold its "unhandled KeyboardInterrupt" flag (set where code the interrupt crossed
    ran through ``PyRun_*``, about 1 stop in 20 of the converter): it then ignores the code and
    kills itself with SIGINT (exit -2), although the command caught the interrupt and cleaned
    up. ``os._exit`` keeps the code; the work is over and the streams are flushed here."""
    if code in (EXIT_INTERRUPTED, EXIT_TERMINATED):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
