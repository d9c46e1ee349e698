r"""The event engine's table kernel: one LIF layer's baseline tables and rounding bounds in one pass.

`sc_neurocore.engine.event_tables.layer_tables` gives the definitions (and a torch reference of them is in the
tests). Written in plain Python over NumPy arrays and compiled by numba when it is installed, as
`sc_neurocore.engine.event_kernels`.
"""

from __future__ import annotations

import numpy as np

from .kernel_compile import jit_kernels, numba_available, plain_kernels


def build_tables(train, weight, bias, membrane, spikes, current, beta, theta, drop, reset, unit, spread, terms,
                 binary, c_est, k_prev, k_current, k_membrane, k_theta, anchor_n, spikes_n, bound_n, up_n, down_n,
                 inverse_up, inverse_down, recorded_n, rho_n, partial_n, residual_n, slip_n, gam):
    r"""One layer's tables (`sc_neurocore.engine.event_tables.layer_tables` gives the definitions) in one pass, written
    into the given arrays.

    Args:
        train: ``(B, T, n_in)`` the layer's input; weight ``(n_in, n)``; bias ``(n,)`` (zeros without one).
        membrane, spikes, current: ``(B, T, n)`` the baseline's float membrane, spikes and current.
        beta, theta, drop: ``(n,)`` (drop: what a reset by subtraction takes off the membrane); reset: the reset
            code; unit: the model dtype's unit roundoff $u$;
        spread: the factor on the bound in the margin; terms: the sum's terms beyond the non-zero inputs and
            the bias;
        binary: whether ``train`` holds only 0 and 1; c_est: the float64 estimates' own rounding ($2^{-52}$).
        k_prev, k_current: ``(n,)``; k_membrane, k_theta: the membrane update's rounding, in units of $u$, on
            $|v[t-1]|$, $|I[t]|$, $|v[t]|$ and $\theta$ (`lif_step`: $2\beta$, 2, 2, 2);
        anchor_n, spikes_n, bound_n, up_n, down_n: ``(B, n, T)`` outputs: the real anchor, spikes, bound $E$,
            upward and downward reaches;
        inverse_up, inverse_down: ``(B, T, n)`` outputs;
        recorded_n, rho_n, partial_n, residual_n, slip_n: ``(B, n, T)`` outputs, the tight test's: the float
            membrane, the per-step update term, the product term's summand bound, the baseline's product
            residual and update slip (see `sc_neurocore.engine.event_tables.layer_tables`);
        gam: ``(B, T)`` output, the product's $\gamma_{k_t}$.

    Example:
        >>> import numpy as np
        >>> z = np.zeros((1, 2, 1))
        >>> out = [np.zeros((1, 1, 2)) for _ in range(5)] + [np.zeros((1, 2, 1)) for _ in range(2)]
        >>> out += [np.zeros((1, 1, 2)) for _ in range(5)] + [np.zeros((1, 2))]
        >>> build_tables(np.ones((1, 2, 1)), np.array([[0.6]]), np.zeros(1), np.array([[[0.6], [0.0]]]),
        ...              np.array([[[0.0], [1.0]]]), np.full((1, 2, 1), 0.6), np.array([1.0]), np.array([1.0]),
        ...              np.array([1.0]), 0, 2.0**-24, 1.05, 1, True, 2.0**-52, np.array([2.0]), np.array([2.0]),
        ...              2.0, 2.0, *out)
        >>> out[0][0, 0].tolist()
        [0.6, 1.2]
    """
    n_samples, n_steps, n_in = train.shape
    n_out = weight.shape[1]
    real = np.zeros(n_out)
    positive = np.zeros(n_out)
    negative = np.zeros(n_out)
    running = np.zeros(n_out)
    error = np.zeros(n_out)
    margin = np.empty((n_steps, n_out))
    # Narrower than float64, the model's roundings are computed in float64 to a small fraction of their size:
    # the tight test takes the baseline's out of the difference and bounds only the perturbed copy's. In
    # float64 that would not be finer than bounding both (the arrays then say so: no residual, no slip).
    known = unit > 2.0**-40
    for b in range(n_samples):
        running[:] = 0.0
        error[:] = 0.0
        for t in range(n_steps):
            real[:] = 0.0
            positive[:] = 0.0
            negative[:] = 0.0
            nonzero = 0
            for i in range(n_in):
                x = train[b, t, i]
                if x == 0.0:
                    continue
                nonzero += 1
                for j in range(n_out):
                    product = x * weight[i, j]
                    real[j] += product
                    if product > 0.0:
                        positive[j] += product
                    else:
                        negative[j] -= product
            k = nonzero + 1 + terms
            g = k * unit / (1.0 - k * unit)
            gam[b, t] = g
            for j in range(n_out):
                magnitude = positive[j] + negative[j]
                partial = max(positive[j], negative[j]) if binary else magnitude
                magnitude += abs(bias[j])
                partial += abs(bias[j])
                fired = spikes[b, t - 1, j] if t > 0 else 0.0
                if reset == 0:
                    running[j] = beta[j] * running[j] + (real[j] + bias[j]) - fired * drop[j]
                elif reset == 1:
                    running[j] = beta[j] * ((1.0 - fired) * running[j]) + (real[j] + bias[j])
                else:
                    running[j] = beta[j] * running[j] + (real[j] + bias[j])
                previous = membrane[b, t - 1, j] if t > 0 else 0.0
                size = k_prev[j] * abs(previous) + k_current[j] * abs(current[b, t, j]) + \
                    k_membrane * abs(membrane[b, t, j]) + k_theta * abs(theta[j])
                rho = unit * size
                error[j] = beta[j] * error[j] + (rho + g * magnitude)
                anchor_n[b, j, t] = running[j]
                spikes_n[b, j, t] = spikes[b, t, j]
                bound_n[b, j, t] = error[j]
                recorded_n[b, j, t] = membrane[b, t, j]
                if known:
                    # The residual of the baseline's product (float current less the real sum: the sum's k - 1
                    # float64 additions, the bias's and the difference's each round by at most c_est / 2 of
                    # magnitude + |current|), and the slip of its update (the float membrane less the real update
                    # of its float inputs: two additions and the difference, at most c_est / 2 of size each).
                    if reset == 0:
                        update = beta[j] * previous + current[b, t, j] - fired * theta[j]
                    elif reset == 1:
                        update = beta[j] * ((1.0 - fired) * previous) + current[b, t, j]
                    else:
                        update = beta[j] * previous + current[b, t, j]
                    residual_n[b, j, t] = current[b, t, j] - (real[j] + bias[j])
                    slip_n[b, j, t] = membrane[b, t, j] - update
                    rho_n[b, j, t] = rho + c_est * size
                    partial_n[b, j, t] = partial + c_est * (k + 3) * (magnitude + abs(current[b, t, j])) / g
                else:  # both copies' update and product roundings bounded
                    residual_n[b, j, t] = 0.0
                    slip_n[b, j, t] = 0.0
                    rho_n[b, j, t] = 2.0 * rho
                    partial_n[b, j, t] = 2.0 * partial
                margin[t, j] = abs(running[j] - theta[j]) - spread * error[j]
        # The reaches (see `reverse_reach`): below threshold only upward, above only downward, unsure both ways.
        for j in range(n_out):
            up = np.inf
            down = np.inf
            for t in range(n_steps - 1, -1, -1):
                if t < n_steps - 1:
                    if beta[j] > 0.0:
                        up = up / beta[j]
                        down = down / beta[j]
                    else:
                        up = np.inf if up > 0.0 else -np.inf
                        down = np.inf if down > 0.0 else -np.inf
                m = margin[t, j]
                unsure = m <= 0.0
                if anchor_n[b, j, t] < theta[j] or unsure:
                    up = min(m, up)
                if anchor_n[b, j, t] >= theta[j] or unsure:
                    down = min(m, down)
                up_n[b, j, t] = up
                down_n[b, j, t] = down
                inverse_up[b, t, j] = 1.0 / up if up > 0.0 else np.inf
                inverse_down[b, t, j] = 1.0 / down if down > 0.0 else np.inf


_ENTRIES = {"build_tables": build_tables}
PYTHON_KERNELS = plain_kernels(globals(), {}, _ENTRIES)
_COMPILED: dict[str, object] = {}


def table_kernels(compiled: bool = True) -> dict:
    """The table kernel by name: numba-compiled when ``compiled`` and numba is installed, else plain Python.

    Example:
        >>> sorted(table_kernels(compiled=False))
        ['build_tables']
    """
    if not compiled or not numba_available():
        return PYTHON_KERNELS
    if not _COMPILED:
        _COMPILED.update(jit_kernels(globals(), {}, _ENTRIES))
    return _COMPILED
