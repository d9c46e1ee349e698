r"""A LIF layer's whole time loop in one compiled call, bit for bit `sc_neurocore.dynamics.lif_step` step by step.

The executors advance a layer of neurons one timestep at a time with the step function of
`sc_neurocore.dynamics`; in torch that is half a dozen elementwise calls per step, whose dispatch costs
more than the arithmetic on small layers (R-seed, 64-32-10 at $T = 100$: 200 steps per forward). Where
numba is installed (the ``fast`` extra) and the step is a plain `lif_step` (delayed reset, spikes of
height 1, the parameters in the current's dtype), `run_neurons` runs the loop compiled instead.

The kernel performs torch's own operations in the current's dtype, one rounding each and in the same
order: $v \leftarrow (\beta v + I) - r\theta$ (subtract), $\beta((1 - r) v) + I$ (zero), $\beta v + I$
(none), with $r = [v_{t-1} - \theta > 0]$ and the spike $[v - \theta > 0]$, so its membranes are torch's.
The callers do not rely on that alone: the recorded forward is still checked against the model
(`sc_neurocore.engine.recorded`), and the replays against the naive loop in the tests.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..dynamics import LIFParameters, LIFState, SynapticParameters, SynapticState, lif_step, synaptic_step
from .event_kernels import RESET_CODES, numba_available


def lif_forward(current, beta, theta, reset, consts, spikes, membrane):
    """Advance ``current`` ``(B, T, n)`` through a LIF layer from rest, writing ``spikes`` and ``membrane``.

    ``beta``, ``theta``: ``(n,)`` in the current's dtype; ``consts``: ``[0, 1]`` in that dtype (literals would
    compute in float64); ``reset``: a code of `RESET_CODES`.

    Example:
        >>> import numpy as np
        >>> current = np.array([[[0.6], [0.6], [0.6]]], dtype=np.float32)
        >>> spikes, membrane = np.zeros_like(current), np.zeros_like(current)
        >>> lif_forward(current, np.array([0.5], np.float32), np.array([1.0], np.float32), 0,
        ...             np.array([0, 1], np.float32), spikes, membrane)
        >>> spikes[0, :, 0].tolist()
        [0.0, 0.0, 1.0]
    """
    zero = consts[0]
    one = consts[1]
    n_samples, n_steps, n = current.shape
    for b in range(n_samples):
        for t in range(n_steps):
            for j in range(n):
                previous = membrane[b, t - 1, j] if t > 0 else zero
                fired = one if previous - theta[j] > zero else zero
                if reset == 0:
                    value = beta[j] * previous
                    value = value + current[b, t, j]
                    value = value - fired * theta[j]
                elif reset == 1:
                    value = (one - fired) * previous
                    value = beta[j] * value
                    value = value + current[b, t, j]
                else:
                    value = beta[j] * previous
                    value = value + current[b, t, j]
                membrane[b, t, j] = value
                spikes[b, t, j] = one if value - theta[j] > zero else zero


_compiled: dict[str, Any] = {}


def _kernel(function=lif_forward):
    """``function`` (a time loop: `lif_forward`, or `sc_neurocore.engine.synaptic_loop.synaptic_forward`),
    compiled by numba once."""
    name = function.__name__
    if name not in _compiled:
        import numba

        _compiled[name] = numba.njit(cache=True)(function)
    return _compiled[name]


def _as_vector(value, n: int, dtype: torch.dtype) -> np.ndarray | None:
    """``value`` (a float or a tensor) as a ``(n,)`` array of ``dtype``, or ``None`` when torch would not
    compute it in ``dtype`` (a tensor of another dtype with dimensions promotes the result)."""
    if isinstance(value, Tensor):
        if value.device.type != "cpu" or value.requires_grad or value.numel() not in (1, n) or \
                (value.ndim > 0 and value.dtype != dtype):
            return None
        value = value.detach()
    vector = torch.as_tensor(value, dtype=dtype)
    if vector.numel() == 1:
        vector = vector.reshape(1).expand(n)
    return np.ascontiguousarray(vector.reshape(n).numpy())


def compiled_loop(layer, current: Tensor, synaptic: bool = False) -> bool:
    """Whether `run_neurons` runs ``layer``'s loop compiled for ``current`` ``(B, T, n)`` (``synaptic``: as a
    `synaptic_step` layer without recurrence, `sc_neurocore.engine.synaptic_loop`)."""
    params = layer.params
    if synaptic:
        kind = layer.step is synaptic_step and isinstance(params, SynapticParameters) and params.recurrent is None
    else:
        kind = layer.step is lif_step and isinstance(params, LIFParameters)
    return (kind and params.reset_delay
            and params.reset in RESET_CODES and not isinstance(params.graded, Tensor) and params.graded == 1
            and current.device.type == "cpu" and current.dtype in (torch.float32, torch.float64)
            and not (current.requires_grad and torch.is_grad_enabled()) and numba_available())


def run_neurons(layer, current: Tensor) -> tuple[Tensor, Any]:
    """A layer's emitted spikes ``(B, T, n)`` and its state after each step (fields ``(B, T, n)``), from rest.

    Compiled where `compiled_loop` allows, else the step function step by step; the same bits either way.

    Example:
        >>> import torch
        >>> from types import SimpleNamespace
        >>> layer = SimpleNamespace(step=lif_step, params=LIFParameters(0.5, 1.0),
        ...                         initial_state=lambda c: LIFState(torch.zeros_like(c)))
        >>> run_neurons(layer, torch.full((1, 3, 1), 0.6))[0][0, :, 0].tolist()
        [0.0, 0.0, 1.0]
    """
    n = current.shape[2]
    if compiled_loop(layer, current):
        beta = _as_vector(layer.params.beta, n, current.dtype)
        theta = _as_vector(layer.params.threshold, n, current.dtype)
        if beta is not None and theta is not None:
            values = np.ascontiguousarray(current.detach().numpy())
            spikes = np.zeros_like(values)
            membrane = np.zeros_like(values)
            _kernel()(values, beta, theta, RESET_CODES[layer.params.reset], np.array([0, 1], dtype=values.dtype),
                      spikes, membrane)
            return torch.from_numpy(spikes), LIFState(torch.from_numpy(membrane))
    if compiled_loop(layer, current, synaptic=True):  # a current-based layer (engine.synaptic_loop)
        vectors = [_as_vector(getattr(layer.params, name), n, current.dtype) for name in ("alpha", "beta", "threshold")]
        if all(vector is not None for vector in vectors):
            from .synaptic_loop import synaptic_forward

            values = np.ascontiguousarray(current.detach().numpy())
            spikes, synaptic, membrane = (np.zeros_like(values) for _ in range(3))
            _kernel(synaptic_forward)(values, *vectors, RESET_CODES[layer.params.reset],
                                      np.array([0, 1], dtype=values.dtype), spikes, synaptic, membrane)
            fired = torch.from_numpy(spikes)
            return fired, SynapticState(torch.from_numpy(synaptic), torch.from_numpy(membrane), fired)
    state = layer.initial_state(current.new_zeros(current.shape[0], n))
    if current.shape[1] == 0:  # no step: nothing emitted, the states empty along time
        return current.clone(), type(state)(*(field[:, None][:, :0] for field in state))
    emitted, states = [], []
    for t in range(current.shape[1]):
        s, state = layer.step(current[:, t], state, layer.params)
        emitted.append(s)
        states.append(state)
    stacked = type(state)(*(torch.stack(field, dim=1) for field in zip(*states, strict=True)))
    return torch.stack(emitted, dim=1), stacked
