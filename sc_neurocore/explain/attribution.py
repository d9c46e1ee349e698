r"""Spike attribution: weight paths times exponential decay, in one pass, without autograd.

Linear rule (the tutorial's formula, over **all** weight paths). With weights ``W_1 .. W_L`` (each
``(n_in, n_out)``), ``W_eff = W_1 @ W_2 @ ... @ W_L`` and output neuron ``k``:

$$
A[t, i] = s[t, i] \, d^{T - t} \, W_{\mathrm{eff}}[i, k], \qquad t = 0 .. T-1
$$

Completeness: $\sum_{t,i} A[t, i] = y_k = \sum_t d^{T-t} (s[t] @ W_{\mathrm{eff}})[k]$, the linear
leaky readout of the input.

Gated rule (``mode="gated"``, needs a model): one forward pass records every neuron layer's spikes
``z_l[t]`` (``l = 1 .. L``, the last one the output layer). A path through neuron ``j`` of layer ``l``
counts in proportion to how much that neuron fired in the decaying window that follows ``t``:

$$
g_l[t, j] = \frac{\sum_{t' \ge t} d^{t'-t} z_l[t', j]}{\sum_{t' \ge t} d^{t'-t}} \in [0, 1]
$$

$$
v_L[t] = g_L[t] \odot e_k, \qquad v_{l}[t] = g_{l}[t] \odot (W_{l+1} v_{l+1}[t])
$$

$$
A[t, i] = s[t, i] \, d^{T-t} \, (W_1 v_1[t])_i
$$

A neuron that never fires after ``t`` carries nothing from ``t`` on; with every gate at 1 the gated rule
is the linear rule. Its scores sum to the gated readout ``total``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..dynamics import decay_weights
from ..protocol import SpikingModel
from ..inputs import as_choice, as_fraction, as_spikes, as_targets, as_weight_chain
from .results import AttributionResult

MODES = ("linear", "gated")


class SpikeAttributor:
    """Per-spike, per-timestep attribution through the network's weight paths (see the module docstring).

    Args:
        decay: the exponential time decay ``d`` in ``(0, 1]``: a spike ``T - t`` steps before the end of
            the window weighs ``d**(T - t)``.
        mode: ``"linear"`` (all weight paths) or ``"gated"`` (paths weighted by recorded hidden activity;
            needs a model rather than bare weights).
        fixed_point: ``None`` (float), or a `FixedPointSpec` with the same
            ``decay``: `attribute` then returns exactly what the FPGA core computes (linear mode, 0/1
            spikes). Each input's scores sum over time to the hardware importance ``trace * weight`` bit for
            bit; the split over spikes is `spike_contributions`. Scores
            come back in float64 (exact).

    Example:
        >>> import numpy as np
        >>> from sc_neurocore.explain import SpikeAttributor
        >>> rng = np.random.default_rng(0)
        >>> spikes = (rng.random((100, 64)) < 0.1).astype(float)
        >>> weights = [rng.standard_normal((64, 32)), rng.standard_normal((32, 10))]
        >>> result = SpikeAttributor(decay=0.9).attribute(spikes, weights, output_neuron=0)
        >>> result.attribution_map().shape
        (100, 64)
    """

    def __init__(self, decay: float = 0.9, mode: str = "linear", fixed_point: Any = None) -> None:
        self.decay = as_fraction(decay, "decay")
        if self.decay == 0:
            raise ValueError("decay: expected a float in (0, 1], got 0 (every spike would weigh 0)")
        as_choice(mode, MODES, "mode")
        self.mode = mode
        if fixed_point is not None:
            from ..fpga.spec import FixedPointSpec  # the hardware format; only needed on this path

            if not isinstance(fixed_point, FixedPointSpec):
                raise TypeError(f"fixed_point: expected None or a FixedPointSpec, got {type(fixed_point).__name__}")
            if fixed_point.decay != self.decay:
                raise ValueError(f"fixed_point: the spec's decay {fixed_point.decay} differs from decay {self.decay}; "
                                 "use spec.with_decay(decay)")
            if mode != "linear":
                raise ValueError("fixed_point: the hardware computes the linear rule only; use mode='linear'")
        self.fixed_point = fixed_point

    def attribute(self, input_spikes: Any, weights: Any, output_neuron: Any = 0) -> AttributionResult:
        """Attribute output neuron ``output_neuron`` to every input spike.

        Args:
            input_spikes: ``(T, N)`` or ``(B, T, N)``, numpy or torch, any real dtype.
            weights: a list of ``(n_in, n_out)`` matrices, or a model (an ``LIFNetwork`` or an adapter
                exposing ``linear_weights()``); ``mode="gated"`` needs a model.
            output_neuron: an int, or a ``(B,)`` tensor of per-sample targets.

        Returns:
            An `AttributionResult`.
        """
        batch = as_spikes(input_spikes)
        chain, model = self._weight_chain(weights)
        spikes = batch.spikes
        n_samples, n_steps, n_inputs = spikes.shape
        if chain[0].shape[0] != n_inputs:
            raise ValueError(f"weights: weights[0] has {chain[0].shape[0]} rows but input_spikes has "
                             f"{n_inputs} input neurons")
        dtype = torch.promote_types(spikes.dtype, chain[0].dtype)
        chain = [w.to(device=spikes.device, dtype=dtype) for w in chain]
        targets = as_targets(output_neuron, n_samples, chain[-1].shape[1], spikes.device)
        with torch.inference_mode():
            if self.fixed_point is not None:
                from ..fpga.reference import fixed_point_attribution

                scores = fixed_point_attribution(spikes, chain, targets, self.fixed_point)
            else:
                scores = self._scores(spikes.to(dtype), chain, targets, model)
        # Cloned outside inference mode: users get an ordinary tensor they may modify or differentiate.
        return AttributionResult(scores.clone(), targets, batched=batch.batched, numpy=batch.numpy, explainer=self)

    def _weight_chain(self, weights: Any) -> tuple[list[Tensor], SpikingModel | None]:
        """``weights`` (matrices or a model) -> the validated weight chain and the model, if one was given."""
        model = weights if isinstance(weights, SpikingModel) else None
        if model is not None:
            chain = model.linear_weights()
            if chain is None:
                raise ValueError(f"weights: {type(model).__name__} is not a stack of linear layers and neurons, "
                                 "so it has no weight paths to attribute through")
            return as_weight_chain(chain, "weights"), model
        if self.mode == "gated":
            raise ValueError("weights: mode='gated' needs a model (an LIFNetwork or an adapter) to record "
                             "hidden activity, not bare weight matrices")
        return as_weight_chain(weights, "weights"), None

    def export_fpga(self, path: Any, target: str = "ice40", *, weights: Any = None, n_inputs: int | None = None,
                    n_outputs: int | None = None, n_steps: int = 25, lanes: int = 8) -> Path:
        """Write the FPGA trace explainer as one synthesizable Verilog file (see `sc_neurocore.fpga`).

        Each input neuron gets a trace register (in block RAM, ``lanes`` updated per clock) that accumulates
        its decayed spikes over ``n_steps`` timesteps; the final trace times the weight is the input's
        importance, read back per output neuron through the core's CSRs (the map is in the file's header).

        What gets exported: the decay and fixed-point format of this attributor (``fixed_point``, or the
        default `FixedPointSpec` at this decay). An attributor holds no weights,
        so with ``weights=None`` the core is sized ``n_inputs x n_outputs`` (default 784 x 10, the MNIST
        readout of the tutorial) and its weight RAM starts at zero: weights are loaded at run time through
        the ``load_data`` CSR. Given ``weights`` (matrices or a model, as for `attribute`), the
        quantised effective weights ``W_1 @ ... @ W_L`` are inlined as the weight RAM's initial contents and
        the sizes come from them. Needs the ``fpga`` extra.

        Args:
            path: the ``.v`` file to write (atomically).
            target: ``"ice40"``; anything else is a ``ValueError``.
            weights: optional weight matrices or model to inline.
            n_inputs: input neurons (default: from ``weights``, else 784).
            n_outputs: output neurons (default: from ``weights``, else 10).
            n_steps: timesteps per spike train.
            lanes: parallel lanes, 1 to 8.

        Returns:
            The written path.

        Example:
            >>> import tempfile, pathlib
            >>> attr = SpikeAttributor(decay=0.95)
            >>> path = pathlib.Path(tempfile.mkdtemp()) / "explain_ice40.v"
            >>> attr.export_fpga(path, target="ice40").name
            'explain_ice40.v'
        """
        from ..fpga.export import TARGETS, export_verilog

        as_choice(target, TARGETS, "target")
        from ..fpga.reference import quantized_weight_matrix
        from ..fpga.spec import FixedPointSpec

        spec = self.fixed_point if self.fixed_point is not None else FixedPointSpec(decay=self.decay)
        matrix = None
        if weights is not None:
            chain, _ = self._weight_chain(weights)
            matrix = quantized_weight_matrix(chain, spec)
            for name, value, size in (("n_inputs", n_inputs, matrix.shape[0]), ("n_outputs", n_outputs, matrix.shape[1])):
                if value is not None and value != size:
                    raise ValueError(f"{name}: expected {size} (from weights) or None, got {value!r}")
            n_inputs, n_outputs = matrix.shape
        n_inputs = 784 if n_inputs is None else n_inputs
        n_outputs = 10 if n_outputs is None else n_outputs
        return export_verilog(path, n_inputs, n_outputs, n_steps, lanes, spec, weights=matrix, target=target)

    def _scores(self, x: Tensor, chain: list[Tensor], targets: Tensor, model: SpikingModel | None) -> Tensor:
        """Attribution ``(B, T, N)`` of spikes ``x`` in the compute dtype."""
        time_weights = decay_weights(x.shape[1], self.decay, dtype=x.dtype, device=x.device)
        if self.mode == "linear":
            path = linear_paths(chain, targets)[:, None, :]  # (B, 1, N)
        else:
            recording = model.record(x)  # type: ignore[union-attr]
            gates = [window_gates(layer.spikes.to(x.dtype), self.decay) for layer in recording.layers]
            if len(gates) != len(chain):
                raise ValueError(f"weights: the model recorded {len(gates)} neuron layers but exposes "
                                 f"{len(chain)} weight matrices; gated attribution needs one per layer")
            path = gated_paths(chain, gates, targets)  # (B, T, N)
        return x * time_weights[None, :, None] * path


def linear_paths(chain: list[Tensor], targets: Tensor) -> Tensor:
    """``W_eff[:, k_b]`` for each sample: ``(B, N)``.

    ``W_eff`` is formed once for all outputs (``N x C``, cheap) and then indexed, so a sample's result
    does not depend on what else is in the batch, to the last bit.
    """
    effective = chain[-1]
    for weight in reversed(chain[:-1]):
        effective = weight @ effective
    return effective[:, targets].T


def window_gates(spikes: Tensor, decay: float) -> Tensor:
    """``g[t] = sum_{t'>=t} d^(t'-t) z[t'] / sum_{t'>=t} d^(t'-t)`` for spikes ``z`` ``(B, T, n)``."""
    n_steps = spikes.shape[1]
    gates = torch.empty_like(spikes)
    accumulated = torch.zeros_like(spikes[:, 0])
    norm = 0.0
    for t in range(n_steps - 1, -1, -1):  # a reverse-time scan: time is sequential
        accumulated = spikes[:, t] + decay * accumulated
        norm = 1.0 + decay * norm
        gates[:, t] = accumulated / norm
    return gates


def gated_paths(chain: list[Tensor], gates: list[Tensor], targets: Tensor) -> Tensor:
    """``(W_1 v_1[t])`` for every sample and timestep, ``(B, T, N)`` (see the module docstring)."""
    n_samples, n_steps, n_outputs = gates[-1].shape
    one_hot = torch.zeros(n_samples, 1, n_outputs, dtype=gates[-1].dtype, device=gates[-1].device)
    one_hot[torch.arange(n_samples), 0, targets] = 1
    signal = gates[-1] * one_hot  # v_L: (B, T, C)
    for weight, gate in zip(reversed(chain[1:]), reversed(gates[:-1]), strict=True):
        signal = gate * (signal @ weight.T)  # v_l = g_l * (W_{l+1} v_{l+1})
    return signal @ chain[0].T
