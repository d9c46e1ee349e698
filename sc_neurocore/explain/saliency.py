r"""Temporal saliency: the exact output change when each input spike is removed.

$$
S[t, i] = f_k(x) - f_k(x \text{ with } x[t, i] := 0) \quad \text{for every } x[t, i] \ne 0,
\qquad S[t, i] = 0 \text{ elsewhere.}
$$

Signed (positive: the spike supported output ``k``), in the model's output units, never normalised.
Every removal is one row of a perturbation plan; the engine runs them in as few batched forward passes
as the memory budget allows, with the unperturbed baseline evaluated once per sample.
"""

from __future__ import annotations

from typing import Any

import numbers

import torch

from ..engine.plans import remove_each_spike
from ..inputs import as_targets
from .perturbation import PerturbationExplainer, described, target_column
from .results import SaliencyResult

#: Default ``significance``: any change above float round-off counts. With spike-count readouts every
#: non-zero change is at least 1, so this counts exactly the spikes whose removal changed the output.
DEFAULT_SIGNIFICANCE = 1e-6


class TemporalSaliency(PerturbationExplainer):
    """Exact per-spike saliency by removing each input spike (see the module docstring).

    Args:
        run_fn: the model (see `PerturbationExplainer`).
        batched: whether a plain callable ``run_fn`` is batched (``None``: modules yes, functions no).
        max_memory: peak bytes per forward pass (``None``: automatic).
        significance: ``|saliency|`` from which a spike counts as significant in ``summary()``
            (default ``1e-6``: any change above round-off).
        progress: show a progress bar.

    Example:
        >>> import torch
        >>> from sc_neurocore.models import LIFNetwork
        >>> from sc_neurocore.explain import TemporalSaliency
        >>> net = LIFNetwork([torch.randn(64, 32), torch.randn(32, 10)])
        >>> spikes = (torch.rand(100, 64) < 0.1).float()
        >>> result = TemporalSaliency(net).explain(spikes, output_neuron=0)
        >>> result.saliency_map().shape
        torch.Size([100, 64])
    """

    def __init__(self, run_fn: Any, *, batched: bool | None = None, max_memory: int | None = None,
                 significance: float = DEFAULT_SIGNIFICANCE, progress: bool = False, engine: str = "auto") -> None:
        super().__init__(run_fn, batched=batched, max_memory=max_memory, progress=progress, engine=engine)
        if not isinstance(significance, numbers.Real) or isinstance(significance, bool) or not significance >= 0 \
                or significance == float("inf"):
            raise ValueError(f"significance: expected a finite float >= 0, got {significance!r}")
        self.significance = float(significance)

    def explain(self, input_spikes: Any, output_neuron: Any = 0, *, time_first: bool = False) -> SaliencyResult:
        """Saliency of every input spike for output neuron ``output_neuron``.

        Args:
            input_spikes: ``(T, N)`` or ``(B, T, N)``, numpy or torch (or image-shaped ``(B, T, C, H, W)``).
                Non-binary entries are removed by setting them to 0.
            output_neuron: an int, or a ``(B,)`` tensor of per-sample targets.
            time_first: ``True`` for time-first ``(T, B, ...)`` spikes (snnTorch's and Norse's layout).

        Returns:
            A `SaliencyResult`.
        """
        prepared = self._prepare(input_spikes, time_first)
        spikes, baseline = prepared.batch.spikes, prepared.baseline
        targets = as_targets(output_neuron, spikes.shape[0], baseline.shape[1], spikes.device)
        plan = remove_each_spike(spikes)
        outputs, execution = self._run(prepared, plan, columns=targets[plan.sample].cpu())
        base_k = target_column(baseline, targets)
        change = base_k[plan.sample] - target_column(outputs, targets[plan.sample])
        saliency = torch.zeros(spikes.shape, dtype=change.dtype, device=spikes.device)
        saliency[plan.sample, plan.timestep, plan.neuron] = change
        result = SaliencyResult(saliency, spikes != 0, base_k.clone(), self.significance,  # type: ignore[has-type]
                                batched=prepared.batch.batched, numpy=prepared.batch.numpy, explainer=self)
        ties = None
        if execution.tie_mask is not None:
            ties = torch.zeros(spikes.shape, dtype=torch.bool, device=spikes.device)
            ties[plan.sample, plan.timestep, plan.neuron] = execution.tie_mask.to(spikes.device)
        return described(result, prepared, execution, ties)
