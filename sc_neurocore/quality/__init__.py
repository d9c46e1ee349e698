"""`sc-neurocore quality`: how faithful is each explanation method, measured by the model itself.

The package holds the report's parts, one idea per module:

- `networks`: the networks (the shipped digits network and networks trained by `sc_neurocore.data.train`,
  cached), each with a selection set and a disjoint held-out set;
- `rivals`: every method with the settings it may choose from, and the tuning on the selection set;
- `evaluate`: every metric of `sc_neurocore.explain.metrics` per held-out sample;
- `stats`: paired bootstrap intervals; `targets`: the targets, met or MISSED with the measured reason;
- `timing` / `timing_run`: the task where only spike timing decides the class;
- `diagnostics` / `variants` / `report_misses`: the measured reasons of a missed target (silent hidden
  neurons, spikes given no credit, where on the curve a rival gains) and the variants of the spike rule
  considered;
- `report` / `cli`: the Markdown report and the command (`make quality` writes `docs/quality.md`);
- `table`: a quick fixed-setting table for the demo.
"""

from .cli import add_arguments, main
from .table import COUNT_READOUT_DECAY, MethodScores, faithfulness_rows, format_table

__all__ = ["COUNT_READOUT_DECAY", "MethodScores", "add_arguments", "faithfulness_rows", "format_table", "main"]
