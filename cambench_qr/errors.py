"""How a command line ends on bad input: one line on stderr naming the argument or file at fault, exit
status 2, and no output folder left behind that the failed command created and left empty.

Shared by ``cambench-qr`` (``cli.main``) and the ``python -m cambench_qr.harness.<name>`` entry points
(``harness.options.module_main``), so every command translates errors the same way. Standard library only.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

# Parsed arguments that name a folder a command writes into.
OUTPUT_ARGUMENTS = ("out", "hub_root", "work", "report")
MAX_MESSAGE = 400  # characters of an error message shown


class UsageError(Exception):
    """A problem with the user's input; printed as one line, exit status 2."""


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (``prog: error: message``) and exit status 2; its
    subcommand parsers are of the same class."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see --help)\n")


def parse_arguments(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace | int:
    """The parsed arguments, or the exit status when parsing ended the command (``--help``, ``--version``:
    0; a one-line parser error: 2), so that in-process callers get a status rather than SystemExit."""
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2


def one_line(text: str) -> str:
    """``text`` with its whitespace runs (newlines included) collapsed, cut to MAX_MESSAGE characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE - 3] + "..."


def user_message(exc: BaseException, args: argparse.Namespace) -> str | None:
    """The one-line message of an error the user can act on, or None for a defect (shown as a traceback).

    User errors: UsageError and ValueError (the package's own checks), OSError (a missing, unreadable or
    unwritable file, a full disk, an unreachable Hub) and safetensors' error on a truncated or corrupt
    weights file."""
    if isinstance(exc, (UsageError, ValueError)):
        return one_line(str(exc) or type(exc).__name__)
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc) or type(exc).__name__
        if exc.filename is not None:
            return one_line(f"{exc.filename}: {reason}")
        outputs = [str(getattr(args, name)) for name in OUTPUT_ARGUMENTS if getattr(args, name, None)]
        where = f" (while writing {', '.join(outputs)})" if outputs and exc.errno is not None else ""
        return one_line(f"{reason}{where}")
    if type(exc).__name__ == "SafetensorError":
        sources = [f"--{name.replace('_', '-')} {getattr(args, name)}" for name in ("model", "init_from")
                   if getattr(args, name, None)]
        return one_line(f"a .safetensors weights file{' of ' + ', '.join(sources) if sources else ''} is "
                        f"truncated or corrupt: {exc}")
    return None


def run_command(prog: str, args: argparse.Namespace, handler: Callable[[argparse.Namespace], object]) -> int:
    """``handler(args)`` -> its exit status (0 for None). A user error (``user_message``) prints one line
    ``prog: error: ...`` on stderr and returns 2; any failure first removes the output folders (and
    their parents) the command created and left without a file."""
    created = [folder for name in OUTPUT_ARGUMENTS if getattr(args, name, None)
               for folder in _missing_folders(Path(getattr(args, name)))]
    try:
        return int(handler(args) or 0)
    except BaseException as exc:
        for folder in created:
            remove_if_empty(folder)
        message = user_message(exc, args) if isinstance(exc, Exception) else None
        if message is None:
            raise
        print(f"{prog}: error: {message}", file=sys.stderr)
        return 2


def _missing_folders(path: Path) -> list[Path]:
    """``path`` and its ancestors that do not exist yet, deepest first."""
    missing = []
    path = path.absolute()
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


def remove_if_empty(folder: Path) -> None:
    """Remove ``folder`` when it holds folders only (no file at any depth)."""
    if folder.is_dir() and not folder.is_symlink() and not any(p.is_file() or p.is_symlink()
                                                               for p in folder.rglob("*")):
        shutil.rmtree(folder, ignore_errors=True)
