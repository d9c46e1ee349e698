r"""The integer reference of the on-chip LIF network: what `NetworkExplainer` returns, bit for bit.

Built from the step functions of `sc_neurocore.dynamics`:

* the membrane step is `lif_step` on `int64` tensors with `beta = 1` and the floor-shifted leak folded
  into the current (`sc_neurocore.fpga.network_step.fixed_lif_step`);
* a current-based (CUBA) layer, `NetworkSpec.alpha` not `None` for it, adds a synaptic current per
  neuron in Norse's order (`network_step.fixed_cuba_step`). Only this reference runs such a layer, on the
  host: the chip's core refuses it (`network_core.check_core`);
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

from .network_spec import NetworkSpec
from .network_step import fixed_cuba_step, fixed_lif_step
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
        currents: the final synaptic currents per layer, `(B, n_out)` each, `None` for a layer without one.
    """

    counts: Tensor
    predicted: Tensor
    traces: Tensor
    importance: Tensor
    top_indices: Tensor
    top_scores: Tensor
    membranes: tuple[Tensor, ...]
    currents: tuple[Tensor | None, ...] = ()


def _chain_of(model) -> tuple[list[Tensor], list[float], list[float], str, bool, list[float | None]]:
    """Weights `(n_in, n_out)`, betas, thresholds, reset, reset delay and synaptic decays (`None`: no
    current) of an `LIFNetwork`, an snnTorch stack or a Norse stack (`network_norse.norse_chain`)."""
    from ..models import LIFNetwork
    from .network_norse import is_norse_stack, norse_chain

    if isinstance(model, LIFNetwork):
        if any(model._bias(index) is not None for index in range(len(model.weights))):
            raise ValueError("model: the chip has no biases; expected a bias-free LIFNetwork")
        chain = model.linear_weights()
        return chain, list(model.betas), list(model.thresholds), model.reset, True, [None] * len(chain)
    if is_norse_stack(model):
        return norse_chain(model)
    modules = list(model) if isinstance(model, torch.nn.Sequential) else None
    if not modules or len(modules) % 2:
        raise TypeError(f"model: expected an LIFNetwork, an snnTorch nn.Sequential of Linear + Leaky / Synaptic pairs or a "
                        f"Norse SequentialState of Linear + LIFBoxCell / LIFCell / LIF pairs, got {type(model).__name__}")
    weights: list[Tensor] = []
    betas: list[float] = []
    thresholds: list[float] = []
    resets: set[str] = set()
    delays: set[bool] = set()
    alphas: list[float | None] = []
    leaky: Any
    for layer, (linear, leaky) in enumerate(zip(modules[::2], modules[1::2], strict=True)):
        kind = type(leaky).__name__
        if not isinstance(linear, torch.nn.Linear) or kind not in ("Leaky", "Synaptic"):
            raise TypeError("model: expected Linear + snntorch.Leaky / snntorch.Synaptic pairs")
        if kind == "Synaptic" and str(leaky.reset_mechanism) == "zero":
            raise ValueError(f"model: layer {layer} is an snnTorch Synaptic with a zero reset, which zeroes the whole "
                             "next membrane (input included), not a step of the integer network; use "
                             "reset_mechanism='subtract' or 'none'")
        # snnTorch's Synaptic, syn = alpha syn + I then mem = beta mem + syn, is the current-based layer
        # with the current stored after its decay: J_t = c_{t-1} + I_t = syn_t.
        alphas.append(float(leaky.alpha) if kind == "Synaptic" else None)
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
    return weights, betas, thresholds, resets.pop(), delays.pop(), alphas


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
    """Quantise an `LIFNetwork`, an snnTorch `Linear` + `Leaky` / `Synaptic` stack or a Norse stack of
    `Linear` + `LIFBoxCell` / `LIFCell` / `LIF` (`sc_neurocore.fpga.network_norse`) to the chip's integers.

    A Norse `LIFCell` / `LIF` or an snnTorch `Synaptic` becomes a current-based layer (`NetworkSpec.alpha`;
    snnTorch's `syn = alpha syn + I` is the layer's jumped current `J`), which only this
    reference runs (on the host; the chip's core refuses it), and such a network is checked for
    saturation here (`check_saturation`): its widths are the reference's, not the chip's.

    Args:
        model: the float network (not modified).
        n_steps: timesteps per sample.
        **spec_options: further `NetworkSpec` fields (`weight_bits`, `trace`, `top_k`, ...); without
            `trace`, the default trace format with as many `W_eff` fraction bits (at most 14) as fit.

    Returns:
        The `QuantizedNetwork`.

    Raises:
        ValueError: a weight outside the signed range, a bias, an unsupported reset, a Norse neuron the
            integer network cannot run (the message says why and what to use), or a current-based network
            that could saturate its widths.

    Example:
        >>> from sc_neurocore.data import pretrained_network
        >>> net = quantize_network(pretrained_network(8), n_steps=25)
        >>> [tuple(w.shape) for w in net.weights], tuple(net.effective.shape)
        ([(64, 32), (32, 10)], (64, 10))
    """
    if "alpha" in spec_options:
        raise ValueError("alpha: the synaptic decay comes from the model (a Norse LIFCell's dt * tau_syn_inv); for a "
                         "hand-made current-based network, build NetworkSpec(alpha=...) and a QuantizedNetwork")
    chain, betas, thresholds, reset, reset_delay, alphas = _chain_of(model)
    if any(alpha is not None for alpha in alphas):
        spec_options = dict(spec_options, alpha=tuple(alphas))
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
    network = QuantizedNetwork(spec, tuple(quantised), effective)
    if spec.current_based:
        check_saturation(network)
    return network


def _bounds(network: QuantizedNetwork) -> list[tuple[tuple[int, int], tuple[int, int] | None]]:
    """Per layer, the membrane range and the jumped synaptic current's range (`None` without a current).

    Worst case per neuron: every positive synapse active (`hi`), every negative one active plus a reset
    (`lo`), iterated for `T` steps through the floor leak and, in a current-based layer, the current's
    floor decay (`J = c + I`, `c' = floor(alpha_int J / 2**kb)`; both floors are monotone, so the
    iterated extremes bound every train).
    """
    spec = network.spec
    bounds: list[tuple[tuple[int, int], tuple[int, int] | None]] = []
    for index, weight in enumerate(network.weights):
        positive = weight.clamp(min=0).sum(dim=0)
        negative = weight.clamp(max=0).sum(dim=0)
        theta = spec.threshold_int[index] if spec.reset == "subtract" else 0  # a zero reset only moves v to 0
        hi, lo = torch.zeros_like(positive), torch.zeros_like(negative)
        c_hi, c_lo = torch.zeros_like(positive), torch.zeros_like(negative)
        top, bottom, c_top, c_bottom = 0, 0, 0, 0
        beta, alpha = spec.beta_int[index], spec.alpha_int[index]
        for _ in range(spec.n_steps):  # time is sequential
            j_hi, j_lo = c_hi + positive, c_lo + negative
            if alpha is not None:
                c_hi, c_lo = (alpha * j_hi) >> spec.beta_bits, (alpha * j_lo) >> spec.beta_bits
                c_top, c_bottom = max(c_top, int(j_hi.max())), min(c_bottom, int(j_lo.min()))
            hi = ((beta * hi) >> spec.beta_bits) + j_hi
            lo = ((beta * lo) >> spec.beta_bits) + j_lo - theta
            top, bottom = max(top, int(hi.max())), min(bottom, int(lo.min()))
        bounds.append(((bottom, top), None if alpha is None else (c_bottom, c_top)))
    return bounds


def membrane_bounds(network: QuantizedNetwork) -> list[tuple[int, int]]:
    """The lowest and highest value any membrane (or partial sum) can reach in `n_steps`, per layer.

    Worst case per neuron: every positive synapse active (`hi`), every negative one active plus a reset
    (`lo`), iterated through the floor leak (and a current-based layer's current) for `T` steps.
    """
    return [membrane for membrane, _ in _bounds(network)]


def current_bounds(network: QuantizedNetwork) -> list[tuple[int, int] | None]:
    """The lowest and highest synaptic current `J = c + I` per layer in `n_steps` (`None` without one).

    Example:
        >>> spec = NetworkSpec(layers=(2, 1), n_steps=30, alpha=0.5, reset="zero", reset_delay=False)
        >>> net = QuantizedNetwork(spec, (torch.tensor([[100], [-50]]),), torch.zeros(2, 1, dtype=torch.int64))
        >>> current_bounds(net)
        [(-100, 199)]
    """
    return [current for _, current in _bounds(network)]


def _width(low: int, high: int) -> int:
    return max(int(high).bit_length(), int(-low - 1).bit_length()) + 1


def check_saturation(network: QuantizedNetwork) -> None:
    """Refuse a network whose membranes could leave `membrane_bits`, whose synaptic currents could leave
    `current_bits`, or whose traces could saturate.

    Raises:
        ValueError: naming the width to raise.
    """
    spec = network.spec
    for index, ((low, high), current) in enumerate(_bounds(network)):
        if low < spec.membrane_min or high > spec.membrane_max:
            raise ValueError(f"membrane_bits: layer {index}'s membranes can reach [{low}, {high}], outside "
                             f"{spec.membrane_bits}-bit signed; needs {_width(low, high)} bits or fewer "
                             "weight_frac_bits")
        if current is not None and (current[0] < spec.current_min or current[1] > spec.current_max):
            raise ValueError(f"current_bits: layer {index}'s synaptic currents can reach [{current[0]}, "
                             f"{current[1]}], outside {spec.current_bits}-bit signed; needs "
                             f"{_width(*current)} bits or fewer weight_frac_bits")
    if not spec.trace.never_saturates(spec.n_steps):
        raise ValueError(f"trace: a {spec.trace.trace_bits}-bit trace saturates within {spec.n_steps} steps at "
                         f"decay {spec.trace.decay}; use fewer frac_bits or a smaller decay")


def _simulate(network: QuantizedNetwork, spikes: Tensor, record: bool) -> tuple[
        Tensor, Tensor, list[Tensor], list[Tensor | None], list[list[Tensor]]]:
    """The integer network over time: `(traces, counts, membranes, currents, recorded)`, `recorded[l][t]`
    the spikes of layer `l` at step `t` when `record` (else empty)."""
    spec = network.spec
    bits = as_spike_bits(spikes)
    if bits.ndim != 3 or tuple(bits.shape[1:]) != (spec.n_steps, spec.n_inputs):
        raise ValueError(f"spikes: expected shape (B, {spec.n_steps}, {spec.n_inputs}), got {tuple(bits.shape)}")
    n_samples = bits.shape[0]
    membranes = [torch.zeros(n_samples, w.shape[1], dtype=torch.int64) for w in network.weights]
    currents: list[Tensor | None] = [None if alpha is None else torch.zeros_like(v)
                                     for alpha, v in zip(spec.alpha_int, membranes, strict=True)]
    traces = torch.zeros(n_samples, spec.n_inputs, dtype=torch.int64)
    counts = torch.zeros(n_samples, spec.n_outputs, dtype=torch.int64)
    recorded: list[list[Tensor]] = [[] for _ in network.weights] if record else []
    for t in range(spec.n_steps):  # time is sequential
        layer_input = bits[:, t]
        traces = fixed_trace_step(layer_input, traces, spec.trace)
        for index, weight in enumerate(network.weights):
            alpha, synaptic = spec.alpha_int[index], currents[index]
            if alpha is None or synaptic is None:
                layer_input, membranes[index] = fixed_lif_step(
                    layer_input @ weight, membranes[index], spec.beta_int[index], spec.beta_bits,
                    spec.threshold_int[index], spec.reset, spec.reset_delay)
            else:
                layer_input, membranes[index], currents[index] = fixed_cuba_step(
                    layer_input @ weight, membranes[index], synaptic, spec.beta_int[index], alpha, spec.beta_bits,
                    spec.threshold_int[index], spec.reset, spec.reset_delay)
            if record:
                recorded[index].append(layer_input)
        counts = counts + layer_input
    return traces, counts, membranes, currents, recorded


def record_spikes(network: QuantizedNetwork, spikes: Tensor) -> list[Tensor]:
    """Every layer's spikes `(B, T, n_l)` `int64` on 0/1 input spikes `(B, T, N)` (what `run_network` counts).

    Example:
        >>> from sc_neurocore.data import load_digits, pretrained_network
        >>> net = quantize_network(pretrained_network(8), n_steps=25)
        >>> [tuple(z.shape) for z in record_spikes(net, load_digits("test").spikes[:2])]
        [(2, 25, 32), (2, 25, 10)]
    """
    return [torch.stack(steps, dim=1) for steps in _simulate(network, spikes, record=True)[4]]


def run_network(network: QuantizedNetwork, spikes: Tensor) -> NetworkResult:
    """Run the integer network on 0/1 spikes `(B, T, N)`; one loop over time, vectorised over samples.

    Example:
        >>> from sc_neurocore.data import load_digits, pretrained_network
        >>> net = quantize_network(pretrained_network(8), n_steps=25)
        >>> result = run_network(net, load_digits("test").spikes[:4])
        >>> tuple(result.top_indices.shape)
        (4, 10)
    """
    traces, counts, membranes, currents, _ = _simulate(network, spikes, record=False)
    predicted = torch.argmax(counts, dim=1)  # the first maximum, as the chip's scan
    importance = traces * network.effective[:, predicted].T
    order = torch.sort(importance.abs(), dim=1, descending=True, stable=True).indices[:, :network.spec.top_k]
    return NetworkResult(counts, predicted, traces, importance, order, torch.gather(importance, 1, order),
                         tuple(membranes), tuple(currents))


def integer_accuracy(model, n_steps: int, spikes: Tensor, labels: Tensor, **spec_options) -> dict[str, float]:
    """Classification accuracy of the float model and of its integer version on the same samples.

    Args:
        model: an `LIFNetwork`, snnTorch stack or Norse stack (`LIFBoxCell`, `LIFCell`, `LIF`).
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
