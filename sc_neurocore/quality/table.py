"""A quick faithfulness table with fixed settings, for the demo (the report tunes every method instead)."""

from __future__ import annotations

import math
import time
from typing import Any, NamedTuple

from torch import Tensor

from ..explain.metrics import Curve, deletion_curve, insertion_curve
from .networks import Network, NetworkSpec
from .rivals import GATED, methods

#: The decay of the linear and gated rules that matches a spike-count readout (a spike counts the same
#: at every step); `mode="auto"` needs none.
COUNT_READOUT_DECAY = 1.0
#: The fixed settings of the quick table: the first grid entry that agrees with these.
DEFAULTS = {"decay": COUNT_READOUT_DECAY, "surrogate": "atan", "steps": 32}


class MethodScores(NamedTuple):
    """One row of the quick table (means over samples) and its curves."""

    method: str
    deletion_auc: float
    insertion_auc: float
    seconds: float
    deletion: Curve | None = None
    insertion: Curve | None = None


def _default(grid: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    return next((s for s in grid if all(DEFAULTS.get(k, v) == v for k, v in s.items())), grid[0])


def faithfulness_rows(network: Any, spikes: Tensor, targets: Tensor, *, captum: bool = True, n_points: int = 21,
                      seed: int = 0) -> list[MethodScores]:
    """Deletion and insertion AUC of every method (gated left out: deprecated) at fixed settings on `spikes`.

    Example:
        >>> import torch
        >>> from sc_neurocore.models import LIFNetwork
        >>> net = LIFNetwork([torch.randn(16, 8), torch.randn(8, 3)], threshold=0.5)
        >>> spikes = (torch.rand(4, 12, 16) < 0.3).float()
        >>> rows = faithfulness_rows(net, spikes, net(spikes).argmax(1), captum=False, n_points=5)
        >>> rows[0].method
        'SpikeAttributor auto'
    """
    spec = NetworkSpec("given", 0, (), "count", 0, float(network.betas[0]), float(network.thresholds[0]))
    wrapped = Network(spec, network, network.linear_weights(), math.nan, "given", 0.0, (spikes, targets),
                      (spikes, targets))
    rows = []
    for method in methods(captum=captum, seed=seed):
        if method.name == GATED:
            continue
        function = method.build(wrapped, _default(method.grid))
        start = time.perf_counter()
        scores = function(spikes, targets)
        seconds = time.perf_counter() - start
        deletion = deletion_curve(network, spikes, scores, targets, n_points=n_points, tie_seed=seed)
        insertion = insertion_curve(network, spikes, scores, targets, n_points=n_points, tie_seed=seed)
        rows.append(MethodScores(method.name, float(deletion.auc.mean()), float(insertion.auc.mean()), seconds,
                                 deletion, insertion))
    return rows


def format_table(rows: list[MethodScores]) -> str:
    """The quick table as Markdown.

    Example:
        >>> print(format_table([MethodScores("random", 8.9, 8.9, 0.01)]).splitlines()[2])
        | random | 8.900 | 8.900 | 0.010 |
    """
    lines = ["| method | deletion AUC (lower is better) | insertion AUC (higher is better) | seconds |",
             "|---|---:|---:|---:|"]
    lines += [f"| {r.method} | {r.deletion_auc:.3f} | {r.insertion_auc:.3f} | {r.seconds:.3f} |" for r in rows]
    return "\n".join(lines)
