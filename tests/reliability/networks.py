"""Random small spiking networks and inputs for the property tests (hypothesis strategies).

Weights are multiples of 1/8 in ``[-1.5, 2]`` (biased positive so that neurons fire): every sum of them is exact in float32, so the generic and
the incremental engines (which associate the first layer's current differently) must agree bit for bit,
and a property failure is a real bug, never round-off.
"""

from __future__ import annotations

import os
import re
import warnings
from typing import NamedTuple

import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from sc_neurocore.dynamics import RESET_MECHANISMS
from sc_neurocore.models import LIFNetwork

#: CI-stable and fast: few examples, a fixed seed, no deadline on a loaded 2-core machine. For a deeper,
#: randomised search run with ``SC_NEUROCORE_HYPOTHESIS_EXAMPLES=2000`` (then examples are not derandomized).
_EXAMPLES = os.environ.get("SC_NEUROCORE_HYPOTHESIS_EXAMPLES")
PROPERTY_SETTINGS = settings(max_examples=int(_EXAMPLES) if _EXAMPLES else 30, deadline=None,
                             derandomize=not _EXAMPLES, database=None,
                             suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


class Problem(NamedTuple):
    """A network, a batch of input spikes ``(B, T, N)`` and per-sample targets ``(B,)``."""

    network: LIFNetwork
    weights: list[torch.Tensor]
    spikes: torch.Tensor
    targets: torch.Tensor


@st.composite
def problems(draw, max_batch: int = 3, max_steps: int = 6, max_inputs: int = 6, dyadic: bool = True) -> Problem:
    """A random :class:`Problem`; ``dyadic=False`` draws arbitrary float32 weights (Gaussian) instead."""
    n_inputs = draw(st.integers(1, max_inputs))
    sizes = draw(st.lists(st.integers(1, 5), min_size=1, max_size=3))
    n_steps = draw(st.integers(1, max_steps))
    batch = draw(st.integers(1, max_batch))
    rate = draw(st.sampled_from([0.0, 0.2, 0.5, 1.0]))
    seed = draw(st.integers(0, 2**16))
    generator = torch.Generator().manual_seed(seed)
    shapes = zip([n_inputs] + sizes[:-1], sizes, strict=True)
    weights = [torch.randint(-12, 17, shape, generator=generator).float() / 8 if dyadic
               else torch.randn(shape, generator=generator) for shape in shapes]
    network = LIFNetwork(weights, beta=draw(st.sampled_from([0.5, 0.75, 0.9, 1.0])),
                         threshold=draw(st.sampled_from([0.25, 0.5, 1.0])),
                         reset=draw(st.sampled_from(RESET_MECHANISMS)))
    spikes = (torch.rand(batch, n_steps, n_inputs, generator=generator) < rate).float()
    targets = torch.randint(0, sizes[-1], (batch,), generator=generator)
    return Problem(network, weights, spikes, targets)


def smallest_budget(explain) -> int:
    """The smallest ``max_memory`` an explainer runs with unraised, read from its `BudgetWarning`s.

    ``explain(max_memory)`` runs the explainer. Each pass (the baseline, the check, the perturbations)
    raises a budget below its minimum with a warning naming the bytes it needs; the largest is the
    smallest budget under which nothing is raised. Under the `chunks_of_any_size` fixture (tests/conftest.py) chunks
    are then as small as the engine can cut them.
    """
    from sc_neurocore.engine import BudgetWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        explain(1)
    needed = [int(m.group(1)) for w in caught if issubclass(w.category, BudgetWarning)
              for m in [re.search(r"workable minimum of (\d+) bytes", str(w.message))] if m]
    assert needed, "max_memory=1 was not raised"
    budget = max(needed)
    with warnings.catch_warnings():
        warnings.simplefilter("error", BudgetWarning)
        explain(budget)
    return budget


@st.composite
def framework_problems(draw, framework: str):
    """A seeded snnTorch (``Linear`` + ``Leaky``) or Norse (``Linear`` + ``LIFCell``) stack wrapped by its
    adapter, with input spikes ``(B, T, N)``. Weights are dyadic (see the module docstring)."""
    n_inputs = draw(st.integers(1, 6))
    sizes = draw(st.lists(st.integers(1, 5), min_size=1, max_size=2))
    n_steps = draw(st.integers(1, 8))
    batch = draw(st.integers(1, 3))
    rate = draw(st.sampled_from([0.2, 0.5, 1.0]))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    linears = []
    for n_in, n_out in zip([n_inputs] + sizes[:-1], sizes, strict=True):
        linear = torch.nn.Linear(n_in, n_out)
        with torch.no_grad():
            scale = 8 if framework == "snntorch" else 1 / 4  # Norse's synapse needs far larger currents
            linear.weight.copy_(torch.randint(-12, 25, (n_out, n_in), generator=generator).float() / scale)
            linear.bias.zero_()
        linears.append(linear)
    if framework == "snntorch":
        import snntorch as snn

        from sc_neurocore.adapters import from_snntorch

        beta = draw(st.sampled_from([0.5, 0.75, 0.9]))
        layers = []
        for index, linear in enumerate(linears):
            layers += [linear, snn.Leaky(beta=beta, init_hidden=True, output=index == len(linears) - 1)]
        model = from_snntorch(torch.nn.Sequential(*layers))
    else:
        import norse.torch as norse

        from sc_neurocore.adapters import from_norse

        layers = []
        for linear in linears:
            layers += [linear, norse.LIFCell()]
        model = from_norse(norse.SequentialState(*layers))
    spikes = (torch.rand(batch, n_steps, n_inputs, generator=generator) < rate).float()
    return model, spikes
