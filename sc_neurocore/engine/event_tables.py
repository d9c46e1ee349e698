r"""The event engine's per-layer tables: what the kernels read about one layer of the baseline, and the
rigorous bounds on the framework's rounding that every spike decision is taken outside.

A spike decision is taken from its float64 estimate only outside a rigorous bound on the framework's own
rounding (`layer_tables`), in two tests:

- the *loose* test bounds any summation order and any batch shape of the model's products: a decision it
  takes is the naive loop's and every batched executor's;
- the *tight* test (where the stack's ops are the model's own, `sc_neurocore.engine.recorded`) anchors on
  the baseline's own float membrane and adds the products' rounding only at the steps whose input changed:
  a decision it takes is the naive loop's, one copy at a time, though another batch shape of the model's
  product could round it the other way.

A LIF layer's tables are a `LayerTables`; a current-based layer's (snnTorch `Synaptic`) a
`sc_neurocore.engine.cuba.CubaTables`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from .charge_forms import charge_form, charged_membranes, is_charge
from .cuba import CUBA_TABLE_WORDS, CubaTables, cuba_tables, is_cuba
from .event_kernels import RESET_CODES
from .incremental import Baseline, CompiledStack
from .kernel_compile import C_EST
from .table_kernels import table_kernels

#: Readouts of the output layer's membrane: the event engine replays that layer (see
#: `sc_neurocore.engine.event.unsupported`).
MEMBRANE_READOUTS = ("final_membrane", "max_membrane")
#: Spikes a perturbed copy may add to one step's input of a layer beyond the baseline's (flips of the layer
#: below) while the matrix product's bound still covers its sum; a row adding more is a tie. Where the rows of
#: a call add more, that layer's tables are rebuilt for as many, up to `MAX_SLACK`.
ADDED_SPIKES = 8
MAX_SLACK = 32


class LayerTables(NamedTuple):
    r"""What the kernel needs about one LIF layer, for one chunk of samples (float64 NumPy arrays).

    Attributes:
        weight: ``(n_in, n)``: row ``i`` is what one unit of input ``i`` adds to the layer's currents.
        membrane: ``(B, n, T)`` the baseline membranes (neuron-major: the kernel scans along time).
        spikes: ``(B, n, T)`` the baseline spikes.
        bound: ``(B, n, T)`` a bound on the baseline's own rounding error $E$.
        inverse_up, inverse_down: ``(B, T, n)``: ``1 / reach`` where ``reach > 0``, else ``inf``, for the reach
            $\min_{t' \ge t} m[t'] / \beta^{t' - t}$ of the margin $m = |v - \theta| - s E$ ($s$: ``spread``) over
            the steps below threshold (``up``) or at or above it (``down``), each also over the steps with
            $m \le 0$; time-major. ``up_by_neuron``, ``down_by_neuron``: the reaches, ``(B, n, T)``.
        beta, theta: ``(n,)``.
        drop: ``(n,)``: what a reset by subtraction takes off the membrane ($\theta$, or $\beta \theta$ on the
            charged membrane of a layer that resets in the same step, `sc_neurocore.engine.charge_forms`).
        reset: the reset code of `RESET_CODES`.
        c_op: the rounding factor of a perturbation's membrane updates ($4u$).
        c_sum: that of the extra terms a perturbation adds to the matrix product ($\gamma_{n_{in}+1}$).
        spread: the factor on ``bound`` in a decision's radius (the baseline's and the perturbed copy's
            rounding, and the float64 estimate's own).
        slack: extra input spikes per step the bound allows a perturbed copy (`ADDED_SPIKES`).
        recorded, rho, partial, residual, slip, gam: the tight test's tables (``None`` without it; see
            `layer_tables`): ``(B, n, T)`` the baseline's float membrane, the per-step update term, the
            product term's summand bound, the baseline's product residual and update slip; ``(B, T)`` the
            product's $\gamma_{k_t}$.
        tight: whether the tight test may decide.
        c_est: the float64 estimates' own rounding.
        replay: whether a row can be replayed from this layer in the naive loop's own call shapes (the stack's ops
            are the model's own): its rows inside the bound are then replayed there, not recomputed by the model's
            forward (with the tight test, those inside the tight bound; without it, those inside the loose one).
    """

    weight: np.ndarray
    membrane: np.ndarray
    spikes: np.ndarray
    bound: np.ndarray
    inverse_up: np.ndarray
    inverse_down: np.ndarray
    up_by_neuron: np.ndarray
    down_by_neuron: np.ndarray
    beta: np.ndarray
    theta: np.ndarray
    drop: np.ndarray
    reset: int
    c_op: float
    c_sum: float
    spread: float
    slack: int
    recorded: np.ndarray | None = None
    rho: np.ndarray | None = None
    partial: np.ndarray | None = None
    residual: np.ndarray | None = None
    slip: np.ndarray | None = None
    gam: np.ndarray | None = None
    tight: bool = False
    c_est: float = C_EST
    replay: bool = False

    def kernel_args(self) -> tuple:
        """The arguments of `sc_neurocore.engine.event_kernels.propagate_layer` between the rows' samples and
        ``capacity``."""
        return (self.weight, self.membrane, self.spikes, self.bound, self.inverse_up, self.inverse_down,
                self.up_by_neuron, self.down_by_neuron, self.beta, self.theta, self.drop, self.reset, self.c_op,
                self.c_sum, self.spread, self.slack)

    def tight_args(self) -> tuple:
        """The tight test's arguments of `propagate_layer` (after ``capacity``)."""
        if not self.tight or self.recorded is None:
            empty = np.zeros((1, 1, 1))
            return empty, empty, empty, empty, empty, np.zeros((1, 1)), False, self.c_est
        return self.recorded, self.rho, self.partial, self.residual, self.slip, self.gam, True, self.c_est


def gamma(terms: Tensor | int, unit: float) -> Tensor:
    r"""Higham's $\gamma_k = k u / (1 - k u)$: the relative error bound of a sum of ``k`` terms in any order.

    Example:
        >>> round(float(gamma(10, 2.0**-24)) * 2**24, 6)
        10.000006
    """
    k = torch.as_tensor(terms, dtype=torch.float64)
    return k * unit / (1 - k * unit)


def scalar_gamma(terms: int, unit: float) -> float:
    """`gamma` of one count of terms, as a Python float (the same value, without a tensor op).

    Example:
        >>> scalar_gamma(10, 2.0**-24) == float(gamma(10, 2.0**-24))
        True
    """
    return terms * unit / (1 - terms * unit)


def layer_tables(stack: CompiledStack, x: Tensor, baseline: Baseline, tight: bool = False,
                 alone_checked: bool = False) -> list[LayerTables | CubaTables]:
    r"""The tables of every layer for samples ``x`` ``(B, T, N)`` and their recorded ``baseline``.

    The loose bound (any summation order, any batch shape): with $u$ the unit roundoff of the weights' dtype,
    per step $\epsilon[t] = \rho[t] + \gamma_{k_t} A[t]$, where
    $\rho[t] = 2u(\beta |v[t-1]| + |I[t]| + |v[t]| + \theta)$ bounds the membrane update's roundings and
    $\gamma_{k_t} A[t]$ the matrix product's ($A = |x| |W| + |b|$ over the $k_t$ non-zero inputs plus the
    bias, in any summation order), accumulated as $E[t] = \beta E[t-1] + \epsilon[t]$.

    The tight test (``tight``: the caller checked that the stack's ops are the model's own, so that the
    baseline's float membrane is the one the model computes) compares a perturbed copy with the baseline's
    own float membrane instead: before a row's first event the two computations are identical; after it
    they differ by both copies' update roundings and, only at the steps whose input changed, by the two
    products' roundings. The baseline's share of both is known: its product's *residual*
    $\hat I[t] - I[t]$ (the float current less the real sum) and its update's *slip* (the float membrane
    less the real update of its own float inputs), each computed in float64 to within a bound folded into the
    tables. The tight test takes them out of the difference and bounds only the perturbed copy's: $\rho$ a
    step (table ``rho``: $\rho$ plus the slip's own error) and $\gamma_{k_t} (M[t] + \text{mass})$ where
    the input changed, $M$ the larger of the positive and negative summands' sums for 0/1 inputs, which bounds
    every partial sum of any order (table ``partial``: $M$ plus the residual's own error over $\gamma_{k_t}$).
    In a float64 model the float64 estimates are not finer than the model, so nothing is taken out: the
    tables then hold no residual and no slip, $2\rho$ and $2M$ (both copies bounded). That rests on one more
    fact, checked here for ``B > 1``: the layer's product gives each sample's rows the same bits alone as in
    the recorded batch (the naive loop runs one copy at a time).

    Example:
        >>> import torch
        >>> from sc_neurocore.engine.compile import compile_model
        >>> from sc_neurocore.engine.incremental import stack_forward
        >>> from sc_neurocore.models import LIFNetwork
        >>> stack = compile_model(LIFNetwork([torch.randn(8, 4), torch.randn(4, 2)]))
        >>> x = (torch.rand(2, 10, 8) < 0.3).float()
        >>> _, baseline = stack_forward(stack, x, record=True)
        >>> [table.tight for table in layer_tables(stack, x, baseline, tight=True)]
        [True, True]
    """
    tables = ChunkTables(stack, x, baseline, tight, alone_checked)
    return [tables.table(index) for index in range(len(tables))]


def layer_table(stack: CompiledStack, x: Tensor, baseline: Baseline, index: int, tight: bool = False,
                alone_checked: bool = False, slack: int = ADDED_SPIKES) -> LayerTables | CubaTables:
    """The tables of layer ``index`` (see `layer_tables`), for perturbed copies that add at most ``slack`` spikes
    to one step's input of that layer (the first layer's copies add none: they only remove input).

    Example:
        >>> import torch
        >>> from sc_neurocore.engine.compile import compile_model
        >>> from sc_neurocore.engine.incremental import stack_forward
        >>> from sc_neurocore.models import LIFNetwork
        >>> stack = compile_model(LIFNetwork([torch.randn(8, 4), torch.randn(4, 2)]))
        >>> x = (torch.rand(1, 10, 8) < 0.3).float()
        >>> _, baseline = stack_forward(stack, x, record=True)
        >>> layer_table(stack, x, baseline, 1, slack=12).slack
        12
    """
    unit = torch.finfo(stack.layers[0].weight.dtype).eps / 2
    # float64 model: the estimates round as finely as the model, so the band takes the bound once more.
    spread = 2.1 if unit < 2.0**-40 else 1.05
    layer = stack.layers[index]
    if is_cuba(layer):  # a current-based layer: its own tables (engine.cuba)
        return cuba_tables(layer, index, x if index == 0 else baseline.spikes[index - 1], baseline, tight,
                           alone_checked, spread, slack)
    train = (x if index == 0 else baseline.spikes[index - 1]).double()
    n_in, n_out = layer.weight.shape
    neurons = _charge_neurons(layer, baseline, index) if is_charge(layer) else _lif_neurons(layer, baseline, index)
    n_samples, n_steps = train.shape[:2]
    by_neuron = [np.empty((n_samples, n_out, n_steps)) for _ in range(10)]
    inverse = [np.empty((n_samples, n_steps, n_out)) for _ in range(2)]
    gam = np.empty((n_samples, n_steps))
    # Terms of each step's sum beyond its non-zero inputs and the bias: the layer's own, and the spikes a
    # perturbed copy may add.
    terms = layer.terms + (0 if index == 0 else slack)
    values = np.ascontiguousarray(train.numpy())
    binary = bool(np.logical_or(values == 0, values == 1).all())  # exact products: M is the larger one-signed sum
    table_kernels()["build_tables"](values, neurons.weight, neurons.bias, neurons.membrane, neurons.spikes,
                                    neurons.current, neurons.beta, neurons.theta, neurons.drop, neurons.reset, unit,
                                    spread, terms, binary, C_EST, *neurons.rounding, *by_neuron[:5], *inverse,
                                    *by_neuron[5:], gam)
    anchor_n, spikes_n, bound_n, up_n, down_n, recorded_n, rho_n, partial_n, residual_n, slip_n = by_neuron
    # The stack's ops are the model's own and give each sample's rows alone the recorded bits: a row can be replayed
    # from this layer in the naive loop's call shapes.
    replay = tight and (alone_checked or _rows_alone_match(layer, x if index == 0 else baseline.spikes[index - 1],
                                                           baseline.currents[index]))
    table = LayerTables(neurons.weight, anchor_n, spikes_n, bound_n, inverse[0], inverse[1], up_n, down_n,
                        neurons.beta, neurons.theta, neurons.drop, neurons.reset, neurons.c_op * unit,
                        scalar_gamma(n_in + 1 + layer.terms, unit) + neurons.c_current * unit, spread,
                        slack if index > 0 else ADDED_SPIKES, replay=replay)
    if replay and neurons.tight:
        table = table._replace(recorded=recorded_n, rho=rho_n, partial=partial_n, residual=residual_n, slip=slip_n,
                               gam=gam, tight=True)
    return table


class _Neurons(NamedTuple):
    """What the table kernel reads of one layer's neurons (float64 NumPy arrays; ``(B, T, n)`` time-major).

    Attributes:
        weight, bias: ``(n_in, n)`` and ``(n,)``: what one unit of input, and the bias, add to the membrane.
        membrane: the baseline's float membrane the spikes are decided on; spikes: its spikes; current: its
            float input current.
        beta, theta, drop: ``(n,)`` (see `LayerTables`); reset: the reset code of the membrane's recurrence.
        rounding: the update's rounding coefficients ``(k_prev, k_current, k_membrane, k_theta)`` of
            `sc_neurocore.engine.table_kernels.build_tables`.
        c_op, c_current: a perturbed copy's extra update rounding, in units of $u$: on the kernel's per-step
            magnitudes, and on the mass of its changed current.
        tight: whether the tight test's tables describe this layer's update.
    """

    weight: np.ndarray
    bias: np.ndarray
    membrane: np.ndarray
    spikes: np.ndarray
    current: np.ndarray
    beta: np.ndarray
    theta: np.ndarray
    drop: np.ndarray
    reset: int
    rounding: tuple
    c_op: float
    c_current: float
    tight: bool


def _lif_neurons(layer, baseline: Baseline, index: int) -> _Neurons:
    """A `lif_step` layer: its own membrane, weights and parameters."""
    params = layer.params
    n_out = layer.weight.shape[1]
    beta = np.ascontiguousarray(torch.as_tensor(params.beta, dtype=torch.float64).expand(n_out).numpy())
    theta = np.ascontiguousarray(torch.as_tensor(params.threshold, dtype=torch.float64).expand(n_out).numpy())
    membrane, spikes, current = (np.ascontiguousarray(a.double().numpy()) for a in
                                 (baseline.states[index].membrane, baseline.spikes[index], baseline.currents[index]))
    return _Neurons(np.ascontiguousarray(layer.weight.double().numpy()),
                    np.zeros(n_out) if layer.bias is None else layer.bias.double().numpy(), membrane, spikes, current,
                    beta, theta, theta, RESET_CODES[params.reset], (2.0 * beta, np.full(n_out, 2.0), 2.0, 2.0), 4.0,
                    0.0, True)


def _charge_neurons(layer, baseline: Baseline, index: int) -> _Neurons:
    """A charge-then-reset layer (`sc_neurocore.engine.charge_forms`) on its charged membrane $h$: weights and
    bias times its gain, the delayed zero reset (a soft reset: the delayed subtraction of $\beta\theta$), its
    charge's rounding coefficients."""
    form = charge_form(layer)
    current = baseline.currents[index]
    charged = charged_membranes(layer, current, baseline.states[index].membrane)
    gain = form.gain.numpy()
    bias = np.zeros_like(gain) if layer.bias is None else layer.bias.double().numpy() * gain
    beta = np.ascontiguousarray(form.beta.numpy())
    k_prev = np.ascontiguousarray(form.k_prev.numpy())
    c_op = 2.0 * max(form.k_charged, float((form.k_prev / form.beta).max()))
    theta = np.ascontiguousarray(form.threshold.numpy())
    # A soft reset is, on h, a delayed subtraction of beta theta; its operand |v[t-1]| <= |h[t-1]| + theta.
    reset, k_theta = (RESET_CODES["subtract"], float(form.k_prev.max())) if form.soft else (RESET_CODES["zero"], 0.0)
    return _Neurons(np.ascontiguousarray(layer.weight.double().numpy() * gain), bias,
                    np.ascontiguousarray(charged.double().numpy()),
                    np.ascontiguousarray(baseline.spikes[index].double().numpy()),
                    np.ascontiguousarray(current.double().numpy()), beta, theta, beta * theta, reset,
                    (k_prev, np.ascontiguousarray(form.k_current.numpy()), form.k_charged, k_theta), c_op,
                    2.0 * float((form.k_current / form.gain).max()), False)


class ChunkTables:
    """The tables of every layer for one chunk of samples, each built the first time a row needs it, for as
    many spikes as the rows seen so far add to one step's input of that layer (a table built for more covers
    fewer: its bound is looser, never wrong).

    Args:
        stack, x, baseline, tight, alone_checked: as `layer_tables`.

    Example:
        >>> import torch
        >>> from sc_neurocore.engine import compile, incremental
        >>> from sc_neurocore.models import LIFNetwork
        >>> stack = compile.compile_model(LIFNetwork([torch.randn(8, 4), torch.randn(4, 2)]))
        >>> x = (torch.rand(1, 10, 8) < 0.3).float()
        >>> tables = ChunkTables(stack, x, incremental.stack_forward(stack, x, record=True)[1])
        >>> len(tables), tables.table(1).slack, tables.table(1, added=12).slack, tables.table(1).slack
        (2, 8, 12, 12)
    """

    def __init__(self, stack: CompiledStack, x: Tensor, baseline: Baseline, tight: bool = False,
                 alone_checked: bool = False) -> None:
        self.stack, self.x, self.baseline = stack, x, baseline
        self.tight, self.alone_checked = tight, alone_checked
        self._built: dict[int, LayerTables | CubaTables] = {}

    def __len__(self) -> int:
        """The number of layers run as events (all but a membrane readout's output layer)."""
        return len(self.stack.layers) - (1 if self.stack.readout in MEMBRANE_READOUTS else 0)

    def table(self, index: int, added: int = 0) -> LayerTables | CubaTables:
        """Layer ``index``'s tables for rows adding at most ``added`` spikes to one step's input (beyond
        `MAX_SLACK` they are built for `MAX_SLACK`, and the rows that add more tie)."""
        slack = ADDED_SPIKES if index == 0 else max(ADDED_SPIKES, min(added, MAX_SLACK))
        built = self._built.get(index)
        if built is None or built.slack < slack:
            built = self._built[index] = layer_table(self.stack, self.x, self.baseline, index, self.tight,
                                                     self.alone_checked, slack)
        return built


#: The alignment in bytes of every fresh CPU tensor (PyTorch's allocator): a matrix product may round a row by its
#: place in memory, so a buffer that starts so aligned computes as a fresh copy does.
FRESH_ALIGNMENT = 64


def as_fresh(tensor: Tensor) -> bool:
    """Whether ``tensor`` lies in memory as a fresh copy of it would (contiguous, from an aligned address), so that
    a product computes its rows as on the naive loop's own copy.

    Example:
        >>> x = torch.zeros(3, 5)
        >>> as_fresh(x), as_fresh(x[1:])
        (True, False)
    """
    return tensor.is_contiguous() and tensor.data_ptr() % FRESH_ALIGNMENT == 0


def _rows_alone_match(layer, train: Tensor, recorded_current: Tensor) -> bool:
    """Whether the layer's product gives every sample's rows, computed alone, the recorded batch's bits."""
    if train.shape[0] == 1 and as_fresh(train):
        return True
    with torch.no_grad():
        # Each sample in a fresh buffer, as the naive loop's copy is: a product may round a row by its place in memory.
        return all(torch.equal(layer.current(train[b:b + 1].to(recorded_current.dtype, copy=True)),
                               recorded_current[b:b + 1])
                   for b in range(train.shape[0]))


def table_bytes_per_sample(stack: CompiledStack, n_steps: int) -> int:
    """Peak bytes of one sample's `LayerTables` while they are built (float64: the tables, their
    neuron-major copies, the tight test's five and the temporaries of the bounds)."""
    return 8 * n_steps * sum((CUBA_TABLE_WORDS if is_cuba(layer) else 27) * n + 3
                             for layer, n in zip(stack.layers, stack.sizes, strict=True))
