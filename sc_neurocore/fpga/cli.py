"""``sc-neurocore fpga``: build the explainer SoC's bitstream and its report.

``sc-neurocore fpga build --board icebreaker --inputs 784 --outputs 10 --steps 25 --lanes 8 --out DIR``
writes ``DIR/explainer.bin``, ``DIR/csr.csv``, ``DIR/report.json`` and ``DIR/report.md`` (see
`sc_neurocore.fpga.build.build_bitstream`); ``--report-md docs/fpga.md`` also rewrites the
generated table of that document. ``sc-neurocore fpga where [--report-md docs/fpga.md]`` prints (and
writes) which quantised models the chip runs and which only the host's integer reference, with their
digits accuracy (`sc_neurocore.fpga.placement`). Migen and LiteX are imported only when a build runs, so
``sc-neurocore --help`` works without them.
"""

from __future__ import annotations

import argparse
import sys

from .soc import BOARDS

#: The shipped networks `--model` accepts: name -> `sc_neurocore.data.pretrained_network` size.
MODELS = {"digits8": 8, "digits28": 28}


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
        >>> parser.parse_args(["build", "--model", "digits8", "--out", "digits8"]).model
        'digits8'
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
    build.add_argument("--steps", type=_positive_int, default=None,
                       help="timesteps T per explanation (default 25; with --model, the model's)")
    build.add_argument("--lanes", type=_positive_int, default=None,
                       help="parallel lanes L (default 8; with --model, 5 MAC lanes)")
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
    network = build.add_argument_group("whole-network explainer (--model)")
    network.add_argument("--model", default=None, choices=sorted(MODELS),
                         help="build the whole LIF network on chip (class + top-k + importance) instead of the "
                              "trace explainer: digits8 is the shipped 64-32-10 network")
    build.add_argument("--baud", type=_positive_int, default=None,
                       help="UART baud rate of the bitstream (default 115200; with --model 2000000; 1-3 Mbaud on the "
                            "iCEBreaker's FTDI)")
    widths = build.add_argument_group("bit widths (defaults: FixedPointSpec's, or with --model NetworkSpec's)")
    widths.add_argument("--trace-bits", type=_positive_int, default=None, help="unsigned trace bits W")
    widths.add_argument("--trace-frac-bits", type=int, default=None, help="trace fraction bits F")
    widths.add_argument("--decay-bits", type=_positive_int, default=None, help="fraction bits k of the trace decay")
    widths.add_argument("--weight-bits", type=_positive_int, default=None, help="signed weight bits")
    widths.add_argument("--weight-frac-bits", type=int, default=None, help="weight fraction bits")
    network.add_argument("--top-k", type=_positive_int, default=10, help="inputs ranked on chip (default 10)")
    network.add_argument("--membrane-bits", type=_positive_int, default=16, help="signed membrane bits")
    network.add_argument("--beta-bits", type=_positive_int, default=14, help="fraction bits of the leak")
    network.add_argument("--no-progress", action="store_true", help="no progress lines while yosys/nextpnr run")
    network.add_argument("--report-json", default=None,
                         help="also copy report.json here (docs/fpga-digits8-report.json beside docs/fpga.md)")
    where = actions.add_parser("where", help="which quantised models run on the chip and which on the host only",
                               description="Quantise the shipped digits8 network in each front end (LIFNetwork, "
                                           "snnTorch, Norse box and current-based), say where each runs (the "
                                           "core's own check) and measure its integer accuracy.")
    where.add_argument("--report-md", default=None,
                       help="also write the table here (rewrites only the generated section of a document that "
                            "has the placement markers, e.g. docs/fpga.md)")


def main(args: argparse.Namespace) -> int:
    """Run ``sc-neurocore fpga ACTION``; returns the exit status.

    Args:
        args: the parsed arguments.

    Returns:
        0 on success, 1 when the toolchain fails (does not fit, misses timing), 2 on bad usage.
    """
    if getattr(args, "fpga_command", None) == "where":
        return _where(args)
    if getattr(args, "fpga_command", None) != "build":
        print("sc-neurocore fpga: error: expected an action: build or where (see sc-neurocore fpga build --help)",
              file=sys.stderr)
        return 2
    from .build import BuildError, build_bitstream
    from .soc import get_board
    from .spec import FixedPointSpec

    board = get_board(args.board)  # ValueError names the known boards
    if args.model is not None:
        return _build_network(args, board)
    given = {name: getattr(args, option) for name, option in (
        ("trace_bits", "trace_bits"), ("frac_bits", "trace_frac_bits"), ("decay_bits", "decay_bits"),
        ("weight_bits", "weight_bits"), ("weight_frac_bits", "weight_frac_bits")) if getattr(args, option) is not None}
    spec = FixedPointSpec(decay=args.decay, **given)
    from ..progress import step

    try:
        # One opaque toolchain run (20-55 s): a ticking clock, unless --verbose prints the tools' own progress.
        with step(f"building the {board.name} bitstream (LiteX, yosys, nextpnr-ice40, icepack)",
                  enabled=False if args.verbose else None):
            report = build_bitstream(args.out, n_inputs=args.inputs, n_outputs=args.outputs, n_steps=args.steps or 25,
                                     lanes=args.lanes or 8, spec=spec, board=board, sys_clk_freq=args.sys_clk_freq,
                                     seed=args.seed, report_md=args.report_md, verbose=args.verbose,
                                     baudrate=args.baud or 115200)
    except BuildError as error:
        print(f"sc-neurocore fpga build: error: {error}", file=sys.stderr)
        return 1
    return _published(args, report)


def _build_network(args: argparse.Namespace, board) -> int:
    """`fpga build --model NAME`: quantise the shipped network, check it, build it, report it."""
    from .build import BuildError
    from .network_build import build_network_bitstream, shipped_network
    from .network_core import DEFAULT_LANES
    from .spec import FixedPointSpec

    options = {"n_steps": args.steps, "weight_bits": args.weight_bits or 16,
               "weight_frac_bits": 8 if args.weight_frac_bits is None else args.weight_frac_bits,
               "membrane_bits": args.membrane_bits, "beta_bits": args.beta_bits, "top_k": args.top_k}
    trace = (args.trace_bits or 14, 9 if args.trace_frac_bits is None else args.trace_frac_bits, args.decay_bits or 14)
    if (args.decay, *trace) != (0.9, 14, 9, 14):
        # W_eff keeps the finest grid that fits 16 bits (chosen by quantize_network); only the trace changes.
        network, _ = shipped_network(args.model, **options)
        options["trace"] = FixedPointSpec(args.decay, *trace, 16, network.spec.trace.weight_frac_bits)
    network, accuracy = shipped_network(args.model, **options)
    print(f"{args.model}: float accuracy {100 * accuracy['float']:.2f}%, integer {100 * accuracy['integer']:.2f}% "
          f"on {accuracy['samples']} test samples", flush=True)
    try:
        report = build_network_bitstream(args.out, network, lanes=args.lanes or DEFAULT_LANES, board=board,
                                         sys_clk_freq=args.sys_clk_freq, baudrate=args.baud or 2_000_000,
                                         seed=args.seed,
                                         accuracy=accuracy, report_md=args.report_md,
                                         progress=not args.no_progress, verbose=args.verbose)
    except BuildError as error:
        print(f"sc-neurocore fpga build: error: {error}", file=sys.stderr)
        return 1
    return _published(args, report)


def _where(args: argparse.Namespace) -> int:
    """`fpga where`: the placement table of the shipped network's front ends; returns 0."""
    from .build import write_report_markdown
    from .placement import PLACEMENT_BEGIN, PLACEMENT_END, PlacementReport, placements

    report = PlacementReport(tuple(placements()))
    if args.report_md is not None:
        write_report_markdown(report, args.report_md, PLACEMENT_BEGIN, PLACEMENT_END)
    print(report.to_markdown(), end="")
    return 0


def _published(args: argparse.Namespace, report) -> int:
    """Copy the report where `--report-json` asks, print its table and what was written; returns 0."""
    if args.report_json is not None:
        from ..atomic import atomic_write

        with atomic_write(args.report_json) as handle:
            handle.write(report.to_json())
    print(report.to_markdown(), end="")
    print(f"wrote {args.out}/{report.bitstream}, csr.csv, report.json, report.md")
    return 0
