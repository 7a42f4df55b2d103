"""`cambench-qr ...`: a thin command line over the rooms. Each subcommand parses, calls one room, reports.

Errors a user can fix (bad config, bad path, bad option) end as one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys

from . import __version__


class UsageError(Exception):
    """A problem with the user's input; printed as one line, exit status 2."""


# Each room's subcommand is one `_add_<name>(sub)` function below that sets `handler`; list it here.
COMMANDS: tuple = ()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cambench-qr", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"cambench-qr {__version__}")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in COMMANDS:
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (UsageError, ValueError, FileNotFoundError, FileExistsError, PermissionError) as exc:
        print(f"cambench-qr {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
