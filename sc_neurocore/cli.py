"""The ``sc-neurocore`` command.

Each subcommand lives with the concern it drives; this file only dispatches. A subcommand module
provides ``add_arguments(parser)`` and ``main(args) -> int`` and imports its optional dependencies
lazily, so ``sc-neurocore --help`` works with only the core installed.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("sc_neurocore.demo", "explain the shipped digits network with all three methods; figures into --out"),
    "bench": ("sc_neurocore.bench", "time exact saliency, causal importance and attribution against naive loops "
              "and Captum"),
    "explain-dataset": ("sc_neurocore.distributed", "explain a whole dataset into checksummed shards, on one "
                        "process or many (torchrun)"),
    "fpga": ("sc_neurocore.fpga.cli", "build the trace explainer's iCE40 bitstream and its resource/clock report"),
    "quality": ("sc_neurocore.quality", "measure how faithful each explanation method is (deletion, insertion, "
                "agreement, planted patterns)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sc-neurocore", description="Why did this spiking neural network fire?")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        sub = commands.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sub)
        sub.set_defaults(_main=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args._main(args) or 0)
    except (ValueError, TypeError, FileNotFoundError) as error:
        # Bad input is reported as one line, not a traceback.
        print(f"sc-neurocore {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
