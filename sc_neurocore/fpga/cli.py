"""``sc-neurocore fpga``: build the explainer SoC's bitstream and its report.

``sc-neurocore fpga build --board icebreaker --inputs 784 --outputs 10 --steps 25 --lanes 8 --out DIR``
writes ``DIR/explainer.bin``, ``DIR/csr.csv``, ``DIR/report.json`` and ``DIR/report.md`` (see
`sc_neurocore.fpga.build.build_bitstream`); ``--report-md docs/fpga.md`` also rewrites the
generated table of that document. Migen and LiteX are imported only when a build runs, so
``sc-neurocore --help`` works without them.
"""

from __future__ import annotations

import argparse
import sys

from .soc import BOARDS


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _frequency(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a frequency in Hz such as 24e6, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive frequency in Hz, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``fpga`` subcommands to ``parser``.

    Args:
        parser: the ``fpga`` subparser of ``sc-neurocore``.

    Example:
        >>> import argparse
        >>> parser = argparse.ArgumentParser()
        >>> add_arguments(parser)
        >>> parser.parse_args(["build", "--out", "ice40"]).lanes
        8
    """
    actions = parser.add_subparsers(dest="fpga_command", metavar="ACTION")
    build = actions.add_parser("build", help="build a timing-clean bitstream and its resource/clock report",
                               description="Build the trace-explainer SoC (CPU-less, UART bridge) for a board, "
                                           "timing-strict, and report logic cells, RAM, DSP, Fmax and cycles "
                                           "per explanation.")
    # The board is checked in main(), not by argparse choices, so that a typo gets the project's one-line
    # error listing the boards rather than argparse's usage dump.
    build.add_argument("--board", default="icebreaker", help=f"target board, one of: {', '.join(sorted(BOARDS))}")
    build.add_argument("--inputs", type=_positive_int, default=784, help="input neurons N (default 784)")
    build.add_argument("--outputs", type=_positive_int, default=10, help="output neurons C (default 10)")
    build.add_argument("--steps", type=_positive_int, default=25, help="timesteps T per explanation (default 25)")
    build.add_argument("--lanes", type=_positive_int, default=8, help="parallel trace lanes L (default 8)")
    build.add_argument("--decay", type=float, default=0.9, help="trace decay per timestep (default 0.9)")
    build.add_argument("--sys-clk-freq", type=_frequency, default=None,
                       help="system clock in Hz (default: the board's, 24e6 on the iCEBreaker)")
    build.add_argument("--seed", type=_positive_int, default=1, help="nextpnr placement seed (default 1)")
    build.add_argument("--out", required=True, help="output folder for the bitstream, csr.csv and reports")
    build.add_argument("--verbose", action="store_true",
                       help="print LiteX's, yosys' and nextpnr's progress (their full logs are kept in OUT/build)")
    build.add_argument("--report-md", default=None,
                       help="also write the report table here (rewrites only the generated section of a "
                            "document that has the report markers, e.g. docs/fpga.md)")


def main(args: argparse.Namespace) -> int:
    """Run ``sc-neurocore fpga ACTION``; returns the exit status.

    Args:
        args: the parsed arguments.

    Returns:
        0 on success, 1 when the toolchain fails (does not fit, misses timing), 2 on bad usage.
    """
    if getattr(args, "fpga_command", None) != "build":
        print("sc-neurocore fpga: error: expected an action: build (see sc-neurocore fpga build --help)",
              file=sys.stderr)
        return 2
    from .build import BuildError, build_bitstream
    from .soc import get_board
    from .spec import FixedPointSpec

    board = get_board(args.board)  # ValueError names the known boards
    spec = FixedPointSpec(decay=args.decay)
    from ..progress import step

    try:
        # One opaque toolchain run (20-55 s): a ticking clock, unless --verbose prints the tools' own progress.
        with step(f"building the {board.name} bitstream (LiteX, yosys, nextpnr-ice40, icepack)",
                  enabled=False if args.verbose else None):
            report = build_bitstream(args.out, n_inputs=args.inputs, n_outputs=args.outputs, n_steps=args.steps,
                                     lanes=args.lanes, spec=spec, board=board, sys_clk_freq=args.sys_clk_freq,
                                     seed=args.seed, report_md=args.report_md, verbose=args.verbose)
    except BuildError as error:
        print(f"sc-neurocore fpga build: error: {error}", file=sys.stderr)
        return 1
    print(report.to_markdown(), end="")
    print(f"wrote {args.out}/{report.bitstream}, csr.csv, report.json, report.md")
    return 0
