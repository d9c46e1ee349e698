"""The event engine's fused table kernel equals the tables' definitions, written out in torch ops."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sc_neurocore.engine import event_tables
from sc_neurocore.engine.compile import compile_model
from sc_neurocore.engine.incremental import stack_forward
from sc_neurocore.models import LIFNetwork


def reverse_reach(margin: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """``min over t' >= t of margin[b, t', j] / beta[j] ** (t' - t)`` (``beta = 0``: later steps out of reach,
    unless not positive)."""
    reach = np.empty_like(margin)
    for t in range(margin.shape[1] - 1, -1, -1):
        if t == margin.shape[1] - 1:
            reach[:, t] = margin[:, t]
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            carried = np.where(beta > 0, reach[:, t + 1] / np.where(beta > 0, beta, 1.0),
                               np.where(reach[:, t + 1] > 0, np.inf, -np.inf))
        reach[:, t] = np.minimum(margin[:, t], carried)
    return reach


def reference_tables(stack, x, baseline, index, unit, spread):
    """The definitions of `event_tables.layer_tables` for one layer, op by op (time-major ``(B, T, n)``)."""
    layer = stack.layers[index]
    train = (x if index == 0 else baseline.spikes[index - 1]).double()
    weight = layer.weight.double()
    membrane = baseline.states[index].membrane.double()
    spikes = baseline.spikes[index].double()
    current = baseline.currents[index].double()
    n_out = weight.shape[1]
    beta = torch.as_tensor(layer.params.beta, dtype=torch.float64).expand(n_out)
    theta = torch.as_tensor(layer.params.threshold, dtype=torch.float64).expand(n_out)
    products = train[..., :, None] * weight  # (B, T, n_in, n)
    positive = products.clamp(min=0).sum(dim=2)
    negative = (-products).clamp(min=0).sum(dim=2)
    binary = bool(((train == 0) | (train == 1)).all())
    bias = torch.zeros(n_out, dtype=torch.float64) if layer.bias is None else layer.bias.double()
    magnitude = positive + negative + bias.abs()
    partial = (torch.maximum(positive, negative) if binary else positive + negative) + bias.abs()
    real = products.sum(dim=2) + bias
    anchor = torch.zeros_like(real)
    running = torch.zeros(real.shape[0], n_out, dtype=torch.float64)
    for t in range(real.shape[1]):
        fired = spikes[:, t - 1] if t > 0 else torch.zeros_like(running)
        if layer.params.reset == "subtract":
            running = beta * running + real[:, t] - fired * theta
        elif layer.params.reset == "zero":
            running = beta * ((1 - fired) * running) + real[:, t]
        else:
            running = beta * running + real[:, t]
        anchor[:, t] = running
    terms = (train != 0).sum(dim=2, keepdim=True) + 1 + layer.terms + (0 if index == 0 else event_tables.ADDED_SPIKES)
    previous = torch.cat([torch.zeros_like(membrane[:, :1]), membrane[:, :-1]], dim=1)
    rho = 2 * unit * (beta * previous.abs() + current.abs() + membrane.abs() + theta.abs())
    gam = event_tables.gamma(terms, unit)
    local = rho + gam * magnitude
    bound = torch.zeros_like(local)
    error = torch.zeros_like(running)
    for t in range(local.shape[1]):
        error = beta * error + local[:, t]
        bound[:, t] = error
    margin = (anchor - theta).abs() - spread * bound
    below, unsure = anchor < theta, margin <= 0
    reaches = []
    for side in (below | unsure, ~below | unsure):
        masked = torch.where(side, margin, torch.inf).numpy()
        reaches.append(reverse_reach(masked, beta.numpy()))
    tight = dict(rho=2 * rho, partial=2 * partial, residual=torch.zeros_like(rho), slip=torch.zeros_like(rho))
    if unit > 2.0**-40:  # narrower than float64: the baseline's own roundings are taken out, the copy's bounded
        fired = torch.cat([torch.zeros_like(spikes[:, :1]), spikes[:, :-1]], dim=1)
        if layer.params.reset == "subtract":
            update = beta * previous + current - fired * theta
        elif layer.params.reset == "zero":
            update = beta * ((1 - fired) * previous) + current
        else:
            update = beta * previous + current
        size = rho / (2 * unit)
        tight = dict(rho=rho + 2 * 2.0**-52 * size, partial=partial + 2.0**-52 * (terms + 3) * (magnitude + current.abs()) / gam,
                     residual=current - real, slip=membrane - update)
    return dict(anchor=anchor, spikes=spikes, bound=bound, up=reaches[0], down=reaches[1], recorded=membrane,
                gam=gam[..., 0], **tight)


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_fused_tables_are_their_definitions(reset, dtype):
    generator = torch.Generator().manual_seed(7)
    net = LIFNetwork([torch.randn(20, 12, generator=generator, dtype=dtype),
                      torch.randn(12, 5, generator=generator, dtype=dtype)], beta=0.8, reset=reset)
    x = (torch.rand(2, 15, 20, generator=generator) < 0.3).to(dtype)
    stack = compile_model(net)
    _, baseline = stack_forward(stack, x, record=True)
    tables = event_tables.layer_tables(stack, x, baseline, tight=True)
    unit = torch.finfo(dtype).eps / 2
    spread = 2.1 if dtype == torch.float64 else 1.05
    for index, table in enumerate(tables):
        want = reference_tables(stack, x, baseline, index, unit, spread)
        neuron_major = dict(anchor=table.membrane, spikes=table.spikes, bound=table.bound, up=table.up_by_neuron,
                            down=table.down_by_neuron)
        if table.tight:  # the tight test's tables (where each sample's product is the same computed alone)
            neuron_major.update(recorded=table.recorded, rho=table.rho, partial=table.partial, residual=table.residual,
                                slip=table.slip)
            np.testing.assert_allclose(table.gam, np.asarray(want["gam"]), rtol=1e-15, atol=0)
        for name, got in neuron_major.items():
            expected = np.asarray(want[name]).transpose(0, 2, 1)
            # Sums in any order (the residual and the slip, what is left of a rounding, agree to the inputs' size)
            np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12, err_msg=name)
        if table.tight and dtype == torch.float32:  # not vacuous: the float32 roundings taken out are there
            assert np.abs(table.residual).max() > 1e-9 and np.abs(table.slip).max() > 1e-9
        with np.errstate(divide="ignore"):
            for got, reach in ((table.inverse_up, want["up"]), (table.inverse_down, want["down"])):
                np.testing.assert_allclose(got, np.where(reach > 0, 1.0 / reach, np.inf), rtol=1e-9)
        assert bool((table.inverse_up < np.inf).any())  # not vacuous: some pairs are screened
    assert tables[0].tight


def test_the_compiled_and_the_plain_python_table_kernels_agree_bit_for_bit():
    from sc_neurocore.engine import table_kernels

    generator = torch.Generator().manual_seed(8)
    train = (torch.rand(2, 9, 7, generator=generator) < 0.4).double().numpy()
    weight = torch.randn(7, 4, generator=generator, dtype=torch.float64).numpy()
    membrane, current = (torch.randn(2, 9, 4, generator=generator, dtype=torch.float64).numpy() for _ in range(2))
    spikes = (membrane > 0.5).astype(np.float64)
    results = []
    for compiled in (True, False):
        out = [np.zeros((2, 4, 9)) for _ in range(5)] + [np.zeros((2, 9, 4)) for _ in range(2)] + \
            [np.zeros((2, 4, 9)) for _ in range(5)] + [np.zeros((2, 9))]
        table_kernels.table_kernels(compiled)["build_tables"](train, weight, np.full(4, 0.1), membrane, spikes, current,
                                                        np.full(4, 0.7), np.ones(4), np.ones(4), 0, 2.0**-24, 1.05, 0,
                                                        True,
                                                        2.0**-52, np.full(4, 1.4), np.full(4, 2.0), 2.0, 2.0, *out)
        results.append(out)
    for fast, slow in zip(*results, strict=True):
        assert np.array_equal(fast, slow)
