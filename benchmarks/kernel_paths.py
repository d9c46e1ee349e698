"""Which way to run the event engine's inner loop: numba, plain Python, torch ops, torch.compile, batched.

The same section `sc-neurocore bench` writes to docs/benchmarks.md (see `sc_neurocore/bench/paths.py`), on
its own. Run: `PYTHONPATH=. python benchmarks/kernel_paths.py [runs]`.
"""

from __future__ import annotations

import sys

import torch

from sc_neurocore.bench.paths import paths_section
from sc_neurocore.bench.suite import Row, _agreement, timed
from sc_neurocore.bench.workloads import WORKLOADS

if __name__ == "__main__":
    torch.set_num_threads(1)
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    print("| path | median time | x event engine | agreement |\n|---|---|---|---|")
    for row in paths_section(WORKLOADS["R-MNIST"], runs, timed, Row, _agreement):
        print(f"| {row.contender} | {row.seconds * 1e3:.1f} ms | {row.ratio:.1f}x | {row.agreement} |")
