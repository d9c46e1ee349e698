r"""The integer-only reference of the trace explainer: what the FPGA core returns, bit for bit.

Built on `sc_neurocore.dynamics.trace_step` -- the same decayed-trace step as the float
``SpikeAttributor`` -- applied to integers, followed by the floor shift and saturation of the
`FixedPointSpec`:

    x[t] = min( trace_step(2**F * s[t], x[t-1], D_int) >> k, 2**W - 1 )

Every function is vectorised over samples and input neurons; the only loop is over time.

The hardware keeps one trace per input neuron, not per spike. `spike_contributions` splits each
final trace over the spikes that built it, exactly, in integers: the contribution of timestep ``t`` is
the final trace with spikes up to ``t`` minus the final trace with spikes up to ``t - 1`` (both run to the
end of the window). It is 0 where there is no spike, and the contributions of an input sum to its
hardware trace exactly (a telescoping sum), so a per-spike map built from them sums over time to the
hardware's importance.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..dynamics import trace_step
from .spec import FixedPointSpec

#: Bytes of truncated-run traces `fixed_point_attribution` holds at once (samples are chunked to fit).
CONTRIBUTION_BUDGET_BYTES = 256 * 2**20


def as_spike_bits(spikes: Tensor, name: str = "spikes") -> Tensor:
    """Check that ``spikes`` holds only 0 and 1 (the hardware stores one bit per spike); returns ``int64``.

    Args:
        spikes: a real tensor of any shape.
        name: the argument name used in errors.

    Returns:
        The spikes as an ``int64`` tensor (a new tensor; the input is not modified).
    """
    if not isinstance(spikes, Tensor) or spikes.is_complex():
        raise TypeError(f"{name}: expected a real torch tensor of 0/1 spikes, got {type(spikes).__name__}")
    if spikes.dtype.is_floating_point and not bool(torch.isfinite(spikes).all()):
        raise ValueError(f"{name}: expected 0/1 spikes, found NaN or Inf")
    if bool(((spikes != 0) & (spikes != 1)).any()):
        raise ValueError(f"{name}: the hardware stores one bit per spike; expected only 0 and 1")
    return spikes.to(torch.int64)


def fixed_trace_step(spikes: Tensor, trace: Tensor, spec: FixedPointSpec) -> Tensor:
    """One hardware timestep: ``min(trace_step(2**F * s, x, D_int) >> k, 2**W - 1)`` on ``int64`` tensors.

    Args:
        spikes: 0/1 ``int64`` spikes of the timestep, any shape.
        trace: the ``int64`` traces after the previous timestep, broadcastable with ``spikes``.
        spec: the fixed-point format.

    Returns:
        The new ``int64`` traces.

    Example:
        >>> spec = FixedPointSpec(decay=0.5)
        >>> fixed_trace_step(torch.tensor([1, 0]), torch.tensor([0, 100]), spec)
        tensor([512,  50])
    """
    product = trace_step(spikes * spec.spike_increment, trace, spec.decay_int)  # exact in int64: < 2**32
    return torch.clamp(product >> spec.decay_bits, max=spec.trace_max)  # floor shift, then saturate


def hardware_traces(spikes: Tensor, spec: FixedPointSpec) -> Tensor:
    """Final traces after all ``T`` timesteps, from zero: ``(..., T, N) -> (..., N)`` ``int64``.

    Args:
        spikes: 0/1 spikes ``(..., T, N)``.
        spec: the fixed-point format.

    Returns:
        The traces the core holds after a run, one per input neuron.

    Example:
        >>> spec = FixedPointSpec(decay=0.5)
        >>> hardware_traces(torch.tensor([[1, 0], [1, 1]]), spec)
        tensor([768, 512])
    """
    bits = as_spike_bits(spikes)
    if bits.ndim < 2:
        raise ValueError(f"spikes: expected shape (..., T, N), got {tuple(bits.shape)}")
    trace = torch.zeros_like(bits[..., 0, :])
    for t in range(bits.shape[-2]):  # time is sequential
        trace = fixed_trace_step(bits[..., t, :], trace, spec)
    return trace


def hardware_importance(spikes: Tensor, weights: Tensor, spec: FixedPointSpec) -> Tensor:
    """What the core reads back: ``trace[i] * weight[i, c]`` at full width, ``(..., N, C)`` ``int64``.

    Args:
        spikes: 0/1 spikes ``(..., T, N)``.
        weights: quantised ``int64`` weights ``(N, C)`` (see `FixedPointSpec.quantize_weights`).
        spec: the fixed-point format.

    Returns:
        ``importance[..., i, c]``; its real value is ``importance * spec.importance_scale``.
    """
    check_weight_ints(weights, spec)
    traces = hardware_traces(spikes, spec)
    if traces.shape[-1] != weights.shape[0]:
        raise ValueError(f"weights: expected {traces.shape[-1]} rows (one per input neuron), got {weights.shape[0]}")
    return traces[..., :, None] * weights


def spike_contributions(spikes: Tensor, spec: FixedPointSpec) -> Tensor:
    """Exact integer split of each hardware trace over its spikes: ``(..., T, N) -> (..., T, N)`` ``int64``.

    ``contribution[t, i] = y_{t+1}[i] - y_t[i]`` where ``y_u`` is the final trace of the train with every
    spike at ``t >= u`` removed. Zero where there is no spike; sums over ``t`` to
    `hardware_traces` exactly. All ``T + 1`` truncated trains run together, one loop over time.

    Args:
        spikes: 0/1 spikes ``(..., T, N)``.
        spec: the fixed-point format.

    Returns:
        ``int64`` contributions, same shape as ``spikes``.
    """
    bits = as_spike_bits(spikes)
    if bits.ndim < 2:
        raise ValueError(f"spikes: expected shape (..., T, N), got {tuple(bits.shape)}")
    n_steps = bits.shape[-2]
    # keep[u, t] = 1 where spike t survives truncation at u (t < u), for u = 0 .. T.
    cut = torch.arange(n_steps + 1, device=bits.device)
    keep = (torch.arange(n_steps, device=bits.device)[None, :] < cut[:, None]).to(torch.int64)
    trace = torch.zeros(*bits.shape[:-2], n_steps + 1, bits.shape[-1], dtype=torch.int64, device=bits.device)
    for t in range(n_steps):  # time is sequential; the T + 1 truncations are a batch dimension
        trace = fixed_trace_step(bits[..., t, None, :] * keep[:, t, None], trace, spec)
    return trace[..., 1:, :] - trace[..., :-1, :]


def check_weight_ints(weights: Tensor, spec: FixedPointSpec, name: str = "weights") -> None:
    """Raise unless ``weights`` is an integer ``(N, C)`` tensor within the spec's signed weight range."""
    if not isinstance(weights, Tensor) or weights.dtype.is_floating_point or weights.dtype == torch.bool \
            or weights.is_complex():
        raise TypeError(f"{name}: expected an integer torch tensor of quantised weights, got "
                        f"{getattr(weights, 'dtype', type(weights).__name__)}")
    if weights.ndim != 2:
        raise ValueError(f"{name}: expected shape (n_inputs, n_outputs), got {tuple(weights.shape)}")
    if bool(((weights < spec.weight_min) | (weights > spec.weight_max)).any()):
        raise ValueError(f"{name}: expected values in [{spec.weight_min}, {spec.weight_max}] "
                         f"({spec.weight_bits}-bit signed)")


def quantized_paths(chain: list[Tensor], targets: Tensor, spec: FixedPointSpec) -> Tensor:
    """The hardware weights of each sample's target: quantised ``W_eff[:, k_b]``, ``(B, N)`` ``int64``.

    ``W_eff = W_1 @ ... @ W_L`` is multiplied in float64 (as ``SpikeAttributor``'s linear rule, by
    `linear_paths`) and then quantised once, so that the core's
    weight RAM, the exporter and ``SpikeAttributor(fixed_point=spec)`` hold the same integers.

    Args:
        chain: ``(n_in, n_out)`` float weight matrices whose shapes chain.
        targets: ``(B,)`` output neuron indices.
        spec: the fixed-point format.

    Returns:
        ``int64`` weights ``(B, N)``.
    """
    from ..explain.attribution import linear_paths

    return spec.quantize_weights(linear_paths([w.to(torch.float64) for w in chain], targets), "weights")


def quantized_weight_matrix(chain: list[Tensor], spec: FixedPointSpec) -> Tensor:
    """The whole hardware weight RAM: quantised ``W_eff``, ``(N, C)`` ``int64`` (see `quantized_paths`)."""
    n_outputs = chain[-1].shape[1]
    return quantized_paths(chain, torch.arange(n_outputs, device=chain[-1].device), spec).T


def fixed_point_attribution(spikes: Tensor, chain: list[Tensor], targets: Tensor, spec: FixedPointSpec) -> Tensor:
    """``SpikeAttributor(fixed_point=spec)``'s map: ``(B, T, N)`` float64, exact in every bit.

    ``A[b, t, i] = contribution[b, t, i] * w[b, i] * 2**-(F + G)`` with the integer
    `spike_contributions` and the quantised weights of `quantized_paths`. Every entry is an
    integer below ``2**46`` times a power of two, so float64 holds it exactly and summing over time gives
    the hardware's importance ``trace[i] * w[i, k]`` exactly.

    Args:
        spikes: 0/1 spikes ``(B, T, N)``.
        chain: float weight matrices.
        targets: ``(B,)`` output neuron indices.
        spec: the fixed-point format.

    Returns:
        The attribution map in real units, float64.
    """
    bits = as_spike_bits(spikes, "input_spikes")
    weights = quantized_paths(chain, targets, spec)  # (B, N)
    n_samples, n_steps, n_inputs = bits.shape
    # spike_contributions holds T + 1 truncated runs per sample: bound that working set by chunking samples.
    chunk = max(1, CONTRIBUTION_BUDGET_BYTES // (8 * (n_steps + 1) * n_inputs))
    scores = torch.empty(bits.shape, dtype=torch.float64, device=bits.device)
    for start in range(0, n_samples, chunk):  # chunks of samples, each a tensor op
        part = slice(start, start + chunk)
        scores[part] = (spike_contributions(bits[part], spec) * weights[part, None, :]).to(torch.float64)
    return scores * spec.importance_scale


# Memory images: what the host writes through the core's ``load_data`` CSR and how it reads back.

def spike_memory_words(spikes: Tensor, lanes: int) -> Tensor:
    """The spike RAM image of one train: ``(T, N) -> (T * M,)`` ``int64`` words, ``M = ceil(N / L)``.

    Word ``t * M + j`` holds in bit ``l`` the spike of input ``j * L + l`` at timestep ``t`` (0 for the
    padding inputs ``>= N``), the layout of `TraceExplainer`.

    Args:
        spikes: 0/1 spikes ``(T, N)``.
        lanes: the core's lane count ``L``.

    Returns:
        The words to write in order from address 0.

    Example:
        >>> spike_memory_words(torch.tensor([[1, 0, 1], [0, 1, 1]]), lanes=2)
        tensor([1, 1, 2, 1])
    """
    bits = as_spike_bits(spikes)
    if bits.ndim != 2:
        raise ValueError(f"spikes: expected shape (T, N), got {tuple(bits.shape)}")
    n_steps, n_inputs = bits.shape
    words = -(-n_inputs // lanes)
    padded = torch.zeros(n_steps, words * lanes, dtype=torch.int64, device=bits.device)
    padded[:, :n_inputs] = bits
    powers = torch.ones(lanes, dtype=torch.int64, device=bits.device) << torch.arange(lanes, device=bits.device)
    return (padded.reshape(n_steps, words, lanes) * powers).sum(dim=-1).reshape(-1)


def weight_memory_words(weights: Tensor, spec: FixedPointSpec) -> Tensor:
    """The weight RAM image: quantised ``(N, C)`` ints -> ``(N * C,)`` words, row-major, ``B``-bit two's complement.

    Example:
        >>> weight_memory_words(torch.tensor([[1, -1]]), FixedPointSpec(decay=0.9))
        tensor([    1, 65535])
    """
    check_weight_ints(weights, spec)
    return weights.to(torch.int64).reshape(-1) & ((1 << spec.weight_bits) - 1)


def importance_from_word(word: int) -> int:
    """The signed importance from the 32-bit ``importance`` CSR word (two's complement)."""
    word = int(word) & 0xFFFFFFFF
    return word - (1 << 32) if word & (1 << 31) else word
