r"""The integer reference of the on-chip LIF network: what `NetworkExplainer` returns, bit for bit.

Built from the step functions of `sc_neurocore.dynamics`:

* the membrane step is `lif_step` on `int64` tensors with `beta = 1` and the floor-shifted leak folded
  into the current, `I' = I + floor(beta_int * v / 2**kb) - v`, so that `lif_step`'s own reset and
  threshold logic gives `v_t = floor(beta_int v / 2**kb) + I - r theta` exactly
  (`fixed_lif_step`; an integer variant is needed because `lif_step` multiplies by a float `beta`,
  and the chip rounds that product down to its membrane grid every step);
* the traces are `sc_neurocore.fpga.reference.fixed_trace_step` (itself `trace_step` on integers).

After `T` steps the class is the argmax of the output spike counts (the first on a tie, as `torch.argmax`),
the importance of input `i` is the linear rule `x_T[i] * q(W_eff)[i, c]` for that class, and the top-k
ranks `|importance|` with ties broken by the lower input index (as `AttributionResult.top_k`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..dynamics import LIFParameters, LIFState, lif_step
from .network_spec import NetworkSpec
from .reference import as_spike_bits, fixed_trace_step, quantized_weight_matrix


@dataclass(frozen=True)
class QuantizedNetwork:
    """A network in the chip's integers.

    Attributes:
        spec: the `NetworkSpec`.
        weights: `int64` synaptic weights per layer, `(n_in, n_out)`.
        effective: `int64` `q(W_eff)` `(N, C)` in the trace spec's weight format (the linear rule).
    """

    spec: NetworkSpec
    weights: tuple[Tensor, ...]
    effective: Tensor


@dataclass(frozen=True)
class NetworkResult:
    """What one batch of samples gives on the chip.

    Attributes:
        counts: output spike counts `(B, C)` `int64`.
        predicted: the class per sample `(B,)`.
        traces: final input traces `(B, N)`.
        importance: `x_T[i] * q(W_eff)[i, c]` `(B, N)` for the predicted class.
        top_indices, top_scores: the `top_k` inputs by `|importance|` and their signed importance `(B, k)`.
        membranes: the final membranes per layer, `(B, n_out)` each.
    """

    counts: Tensor
    predicted: Tensor
    traces: Tensor
    importance: Tensor
    top_indices: Tensor
    top_scores: Tensor
    membranes: tuple[Tensor, ...]


def fixed_lif_step(current: Tensor, membrane: Tensor, beta_int: int, beta_bits: int, threshold_int: int,
                   reset: str = "subtract", reset_delay: bool = True) -> tuple[Tensor, Tensor]:
    """One integer LIF step: `lif_step` with the floor-shifted leak folded into the current.

    Args:
        current: `int64` synaptic input `I_t`, any shape.
        membrane: `int64` membranes after `t - 1`.
        beta_int: the leak multiplier `round(beta * 2**beta_bits)`.
        beta_bits: its fraction bits.
        threshold_int: the threshold in membrane units.
        reset: `"subtract"`, `"zero"` or `"none"`.
        reset_delay: `False` resets in the same step (with `"zero"`: Norse's box neuron).

    Returns:
        `(spikes, membrane)`, both `int64`.

    Example:
        >>> fixed_lif_step(torch.tensor([300, 10]), torch.tensor([0, 300]), 14746, 14, 256)
        (tensor([1, 0]), tensor([300,  24]))
        >>> fixed_lif_step(torch.tensor([300, 10]), torch.tensor([0, 200]), 14746, 14, 256, "zero", False)
        (tensor([1, 0]), tensor([  0, 190]))
    """
    # The membrane the leak acts on: a zero reset (lif_step's beta * (1 - r) v) leaks nothing after a spike.
    kept = membrane * (membrane <= threshold_int) if reset == "zero" else membrane
    leak = (beta_int * kept) >> beta_bits  # floor: an arithmetic shift
    params = LIFParameters(1, threshold_int, reset, reset_delay=reset_delay)  # type: ignore[arg-type]  # checked by NetworkSpec
    spikes, state = lif_step(current + leak - kept, LIFState(membrane), params)
    return spikes, state.membrane


def _chain_of(model) -> tuple[list[Tensor], list[float], list[float], str, bool]:
    """Weights `(n_in, n_out)`, betas, thresholds, reset and reset delay of an `LIFNetwork`, an snnTorch
    stack or a Norse stack (`network_norse.norse_chain`)."""
    from ..models import LIFNetwork
    from .network_norse import is_norse_stack, norse_chain

    if isinstance(model, LIFNetwork):
        if any(model._bias(index) is not None for index in range(len(model.weights))):
            raise ValueError("model: the chip has no biases; expected a bias-free LIFNetwork")
        return model.linear_weights(), list(model.betas), list(model.thresholds), model.reset, True
    if is_norse_stack(model):
        return norse_chain(model)
    modules = list(model) if isinstance(model, torch.nn.Sequential) else None
    if not modules or len(modules) % 2:
        raise TypeError(f"model: expected an LIFNetwork, an snnTorch nn.Sequential of Linear + Leaky pairs or a "
                        f"Norse SequentialState of Linear + LIFBoxCell pairs, got {type(model).__name__}")
    weights: list[Tensor] = []
    betas: list[float] = []
    thresholds: list[float] = []
    resets: set[str] = set()
    delays: set[bool] = set()
    leaky: Any
    for linear, leaky in zip(modules[::2], modules[1::2], strict=True):
        if not isinstance(linear, torch.nn.Linear) or type(leaky).__name__ != "Leaky":
            raise TypeError("model: expected Linear + snntorch.Leaky pairs")
        if linear.bias is not None and bool((linear.bias != 0).any()):
            raise ValueError("model: the chip has no biases; expected Linear layers without bias")
        weights.append(linear.weight.detach().T)
        betas.append(float(leaky.beta))
        thresholds.append(float(leaky.threshold))
        resets.add(str(leaky.reset_mechanism))
        delays.add(bool(getattr(leaky, "reset_delay", True)))
    if len(resets) != 1 or len(delays) != 1:
        raise ValueError(f"model: expected one reset mechanism and reset_delay for all layers, got {sorted(resets)} "
                         f"and {sorted(delays)}")
    return weights, betas, thresholds, resets.pop(), delays.pop()


def _trace_spec_for(chain: list[Tensor]):
    """The default trace format with the most `W_eff` fraction bits (at most 14) that keep it in 16 bits."""
    from .spec import FixedPointSpec

    effective = chain[-1].detach().to(torch.float64)
    for weight in reversed(chain[:-1]):
        effective = weight.detach().to(torch.float64) @ effective
    largest = float(effective.abs().max()) if effective.numel() else 0.0
    frac_bits = 14
    while frac_bits > 0 and round(largest * 2**frac_bits) > 2**15 - 1:
        frac_bits -= 1
    return FixedPointSpec(decay=0.9, trace_bits=14, frac_bits=9, decay_bits=14, weight_bits=16,
                          weight_frac_bits=frac_bits)


def quantize_network(model, n_steps: int, **spec_options) -> QuantizedNetwork:
    """Quantise an `LIFNetwork`, an snnTorch `Linear` + `Leaky` stack or a Norse `Linear` + `LIFBoxCell`
    stack (`sc_neurocore.fpga.network_norse`) to the chip's integers.

    Args:
        model: the float network (not modified).
        n_steps: timesteps per sample.
        **spec_options: further `NetworkSpec` fields (`weight_bits`, `trace`, `top_k`, ...); without
            `trace`, the default trace format with as many `W_eff` fraction bits (at most 14) as fit.

    Returns:
        The `QuantizedNetwork`.

    Raises:
        ValueError: a weight outside the signed range, a bias, an unsupported reset, or a Norse neuron the
            chip cannot run (a current-based LIF: the message says what to use).

    Example:
        >>> from sc_neurocore.data import pretrained_network
        >>> net = quantize_network(pretrained_network(8), n_steps=25)
        >>> [tuple(w.shape) for w in net.weights], tuple(net.effective.shape)
        ([(64, 32), (32, 10)], (64, 10))
    """
    chain, betas, thresholds, reset, reset_delay = _chain_of(model)
    if not reset_delay:
        spec_options = dict(spec_options, reset_delay=False)
    if "trace" not in spec_options:  # the finest W_eff grid that fits the 16-bit weight word
        spec_options = dict(spec_options, trace=_trace_spec_for(chain))
    spec = NetworkSpec(layers=(chain[0].shape[0], *(w.shape[1] for w in chain)), n_steps=n_steps,
                       beta=tuple(betas), threshold=tuple(thresholds), reset=reset, **spec_options)
    scale = 1 << spec.weight_frac_bits
    quantised = []
    for index, weight in enumerate(chain):
        ints = torch.round(weight.detach().to(torch.float64) * scale)
        if bool(((ints < spec.weight_min) | (ints > spec.weight_max)).any()):
            raise ValueError(f"model: layer {index} has a weight outside the {spec.weight_bits}-bit signed range "
                             f"with weight_frac_bits={spec.weight_frac_bits}; lower weight_frac_bits")
        quantised.append(ints.to(torch.int64))
    effective = quantized_weight_matrix([w.detach().to(torch.float64) for w in chain], spec.trace)
    return QuantizedNetwork(spec, tuple(quantised), effective)


def membrane_bounds(network: QuantizedNetwork) -> list[tuple[int, int]]:
    """The lowest and highest value any membrane (or partial sum) can reach in `n_steps`, per layer.

    Worst case per neuron: every positive synapse active (`hi`), every negative one active plus a reset
    (`lo`), iterated through the floor leak for `T` steps.
    """
    spec = network.spec
    bounds = []
    for index, weight in enumerate(network.weights):
        positive = weight.clamp(min=0).sum(dim=0)
        negative = weight.clamp(max=0).sum(dim=0)
        theta = spec.threshold_int[index] if spec.reset == "subtract" else 0  # a zero reset only moves v to 0
        hi = torch.zeros_like(positive)
        lo = torch.zeros_like(negative)
        top, bottom = 0, 0
        beta = spec.beta_int[index]
        for _ in range(spec.n_steps):  # time is sequential
            hi = ((beta * hi) >> spec.beta_bits) + positive
            lo = ((beta * lo) >> spec.beta_bits) + negative - theta
            top, bottom = max(top, int(hi.max())), min(bottom, int(lo.min()))
        bounds.append((bottom, top))
    return bounds


def check_saturation(network: QuantizedNetwork) -> None:
    """Refuse a network whose membranes could leave `membrane_bits` or whose traces could saturate.

    Raises:
        ValueError: naming the width to raise.
    """
    spec = network.spec
    for index, (low, high) in enumerate(membrane_bounds(network)):
        if low < spec.membrane_min or high > spec.membrane_max:
            need = max(int(high).bit_length(), int(-low - 1).bit_length()) + 1
            raise ValueError(f"membrane_bits: layer {index}'s membranes can reach [{low}, {high}], outside "
                             f"{spec.membrane_bits}-bit signed; needs {need} bits or fewer weight_frac_bits")
    if not spec.trace.never_saturates(spec.n_steps):
        raise ValueError(f"trace: a {spec.trace.trace_bits}-bit trace saturates within {spec.n_steps} steps at "
                         f"decay {spec.trace.decay}; use fewer frac_bits or a smaller decay")


def _simulate(network: QuantizedNetwork, spikes: Tensor, record: bool) -> tuple[Tensor, Tensor, list[Tensor],
                                                                               list[list[Tensor]]]:
    """The integer network over time: `(traces, counts, membranes, recorded)`, `recorded[l][t]` the spikes
    of layer `l` at step `t` when `record` (else empty)."""
    spec = network.spec
    bits = as_spike_bits(spikes)
    if bits.ndim != 3 or tuple(bits.shape[1:]) != (spec.n_steps, spec.n_inputs):
        raise ValueError(f"spikes: expected shape (B, {spec.n_steps}, {spec.n_inputs}), got {tuple(bits.shape)}")
    n_samples = bits.shape[0]
    membranes = [torch.zeros(n_samples, w.shape[1], dtype=torch.int64) for w in network.weights]
    traces = torch.zeros(n_samples, spec.n_inputs, dtype=torch.int64)
    counts = torch.zeros(n_samples, spec.n_outputs, dtype=torch.int64)
    recorded: list[list[Tensor]] = [[] for _ in network.weights] if record else []
    for t in range(spec.n_steps):  # time is sequential
        layer_input = bits[:, t]
        traces = fixed_trace_step(layer_input, traces, spec.trace)
        for index, weight in enumerate(network.weights):
            layer_input, membranes[index] = fixed_lif_step(
                layer_input @ weight, membranes[index], spec.beta_int[index], spec.beta_bits,
                spec.threshold_int[index], spec.reset, spec.reset_delay)
            if record:
                recorded[index].append(layer_input)
        counts = counts + layer_input
    return traces, counts, membranes, recorded


def record_spikes(network: QuantizedNetwork, spikes: Tensor) -> list[Tensor]:
    """Every layer's spikes `(B, T, n_l)` `int64` on 0/1 input spikes `(B, T, N)` (what `run_network` counts).

    Example:
        >>> from sc_neurocore.data import load_digits, pretrained_network
        >>> net = quantize_network(pretrained_network(8), n_steps=25)
        >>> [tuple(z.shape) for z in record_spikes(net, load_digits("test").spikes[:2])]
        [(2, 25, 32), (2, 25, 10)]
    """
    return [torch.stack(steps, dim=1) for steps in _simulate(network, spikes, record=True)[3]]


def run_network(network: QuantizedNetwork, spikes: Tensor) -> NetworkResult:
    """Run the integer network on 0/1 spikes `(B, T, N)`; one loop over time, vectorised over samples.

    Example:
        >>> from sc_neurocore.data import load_digits, pretrained_network
        >>> net = quantize_network(pretrained_network(8), n_steps=25)
        >>> result = run_network(net, load_digits("test").spikes[:4])
        >>> tuple(result.top_indices.shape)
        (4, 10)
    """
    traces, counts, membranes, _ = _simulate(network, spikes, record=False)
    predicted = torch.argmax(counts, dim=1)  # the first maximum, as the chip's scan
    importance = traces * network.effective[:, predicted].T
    order = torch.sort(importance.abs(), dim=1, descending=True, stable=True).indices[:, :network.spec.top_k]
    return NetworkResult(counts, predicted, traces, importance, order, torch.gather(importance, 1, order),
                         tuple(membranes))


def integer_accuracy(model, n_steps: int, spikes: Tensor, labels: Tensor, **spec_options) -> dict[str, float]:
    """Classification accuracy of the float model and of its integer version on the same samples.

    Args:
        model: an `LIFNetwork`, snnTorch stack or Norse `LIFBoxCell` stack.
        n_steps: timesteps per sample.
        spikes: `(B, T, N)` 0/1 spikes.
        labels: `(B,)` classes.
        **spec_options: further `NetworkSpec` fields.

    Returns:
        `{"float": ..., "integer": ..., "loss_points": 100 * (float - integer), "agreement": ...}`.

    Example:
        >>> from sc_neurocore.data import load_digits, pretrained_network
        >>> test = load_digits("test")
        >>> scores = integer_accuracy(pretrained_network(8), 25, test.spikes, test.labels)
        >>> abs(scores["loss_points"]) <= 1.0
        True
    """
    from ..models import LIFNetwork

    network = quantize_network(model, n_steps, **spec_options)
    from .network_norse import is_norse_stack

    if isinstance(model, LIFNetwork):
        float_counts = model(spikes)
    elif is_norse_stack(model):  # Norse's own forward, through its adapter (a count readout, as the chip's)
        from ..adapters.norse import from_norse

        float_counts = from_norse(model, readout="count").run(spikes.to(torch.float32))
    else:
        from ..adapters.snntorch import from_snntorch

        float_counts = from_snntorch(model).run(spikes.to(torch.float32))
    float_predicted = torch.argmax(float_counts, dim=1)
    predicted = run_network(network, spikes).predicted
    labels = torch.as_tensor(labels)
    float_accuracy = float((float_predicted == labels).double().mean())
    integer = float((predicted == labels).double().mean())
    return {"float": float_accuracy, "integer": integer, "loss_points": 100.0 * (float_accuracy - integer),
            "agreement": float((predicted == float_predicted).double().mean())}
