"""The `sc-neurocore` command.

Each subcommand lives with the concern it drives; this file only dispatches. A subcommand module
provides `add_arguments(parser)` and `main(args) -> int` and imports its optional dependencies lazily.
Only the chosen subcommand's module is imported, so `sc-neurocore --help` and `--version` load nothing
but this file (no torch).

Anticipated failures end in one line on standard error, naming the argument or file and what to do, with
exit status 2: bad arguments (a `ValueError` or `TypeError` whose message starts with the argument's name,
the project's convention), a missing file, a read-only or full disk, a missing extra or FPGA tool. Anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import errno
import re
import sys

#: name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("sc_neurocore.demo", "explain the shipped digits network with all three methods; figures into --out"),
    "bench": (
        "sc_neurocore.bench",
        "time exact saliency, causal importance and attribution against naive loops and Captum",
    ),
    "explain-dataset": (
        "sc_neurocore.distributed",
        "explain a whole dataset into checksummed shards, on one process or many (torchrun)",
    ),
    "fpga": ("sc_neurocore.fpga.cli", "build the trace explainer's iCE40 bitstream and its resource/clock report"),
    "quality": (
        "sc_neurocore.quality",
        "measure how faithful each explanation method is (deletion, insertion, agreement, planted patterns)",
    ),
}

#: A message that names what was wrong the project's way: `"spikes: expected ..."`, `"--runs: ..."`,
#: `"curves['a']: ..."`. Python's and torch's own errors ("unsupported operand type(s) for +: ...") do not.
_NAMED_ARGUMENT = re.compile(r"^(--)?[A-Za-z_][\w.-]*(\[[^\]]*\])?: ")

#: errno values that mean the disk, not the program, is the problem.
_DISK_ERRORS = {
    errno.EROFS: "the file system is read-only",
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}


def _version() -> str:
    from . import __version__
    from .extras import DISTRIBUTION

    return f"sc-neurocore {__version__} (distribution {DISTRIBUTION})"


def _chosen(argv: list[str]) -> str | None:
    """The subcommand named on the command line (the first word that is one), without importing anything."""
    for word in argv:
        if word in SUBCOMMANDS:
            return word
        if not word.startswith("-"):
            return None
    return None


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; only the subcommand named in `argv` (if any) is imported and gets its options.

    Example:
        >>> parser = build_parser(["--help"])
        >>> sorted(parser._subparsers._group_actions[0].choices)
        ['bench', 'demo', 'explain-dataset', 'fpga', 'quality']
    """
    import importlib

    parser = argparse.ArgumentParser(prog="sc-neurocore", description="Why did this spiking neural network fire?")
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = _chosen(list(sys.argv[1:] if argv is None else argv))
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = importlib.import_module(module_name)
            module.add_arguments(sub)
            sub.set_defaults(_main=module.main)
    return parser


def describe_failure(error: BaseException) -> str | None:
    """One line for an anticipated failure, or `None` for a bug (which then keeps its traceback).

    Example:
        >>> describe_failure(ValueError("samples: expected a positive int, got 0"))
        'samples: expected a positive int, got 0'
        >>> describe_failure(TypeError("unsupported operand type(s) for +: 'int' and 'str'")) is None
        True
    """
    from .extras import MissingExtraError

    if isinstance(error, MissingExtraError):
        return str(error)
    if isinstance(error, (FileNotFoundError, IsADirectoryError, NotADirectoryError)):
        return str(error) if error.filename is None else f"{error.filename}: {error.strerror or error}"
    if isinstance(error, OSError) and error.errno in _DISK_ERRORS:
        where = f"cannot write {error.filename}" if error.filename else "cannot write the output"
        return (
            f"{where}: {_DISK_ERRORS[error.errno]}; choose another output folder (--out / --output) on a "
            "writable disk with free space"
        )
    if isinstance(error, (ValueError, TypeError)) and _NAMED_ARGUMENT.match(str(error)):
        return str(error)
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the command line `argv` (default: `sys.argv[1:]`); returns the exit status.

    Example:
        >>> main(["demo", "--samples", "0"])
        2
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(arguments)
    args = parser.parse_args(arguments)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args._main(args) or 0)
    except (ValueError, TypeError, OSError, ImportError) as error:
        line = describe_failure(error)
        if line is None:
            raise  # a bug: the traceback says where
        print(f"sc-neurocore {args.command}: error: {line}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
