"""What every scaleplan command line shares: ``python -m fits``, ``planner``, ``verifier`` and ``api``.

- ``add_db_option``: the ``--db PATH`` option (else ``$SCALEPLAN_DB``, else ./scaleplan.db) on every command;
- number parsers for argparse ``type=``: ``number``, ``finite``, ``positive``, ``nonnegative``, ``count``,
  ``whole``;
- ``table``: rows of text in columns as wide as their widest cell;
- exit statuses: ``EXIT_OK`` 0, ``EXIT_FAILED`` 1 (it started but could not finish), ``EXIT_BAD_INPUT`` 2;
- ``Parser``: argparse whose errors are one line and exit 2;
- one dispatch idiom: a table ``COMMANDS = {"subcommand": function}`` bound onto the subparsers by
  ``bind_commands`` (each parsed Namespace carries its function as ``args.run``) and run by ``dispatch``,
  which is also the one place that turns a ``ScaleplanError`` into one line on stderr naming the field (and
  its flag) and an exit status: 2 for a refusal (BadInput, NotFound, Conflict, Busy, Unavailable), 1 for
  ``Failed``.

Imports only the standard library and fits.errors, so a command's ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

from fits.errors import BadInput, Failed, ScaleplanError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2

DB_HELP = "SQLite database file (default: $SCALEPLAN_DB, else ./scaleplan.db)"

Command = Callable[[argparse.Namespace], "int | None"]


class UsageError(BadInput):
    """Bad command-line input; the message is the one line printed, ``field`` the option when there is one."""

    prefix_field = False


class Parser(argparse.ArgumentParser):
    """argparse with errors on one line and exit status 2 (usage stays available through --help).

    ``error_format`` is the line's shape; a command line sets it on a subclass. "-1e21" is read as a (bad)
    value for its flag rather than as an unknown option, so the value's own check can name it.
    """

    error_format = "{prog}: error: {message}"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, self.error_format.format(prog=self.prog, message=message) + "\n")


def table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool]) -> str:
    """Columns as wide as their widest cell (header included), numbers (``right``) right-aligned."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [
        " ".join(f"{cell:>{w}}" if r else f"{cell:<{w}}" for cell, w, r in zip(line, widths, right, strict=True))
        for line in (header, *rows)
    ]
    return "\n".join(line.rstrip() for line in lines)


def add_db_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup, help: str = DB_HELP) -> None:
    """``--db PATH``; None means ``$SCALEPLAN_DB``, else ./scaleplan.db (resolved by fits.store.db_path)."""
    parser.add_argument("--db", metavar="PATH", default=None, help=help)


# ---------------------------------------------------------------------------------------- number parsers


def number(text: str) -> float:
    """A float; accepts 1e6, 2.5e7 and 1_000_000."""
    try:
        return float(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def finite(minimum: float | None = None, *, inclusive: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite float, above ``minimum`` (or at it, when ``inclusive``) if one is given."""
    relation = ">=" if inclusive else ">"

    def parse(text: str) -> float:
        value = number(text)
        ok = math.isfinite(value) and (
            minimum is None or (value >= minimum if inclusive else value > minimum)
        )
        if not ok:
            bound = "" if minimum is None else f" {relation} {minimum:g}"
            raise argparse.ArgumentTypeError(f"must be a finite number{bound}, got {text!r}")
        return value

    return parse


positive = finite(0.0)
nonnegative = finite(0.0, inclusive=True)


def whole(text: str) -> int:
    """An integer, also written as 1e3 or 1_000."""
    value = number(text)
    if not math.isfinite(value) or value != int(value):
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    return int(value)


def count(text: str) -> int:
    """A whole number >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


# ------------------------------------------------------------------------------------- errors and dispatch


def error_line(exc: BaseException, flags: Mapping[str, str] | None = None) -> str:
    """The one line that says what went wrong: ``field (--flag): message`` for a ScaleplanError with a field."""
    if isinstance(exc, ScaleplanError) and exc.field and exc.prefix_field:
        flag = (flags or {}).get(exc.field)
        text = f"{exc.field} ({flag}): {exc.message}" if flag else f"{exc.field}: {exc.message}"
    elif isinstance(exc, KeyError) and exc.args:
        text = str(exc.args[0])
    else:
        text = str(exc)
    return " ".join(text.split())


def exit_code(exc: BaseException) -> int:
    """1 for work that started but could not finish (``Failed``); 2 for every other refusal."""
    return EXIT_FAILED if isinstance(exc, Failed) else EXIT_BAD_INPUT


def report(exc: BaseException, *, prefix: str = "error: ", flags: Mapping[str, str] | None = None,
           quiet: bool = False) -> int:
    """Print ``exc`` as one line on stderr (unless ``quiet``) and return its exit status."""
    if not quiet:
        print(prefix + error_line(exc, flags), file=sys.stderr)
    return exit_code(exc)


def bind_commands(sub: argparse._SubParsersAction, commands: Mapping[str, Command]) -> None:
    """Give every subcommand its function from the table (as ``args.run``); each must have one."""
    missing = set(sub.choices) ^ set(commands)
    if missing:
        raise AssertionError(f"subcommands and their table differ: {sorted(missing)}")
    for name, parser in sub.choices.items():
        parser.set_defaults(run=commands[name])


def dispatch(
    args: argparse.Namespace,
    *,
    prefix: str = "error: ",
    flags: Mapping[str, str] | None = None,
    bad_input: tuple[type[BaseException], ...] = (FileNotFoundError,),
    quiet: bool = False,
) -> int:
    """Run ``args.run(args)`` (see bind_commands); a ScaleplanError (or one of ``bad_input``) becomes one line on
    stderr and its exit status, a closed pipe (output piped into head) a quiet 0."""
    try:
        return args.run(args) or EXIT_OK
    except ScaleplanError as exc:
        return report(exc, prefix=prefix, flags=flags, quiet=quiet)
    except bad_input as exc:
        report(exc, prefix=prefix, flags=flags, quiet=quiet)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            sys.stderr.close()
        return EXIT_OK
