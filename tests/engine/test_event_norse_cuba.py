"""Norse's current-based LIF (`LIFCell`, Norse's default neuron) in the event engine equals the naive loop: Norse's
own forward on one perturbed copy at a time, bit for bit outside the reported tie mask, and every row, tie rows
included, the traced graph's own naive loop.

The layer charges and resets in the same step; on its charged membrane it is the current-based kernel's reset
code 3 (the reset zeroes the old membrane, not the step's current; `sc_neurocore.engine.cuba_kernels`), with a
tight test on its own float charged membrane. Random
stacks through Norse (float32 and float64, decays down to 0, spike counts and an `LICell` readout), a check of
the rounding bound itself (Norse's own float charged membrane of each perturbed copy lies within the loose radius
at every step the kernel scans) with a control showing the check has teeth, the refusals, and the cost model."""

from __future__ import annotations


import numpy as np
import pytest
import torch
from conftest import require_module
from hypothesis import given, settings
from hypothesis import strategies as st

from sc_neurocore.engine import cuba, cuba_kernels, event, execute
from sc_neurocore.engine.lower import to_compiled_stack
from sc_neurocore.engine.plans import remove_each_spike

import bound_checks
from bound_checks import kernel_scan, logging_copy
from event_networks import check_event_stack, linear_stack, naive_rows

STACKS = settings(max_examples=25, deadline=None, derandomize=True, database=None)


@pytest.fixture(autouse=True)
def _norse():
    require_module("norse", "norse")


def _cell(draw):
    import norse.torch as norse

    return norse.LIFCell(norse.LIFParameters(
        tau_syn_inv=torch.as_tensor(draw(st.sampled_from([100.0, 200.0, 500.0, 1000.0]))),  # alpha 0.9 ... 0
        tau_mem_inv=torch.as_tensor(draw(st.sampled_from([50.0, 100.0, 250.0, 1000.0]))),  # beta 0.95 ... 0
        v_th=torch.as_tensor(draw(st.sampled_from([0.5, 1.0])))))


@st.composite
def norse_cell_stacks(draw):
    """A random Norse Linear + LIFCell stack (its last layer sometimes an `LICell`, read out by its maximal
    membrane), its dtype and spikes."""
    import norse.torch as norse

    layers, spikes = linear_stack(draw, _cell, [10.0, 20.0, 40.0])
    integrator = len(layers) > 2 and draw(st.booleans())
    if integrator:
        layers[-1] = norse.LICell()
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    return norse.SequentialState(*layers).to(dtype), spikes.to(dtype), integrator


@pytest.mark.slow
@STACKS
@given(norse_cell_stacks())
def test_norse_cell_stacks_equal_the_naive_loop(problem):
    from sc_neurocore.adapters import from_norse

    sequential, spikes, integrator = problem
    check_event_stack(from_norse(sequential), spikes, tight=integrator)


def _network(sizes: list[int], gain: float, seed: int, bias: float | None = None):
    import norse.torch as norse

    torch.manual_seed(seed)
    layers: list[torch.nn.Module] = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        linear = torch.nn.Linear(n_in, n_out, bias=bias is not None)
        with torch.no_grad():
            linear.weight.mul_(gain)
            if bias is not None:
                linear.bias.fill_(bias)
        layers += [linear, norse.LIFCell()]
    return norse.SequentialState(*layers)


# The lines of `_cuba_rows` after which the logging copy logs (the test fails loudly if the kernel no longer has
# them): the loose test's every scanned step, the tight test's every decision.
LOGGED = {"                    radius = spread * bound[b, j, t] + rv\n":
          "                    LOG.append((ROW[0], j, t, estimate, radius))\n",
          "                        radius = rtv * scale_t + c_est * (abs(estimate) + th) + c_op * th\n":
          "                        TIGHT.append((ROW[0], j, t, estimate, radius))\n"}


def _charged(layer, currents: torch.Tensor, state) -> np.ndarray:
    """A recorded forward's float charged membranes ``(T, n)`` of its first sample, by Norse's own ops."""
    return cuba.norse_charged(layer, currents, state)[1][0].double().numpy()


def worst_error(graph, x: torch.Tensor, tight: bool = False) -> tuple[int, float]:
    """``(steps checked, the largest |true - estimate| / radius)`` over every step the kernel scans for the spike
    removals of ``x`` (``tight``: over every decision the tight test takes; `bound_checks.worst_error`): the true
    value is the charged membrane of the perturbed copy's own float forward."""
    kernel = logging_copy(cuba_kernels, LOGGED)
    scan = kernel_scan(kernel, "propagate_cuba", "TIGHT" if tight else "LOG")

    def checked_scan(table, events, plan):
        assert table.reset == 3 and table.tight == tight  # Norse's form
        return scan(table, events, plan)

    return bound_checks.worst_error(graph, x, _charged, checked_scan, tight)


def _graph(net, x: torch.Tensor):
    from sc_neurocore.adapters import from_norse

    graph = from_norse(net).graph_for(x)
    assert graph is not None
    return graph


def test_the_true_float_charge_lies_within_the_loose_radius():
    net = _network([160, 48, 6], 30.0, seed=0)
    x = (torch.rand(1, 20, 160, generator=torch.Generator().manual_seed(12)) < 0.12).float()
    checked, worst = worst_error(_graph(net, x), x)
    assert checked > 1000  # not vacuous: many scanned steps
    assert worst <= 1.0, "the loose bound fails"
    assert worst > 1e-3  # and the radius is of the size of the rounding, not far above it


def test_the_true_float_charge_lies_within_the_tight_radius():
    """Where the tight test decides (the loose bound could not), the copy's own float charged membrane lies within
    its radius around the baseline's float membrane plus the difference."""
    net = _network([160, 48, 6], 30.0, seed=0)
    x = (torch.rand(1, 20, 160, generator=torch.Generator().manual_seed(12)) < 0.12).float()
    checked, worst = worst_error(_graph(net, x), x, tight=True)
    assert checked > 3  # the loose test left some decisions to the tight one
    assert worst <= 1.0, "the tight bound fails"


def test_the_bound_check_fails_without_norses_own_rounding(monkeypatch):
    """The check above has teeth: with the layer's own roundings left out of the tables, true values fall outside.

    A membrane charging on a constant bias (0.2, not a float) towards its threshold (1, where the current 0.2 / (1 -
    alpha) settles) rounds at every step, an error the product's bound (the bias alone, added exactly) does not
    cover."""
    real = cuba._norse_roundings
    monkeypatch.setattr(cuba, "_norse_roundings", lambda *args: tuple(torch.zeros_like(r) for r in real(*args)))
    net = _network([20, 8], 0.05, seed=3, bias=0.2)
    x = (torch.rand(1, 80, 20, generator=torch.Generator().manual_seed(3)) < 0.02).float()
    graph = _graph(net, x)
    checked, worst = worst_error(graph, x)
    assert checked > 100 and worst > 1.0
    monkeypatch.undo()
    assert worst_error(graph, x)[1] <= 1.0  # with them, the same steps are covered


@pytest.mark.parametrize("field,value,why", [
    ("v_leak", 0.1, "v_leak other than 0"),
    ("v_reset", -0.2, "v_reset other than 0"),
    ("tau_mem_inv", 2000.0, "membrane decay"),
    ("tau_syn_inv", -10.0, "current decay"),
    ("v_th", torch.ones(2), "neither one value nor one per neuron"),
])
def test_what_the_kernel_does_not_model_is_refused(field, value, why):
    import norse.torch as norse

    net = _network([12, 5], 20.0, seed=4)
    x = (torch.rand(1, 10, 12, generator=torch.Generator().manual_seed(4)) < 0.3).float()
    stack = to_compiled_stack(_graph(net, x))
    assert stack is not None and event.unsupported(stack) is None
    layer = stack.layers[0]
    changed = stack._replace(layers=(layer._replace(params=layer.params._replace(**{field: value})),))
    assert why in str(event.unsupported(changed))
    if field in ("v_leak", "v_reset"):  # a model Norse runs: explained exactly on another executor
        from sc_neurocore.adapters import from_norse

        cell = norse.LIFCell(norse.LIFParameters(**{field: torch.as_tensor(value)}))
        model = from_norse(norse.SequentialState(net[0], cell))
        graph = model.graph_for(x)
        plan = remove_each_spike(x)
        outputs, info = execute(graph, x, plan, return_info=True)
        assert info.engine != "event"
        assert torch.equal(outputs, naive_rows(model.run, x, plan))


def _tutorial(integrator: bool):
    """The bench's LIFCell workload (R-MNIST's 784-128-10 weights with Norse cells), its output layer an `LICell`
    with ``integrator`` (Norse's tutorial network)."""
    import norse.torch as norse

    from sc_neurocore.adapters import from_norse
    from sc_neurocore.bench.workloads import FRAMEWORK_WORKLOADS, framework_network, framework_spikes

    workload = FRAMEWORK_WORKLOADS["LIFCell"]
    net = framework_network(workload)
    if integrator:
        net = norse.SequentialState(net[0], net[1], net[2], norse.LICell())
    return from_norse(net), framework_spikes(workload)


@pytest.mark.slow
def test_a_spike_count_network_runs_as_events_by_the_cost_model():
    model, spikes = _tutorial(integrator=False)
    graph = model.graph_for(spikes)
    plan = remove_each_spike(spikes)
    auto, info = execute(graph, spikes, plan, return_info=True)
    assert info.engine == "event", info.reason
    rows = torch.arange(0, len(plan), 9)  # a ninth of the rows through Norse's own forward, one at a time
    keep = ~info.tie_mask[rows]
    assert torch.equal(auto[rows][keep], naive_rows(model.run, spikes, event.select(plan, rows))[keep])


@pytest.mark.slow
def test_an_integrator_readout_runs_as_events_and_exactly():
    """Norse's tutorial shape (an `LICell` readout): every row's output layer is replayed in the naive loop's
    call shapes. The cost model counts that (the incremental engine is estimated cheaper there), but only the
    event engine gives a membrane readout the one-copy loop's bits, so ``auto`` runs it: Norse's own outputs,
    bit for bit."""
    model, spikes = _tutorial(integrator=True)
    graph = model.graph_for(spikes)
    plan = remove_each_spike(spikes)
    outputs, info = execute(graph, spikes, plan, return_info=True)
    assert info.engine == "event" and "one-copy loop's bits" in info.reason, info.reason
    rows = torch.arange(0, len(plan), 9)
    assert torch.equal(outputs[rows], naive_rows(model.run, spikes, event.select(plan, rows)))
