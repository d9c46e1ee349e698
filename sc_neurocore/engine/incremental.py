r"""The incremental executor: exact perturbations of a feed-forward stack without re-running what did not change.

A `CompiledStack` is a feed-forward network whose structure is known: linear layers, each feeding a layer
of neurons advanced by one of the pure step functions of `sc_neurocore.dynamics` (the same ones the
reference `LIFNetwork` and the compiled snnTorch / Norse stacks use). For such
a network a perturbation changes very little, and this executor recomputes only that:

* **Rank-1 delta.** Every perturbation removes spikes from the train ``x_l`` that feeds one linear layer
  ``W`` (``l = 0``: the input; a silenced hidden neuron ``j`` of layer ``l - 1`` removes its whole emitted
  train). The layer's input current is then the cached baseline current minus the removed part:

    $$
    I'[t] = I[t] - x_l[t, i] \, W[i] \quad\text{(one spike } (t_0, i)\text{: only at } t = t_0),
    \qquad I'[t] = I[t] - x_l[t, i] \, W[i] \quad\text{(neuron } i \text{ silenced: every } t).
    $$

  No matrix product with the input per perturbation: a row costs ``O(n_out)`` per step in that layer.
* **Suffix replay.** Nothing changes before the first timestep ``t_0`` a perturbation touches (the
  removed spike's time, the silenced neuron's first baseline spike). Its replay starts from the cached
  baseline state of every layer at ``t_0 - 1``; the prefix is never recomputed, and a readout that sums
  over time starts from the baseline's partial sum. A silenced neuron that never fired needs no replay.
* **Grouped by time.** The rows of a chunk are sorted by ``t_0``; at step ``t`` the active rows are the
  prefix with ``t_0 <= t``, so each step is one batched call of the step function on that prefix.

Exactness: the replay runs the very step functions of the forward pass on the very same states, so
spike trains are those of a brute-force forward. The one difference is floating-point association of
the changed current (``I - x W[i]`` instead of a new matrix product): with weights that are exactly
representable sums (fixed-point weights) the results are bit-identical; with arbitrary float weights the
two differ by round-off, which could flip a spike whose membrane lies within round-off of threshold. The
replay therefore watches every spike decision; a row that comes within `tie_margin` of a threshold
is replayed again with its changed currents computed by the layer's own matrix product of the perturbed
input, as a forward pass computes them. Spike counts are then identical to brute force (tested on 10^5
perturbations of float32 Gaussian networks); membrane readouts agree to round-off.

Memory: per sample chunk the baseline cache (currents, states, spikes of every layer, ``(B, T, n)``);
per row chunk the replay states. Both are sized from ``max_memory`` (see `plan_chunks`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..dynamics import LIFParameters, lif_step
from ..protocol import INPUT_LAYER
from .batched import _progress_bar
from .budget import default_max_memory, workable_budget, workable_rows
from .cost import INCREMENTAL_NEURON, STEP_CALL
from .lif_loop import run_neurons
from ..graph.readout import READOUTS as GRAPH_READOUTS
from .plans import Silencing, SpikeRemovals
from .threads import step_block_rows, thread_policy

logger = logging.getLogger(__name__)

#: Readouts of the output layer, as the model graph defines them (`sc_neurocore.graph.readout`).
READOUTS = GRAPH_READOUTS


def readout_start(readout: str, like: Tensor) -> Tensor:
    """The readout accumulator before any step ``(B, C)`` (``like``: a ``(B, C)`` tensor)."""
    if readout == "max_membrane":
        return torch.full_like(like, float("-inf"))
    return torch.zeros_like(like)


def membrane_of(state) -> Tensor:
    """The membrane field of a neuron state (``state.membrane``, as the graph's readout reads it; a state
    without one: its first field). A synaptic state's first field is its current, not its membrane."""
    membrane = getattr(state, "membrane", None)
    return state[0] if membrane is None else membrane


def readout_step(readout: str, accumulated: Tensor, spikes: Tensor, membrane: Tensor) -> Tensor:
    """The accumulator after one more step of the output layer (spikes and membrane ``(B, C)``)."""
    if readout in ("count", "rate"):
        return accumulated + spikes
    if readout == "max_membrane":
        return torch.maximum(accumulated, membrane)
    return membrane


def readout_finish(readout: str, accumulated: Tensor, n_steps: int) -> Tensor:
    """The readout ``(B, C)`` from the accumulator after all ``n_steps`` steps."""
    return accumulated / n_steps if readout == "rate" else accumulated


class CompiledLayer(NamedTuple):
    """One linear layer and the neurons it feeds.

    Attributes:
        weight: ``(n_in, n_out)`` weight matrix.
        bias: ``(n_out,)`` or ``None``.
        step: a step function of `sc_neurocore.dynamics`, ``step(current, state, params) -> (spikes, state)``.
        params: the step function's parameters.
        initial_state: ``initial_state(current) -> state``: the resting state shaped like a ``(B, n_out)`` current.
        linear: ``linear(spikes) -> current`` for spikes ``(B, n_in)`` or ``(B, T, n_in)``: how the framework
            computes the current, so that the compiled forward reproduces its rounding (``None``:
            ``spikes @ weight (+ bias)``, as `LIFNetwork` does).
        decision: ``decision(current, state_before, state_after, params)``: the quantity whose sign decided
            this step's spikes (``membrane - threshold`` for `lif_step`, the
            default), watched by the replay for near-ties (see `replay`).
        terms: summation terms each current adds beyond one product of the input (the later maps of a
            lowered graph segment: a pooling window, an affine step), for the event engine's rounding bound.
    """

    weight: Tensor
    bias: Tensor | None
    step: Callable[[Tensor, Any, Any], tuple[Tensor, Any]]
    params: Any
    initial_state: Callable[[Tensor], Any]
    linear: Callable[[Tensor], Tensor] | None = None
    decision: Callable[[Tensor, Any, Any, Any], Tensor] | None = None
    terms: int = 0

    def distance(self, current: Tensor, before, after) -> Tensor:
        """How far each neuron was from flipping its spike this step (the decision variable)."""
        if self.decision is not None:
            return self.decision(current, before, after, self.params)
        return after.membrane - self.params.threshold

    def current(self, spikes: Tensor) -> Tensor:
        """The input current of this layer's neurons for ``spikes`` ``(..., n_in)``."""
        if self.linear is not None:
            return self.linear(spikes)
        current = spikes @ self.weight
        return current if self.bias is None else current + self.bias


def never_decides(current: Tensor, before, after, params) -> Tensor:
    """The decision of a layer that emits its membrane, not spikes (a leaky integrator): it takes none, so
    no rounding of its membrane can flip a spike (an infinite distance to threshold).

    Example:
        >>> from sc_neurocore.dynamics import CurrentLIParameters, current_li_initial_state, current_li_step
        >>> params = CurrentLIParameters()
        >>> state = current_li_initial_state(torch.zeros(1, 2), params)
        >>> _, after = current_li_step(torch.ones(1, 2), state, params)
        >>> never_decides(torch.ones(1, 2), state, after, params)
        tensor([[inf, inf]])
    """
    return torch.full_like(current, math.inf)


class CompiledStack(NamedTuple):
    """A feed-forward spiking network in compiled form.

    Attributes:
        layers: the layers, input side first.
        names: the neuron layer names, as in the model's ``neuron_layers``.
        readout: one of `READOUTS`: what the outputs ``(B, C)`` are made of (the last layer's spikes
            summed over time by default).
    """

    layers: tuple[CompiledLayer, ...]
    names: tuple[str, ...]
    readout: str = "count"

    @property
    def n_inputs(self) -> int:
        return self.layers[0].weight.shape[0]

    @property
    def n_outputs(self) -> int:
        return self.layers[-1].weight.shape[1]

    @property
    def sizes(self) -> list[int]:
        return [layer.weight.shape[1] for layer in self.layers]


class Baseline(NamedTuple):
    """What the unperturbed forward pass did, kept for the replays, batch-first ``(B, T, n)``.

    Attributes:
        currents: each layer's input current.
        states: each layer's state after each step (a state NamedTuple of ``(B, T, n)`` tensors).
        spikes: each layer's emitted spikes.
        partial_outputs: ``(B, T + 1, C)``: the readout accumulator after the first ``t`` steps.
    """

    currents: list[Tensor]
    states: list[Any]
    spikes: list[Tensor]
    partial_outputs: Tensor


def stack_forward(stack: CompiledStack, spikes: Tensor, silence: dict[str, Tensor] | None = None,
                  record: bool = False) -> Tensor | tuple[Tensor, Baseline]:
    """Run ``stack`` on spikes ``(B, T, N)``: the readout ``(B, C)`` (and the `Baseline` if ``record``).

    Args:
        stack: the compiled network.
        spikes: input spikes ``(B, T, N)`` in the weights' dtype.
        silence: optional ``{layer name: (B, n) bool}`` of neurons whose emitted spikes are forced to 0.
        record: also return every layer's currents, states and spikes.

    Example:
        >>> import torch
        >>> from sc_neurocore.engine.compile import compile_model
        >>> from sc_neurocore.models import LIFNetwork
        >>> net = LIFNetwork([torch.randn(8, 4), torch.randn(4, 2)])
        >>> stack_forward(compile_model(net), torch.ones(1, 5, 8)).shape
        torch.Size([1, 2])
    """
    n_steps = spikes.shape[1]
    train = spikes
    currents_all, states_all, spikes_all = [], [], []
    for index, layer in enumerate(stack.layers):
        # The input matrix product needs no state: one call for all timesteps, as the reference network does.
        currents = layer.current(train)
        keep = None
        if silence and stack.names[index] in silence:
            keep = (~silence[stack.names[index]]).to(currents.dtype)
        # The time loop: compiled for a plain LIF layer (the same bits as its step function, engine.lif_loop).
        train, stacked = run_neurons(layer, currents)
        if keep is not None:
            train = train * keep[:, None]
        last_states = stacked
        if record:
            currents_all.append(currents)
            states_all.append(stacked)
            spikes_all.append(train)
    # The readout accumulates step by step, exactly as a replay continues it from any timestep (0/1 spike
    # counts are integers: any order of the sum gives the same bits).
    accumulated = readout_start(stack.readout, train[:, 0])
    if stack.readout in ("count", "rate") and bool(((train == 0) | (train == 1)).all()):
        partial_outputs = torch.cat([accumulated[:, None], torch.cumsum(train, dim=1)], dim=1)
        accumulated = partial_outputs[:, n_steps]
    else:
        partial = [accumulated]
        for t in range(n_steps):
            accumulated = readout_step(stack.readout, accumulated, train[:, t], membrane_of(last_states)[:, t])
            partial.append(accumulated)
        partial_outputs = torch.stack(partial, dim=1)
    outputs = readout_finish(stack.readout, accumulated, n_steps)
    if not record:
        return outputs
    return outputs, Baseline(currents_all, states_all, spikes_all, partial_outputs)


class Perturbations(NamedTuple):
    """A plan in the executor's terms: each row removes spikes from the train feeding layer ``level``.

    Attributes:
        level: index of the first layer whose input changes (``len(layers)``: the output layer's own spikes).
        sample: ``(P,)`` the sample each row perturbs.
        first: ``(P,)`` the first timestep the row changes (``T``: it changes nothing).
        neuron: ``(P,)`` the removed/silenced neuron of the feeding train, or ``None`` with ``keep``.
        only_at_first: ``True``: remove one spike at ``first``; ``False``: silence ``neuron`` at every step.
        keep: ``(P, n)`` float mask of the feeding train's neurons kept (multi-neuron silencing), or ``None``.
    """

    level: int
    sample: Tensor
    first: Tensor
    neuron: Tensor | None
    only_at_first: bool
    keep: Tensor | None


def translate(stack: CompiledStack, spikes: Tensor, plan: SpikeRemovals | Silencing,
              feeding: Callable[[int], Tensor]) -> Perturbations:
    """Express ``plan`` as removals from one feeding train; ``feeding(level)`` gives that train ``(B, T, n)``."""
    n_steps = spikes.shape[1]
    if isinstance(plan, SpikeRemovals):
        return Perturbations(0, plan.sample, plan.timestep, plan.neuron, True, None)
    if plan.layer == INPUT_LAYER:
        level = 0
    else:
        level = stack.names.index(plan.layer) + 1
    count = plan.stop - plan.start  # neurons silenced per row (ranks are a permutation)
    single = bool((count <= 1).all())
    if level == len(stack.layers):  # the output layer itself: no replay, the readout just loses spikes
        return Perturbations(level, plan.sample, torch.full_like(plan.sample, n_steps), None, False,
                             (~plan.masks()).to(spikes.dtype))
    train = feeding(level)
    if single:
        # The neuron of rank start: no (P, n) mask needed when each row silences at most one neuron.
        by_rank = torch.argsort(plan.rank, dim=-1)
        position = plan.start.clamp(max=by_rank.shape[-1] - 1)
        neuron = by_rank[position] if by_rank.ndim == 1 else by_rank[plan.sample, position]
        touched = (train[plan.sample, :, neuron] != 0) & (count > 0)[:, None]  # (P, T)
    else:
        masks = plan.masks()  # (P, n) bool: silenced
        touched = ((train[plan.sample] != 0) & masks[:, None, :]).any(dim=2)  # (P, T)
    # The first timestep at which a silenced neuron fired in the baseline (argmax: the first True), else T.
    first = torch.where(touched.any(dim=1), touched.to(torch.int8).argmax(dim=1), n_steps)
    if single:
        return Perturbations(level, plan.sample, first, neuron, False, None)
    return Perturbations(level, plan.sample, first, None, False, (~masks).to(spikes.dtype))


def replay(stack: CompiledStack, spikes: Tensor, baseline: Baseline, rows: Perturbations,
           exact: bool = False) -> tuple[Tensor, Tensor]:
    """Outputs ``(P, C)`` of the perturbed rows, by suffix replay from the baseline (see the module docstring),
    and a ``(P,)`` bool mask of near-tie rows.

    A replay computes the changed current as ``I - x[t, i] W[i]`` where a forward pass computes a new
    matrix product of the perturbed input: the two round differently, by far less than `tie_margin`.
    A spike decision closer than that to its threshold could go either way, so a row that meets one is
    flagged, and `run_incremental` replays it again with ``exact=True``: its changed currents then
    come from the layer's own matrix product of the perturbed input (what a forward pass computes), the
    unchanged ones from the baseline, so only the suffix is recomputed even then.

    ``rows.sample`` indexes ``spikes`` and ``baseline`` (one sample chunk).
    """
    n_steps = spikes.shape[1]
    n_rows = rows.sample.shape[0]
    partial = baseline.partial_outputs
    if rows.level == len(stack.layers):
        # Silenced output neurons: their spikes leave the readout, their own membranes do not move.
        outputs = readout_finish(stack.readout, partial[rows.sample, n_steps], n_steps)
        outputs = outputs * rows.keep if stack.readout in ("count", "rate") else outputs  # type: ignore[operator]
        return outputs, torch.zeros(n_rows, dtype=torch.bool, device=outputs.device)
    order = torch.argsort(rows.first, stable=True)
    sample, first = rows.sample[order], rows.first[order]
    joined = torch.searchsorted(first, torch.arange(n_steps + 1, device=first.device), right=True).tolist()
    level = rows.level
    train = spikes if level == 0 else baseline.spikes[level - 1]
    feed = stack.layers[level]
    outputs = partial[sample, first.clamp(max=n_steps)].clone()  # the unchanged prefix of the readout
    states = [None] * len(stack.layers)
    if rows.neuron is not None:
        neuron = rows.neuron[order]
        weight_rows = feed.weight[neuron]  # (P, n_out): the rank-1 direction of each row
        if rows.only_at_first:
            weight_rows = weight_rows * train[sample, first.clamp(max=n_steps - 1), neuron][:, None]
    else:
        keep = rows.keep[order]  # type: ignore[index]
    block = step_block_rows(max(stack.sizes[level:]), spikes.device)
    margin = tie_margin(stack)
    uncertain = torch.zeros(n_rows, dtype=torch.bool, device=spikes.device)
    active = 0
    for t in range(n_steps):
        new = joined[t]
        if new == 0:
            continue
        if new > active:  # rows whose first touched timestep is t start from the baseline state at t - 1
            for index in range(level, len(stack.layers)):
                states[index] = _join(states[index], baseline.states[index], sample[active:new], t,
                                      stack.layers[index], n_rows)
        for lo in range(0, new, block):
            hi = min(lo + block, new)
            current = baseline.currents[level][sample[lo:hi], t]
            if rows.neuron is None:
                current = feed.current(train[sample[lo:hi], t] * keep[lo:hi])
            elif exact and not rows.only_at_first:
                current = feed.current(_without(train[sample[lo:hi], t], neuron[lo:hi]))
            elif exact and max(lo, active) < hi:
                joining = slice(max(lo, active), hi)
                current[joining.start - lo:] = feed.current(_without(train[sample[joining], t], neuron[joining]))
            elif exact:
                pass
            elif not rows.only_at_first:
                current -= train[sample[lo:hi], t, neuron[lo:hi]][:, None] * weight_rows[lo:hi]
            elif max(lo, active) < hi:  # the removed spike only changes its own timestep's current
                current[max(lo, active) - lo:] -= weight_rows[max(lo, active):hi]
            emitted = current  # for the checkers only: the first layer (index == level) sets it before any read
            for index in range(level, len(stack.layers)):
                layer = stack.layers[index]
                if index > level:
                    current = layer.current(emitted)
                before = _rows(states[index], lo, hi)  # type: ignore[arg-type]
                emitted, state = layer.step(current, before, layer.params)
                near = layer.distance(current, before, state).abs_() < margin
                uncertain[lo:hi] |= near.any(dim=1)
                _store(states[index], state, lo, hi)  # type: ignore[arg-type]
            outputs[lo:hi] = readout_step(stack.readout, outputs[lo:hi], emitted, membrane_of(state))
        active = new
    outputs = readout_finish(stack.readout, outputs, n_steps)
    result = torch.empty_like(outputs)
    result[order] = outputs
    flagged = torch.empty_like(uncertain)
    flagged[order] = uncertain
    return result, flagged


def _without(inputs: Tensor, neuron: Tensor) -> Tensor:
    """A copy of ``inputs`` ``(k, n)`` with entry ``neuron[r]`` of each row ``r`` set to 0."""
    inputs = inputs.clone()
    inputs[torch.arange(inputs.shape[0], device=inputs.device), neuron] = 0
    return inputs


def subset(rows: Perturbations, which: Tensor) -> Perturbations:
    """The ``which`` rows (a ``(P,)`` bool mask) of a translated plan."""
    return Perturbations(rows.level, rows.sample[which], rows.first[which],
                         None if rows.neuron is None else rows.neuron[which], rows.only_at_first,
                         None if rows.keep is None else rows.keep[which])


def tie_margin(stack: CompiledStack) -> float:
    """Distance to threshold below which a replayed spike decision counts as a near-tie: 256 ulps of 1
    (about 3e-5 in float32, 6e-14 in float64; with TF32 matrix products on CUDA, 0.25), scaled by the
    largest threshold magnitude. Rounding differences between a replay and a forward pass are typically
    two orders of magnitude smaller."""
    weight = stack.layers[0].weight
    dtype = weight.dtype
    eps = torch.finfo(dtype).eps
    if weight.device.type == "cuda" and dtype == torch.float32 and torch.backends.cuda.matmul.allow_tf32:
        eps = 2.0**-10  # TF32 matrix products keep 10 mantissa bits: near-ties are far wider
    scale = 1.0
    for layer in stack.layers:
        threshold = getattr(layer.params, "threshold", getattr(layer.params, "v_th", 1.0))
        scale = max(scale, float(torch.as_tensor(threshold).abs().max()))
    return 256 * eps * scale


def can_screen(stack: CompiledStack, plan: SpikeRemovals | Silencing) -> bool:
    """Whether `flip_reach` can rule out rows of ``plan`` without replaying them: single input-spike
    removals into a LIF first layer, with a readout that sees only spikes once the first layer's spikes
    are unchanged (a spike-count readout, or a deeper network)."""
    first = stack.layers[0]
    return isinstance(plan, SpikeRemovals) and first.step is lif_step and isinstance(first.params, LIFParameters) \
        and (stack.readout in ("count", "rate") or len(stack.layers) > 1)


def flip_reach(layer: CompiledLayer, membrane: Tensor) -> Tensor:
    r"""How large a change of the input current at step ``t`` must be to flip any later spike of a LIF layer.

    Removing a spike changes the current at ``t`` by ``dI``. Until a spike flips, the resets are the
    baseline's and the membrane difference only decays: $|\Delta v[t']| \le |dI| \, \beta^{t'-t}$ for
    every reset mechanism. A spike at ``t'`` flips only if $|\Delta v[t']| \ge |v[t'] - \theta|$. So no
    spike of the layer can change, and the row's output is the baseline's, unless for some neuron ``j``

    $$
    |dI_j| \ge R[t, j] = \min_{t' \ge t} |v[t', j] - \theta_j| \, \beta^{-(t' - t)}
    $$

    Args:
        layer: a layer advanced by `lif_step`.
        membrane: its baseline membranes ``(B, T, n)``.

    Returns:
        ``R`` ``(B, T, n)``, computed by one reverse scan over time.
    """
    params = layer.params
    margin = (membrane - params.threshold).abs()
    beta = torch.as_tensor(params.beta, dtype=membrane.dtype, device=membrane.device)
    reach = torch.empty_like(margin)
    running = margin[:, -1]
    reach[:, -1] = running
    for t in range(margin.shape[1] - 2, -1, -1):
        # beta = 0: the change never reaches a later step (x / 0 = inf); 0 / 0 counts as 0, which only
        # sends the row to the replay.
        running = torch.minimum(margin[:, t], torch.nan_to_num(running / beta, nan=0.0))
        reach[:, t] = running
    return reach


def screen_rows(stack: CompiledStack, spikes: Tensor, reach: Tensor, rows: Perturbations) -> Tensor:
    """``(P,)`` bool: the spike removals that may flip a first-layer spike (the others change nothing).

    The bound of `flip_reach` is widened by far more than a forward pass's rounding (a relative
    1e-3 and `tie_margin` times the largest membrane), so a row ruled out is unchanged in a forward
    pass too.
    """
    removed = spikes[rows.sample, rows.first, rows.neuron].abs()[:, None]
    change = removed * stack.layers[0].weight[rows.neuron].abs()  # (P, n): |dI| at the removed spike's step
    slack = 4 * tie_margin(stack) * max(1.0, float(reach.abs().max()) if reach.numel() else 1.0)
    return (change * (1 + 1e-3) + slack >= reach[rows.sample, rows.first]).any(dim=1)


def _join(buffer, cached, sample: Tensor, t: int, layer: CompiledLayer, capacity: int):
    """Append the baseline states at ``t - 1`` of ``sample`` rows to a preallocated state buffer."""
    if t == 0:
        joining = layer.initial_state(layer.weight.new_zeros(sample.shape[0], layer.weight.shape[1]))
    else:
        joining = type(cached)(*(field[sample, t - 1] for field in cached))
    if buffer is None:
        buffer = type(joining)(*(field.new_empty((capacity,) + field.shape[1:]) for field in joining))
        buffer = _Buffer(buffer, 0)
    start = buffer.filled
    for target, field in zip(buffer.state, joining, strict=True):
        target[start:start + sample.shape[0]] = field
    return _Buffer(buffer.state, start + sample.shape[0])


class _Buffer:
    """Replay states of the active rows, preallocated for a chunk; rows ``[:filled]`` are live."""

    __slots__ = ("filled", "state")

    def __init__(self, state, filled: int) -> None:
        self.state = state
        self.filled = filled


def _rows(buffer: _Buffer, lo: int, hi: int):
    return type(buffer.state)(*(field[lo:hi] for field in buffer.state))


def _store(buffer: _Buffer, state, lo: int, hi: int) -> None:
    for target, field in zip(buffer.state, state, strict=True):
        target[lo:hi] = field


# -- chunking --------------------------------------------------------------------------------------------------

#: ``1 / ALLOCATOR_HEADROOM`` of ``max_memory`` is kept free of planned tensors (allocator slack).
ALLOCATOR_HEADROOM = 6


def state_fields(stack: CompiledStack) -> list[int]:
    """How many tensors each layer's state holds (1 for `lif_step`'s membrane)."""
    return [len(layer.initial_state(layer.weight.new_zeros(1, layer.weight.shape[1]))) for layer in stack.layers]


def baseline_bytes_per_sample(stack: CompiledStack, n_steps: int, itemsize: int) -> int:
    """Peak bytes of the baseline cache per sample while it is built.

    Per layer and step: the input current, the emitted spikes and every state field, each kept once and
    held two to three times while the per-step lists are stacked; plus the readout's partial sums.
    """
    # Calibrated on R-MNIST (measured peak RSS): currents, spikes and states, the per-step lists while they
    # are stacked, and the input matrix product's own workspace.
    per_step = sum(n * (3 + 3 * fields + 3) for n, fields in zip(stack.sizes, state_fields(stack), strict=True))
    per_step += 2 * stack.sizes[0]  # the first layer's flip reach (spike removals), and its scan temporary
    return itemsize * (n_steps * per_step + 2 * (n_steps + 1) * stack.n_outputs)


def replay_bytes_per_row(stack: CompiledStack, level: int, n_steps: int, itemsize: int, silencing: bool = False,
                         masked: bool = False) -> int:
    """Peak bytes one replayed row costs in `replay`.

    Counted: the replay states of every layer from ``level`` on; the row's rank-1 direction (held twice
    while it is scaled); the readout accumulator, its prefix and the reordered result; the index tensors
    of the plan chunk, the sort and the translation. Silencing plans add the row's view of the feeding
    train over time; multi-neuron silencing its keep mask and a ``(T, n)`` fired-and-silenced mask.
    """
    fields = state_fields(stack)[level:]
    sizes = stack.sizes[level:]
    n_feed = stack.layers[min(level, len(stack.layers) - 1)].weight.shape[0]
    per_row = itemsize * (sum(f * n for f, n in zip(fields, sizes, strict=True)) + 2 * (sizes[0] if sizes else 0)
                          + 3 * stack.n_outputs)
    per_row += 8 * 9 + 2  # int64 indices (picked, sub-plan, order, sorted sample/first, neuron) and flags
    if silencing:
        per_row += n_steps * (itemsize + 1) + n_feed
    if masked:
        per_row += n_feed * (itemsize + 1) + 2 * n_steps * n_feed
    return per_row


def step_bytes(stack: CompiledStack, level: int, itemsize: int, device: torch.device, n_rows: int) -> int:
    """Bytes of one replay step's temporaries (the dozen tensors a step function and the readout create):
    bounded by the row block on CPU, proportional to the rows elsewhere."""
    width = max(stack.sizes[level:] or [1])
    rows = min(n_rows, step_block_rows(width, device))
    return 12 * itemsize * rows * width


def plan_chunks(max_memory: int, sample_bytes: int, row_bytes: int, n_samples: int, n_rows: int,
                fixed: int = 0, min_rows: int = 1) -> tuple[int, int]:
    """``(samples per chunk, rows per chunk)`` so that a chunk's baseline plus its replay fit in ``max_memory``.

    ``fixed`` bytes (outputs, sort indices, step temporaries) come off the top; half the rest goes to the
    baseline cache (at least one sample), the remainder to replayed rows (at least ``min_rows``, the
    workable minimum: when ``fixed`` leaves less, the chunk still gets that much).

    Example:
        >>> plan_chunks(10_000, sample_bytes=1_000, row_bytes=100, n_samples=50, n_rows=1000)
        (5, 50)
    """
    min_rows = max(1, min(min_rows, max(n_rows, 1)))
    if max_memory < sample_bytes + min_rows * row_bytes:
        raise ValueError(f"max_memory: {max_memory} bytes is too small for one sample's baseline and "
                         f"{min_rows} replayed rows, which need about {sample_bytes + min_rows * row_bytes} bytes; "
                         "raise it or pass None")
    available = max(max_memory - fixed, sample_bytes + min_rows * row_bytes)
    samples = max(1, min(n_samples, (available // 2) // sample_bytes))
    rows = max(min_rows, min(max(n_rows, 1), (available - samples * sample_bytes) // row_bytes))
    return samples, rows


def run_incremental(stack: CompiledStack, spikes: Tensor, plan: SpikeRemovals | Silencing | None, *,
                    max_memory: int | None = None, progress: bool = False,
                    baseline: Baseline | None = None) -> Tensor:
    """Outputs ``(P, C)`` of every row of ``plan`` by baseline caching, rank-1 deltas and suffix replay.

    Args:
        stack: the compiled network (see `sc_neurocore.engine.compile.compile_model`).
        spikes: the samples ``(B, T, N)`` the plan refers to.
        plan: spike removals or silencings; ``None``: the unperturbed samples.
        max_memory: peak bytes of the baseline cache and replay states of one chunk (``None``: automatic).
        progress: show a progress bar over rows.
        baseline: the recorded baseline of all of ``spikes`` (``stack_forward(..., record=True)``), if the
            caller already has it; used when every sample fits in one chunk.

    Returns:
        ``(P, C)`` in the weights' dtype, row ``p`` the outputs of plan row ``p``.

    Example:
        >>> import torch
        >>> from sc_neurocore.engine.compile import compile_model
        >>> from sc_neurocore.engine.plans import remove_each_spike
        >>> from sc_neurocore.models import LIFNetwork
        >>> net = LIFNetwork([torch.randn(8, 4), torch.randn(4, 2)])
        >>> spikes = (torch.rand(1, 20, 8) < 0.3).float()
        >>> run_incremental(compile_model(net), spikes, remove_each_spike(spikes)).shape[1]
        2
    """
    dtype = stack.layers[0].weight.dtype
    x = spikes.to(dtype)
    n_samples, n_steps, _ = x.shape
    budget = default_max_memory(x.device) if max_memory is None else max_memory
    itemsize = x.element_size()
    if plan is None:
        sample_bytes = baseline_bytes_per_sample(stack, n_steps, itemsize)
        budget = workable_budget(budget, sample_bytes + 1, "the compiled forward (one sample per chunk)")
        samples, _ = plan_chunks(budget, sample_bytes, 1, n_samples, 1)
        with thread_policy(samples * max(stack.sizes), x.device):
            return torch.cat([stack_forward(stack, x[start:start + samples])  # type: ignore[misc]
                              for start in range(0, n_samples, samples)]) if n_samples else \
                x.new_empty(0, stack.n_outputs)
    n_rows = len(plan)
    outputs = torch.empty((n_rows, stack.n_outputs), dtype=dtype, device=x.device)
    if n_rows == 0:
        return outputs
    level, sample_bytes, row_bytes = _footprint(stack, x, plan)
    # Allocated for the whole plan, outside any chunk: the outputs and the sample sort; and a share of the
    # budget kept for what the estimates cannot see (allocator slack: measured peaks run 10-20% above them).
    plan_bytes = n_rows * (itemsize * stack.n_outputs + 16) + step_bytes(stack, level, itemsize, x.device, n_rows)
    # A replay chunk pays its time loop's dispatch once, each of its rows a suffix of neuron updates.
    min_rows = workable_rows(chunk_seconds=n_steps * len(stack.sizes[level:]) * STEP_CALL,
                             row_seconds=n_steps / 2 * sum(stack.sizes[level:]) * INCREMENTAL_NEURON, n_rows=n_rows)
    # The plan-sized outputs and sort indices are allowed on top of a budget too small for them (as on the
    # generic path); the workable minimum is one sample's baseline and `min_rows` replayed rows.
    needed = math.ceil((sample_bytes + min_rows * row_bytes) * ALLOCATOR_HEADROOM / (ALLOCATOR_HEADROOM - 1))
    budget = workable_budget(budget, needed, f"the incremental engine ({min_rows} rows per replay)")
    fixed = plan_bytes + budget // ALLOCATOR_HEADROOM
    samples, rows_chunk = plan_chunks(budget, sample_bytes, row_bytes, n_samples, n_rows, fixed, min_rows)
    # Rows grouped by sample chunk: a stable sort keeps the plan's order inside each group.
    sample_order = torch.argsort(plan.sample, stable=True)
    sorted_samples = plan.sample[sample_order]
    bounds = torch.searchsorted(sorted_samples, torch.arange(0, n_samples + samples, samples,
                                                             device=x.device).clamp(max=n_samples)).tolist()
    screen = can_screen(stack, plan)
    bar = _progress_bar(n_rows, progress)
    try:
        with thread_policy(rows_chunk * max(stack.sizes[level:] or [1]), x.device):
            for chunk_index, start in enumerate(range(0, n_samples, samples)):
                lo, hi = bounds[chunk_index], bounds[chunk_index + 1]
                if lo == hi:
                    continue
                chunk_spikes = x[start:start + samples]
                if baseline is None or samples < n_samples:
                    _, baseline = stack_forward(stack, chunk_spikes, record=True)
                reach = flip_reach(stack.layers[0], baseline.states[0].membrane) if screen else None
                unchanged_outputs = readout_finish(stack.readout, baseline.partial_outputs[:, n_steps], n_steps)
                row_start = lo
                while row_start < hi:
                    picked = sample_order[row_start:min(row_start + rows_chunk, hi)]
                    n_picked = picked.shape[0]
                    sub = _take(plan, picked, start, start + samples)
                    def feeding(lvl, chunk_spikes=chunk_spikes, baseline=baseline):
                        return chunk_spikes if lvl == 0 else baseline.spikes[lvl - 1]

                    try:
                        rows = translate(stack, chunk_spikes, sub, feeding)
                        if reach is not None:  # rows that cannot flip a spike keep the baseline's outputs
                            changing = screen_rows(stack, chunk_spikes, reach, rows)
                            outputs[picked[~changing]] = unchanged_outputs[rows.sample[~changing]]
                            picked, rows = picked[changing], subset(rows, changing)
                        if picked.numel():
                            replayed, uncertain = replay(stack, chunk_spikes, baseline, rows)
                            if bool(uncertain.any()):  # near-ties: replay those rows with exact currents
                                replayed[uncertain] = replay(stack, chunk_spikes, baseline, subset(rows, uncertain),
                                                             exact=True)[0]
                            outputs[picked] = replayed
                    except torch.cuda.OutOfMemoryError:
                        # As the generic path does: halve the rows per replay and retry; at one row, give up
                        # (raise) rather than return a partial result.
                        if rows_chunk == 1:
                            raise
                        rows_chunk = max(1, rows_chunk // 2)
                        logger.warning("CUDA out of memory: halving the incremental replay chunk to %d rows and "
                                       "retrying", rows_chunk)
                        torch.cuda.empty_cache()
                        continue
                    bar.update(n_picked)
                    row_start += n_picked
    finally:
        bar.close()
    return outputs


def _footprint(stack: CompiledStack, spikes: Tensor, plan: SpikeRemovals | Silencing) -> tuple[int, int, int]:
    """``(level, baseline bytes per sample, replay bytes per row)`` of running ``plan`` incrementally."""
    silencing = isinstance(plan, Silencing)
    level = 0 if not silencing or plan.layer == INPUT_LAYER else stack.names.index(plan.layer) + 1  # type: ignore[union-attr]
    masked = silencing and len(plan) > 0 and bool((plan.stop - plan.start > 1).any())  # type: ignore[union-attr]
    itemsize = torch.empty((), dtype=stack.layers[0].weight.dtype).element_size()
    return (level, baseline_bytes_per_sample(stack, spikes.shape[1], itemsize),
            replay_bytes_per_row(stack, level, spikes.shape[1], itemsize, silencing=silencing, masked=masked))


def minimum_memory(stack: CompiledStack, spikes: Tensor, plan: SpikeRemovals | Silencing) -> int:
    """The smallest ``max_memory`` under which `run_incremental` can run ``plan`` (one sample's
    baseline and one replayed row)."""
    _, sample_bytes, row_bytes = _footprint(stack, spikes, plan)
    return sample_bytes + row_bytes


def _take(plan: SpikeRemovals | Silencing, picked: Tensor, start: int, stop: int) -> SpikeRemovals | Silencing:
    """Rows ``picked`` of ``plan``, with samples renumbered into the sample chunk ``[start, stop)``."""
    if isinstance(plan, SpikeRemovals):
        return SpikeRemovals(plan.sample[picked] - start, plan.timestep[picked], plan.neuron[picked])
    rank = plan.rank if plan.rank.ndim == 1 else plan.rank[start:stop]
    return Silencing(plan.layer, plan.sample[picked] - start, rank, plan.start[picked], plan.stop[picked])


def supported_levels(stack: CompiledStack) -> Sequence[str]:
    """Layers a `Silencing` plan may name for this stack."""
    return (INPUT_LAYER,) + stack.names
