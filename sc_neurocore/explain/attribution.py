r"""Spike attribution in one pass, without autograd: three rules (`mode=`).

**`mode="auto"`** (the recommended default for a known model): spike-time credit, see
`sc_neurocore.explain.credit`. One recorded forward pass; the model's own decays and resets; the output
layer follows the model's readout (spike count, rate, final or maximum membrane). It needs a model: an
`LIFNetwork`, a `ModelGraph`, or any snnTorch, Norse, SpikingJelly or NIR model the adapters trace (dense or
convolutional, feed-forward or recurrent; see the support matrix in the adapters guide).

**`mode="linear"`** (the tutorial's formula, over **all** weight paths). With weights $W_1 .. W_L$ (each
`(n_in, n_out)`), $W_{\mathrm{eff}} = W_1 W_2 \cdots W_L$, decay $d$ and output neuron $k$:

$$A[t, i] = s[t, i] \, d^{T - t} \, W_{\mathrm{eff}}[i, k], \qquad t = 0 .. T-1$$

Completeness: $\sum_{t,i} A[t, i] = y_k = \sum_t d^{T-t} (s[t] W_{\mathrm{eff}})_k$, the linear leaky
readout of the input. It needs no model, only weights, and is what the FPGA core computes.

**`mode="gated"`** (deprecated: the held-out evaluation of `sc-neurocore quality` finds it on no network
more faithful than `mode="auto"`, and on no dense network more faithful than the linear rule at the same
decay; needs a model to record hidden activity, with its own or hand-given weights): one forward pass records every neuron layer's spikes $z_l[t]$ ($l = 1 .. L$, the last one
the output layer). A path through neuron $j$ of layer $l$ counts in proportion to how much that neuron fired
in the decaying window that follows $t$:

$$g_l[t, j] = \frac{\sum_{t' \ge t} d^{t'-t} z_l[t', j]}{\sum_{t' \ge t} d^{t'-t}} \in [0, 1]$$

$$v_L[t] = g_L[t] \odot e_k, \qquad v_{l}[t] = g_{l}[t] \odot (W_{l+1} v_{l+1}[t]), \qquad
A[t, i] = s[t, i] \, d^{T-t} \, (W_1 v_1[t])_i$$

A neuron that never fires after $t$ carries nothing from $t$ on; with every gate at 1 the gated rule is the
linear rule. Its scores sum to the gated readout `total`.

**Where the map goes.** The linear and gated rules write $(s[t, i] \, d^{T-t}) \, p[t, i]$ once
(`sc_neurocore.engine.attribution_out`): into the caller's `out=` tensor, which the result wraps; or into a
buffer the attributor reuses once nobody holds the result it last returned; or, with `sparse=True`, at the
input spikes only (`sc_neurocore.explain.sparse_results`), since the map is zero wherever the input is.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..dynamics import decay_weights
from ..engine.attribution_out import SpareBuffer, check_out, scores_at_spikes, sparse_scores, write_scores
from ..graph.paths import linear_paths
from ..inputs import as_choice, as_fraction, as_spikes, as_targets, as_weight_chain, check_finite
from ..protocol import SpikingModel
from .credit import auto_scores, model_graph
from .results import AttributionResult
from .sparse_results import SparseAttributionResult

MODES = ("linear", "gated", "auto")


class SpikeAttributor:
    """Per-spike, per-timestep attribution through the network's weight paths (see the module docstring).

    Args:
        decay: the exponential time decay `d` in `(0, 1]` of the linear and gated rules: a spike `T - t`
            steps before the end of the window weighs `d**(T - t)`. `mode="auto"` ignores it (the decays
            are the model's own).
        mode: `"linear"` (all weight paths; the default, the tutorial's formula), `"auto"` (spike-time
            credit through the recorded spikes with the model's dynamics and readout: the recommended mode
            for a known model, see `sc_neurocore.explain.credit`) or `"gated"` (deprecated: paths weighted
            by recorded hidden activity). `"auto"` and `"gated"` need a model.
        fixed_point: `None` (float), or a `sc_neurocore.fpga.FixedPointSpec` with the same `decay`:
            `attribute` then returns exactly what the FPGA core computes (linear mode, 0/1 spikes). Each
            input's scores sum over time to the hardware importance `trace * weight` bit for bit; the split
            over spikes is `sc_neurocore.fpga.reference.spike_contributions`. Scores come back in float64
            (exact).

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
        if mode == "gated":
            warnings.warn("mode='gated' is deprecated: on the held-out digits of `sc-neurocore quality` "
                          "(docs/quality.md) it is on no network more faithful than mode='auto', and on no dense "
                          "network more faithful than the linear rule at the same decay; use mode='auto' with a model",
                          DeprecationWarning, stacklevel=2)
        self.fixed_point = fixed_point
        self._spare = SpareBuffer()

    def attribute(self, input_spikes: Any, weights: Any, output_neuron: Any = 0, *, model: Any = None,
                  out: Any = None, sparse: bool = False) -> AttributionResult | SparseAttributionResult:
        """Attribute output neuron `output_neuron` to every input spike.

        The map is written once. Without `out=`, into a buffer this attributor reuses once the result it
        last returned is no longer held anywhere (no result, view or NumPy array on it: a result you hold
        never changes; the attributor keeps that one map's memory between calls, for maps up to
        `sc_neurocore.engine.attribution_out.SPARE_LIMIT`, 256 MiB); with `out=`, into your tensor, which the result then wraps without a copy. With
        `sparse=True` only the scores at the input spikes are kept (`O(spikes)` memory, for dataset runs):
        the map is zero wherever the input is. Every mode honours both; `mode="auto"` and `fixed_point`
        compute their map first and copy it into `out` (one extra pass over the map).

        Args:
            input_spikes: `(T, N)` or `(B, T, N)`, numpy or torch, any real dtype.
            weights: a list of `(n_in, n_out)` matrices, or a model (an `LIFNetwork` or an adapter
                exposing `linear_weights()`); `mode="auto"` and `mode="gated"` need a model.
            output_neuron: an int, or a `(B,)` tensor of per-sample targets.
            model: for `mode="gated"` with hand-given weight matrices: the model whose recorded hidden
                activity gates them (one weight matrix per recorded layer).
            out: `None`, or a contiguous tensor (or, for NumPy input, a NumPy array) shaped like the input,
                in the scores' dtype (the promoted dtype of spikes and weights; float64 with `fixed_point`;
                the model's with `mode="auto"`), on the input's device, sharing no memory with the input or
                the weights. Overwritten in place.
            sparse: `True` returns a `sc_neurocore.explain.sparse_results.SparseAttributionResult` (not
                with `out=`).

        Returns:
            An `sc_neurocore.explain.results.AttributionResult`, or with `sparse=True` a
            `SparseAttributionResult` equal to it at the spikes and zero elsewhere.

        Example:
            >>> import torch
            >>> from sc_neurocore.models import LIFNetwork
            >>> net = LIFNetwork([torch.randn(16, 8), torch.randn(8, 3)], threshold=0.5)
            >>> spikes = (torch.rand(2, 20, 16) < 0.3).float()
            >>> SpikeAttributor(mode="auto").attribute(spikes, net, output_neuron=1).attribution_map().shape
            torch.Size([2, 20, 16])
            >>> out = torch.empty(2, 20, 16)
            >>> SpikeAttributor().attribute(spikes, net, output_neuron=1, out=out).attribution_map() is out
            True
        """
        batch = as_spikes(input_spikes)
        if not isinstance(sparse, bool):
            raise TypeError(f"sparse: expected a bool, got {type(sparse).__name__}")
        if sparse and out is not None:
            raise ValueError("out: a sparse result (sparse=True) has no dense map to write; pass out= or "
                             "sparse=True, not both")
        for candidate in (weights, model):  # an adapter whose layers are found with the spikes' own length
            prepare = getattr(type(candidate), "prepare", None)
            if isinstance(candidate, torch.nn.Module) and callable(prepare):
                prepare(candidate, batch.spikes)
        target = _Target(batch, out, sparse, {"input_spikes": [batch.spikes, *_tensors_of(input_spikes)],
                                              "weights": _tensors_of(weights), "model": _tensors_of(model)})
        if self.mode == "auto":
            if model is not None:
                raise ValueError("model: mode='auto' reads the weights from the model itself; pass the model as "
                                 "weights (hand-given matrices go with mode='gated' or mode='linear')")
            return self._auto(batch, weights, output_neuron, target)
        if (model is None and self.fixed_point is None and isinstance(weights, SpikingModel)
                and weights.linear_weights() is None):
            return self._through_graph(batch, weights, output_neuron, target)
        chain, model = self._weight_chain(weights, model)
        spikes = batch.spikes
        n_samples, _n_steps, n_inputs = spikes.shape
        if chain[0].shape[0] != n_inputs:
            raise ValueError(f"weights: weights[0] has {chain[0].shape[0]} rows but input_spikes has "
                             f"{n_inputs} input neurons")
        dtype = torch.promote_types(spikes.dtype, chain[0].dtype)
        target.avoid["weights"] += chain  # a model that is not a Module may hand out its own tensors
        chain = [w.to(device=spikes.device, dtype=dtype) for w in chain]
        targets = as_targets(output_neuron, n_samples, chain[-1].shape[1], spikes.device)
        if self.fixed_point is not None:
            from ..fpga.reference import fixed_point_attribution

            target.check(torch.float64)
            with torch.no_grad():  # not inference mode: the map is handed to the user as it is
                scores = fixed_point_attribution(spikes, chain, targets, self.fixed_point)
            return self._dense_result(scores, targets, target)
        target.check(dtype)
        with torch.inference_mode():
            x = spikes.to(dtype)
            time_weights = decay_weights(x.shape[1], self.decay, dtype=x.dtype, device=x.device)
            path = self._paths(x, chain, targets, model)
        return self._factor_result(x, time_weights, path, targets, target)

    def _auto(self, batch: Any, model: Any, output_neuron: Any, target: _Target) -> AttributionResult | SparseAttributionResult:
        """`mode="auto"`: spike-time credit through one recorded forward pass of `model`'s graph."""
        if isinstance(model, (list, tuple)) or not hasattr(model, "run"):
            raise TypeError("weights: mode='auto' needs a model (an LIFNetwork, a ModelGraph or an adapter) to "
                            f"record, got {type(model).__name__}; bare weight matrices go with mode='linear'")
        spikes = batch.spikes
        graph = model_graph(model, spikes)
        targets = as_targets(output_neuron, spikes.shape[0], graph.n_outputs, spikes.device)
        target.check(graph._dtype())
        with torch.no_grad():  # not inference mode: the map is handed to the user as it is, without a clone
            scores = auto_scores(graph, spikes, targets)
        return self._dense_result(scores, targets, target)

    def _through_graph(self, batch: Any, model: Any, output_neuron: Any,
                       target: _Target) -> AttributionResult | SparseAttributionResult:
        """The linear or gated rule on a model without a weight chain (a CSNN): its graph's adjoint paths."""
        from ..graph.paths import paths_for

        spikes = batch.spikes
        try:
            graph = model_graph(model, spikes)
        except ValueError as error:
            raise ValueError(f"weights: {type(model).__name__} is not a stack of linear layers and neurons and has "
                             f"no traced graph to take weight paths from ({error})") from None
        targets = as_targets(output_neuron, spikes.shape[0], graph.n_outputs, spikes.device)
        target.check(graph._dtype())
        with torch.inference_mode():
            x = spikes.to(graph._dtype())
            gates = None
            if self.mode == "gated":
                gates = [window_gates(layer.spikes.to(x.dtype), self.decay) for layer in graph.record(x).layers]
            paths = paths_for(graph, x, targets, gates)
            time_weights = decay_weights(x.shape[1], self.decay, dtype=x.dtype, device=x.device)
        return self._factor_result(x, time_weights, paths, targets, target)

    def _factor_result(self, x: Tensor, time_weights: Tensor, path: Tensor, targets: Tensor,
                       target: _Target) -> AttributionResult | SparseAttributionResult:
        """`(x * time_weights) * path` written once: at the spikes, into `out`, or into a reused buffer."""
        batch = target.batch
        with torch.no_grad():
            if target.sparse:
                check_finite(path, "weights")  # 0 * Inf is NaN: the dense map would not be zero off the spikes
                return SparseAttributionResult(sparse_scores(x, time_weights, path), targets, batched=batch.batched,
                                               numpy=batch.numpy, explainer=self)
            scores = target.buffer if target.buffer is not None else self._spare.take(x.shape, x.dtype, x.device)
            write_scores(x, time_weights, path, scores)
        if target.buffer is None:
            self._spare.keep(scores)
        return AttributionResult(scores, targets, batched=batch.batched, numpy=batch.numpy, explainer=self)

    def _dense_result(self, scores: Tensor, targets: Tensor,
                      target: _Target) -> AttributionResult | SparseAttributionResult:
        """A map computed whole (`mode="auto"`, `fixed_point`): kept at the spikes, copied into `out`, or as is."""
        batch = target.batch
        if target.sparse:
            return SparseAttributionResult(scores_at_spikes(batch.spikes, scores), targets, batched=batch.batched,
                                           numpy=batch.numpy, explainer=self)
        if target.buffer is not None:
            scores = target.buffer.copy_(scores)
        return AttributionResult(scores, targets, batched=batch.batched, numpy=batch.numpy, explainer=self)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_spare"] = SpareBuffer()  # a buffer never travels with the attributor
        return state

    def _weight_chain(self, weights: Any, model: Any = None) -> tuple[list[Tensor], SpikingModel | None]:
        """`weights` (matrices or a model) -> the validated weight chain and the model recording gates."""
        if model is not None:
            if not isinstance(model, SpikingModel):
                raise TypeError(f"model: expected a model that records its layers (an LIFNetwork or an adapter), "
                                f"got {type(model).__name__}")
            if self.mode != "gated":
                raise ValueError("model: only mode='gated' combines a model with hand-given weights")
            if isinstance(weights, SpikingModel):
                raise ValueError("weights: with model= given, weights must be weight matrices, not a model")
            return as_weight_chain(weights, "weights"), model
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
        default `sc_neurocore.fpga.FixedPointSpec` at this decay). An attributor holds no weights,
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

        as_choice(target, tuple(TARGETS), "target")
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

    def _paths(self, x: Tensor, chain: list[Tensor], targets: Tensor, model: SpikingModel | None) -> Tensor:
        """The weight paths of spikes `x` `(B, T, N)`: `(B, N)` for the linear rule, `(B, T, N)` for the gated."""
        if self.mode == "linear":
            return linear_paths(chain, targets)
        recording = model.record(x)  # type: ignore[union-attr]
        gates = [window_gates(layer.spikes.to(x.dtype), self.decay) for layer in recording.layers]
        if len(gates) != len(chain):
            raise ValueError(f"weights: the model recorded {len(gates)} neuron layers but exposes "
                             f"{len(chain)} weight matrices; gated attribution needs one per layer")
        return gated_paths(chain, gates, targets)


class _Target:
    """Where one call's map goes: `out` (checked once the scores' dtype is known), sparse, or a reused buffer."""

    def __init__(self, batch: Any, out: Any, sparse: bool, avoid: dict[str, list[Tensor]]) -> None:
        self.batch, self.out, self.sparse, self.avoid = batch, out, sparse, avoid
        self.buffer: Tensor | None = None

    def check(self, dtype: torch.dtype) -> None:
        """Validate `out` for scores of `dtype`; `buffer` is then the `(B, T, N)` view written into."""
        if self.out is None:
            return
        spikes = self.batch.spikes
        if isinstance(self.out, np.ndarray) and not self.batch.numpy:
            raise TypeError("out: expected a torch tensor for torch input_spikes, got a NumPy array")
        shape = tuple(spikes.shape) if self.batch.batched else tuple(spikes.shape[1:])
        out = check_out(self.out, shape, dtype, spikes.device, avoid=self.avoid)
        self.buffer = out if self.batch.batched else out.unsqueeze(0)


def _tensors_of(value: Any) -> list[Tensor]:
    """The tensors an argument holds (for `out`'s aliasing check): itself, a list's items, a module's state."""
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, np.ndarray):
        try:
            return [torch.from_numpy(value)]
        except (TypeError, ValueError):  # negative strides, or a dtype torch lacks: compare its base instead
            return _tensors_of(value.base) if isinstance(value.base, np.ndarray) else []
    if isinstance(value, torch.nn.Module):
        return [*value.parameters(), *value.buffers()]
    if isinstance(value, (list, tuple)):  # one level: a list of weight matrices (nested lists hold no memory)
        return [tensor for item in value if not isinstance(item, (list, tuple)) for tensor in _tensors_of(item)]
    return []


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
    n_samples, _n_steps, n_outputs = gates[-1].shape
    one_hot = torch.zeros(n_samples, 1, n_outputs, dtype=gates[-1].dtype, device=gates[-1].device)
    one_hot[torch.arange(n_samples), 0, targets] = 1
    signal = gates[-1] * one_hot  # v_L: (B, T, C)
    for weight, gate in zip(reversed(chain[1:]), reversed(gates[:-1]), strict=False):
        signal = gate * (signal @ weight.T)  # v_l = g_l * (W_{l+1} v_{l+1})
    return signal @ chain[0].T
