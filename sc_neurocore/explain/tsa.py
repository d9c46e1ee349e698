r"""Temporal Spike Attribution (TSA), Nguyen, Nauta, Englebienne and Seifert, arXiv:2311.02110 (IEEE CogMI 2023).

A baseline from the literature, implemented from the paper: the explanation at the end of the window
``T`` multiplies, for every timestep ``t`` on its own, the spike-time scores of each layer with the
weights between layers and the classifier's confidence.

Spike-time score of neuron ``i`` of layer ``l`` at ``t`` (``l = 0`` the input, then the hidden layers; with
``s_l[t, i]`` its spikes and ``n_l`` its size):

$$N_l[t, i] = \begin{cases} \beta^{T - t} & s_l[t, i] = 1 \\
            0 & s_l[t, i] = 0 \text{ (TSA-S)} \\
            -\tfrac{1}{n_l} \beta^{T - t} & s_l[t, i] = 0 \text{ (TSA-NS, absent spikes)} \end{cases}$$

Attribution of input entry ``(t, i)`` to class ``k``, with weights ``W_0 .. W_{L-1}`` (each
``(n_l, n_{l+1})``) and the confidence ``p = \mathrm{softmax}(y)`` of the readout ``y``:

$$A[t, :] = \bigl(\mathrm{diag}(N_0[t])\, W_0\, \mathrm{diag}(N_1[t])\, W_1 \cdots
          \mathrm{diag}(N_{L-1}[t])\, W_{L-1}\, \mathrm{diag}(p)\bigr)[:, k]$$

Hidden neurons enter with their spikes at the same timestep ``t`` (the paper's product per timestep,
with no propagation through time). With absent-spike terms (TSA-NS) an input entry without a spike gets
a score too: what its silence contributed. ``beta`` is the membrane decay of the model.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..dynamics import decay_weights
from ..inputs import as_fraction, as_spikes, as_targets, as_weight_chain
from ..protocol import SpikingModel
from .attribution import gated_paths
from .results import AttributionResult


class TemporalSpikeAttribution:
    """TSA (see the module docstring): spike-time scores times weight paths, per timestep.

    Args:
        decay: ``beta`` in ``(0, 1]``; ``None`` takes the model's membrane decay (its first layer's
            ``beta``, as in the paper's single-``beta`` models).
        absent_spikes: ``False`` for TSA-S (only spikes score), ``True`` for TSA-NS (absent spikes score
            ``-beta^(T-t) / n_l``).

    Example:
        >>> import torch
        >>> from sc_neurocore.models import LIFNetwork
        >>> from sc_neurocore.explain.tsa import TemporalSpikeAttribution
        >>> net = LIFNetwork([torch.randn(64, 32), torch.randn(32, 10)], beta=0.9, threshold=0.5)
        >>> spikes = (torch.rand(100, 64) < 0.1).float()
        >>> result = TemporalSpikeAttribution(absent_spikes=True).attribute(spikes, net, output_neuron=3)
        >>> result.attribution_map().shape
        torch.Size([100, 64])
    """

    def __init__(self, decay: float | None = None, absent_spikes: bool = False) -> None:
        if decay is not None:
            decay = as_fraction(decay, "decay")
            if decay == 0:
                raise ValueError("decay: expected a float in (0, 1], got 0 (every spike would score 0)")
        if not isinstance(absent_spikes, bool):
            raise TypeError(f"absent_spikes: expected True or False, got {absent_spikes!r}")
        self.decay = decay
        self.absent_spikes = absent_spikes

    def attribute(self, input_spikes: Any, model: Any, output_neuron: Any = 0) -> AttributionResult:
        """TSA scores of every input entry for output neuron ``output_neuron``.

        Args:
            input_spikes: ``(T, N)`` or ``(B, T, N)``, numpy or torch.
            model: an ``LIFNetwork`` or an adapter that records its layers and exposes ``linear_weights()``.
            output_neuron: an int, or a ``(B,)`` tensor of per-sample targets.

        Returns:
            An `sc_neurocore.explain.results.AttributionResult` (``total`` is the sum of the scores).
        """
        batch = as_spikes(input_spikes)
        if not isinstance(model, SpikingModel):
            raise TypeError(f"model: expected an LIFNetwork or an adapter (a SpikingModel that records its "
                            f"layers), got {type(model).__name__}")
        chain = model.linear_weights()
        if chain is None:
            raise ValueError(f"model: {type(model).__name__} is not a stack of linear layers and neurons, so it "
                             "has no weight paths for TSA")
        chain = as_weight_chain(chain, "model.linear_weights()")
        spikes = batch.spikes
        n_samples, n_steps, n_inputs = spikes.shape
        if chain[0].shape[0] != n_inputs:
            raise ValueError(f"input_spikes: the model takes {chain[0].shape[0]} input neurons, got {n_inputs}")
        decay = self._decay(model)
        dtype = torch.promote_types(spikes.dtype, chain[0].dtype)
        chain = [w.to(device=spikes.device, dtype=dtype) for w in chain]
        targets = as_targets(output_neuron, n_samples, chain[-1].shape[1], spikes.device)
        with torch.inference_mode():
            x = spikes.to(dtype)
            recording = model.record(x)
            hidden = [layer.spikes.to(dtype) for layer in recording.layers[:-1]]
            if len(hidden) + 1 != len(chain):
                raise ValueError(f"model: recorded {len(recording.layers)} neuron layers but exposes {len(chain)} "
                                 "weight matrices; TSA needs one neuron layer per weight matrix")
            time_weights = decay_weights(n_steps, decay, dtype=dtype, device=spikes.device)[None, :, None]
            confidence = torch.softmax(recording.outputs.to(dtype), dim=1)[:, None, :]  # (B, 1, C)
            # gated_paths multiplies diag(gate_l) W_l from the output side in: TSA's chain with the
            # confidence as the output "gate" and the hidden spike-time scores as the hidden ones.
            gates = [self._spike_time_scores(h, time_weights) for h in hidden]
            gates.append(confidence.expand(n_samples, n_steps, confidence.shape[2]))
            paths = gated_paths(chain, gates, targets)  # (B, T, N)
            scores = self._spike_time_scores(x, time_weights) * paths
        return AttributionResult(scores.clone(), targets, batched=batch.batched, numpy=batch.numpy, explainer=self)

    def _decay(self, model: SpikingModel) -> float:
        if self.decay is not None:
            return self.decay
        betas = getattr(model, "betas", None)
        if not betas:
            raise ValueError(f"decay: {type(model).__name__} does not say its membrane decay; pass decay=beta")
        return as_fraction(float(betas[0]), "decay")

    def _spike_time_scores(self, spikes: Tensor, time_weights: Tensor) -> Tensor:
        """``N_l[t, i]`` for a layer's spikes ``(B, T, n)``."""
        present = spikes * time_weights
        if not self.absent_spikes:
            return present
        absent = (spikes == 0).to(spikes.dtype) * (-time_weights / spikes.shape[2])
        return present + absent
