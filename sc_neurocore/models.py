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

import numpy as np
import torch
from torch import Tensor, nn

from .dynamics import RESET_MECHANISMS, LIFParameters, lif_initial_state, lif_step
from .inputs import as_choice, as_tensor, as_weight_chain, check_finite, check_same_device, floating, model_dtype
from .protocol import LayerRecord, Recording


class LIFNetwork(nn.Module):
    """A feed-forward LIF network with one ``(n_in, n_out)`` weight per layer.

    Everything that defines its forward is in its ``state_dict`` (``weights.0``, ..., ``biases.<layer>`` for
    the layers that have one, and the buffers ``beta`` and ``threshold``, one value per layer), except the
    reset mechanism, a string shown by ``repr`` and returned by `run_key_fields`. A state dict holding the
    weights only (the shipped ``digits*.safetensors``, or one saved before the neuron parameters became
    buffers) loads too, keeping the network's ``beta`` and ``threshold``.

    A direct call checks its input as the explainers do: real, dense, finite spikes ``(B, T, N)`` on the
    network's device; silence masks ``(B, n)`` of dtype bool. The network keeps no state between calls, so
    one instance can be shared by threads.

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
        >>> sorted(net.state_dict())
        ['beta', 'threshold', 'weights.0', 'weights.1']
    """

    beta: Tensor
    threshold: Tensor

    def __init__(self, weights: Sequence, beta: float | Sequence[float] = 0.9,
                 threshold: float | Sequence[float] = 1.0, reset: str = "subtract",
                 biases: Sequence | None = None) -> None:
        super().__init__()
        chain = as_weight_chain(weights, name="weights")
        n_layers = len(chain)
        as_choice(reset, RESET_MECHANISMS, "reset")
        betas = _per_layer(beta, n_layers, "beta", low=0.0, high=1.0)
        thresholds = _per_layer(threshold, n_layers, "threshold", low=None, high=None)
        model_dtype(chain, "weights")
        self.reset = reset
        self.weights = nn.ParameterList(nn.Parameter(w.clone(), requires_grad=False) for w in chain)
        # float64, so that the Python floats given are kept exactly (float32 layers round them on use).
        self.register_buffer("beta", torch.tensor(betas, dtype=torch.float64))
        self.register_buffer("threshold", torch.tensor(thresholds, dtype=torch.float64))
        if biases is None:
            biases = [None] * n_layers
        if isinstance(biases, (str, bytes)) or not isinstance(biases, Sequence):
            raise TypeError(f"biases: expected a list of {n_layers} bias vectors or None, got {type(biases).__name__}")
        if len(biases) != n_layers:
            raise ValueError(f"biases: expected {n_layers} entries (one per layer), got {len(biases)}")
        # Keyed by the layer they feed ("biases.1" is layer 1's), so a state dict says which layer has one.
        self.biases = nn.ParameterDict()
        for index, (b, w) in enumerate(zip(biases, chain, strict=True)):
            if b is None:
                continue
            b = floating(as_tensor(b, f"biases[{index}]")[0]).to(w.dtype).clone()
            if b.shape != (w.shape[1],):
                raise ValueError(f"biases[{index}]: expected shape ({w.shape[1]},), got {tuple(b.shape)}")
            check_finite(b, f"biases[{index}]")
            self.biases[str(index)] = nn.Parameter(b, requires_grad=False)

    def extra_repr(self) -> str:
        sizes = [self.n_inputs] + [w.shape[1] for w in self.weights]
        if self.beta.device.type == "meta":  # no values to show
            beta = threshold = "<meta>"
        else:
            beta, threshold = str(list(self.betas)), str(list(self.thresholds))
        return (f"layers={sizes}, beta={beta}, threshold={threshold}, reset={self.reset!r}, "
                f"biases={sorted(int(k) for k in self.biases)}")

    def run_key_fields(self) -> dict:
        """What the forward depends on beyond the ``state_dict``: the reset mechanism."""
        return {"reset": self.reset}

    @property
    def betas(self) -> tuple[float, ...]:
        """``beta`` as Python floats, one per layer."""
        return tuple(float(value) for value in self.beta.tolist())

    @property
    def thresholds(self) -> tuple[float, ...]:
        """``threshold`` as Python floats, one per layer."""
        return tuple(float(value) for value in self.threshold.tolist())

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        # Validate what would be copied in before anything is: a failed load leaves the network unchanged.
        n_layers = len(self.weights)
        for name, low, high in (("beta", 0.0, 1.0), ("threshold", None, None)):
            if prefix + name in state_dict:
                value = state_dict[prefix + name]
                if not isinstance(value, Tensor) or value.shape != (n_layers,):
                    raise ValueError(f"state_dict[{prefix + name!r}]: expected a tensor of shape ({n_layers},), "
                                     f"got {getattr(value, 'shape', type(value).__name__)}")
                _per_layer(value.tolist(), n_layers, f"state_dict[{prefix + name!r}]", low=low, high=high)
        for key, value in state_dict.items():
            if key.startswith(prefix) and isinstance(value, Tensor) and value.layout == torch.strided:
                check_finite(value, f"state_dict[{key!r}]")
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        for name in ("beta", "threshold"):  # a weights-only state dict keeps the network's neuron parameters
            if prefix + name in missing_keys:
                missing_keys.remove(prefix + name)

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
        """The `LIFParameters` of layer ``index`` (Python floats)."""
        return LIFParameters(float(self.beta[index]), float(self.threshold[index]), self.reset)  # type: ignore[arg-type]

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
        return self.biases.get(str(index))

    @torch.no_grad()
    def _simulate(self, spikes: Tensor, silence: Mapping[str, Tensor] | None, record: bool) -> Recording:
        # The explainers validate their inputs; a direct call (net(spikes)) gets the same checks: no
        # imaginary part dropped, no meta tensor read, no NaN turned into silence.
        spikes = as_tensor(spikes, "spikes")[0]
        if spikes.ndim != 3 or spikes.shape[-1] != self.n_inputs:
            raise ValueError(f"spikes: expected shape (B, T, {self.n_inputs}), got {tuple(spikes.shape)}")
        check_same_device(spikes, self.weights[0].device, "spikes", holder="network")
        check_finite(spikes, "spikes")
        dtype = model_dtype([*self.weights, *self.biases.values()], "network")
        x = spikes.to(dtype)
        keep = _keep_masks(silence, self.neuron_layers, x.shape[0], x.device, dtype)
        # The input matrix product needs no state: do it for all timesteps at once.
        layer_input = x
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
    if silence is None:
        return keep
    if not isinstance(silence, Mapping):
        raise TypeError(f"silence: expected a dict of layer name -> (B, n) bool mask, got {type(silence).__name__}")
    names = list(layers)
    for name, mask in silence.items():
        if not isinstance(name, str) or name not in layers:
            raise ValueError(f"silence: unknown layer {name!r}; layers are {names}")
        if not isinstance(mask, Tensor):
            raise TypeError(f"silence[{name!r}]: expected a ({batch}, {layers[name]}) bool tensor, got "
                            f"{type(mask).__name__}")
        if mask.dtype != torch.bool:
            # A float mask of 0.5 would count as "silenced" after a cast: say which neurons, as bools.
            raise TypeError(f"silence[{name!r}]: expected a bool mask (True = silenced), got {mask.dtype}; pass "
                            "mask.bool() or a comparison such as mask > 0.5")
        check_same_device(mask, device, f"silence[{name!r}]", holder="network")
        if mask.shape != (batch, layers[name]):
            raise ValueError(f"silence[{name!r}]: expected a ({batch}, {layers[name]}) bool mask, "
                             f"got shape {tuple(mask.shape)}")
        keep[names.index(name)] = (~mask.to(device=device, dtype=torch.bool)).to(dtype)
    return keep


def _per_layer(value, n_layers: int, name: str, low: float | None, high: float | None) -> tuple[float, ...]:
    tensor_like = (isinstance(value, Tensor) and value.layout == torch.strided and value.device.type != "meta") \
        or isinstance(value, np.ndarray)
    if tensor_like and value.ndim <= 1:
        value = value.tolist()
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
