r"""The reference feed-forward spiking network.

`LIFNetwork` is a stack of fully connected layers, each followed by a layer of leaky
integrate-and-fire neurons (`sc_neurocore.dynamics.lif_step`). With weights ``W_l`` of shape
``(n_in, n_out)`` and input spikes ``s_0[t]``:

    I_l[t] = s_{l-1}[t] @ W_l (+ b_l)
    s_l[t], v_l[t] = lif_step(I_l[t], v_l[t-1])
    output = sum_t s_L[t]                     (spike count per output neuron, shape (B, C))

It implements the `SpikingModel` protocol natively: layers are named
``"0"``, ``"1"``, ... (the index of the weight matrix that feeds them), neurons can be silenced per
sample, and a recording returns every layer's spikes, membranes and decayed traces.
"""

from __future__ import annotations

import numbers
from typing import cast
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from .dynamics import RESET_MECHANISMS, LIFParameters, ResetMechanism, lif_initial_state, lif_step
from .inputs import as_choice, as_tensor, as_weight_chain, check_same_device
from .protocol import LayerRecord, Recording


class LIFNetwork(nn.Module):
    """A feed-forward LIF network with one ``(n_in, n_out)`` weight per layer.

    Args:
        weights: the weight matrices, input side first, each ``(n_in, n_out)``; numpy arrays or tensors.
            They are copied into parameters (the caller's arrays are never aliased).
        beta: membrane decay per step, one float for all layers or one per layer.
        threshold: firing threshold, one float or one per layer.
        reset: ``"subtract"``, ``"zero"`` or ``"none"``.
        biases: optional per-layer bias vectors (``None`` entries allowed).

    Example:
        >>> import torch
        >>> net = LIFNetwork([torch.randn(64, 32), torch.randn(32, 10)], beta=0.9)
        >>> counts = net((torch.rand(4, 100, 64) < 0.1).float())
        >>> counts.shape
        torch.Size([4, 10])
    """

    def __init__(self, weights: Sequence, beta: float | Sequence[float] = 0.9,
                 threshold: float | Sequence[float] = 1.0, reset: str = "subtract",
                 biases: Sequence | None = None) -> None:
        super().__init__()
        chain = as_weight_chain(weights, name="weights")
        n_layers = len(chain)
        as_choice(reset, RESET_MECHANISMS, "reset")
        self.betas = _per_layer(beta, n_layers, "beta", low=0.0, high=1.0)
        self.thresholds = _per_layer(threshold, n_layers, "threshold", low=None, high=None)
        self.reset = reset
        self.weights = nn.ParameterList(nn.Parameter(w.clone(), requires_grad=False) for w in chain)
        if biases is None:
            biases = [None] * n_layers
        if len(biases) != n_layers:
            raise ValueError(f"biases: expected {n_layers} entries (one per layer), got {len(biases)}")
        self.biases = nn.ParameterList()
        self._has_bias = []
        for index, (b, w) in enumerate(zip(biases, chain, strict=True)):
            if b is None:
                self._has_bias.append(False)
                continue
            b = torch.as_tensor(b, dtype=w.dtype).clone()
            if b.shape != (w.shape[1],):
                raise ValueError(f"biases[{index}]: expected shape ({w.shape[1]},), got {tuple(b.shape)}")
            self._has_bias.append(True)
            self.biases.append(nn.Parameter(b, requires_grad=False))

    # -- SpikingModel protocol ------------------------------------------------------------------------
    @property
    def neuron_layers(self) -> dict[str, int]:
        return {str(i): w.shape[1] for i, w in enumerate(self.weights)}

    @property
    def n_inputs(self) -> int:
        return self.weights[0].shape[0]

    @property
    def n_outputs(self) -> int:
        return self.weights[-1].shape[1]

    def layer_params(self, index: int) -> LIFParameters:
        """The `LIFParameters` of layer ``index``."""
        return LIFParameters(self.betas[index], self.thresholds[index], cast(ResetMechanism, self.reset))

    def linear_weights(self) -> list[Tensor]:
        return [w.detach() for w in self.weights]

    def run(self, spikes: Tensor, silence: Mapping[str, Tensor] | None = None) -> Tensor:
        """Output spike counts ``(B, C)``; ``silence[name]`` is a ``(B, n)`` bool mask of silenced neurons."""
        return self._simulate(spikes, silence, record=False).outputs

    def record(self, spikes: Tensor, silence: Mapping[str, Tensor] | None = None) -> Recording:
        """Output counts plus every layer's spikes and membranes ``(B, T, n)``."""
        return self._simulate(spikes, silence, record=True)

    def forward(self, spikes: Tensor, record: bool = False) -> Tensor | Recording:
        """Spike counts ``(B, C)`` for input spikes ``(B, T, N)`` (or a `Recording` if ``record``)."""
        return self._simulate(spikes, None, record=record) if record else self.run(spikes)

    # -- simulation -------------------------------------------------------------------------------------
    def _bias(self, index: int) -> Tensor | None:
        if not self._has_bias[index]:
            return None
        return self.biases[sum(self._has_bias[:index])]

    @torch.no_grad()
    def _simulate(self, spikes: Tensor, silence: Mapping[str, Tensor] | None, record: bool) -> Recording:
        # The explainers validate their inputs; a direct call (net(spikes)) must not silently drop an
        # imaginary part or read a meta tensor either.
        spikes = as_tensor(spikes, "spikes")[0]
        if spikes.ndim != 3 or spikes.shape[-1] != self.n_inputs:
            raise ValueError(f"spikes: expected shape (B, T, {self.n_inputs}), got {tuple(spikes.shape)}")
        check_same_device(spikes, self.weights[0].device, "spikes", holder="network")
        dtype = self.weights[0].dtype
        x = spikes.to(dtype)
        keep = _keep_masks(silence, self.neuron_layers, x.shape[0], x.device, dtype)
        # The input matrix product needs no state: do it for all timesteps at once.
        layer_input = x
        counts = None
        records = []
        for index, weight in enumerate(self.weights):
            currents = layer_input @ weight
            bias = self._bias(index)
            if bias is not None:
                currents = currents + bias
            params = self.layer_params(index)
            state = lif_initial_state(currents.new_zeros(currents.shape[0], currents.shape[2]))
            out_spikes, membranes = [], []
            for t in range(currents.shape[1]):
                s, state = lif_step(currents[:, t], state, params)
                mask = keep[index]
                if mask is not None:
                    s = s * mask
                out_spikes.append(s)
                if record:  # only a recording keeps every step's membrane alive
                    membranes.append(state.membrane)
            layer_input = torch.stack(out_spikes, dim=1) if out_spikes else currents
            if record:
                mem = torch.stack(membranes, dim=1) if membranes else currents
                records.append(LayerRecord(str(index), layer_input, mem))
        counts = layer_input.sum(dim=1)
        return Recording(counts, tuple(records))


def _keep_masks(silence: Mapping[str, Tensor] | None, layers: Mapping[str, int], batch: int,
                device: torch.device, dtype: torch.dtype) -> list[Tensor | None]:
    keep: list[Tensor | None] = [None] * len(layers)
    if not silence:
        return keep
    names = list(layers)
    for name, mask in silence.items():
        if name not in layers:
            raise ValueError(f"silence: unknown layer {name!r}; layers are {names}")
        if mask.shape != (batch, layers[name]):
            raise ValueError(f"silence[{name!r}]: expected a ({batch}, {layers[name]}) bool mask, "
                             f"got shape {tuple(mask.shape)}")
        keep[names.index(name)] = (~mask.to(device=device, dtype=torch.bool)).to(dtype)
    return keep


def _per_layer(value, n_layers: int, name: str, low: float | None, high: float | None) -> tuple[float, ...]:
    if isinstance(value, numbers.Real):
        values = [value] * n_layers
    elif isinstance(value, Sequence) and not isinstance(value, str):
        values = list(value)
    else:
        raise TypeError(f"{name}: expected a float or a list of {n_layers} floats, got {type(value).__name__}")
    if len(values) != n_layers:
        raise ValueError(f"{name}: expected a float or {n_layers} floats (one per layer), got {len(values)}")
    for v in values:
        # `-inf < v < inf` is False for NaN too: a non-finite threshold or leak is never meant.
        if not isinstance(v, numbers.Real) or isinstance(v, bool) or not -float("inf") < cast(float, v) < float("inf"):
            raise TypeError(f"{name}: expected finite floats, got {v!r}")
        if (low is not None and cast(float, v) < low) or (high is not None and cast(float, v) > high):
            raise ValueError(f"{name}: expected values in [{low}, {high}], got {v}")
    return tuple(float(v) for v in values)
