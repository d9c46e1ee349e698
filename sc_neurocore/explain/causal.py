r"""Causal importance: the output (or accuracy) change when a neuron is silenced for all timesteps.

For one sample and target output ``k``:

$$
I[n] = f_k(x) - f_k(x \text{ with neuron } n \text{ silenced at every timestep})
$$

For a batch with ``labels``: $I[n] = \mathrm{acc}(x) - \mathrm{acc}(x \text{ with } n \text{ silenced})$,
the drop in classification accuracy (prediction: ``argmax`` of the outputs, ties to the lowest index).

An input neuron is silenced by zeroing its spike train; a hidden or output neuron (``layer=`` a name from
the model's ``neuron_layers``) by forcing its emitted spikes to 0 at every step. All ``(sample, neuron)``
pairs are rows of one plan, run in batched, chunked forward passes.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..engine.plans import Silencing, silence_each_neuron, silence_prefixes
from ..protocol import INPUT_LAYER
from ..inputs import as_targets
from .perturbation import PerturbationExplainer, Prepared, described
from .results import CausalResult


class CausalImportance(PerturbationExplainer):
    """Per-neuron importance by silencing each neuron of a layer (see the module docstring).

    Takes the same ``run_fn`` forms and options as `TemporalSaliency`.

    Example:
        >>> import torch
        >>> from sc_neurocore.models import LIFNetwork
        >>> from sc_neurocore.explain import CausalImportance
        >>> net = LIFNetwork([torch.randn(64, 32), torch.randn(32, 10)])
        >>> spikes = (torch.rand(100, 64) < 0.1).float()
        >>> result = CausalImportance(net).explain(spikes, output_neuron=0, layer="0")
        >>> result.importance_map().shape
        torch.Size([32])
    """

    def explain(self, input_spikes: Any, output_neuron: Any = 0, labels: Any = None,
                layer: str = INPUT_LAYER, *, time_first: bool = False) -> CausalResult:
        """Importance of every neuron of ``layer``.

        Args:
            input_spikes: ``(T, N)`` or ``(B, T, N)``, numpy or torch.
            output_neuron: the target output, an int or ``(B,)``; ignored when ``labels`` are given.
            labels: ``(B,)`` true classes: importance becomes the drop in accuracy over the batch.
            layer: ``"input"`` (default) or the name of one of the model's neuron layers.
            time_first: ``True`` for time-first ``(T, B, ...)`` spikes (snnTorch's and Norse's layout).

        Returns:
            A `CausalResult`.
        """
        prepared = self._prepare(input_spikes, time_first)
        spikes, baseline = prepared.batch.spikes, prepared.baseline
        n_samples, n_outputs = baseline.shape
        n_neurons = self._layer_size(prepared, layer)
        targets = None  # the one output column a row's score reads (none: the accuracy reads them all)
        if labels is not None:
            classes = as_targets(labels, n_samples, n_outputs, spikes.device, name="labels")
            score = _accuracy_scorer(classes)
        else:
            targets = as_targets(output_neuron, n_samples, n_outputs, spikes.device)
            score = _target_scorer(targets)

        def columns(plan: Silencing) -> Tensor | None:
            return None if targets is None else targets[plan.sample].cpu()

        plan = silence_each_neuron(layer, n_neurons, n_samples, spikes.device)
        outputs, execution = self._run(prepared, plan, columns(plan))
        silenced = outputs.reshape(n_samples, n_neurons, n_outputs)
        base = score(baseline[:, None, :])  # (B, 1) per sample, or (1,) accuracy
        importance = base - score(silenced)  # (B, n) or (n,)
        per_sample = labels is None and prepared.batch.batched
        if labels is None and not per_sample:  # a lone sample: drop the batch axis
            importance, base = importance[0], base[0]

        def curve(scores: Tensor) -> Tensor:
            order = torch.sort(scores, dim=-1, stable=True).indices  # least important first, ties by index
            prefixes = silence_prefixes(layer, order, n_samples)
            rows = self._run(prepared, prefixes, columns(prefixes))[0]
            values = score(rows.reshape(n_samples, n_neurons + 1, n_outputs))
            return values if labels is not None or per_sample else values[0]

        return described(CausalResult(importance.clone(), base.reshape(-1).clone() if per_sample else base.reshape(()).clone(),
                            layer=layer, metric="accuracy" if labels is not None else "output", curve=curve,
                            per_sample=per_sample, numpy=prepared.batch.numpy, explainer=self), prepared, execution,
                         _ties(execution, n_samples, n_neurons, per_sample or labels is not None))

    @staticmethod
    def _layer_size(prepared: Prepared, layer: Any) -> int:
        if layer == INPUT_LAYER:
            return prepared.batch.spikes.shape[2]
        layers = prepared.model.neuron_layers
        if not layers:
            raise ValueError(f"layer: a plain callable exposes no neuron layers (asked for {layer!r}); only "
                             f"{INPUT_LAYER!r} works, or wrap the network with sc_neurocore.adapters")
        if not isinstance(layer, str) or layer not in layers:
            raise ValueError(f"layer: expected {INPUT_LAYER!r} or one of the model's neuron layers "
                             f"{list(layers)}, got {layer!r}")
        return layers[layer]


def _ties(execution: Any, n_samples: int, n_neurons: int, keep_batch: bool) -> Tensor | None:
    """The executor's per-row tie mask as `(B, n)` (or `(n,)` for a lone sample): neurons whose silencing
    moved a spike decision to within rounding of its threshold."""
    if execution.tie_mask is None:
        return None
    ties = execution.tie_mask.reshape(n_samples, n_neurons)
    return ties if keep_batch else ties[0]


def _target_scorer(targets: Tensor):
    """Score ``(B, R, C) -> (B, R)``: the target output of each sample's rows."""
    def score(outputs: Tensor) -> Tensor:
        index = targets[:, None, None].expand(-1, outputs.shape[1], 1)
        return outputs.gather(2, index)[..., 0]
    return score


def _accuracy_scorer(classes: Tensor):
    """Score ``(B, R, C) -> (R,)``: the accuracy over the batch of each row position."""
    def score(outputs: Tensor) -> Tensor:
        return (outputs.argmax(dim=2) == classes[:, None]).to(torch.float64).mean(dim=0)
    return score
