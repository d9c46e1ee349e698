"""The incremental executor is exact: against brute force (one forward per perturbation) and against the
generic batched path, on every workload shape, every plan kind, ragged spike times and the last timestep."""

from __future__ import annotations

import pytest
import torch
from brute_force import input_causal_loop, one_sample, saliency_loop

from sc_neurocore.adapters import FunctionModel
from sc_neurocore.engine.compile import compile_model
from sc_neurocore.engine import BudgetWarning, execute, incremental, run_plan
from sc_neurocore.engine.incremental import minimum_memory, plan_chunks, run_incremental, stack_forward
from sc_neurocore.engine.plans import Silencing, remove_each_spike, silence_each_neuron, silence_prefixes
from sc_neurocore.models import LIFNetwork

#: The benchmark workloads' layer sizes (R-seed, R-MNIST, R-deep) with shorter windows for speed.
SHAPES = {"seed": ([64, 32, 10], 30, 0.1), "mnist": ([784, 128, 10], 12, 0.05),
          "deep": ([784, 256, 128, 10], 10, 0.05)}

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def fixed_point_weights(sizes, seed, scale=1.0, dtype=torch.float32):
    """Weights on a 1/64 grid: every sum of a few of them is exact in float32, so any summation order
    gives the same bits and the fast path must agree with brute force bit for bit."""
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randint(-48, 49, (a, b), generator=generator).to(dtype) / 64 * scale)
            for a, b in zip(sizes[:-1], sizes[1:], strict=True)]


def ragged_spikes(batch, steps, n_inputs, rate, seed):
    """Samples with different spike times and counts; sample 0 fires at t = 0 and at the last timestep,
    the last sample has a single spike, at the last timestep."""
    generator = torch.Generator().manual_seed(seed)
    rates = torch.linspace(rate / 2, rate * 1.5, batch)[:, None, None]
    spikes = (torch.rand(batch, steps, n_inputs, generator=generator) < rates).float()
    spikes[0, 0, 0] = 1
    spikes[0, -1, 1] = 1
    if batch > 1:
        spikes[-1] = 0
        spikes[-1, -1, n_inputs // 2] = 1
    return spikes


def network(sizes, seed=0, **kwargs):
    scale = 2.0 if sizes[0] < 100 else 0.7
    return LIFNetwork(fixed_point_weights(sizes, seed, scale), **kwargs)


def all_plans(net, spikes):
    batch = spikes.shape[0]
    plans = [remove_each_spike(spikes), silence_each_neuron("input", net.n_inputs, batch, spikes.device)]
    for name, size in net.neuron_layers.items():
        plans.append(silence_each_neuron(name, size, batch, spikes.device))
    generator = torch.Generator().manual_seed(3)
    shared = torch.randperm(net.n_inputs, generator=generator).to(spikes.device)
    n_hidden = net.neuron_layers["0"]
    per_sample = torch.stack([torch.randperm(n_hidden, generator=generator) for _ in range(batch)])
    plans += [silence_prefixes("input", shared, batch), silence_prefixes("0", per_sample.to(spikes.device), batch)]
    return plans


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("workload", sorted(SHAPES))
def test_bit_identical_to_generic_path_on_every_plan(workload, device):
    sizes, steps, rate = SHAPES[workload]
    net = network(sizes).to(device)
    spikes = ragged_spikes(3, steps, sizes[0], rate, seed=1).to(device)
    stack = compile_model(net)
    assert stack is not None
    for plan in all_plans(net, spikes):
        generic = run_plan(net, spikes, plan)
        fast = run_incremental(stack, spikes, plan)
        assert torch.equal(fast, generic), (workload, type(plan).__name__, getattr(plan, "layer", None))
        assert fast.abs().sum() > 0


def test_saliency_matches_the_brute_force_loop_including_the_last_timestep():
    sizes, steps, rate = SHAPES["seed"]
    net = network(sizes, seed=4)
    spikes = ragged_spikes(2, steps, sizes[0], rate, seed=5)
    target = 0
    baseline = net.run(spikes)
    assert baseline[:, target].sum() > 0  # a silent output would make every saliency 0 and the test vacuous
    plan = remove_each_spike(spikes)
    outputs = run_incremental(compile_model(net), spikes, plan)
    for b in range(2):
        expected = saliency_loop(one_sample(net), spikes[b], target)
        rows = plan.sample == b
        got = torch.zeros_like(expected)
        got[plan.timestep[rows], plan.neuron[rows]] = (baseline[b, target] - outputs[rows, target]).double()
        assert torch.equal(got, expected)
    assert bool(spikes[:, -1].any())  # the last timestep's spikes were among those removed


def test_input_silencing_matches_the_brute_force_loop():
    sizes, steps, rate = SHAPES["seed"]
    net = network(sizes, seed=6)
    spikes = ragged_spikes(1, steps, sizes[0], rate, seed=7)
    outputs = run_incremental(compile_model(net), spikes, silence_each_neuron("input", sizes[0], 1, spikes.device))
    expected = input_causal_loop(one_sample(net), spikes[0], 2)
    assert torch.equal((net.run(spikes)[0, 2] - outputs[:, 2]).double(), expected)
    assert expected.abs().sum() > 0


def test_arbitrary_float_weights_give_the_same_spike_counts():
    # No fixed-point grid: the rank-1 delta rounds differently from a new matrix product, which may only
    # matter within an ulp of threshold; in float64 that never happens on these inputs.
    generator = torch.Generator().manual_seed(11)
    weights = [torch.randn(64, 32, generator=generator, dtype=torch.float64) * 0.8,
               torch.randn(32, 10, generator=generator, dtype=torch.float64) * 0.8]
    net = LIFNetwork(weights, beta=0.85, threshold=0.7)
    spikes = ragged_spikes(2, 40, 64, 0.15, seed=12).double()
    for plan in all_plans(net, spikes)[:4]:
        assert torch.equal(run_incremental(compile_model(net), spikes, plan), run_plan(net, spikes, plan))


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
def test_every_reset_mechanism_and_biases(reset):
    sizes = [30, 20, 15, 5]
    weights = fixed_point_weights(sizes, seed=8, scale=2.0)
    biases = [torch.full((n,), 0.125) for n in sizes[1:]]
    net = LIFNetwork(weights, beta=[0.5, 0.75, 0.875], threshold=[1.0, 0.5, 1.25], reset=reset, biases=biases)
    spikes = ragged_spikes(3, 25, 30, 0.2, seed=9)
    stack = compile_model(net)
    for plan in all_plans(net, spikes):
        assert torch.equal(run_incremental(stack, spikes, plan), run_plan(net, spikes, plan))


@pytest.mark.parametrize("budget_factor", [None, 3.0, 1.2])
def test_chunking_does_not_change_results(budget_factor, chunks_of_any_size):
    sizes = [40, 24, 6]
    net = network(sizes, seed=2)
    spikes = ragged_spikes(5, 20, 40, 0.2, seed=3)
    stack = compile_model(net)
    for plan in all_plans(net, spikes):
        reference = run_plan(net, spikes, plan)
        # Budgets near the minimum: one sample and a few rows per chunk.
        budget = None if budget_factor is None else int(budget_factor * minimum_memory(stack, spikes, plan)) + 4096
        assert torch.equal(run_incremental(stack, spikes, plan, max_memory=budget), reference)


def test_chunk_sizes_follow_the_budget():
    samples, rows = plan_chunks(10_000, 1_000, 100, n_samples=50, n_rows=1000)
    assert samples == 5 and rows == 50  # half the budget for baselines, the rest for replayed rows
    assert plan_chunks(10**9, 1_000, 100, n_samples=3, n_rows=7) == (3, 7)
    with pytest.raises(ValueError, match="max_memory"):
        plan_chunks(1_000, 1_000, 100, n_samples=1, n_rows=1)


def test_execute_dispatches_to_the_incremental_executor(monkeypatch):
    sizes = [20, 12, 4]
    net = network(sizes, seed=5)
    spikes = ragged_spikes(2, 15, 20, 0.3, seed=6)
    plan = remove_each_spike(spikes)
    calls = []
    real = incremental.run_incremental
    monkeypatch.setattr("sc_neurocore.engine.run_incremental", lambda *a, **k: calls.append(1) or real(*a, **k))
    fast, info = execute(net, spikes, plan, engine="incremental", return_info=True)
    assert calls == [1] and info.engine == "incremental" and info.reason.startswith("forced")
    assert torch.equal(fast, run_plan(net, spikes, plan))
    auto, info = execute(net, spikes, plan, return_info=True)  # the cost model picks (here: a tiny network)
    assert info.reason.startswith("cost model") and info.engine in info.reason
    assert torch.equal(auto, fast)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (the dispatch on CPU is tested above)")
def test_execute_runs_the_generic_path_on_a_gpu(monkeypatch):
    # Measured on an H200: the replay's many small per-step kernels lose to one batched forward.
    net = network([20, 12, 4], seed=5).to("cuda")
    spikes = ragged_spikes(2, 15, 20, 0.3, seed=6).to("cuda")
    plan = remove_each_spike(spikes)
    calls = []
    monkeypatch.setattr("sc_neurocore.engine.run_incremental", lambda *a, **k: calls.append(1))
    assert torch.equal(execute(net, spikes, plan), run_plan(net, spikes, plan))
    assert calls == []


def test_small_plans_take_the_generic_path(monkeypatch):
    from sc_neurocore import engine

    monkeypatch.setattr(engine, "SMALL_PLAN_MACS", 2 * 10**8)  # the shipped value (conftest sets 0)
    net = network([20, 12, 4], seed=5)
    spikes = ragged_spikes(2, 15, 20, 0.3, seed=6)
    plan = remove_each_spike(spikes)
    calls = []
    real = incremental.run_incremental
    monkeypatch.setattr("sc_neurocore.engine.run_incremental", lambda *a, **k: calls.append(1) or real(*a, **k))
    outputs, info = execute(net, spikes, plan, return_info=True)
    assert torch.equal(outputs, run_plan(net, spikes, plan))
    assert calls == [] and info.engine == "batched"  # len(plan) x 15 x (20 x 12 + 12 x 4) multiply-adds: far below
    monkeypatch.setattr(engine, "SMALL_PLAN_MACS", len(plan) * 15 * (20 * 12 + 12 * 4))
    outputs, info = execute(net, spikes, plan, return_info=True)
    assert torch.equal(outputs, run_plan(net, spikes, plan))
    assert info.reason.startswith("cost model")  # at the threshold the cost model decides


def test_execute_falls_back_transparently(monkeypatch):
    sizes = [20, 12, 4]
    net = network(sizes, seed=5)
    spikes = ragged_spikes(2, 15, 20, 0.3, seed=6)
    plan = remove_each_spike(spikes)
    reference = run_plan(net, spikes, plan)
    monkeypatch.setattr("sc_neurocore.engine.run_incremental",
                        lambda *a, **k: pytest.fail("a model that does not compile must not reach the incremental path"))

    class Subclass(LIFNetwork):
        pass

    function = FunctionModel(lambda x: net.run(x), batched=True, n_inputs=20)
    assert torch.equal(execute(Subclass(net.linear_weights()), spikes, plan), reference)
    assert torch.equal(execute(function, spikes, plan), reference)
    # A budget too small for the baseline cache: raised to the workable minimum, with a warning; same numbers.
    small = minimum_memory(compile_model(net), spikes, plan) - 1
    with pytest.warns(BudgetWarning, match="max_memory: .* workable minimum"):
        assert torch.equal(execute(net, spikes, plan, max_memory=small), reference)


def test_empty_plans_and_baseline():
    net = network([10, 6, 3], seed=1)
    silent = torch.zeros(2, 8, 10)
    stack = compile_model(net)
    assert run_incremental(stack, silent, remove_each_spike(silent)).shape == (0, 3)
    spikes = ragged_spikes(2, 8, 10, 0.3, seed=2)
    assert torch.equal(run_incremental(stack, spikes, None), net.run(spikes))
    # A silenced neuron that never fired changes nothing and is never replayed.
    plan = silence_each_neuron("input", 10, 2, spikes.device)
    never = ~(spikes != 0).any(dim=1).reshape(-1)
    outputs = run_incremental(stack, spikes, plan)
    assert torch.equal(outputs[never], net.run(spikes)[plan.sample[never]])


def test_inputs_and_weights_are_not_mutated():
    net = network([20, 12, 4], seed=5)
    spikes = ragged_spikes(2, 15, 20, 0.3, seed=6)
    before = [w.clone() for w in net.linear_weights()], spikes.clone()
    for plan in all_plans(net, spikes):
        run_incremental(compile_model(net), spikes, plan)
    assert all(torch.equal(a, b) for a, b in zip(before[0], net.linear_weights(), strict=True))
    assert torch.equal(before[1], spikes)


def test_stack_forward_reproduces_the_network_and_its_recording():
    net = network([20, 12, 4], seed=5)
    spikes = ragged_spikes(2, 15, 20, 0.3, seed=6)
    outputs, baseline = stack_forward(compile_model(net), spikes, record=True)
    recording = net.record(spikes)
    assert torch.equal(outputs, recording.outputs)
    for layer, spikes_l, states in zip(recording.layers, baseline.spikes, baseline.states, strict=True):
        assert torch.equal(layer.spikes, spikes_l) and torch.equal(layer.membrane, states.membrane)
    assert torch.equal(baseline.partial_outputs[:, -1], outputs)


def test_silencing_plan_rows_out_of_order_and_per_sample_ranks(chunks_of_any_size):
    net = network([24, 16, 5], seed=9)
    spikes = ragged_spikes(4, 12, 24, 0.3, seed=10)
    generator = torch.Generator().manual_seed(0)
    plan = silence_each_neuron("0", 16, 4, spikes.device)
    shuffle = torch.randperm(len(plan), generator=generator)
    shuffled = Silencing(plan.layer, plan.sample[shuffle], plan.rank, plan.start[shuffle], plan.stop[shuffle])
    assert torch.equal(run_incremental(compile_model(net), spikes, shuffled, max_memory=40_000),
                       run_plan(net, spikes, shuffled))


def test_near_ties_are_replayed_with_exact_currents(monkeypatch):
    # A huge margin flags every replayed row: all of them are then replayed again with the layer's own
    # matrix product of the perturbed input, which must give the same outputs as the generic path.
    net = network([24, 16, 5], seed=9)
    spikes = ragged_spikes(3, 12, 24, 0.3, seed=10)
    stack = compile_model(net)
    exact_rows = []
    real = incremental.replay

    def spy(stack, spikes, baseline, rows, exact=False):
        if exact:
            exact_rows.append(rows.sample.shape[0])
        return real(stack, spikes, baseline, rows, exact)

    monkeypatch.setattr(incremental, "replay", spy)
    monkeypatch.setattr(incremental, "tie_margin", lambda stack: float("inf"))
    for plan in all_plans(net, spikes):
        assert torch.equal(run_incremental(stack, spikes, plan), run_plan(net, spikes, plan))
    assert sum(exact_rows) > 0


def test_gaussian_float32_weights_match_brute_force_on_many_perturbations():
    # Arbitrary float32 weights: the replay's I - W[i] rounds differently from a new matrix product, so
    # without the near-tie guard about 2 in 10^5 rows flip a spike; with it every count is identical.
    generator = torch.Generator().manual_seed(21)
    weights = [torch.randn(200, 64, generator=generator) * 0.35, torch.randn(64, 10, generator=generator) * 0.5]
    net = LIFNetwork(weights, beta=0.9)
    spikes = (torch.rand(40, 25, 200, generator=generator) < 0.08).float()
    plan = remove_each_spike(spikes)
    assert len(plan) > 8000
    assert torch.equal(run_incremental(compile_model(net), spikes, plan), run_plan(net, spikes, plan))


def test_multi_input_silencing_goes_to_the_generic_path(monkeypatch):
    # Prefixes of input neurons change a full input matrix product per step: the generic path does that in
    # fewer, larger calls, so execute sends them there (hidden-layer prefixes stay incremental).
    net = network([20, 12, 4], seed=5)
    spikes = ragged_spikes(2, 15, 20, 0.3, seed=6)
    calls = []
    real = incremental.run_incremental
    monkeypatch.setattr("sc_neurocore.engine.run_incremental", lambda *a, **k: calls.append(1) or real(*a, **k))
    prefixes = silence_prefixes("input", torch.arange(20), 2)
    assert torch.equal(execute(net, spikes, prefixes), run_plan(net, spikes, prefixes))
    assert calls == []
    with pytest.raises(ValueError, match="engine: 'incremental' cannot run this call"):
        execute(net, spikes, prefixes, engine="incremental")
    hidden = silence_prefixes("0", torch.arange(12), 2)
    assert torch.equal(execute(net, spikes, hidden, engine="incremental"), run_plan(net, spikes, hidden))
    assert calls == [1]


@pytest.mark.parametrize(("event_factor", "expected"), [(1.2, "event"), (3.0, "incremental")])
def test_auto_prefers_the_event_engines_rigorous_bound_when_it_costs_little_more(monkeypatch, event_factor, expected):
    from sc_neurocore import engine
    from sc_neurocore.engine import cost

    monkeypatch.setattr(cost, "incremental_seconds", lambda shape: 0.01)
    monkeypatch.setattr(cost, "event_seconds", lambda shape, compiled=True: 0.01 * event_factor)
    monkeypatch.setattr(cost, "batched_seconds", lambda shape: 1.0)
    net = network([20, 12, 4], seed=5)
    spikes = ragged_spikes(1, 15, 20, 0.3, seed=6)
    plan = remove_each_spike(spikes)
    outputs, info = execute(net, spikes, plan, return_info=True)
    assert info.engine == expected, info.reason
    assert (engine.EXACT_NOTE in info.reason) == (expected == "event")
    assert torch.equal(outputs, run_plan(net, spikes, plan))
