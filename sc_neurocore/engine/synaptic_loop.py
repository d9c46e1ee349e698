r"""A current-based (snnTorch `Synaptic`) layer's whole time loop in one compiled call, bit for bit
`sc_neurocore.dynamics.synaptic_step` step by step.

As `sc_neurocore.engine.lif_loop` does for a LIF layer: where numba is installed (the ``fast`` extra) and the
step is a plain `synaptic_step` (delayed reset, spikes of height 1, no recurrence, the parameters in the
current's dtype), `sc_neurocore.engine.lif_loop.run_neurons` runs the recorded forward's and the replays'
loops compiled. The kernel performs torch's own operations in the current's dtype, one rounding each and in
the same order, so its states are torch's; the recorded forward is still checked against the model.
"""

from __future__ import annotations


def synaptic_forward(current, alpha, beta, theta, reset, consts, spikes, synaptic, membrane):
    r"""A `synaptic_step` layer's whole time loop from rest, writing ``spikes``, ``synaptic`` and ``membrane``
    ``(B, T, n)``: torch's own operations in the current's dtype, one rounding each and in the same order
    ($i \leftarrow \alpha i + I$, $u = \beta v + i$, then $u - r\theta$, $u - r u$ or $u$ with
    $r = [v_{t-1} - \theta > 0]$, and the spike $[v - \theta > 0]$), so its states are torch's.

    ``alpha``, ``beta``, ``theta``: ``(n,)`` in the current's dtype; ``consts``: ``[0, 1]`` in that dtype (literals
    would compute in float64); ``reset``: a code of `RESET_CODES`.

    Example:
        >>> import numpy as np
        >>> current = np.array([[[0.6], [0.6], [0.0]]], dtype=np.float32)
        >>> out = [np.zeros_like(current) for _ in range(3)]
        >>> half = np.array([0.5], np.float32)
        >>> synaptic_forward(current, half, half, np.array([1.0], np.float32), 1, np.array([0, 1], np.float32), *out)
        >>> out[0][0, :, 0].tolist(), out[2][0, :, 0].tolist()  # reset to zero after the spike
        ([0.0, 1.0, 0.0], [0.6000000238418579, 1.2000000476837158, 0.0])
    """
    zero = consts[0]
    one = consts[1]
    n_samples, n_steps, n = current.shape
    for b in range(n_samples):
        for t in range(n_steps):
            for j in range(n):
                previous = membrane[b, t - 1, j] if t > 0 else zero
                fired = one if previous - theta[j] > zero else zero
                value = alpha[j] * (synaptic[b, t - 1, j] if t > 0 else zero)
                value = value + current[b, t, j]
                synaptic[b, t, j] = value
                base = beta[j] * previous
                base = base + value
                if reset == 0:
                    base = base - fired * theta[j]
                elif reset == 1:
                    base = base - fired * base
                membrane[b, t, j] = base
                spikes[b, t, j] = one if base - theta[j] > zero else zero
