"""Fuzzing the explainers' arguments: whatever is passed, the answer is a result or a ``ValueError`` /
``TypeError`` raised by sc-neurocore's own checks and naming an argument -- never a torch or NumPy error
from deep inside, never a hang, never a crash of another kind."""

from __future__ import annotations

import traceback
from pathlib import Path

import torch
from hypothesis import given
from hypothesis import strategies as st

import sc_neurocore
from sc_neurocore.explain import CausalImportance, SpikeAttributor, TemporalSaliency

from .cases import N_IN, N_OUT, network, weights
from .networks import PROPERTY_SETTINGS

PACKAGE = str(Path(sc_neurocore.__file__).parent)
ARGUMENTS = ("input_spikes", "output_neuron", "labels", "layer", "weights", "run_fn", "max_memory", "batched",
             "beta", "threshold", "reset", "k", "sample", "trace_bits", "frac_bits", "weight_bits", "decay_bits",
             "decay", "mode", "significance", "spikes", "silence")
DTYPES = [torch.bool, torch.uint8, torch.int8, torch.int64, torch.float16, torch.bfloat16, torch.float32,
          torch.float64, torch.complex64]
SPECIAL = [0.0, 1.0, 2.0, -1.0, 0.5, float("nan"), float("inf")]


@st.composite
def arrays(draw, ndim=st.integers(0, 4), sizes=st.integers(0, 9)):  # noqa: B008 (hypothesis strategies)
    """Tensors, NumPy arrays or nested lists of any small shape and dtype, sometimes with odd values."""
    n_dims = draw(ndim)
    shape = tuple(draw(st.lists(sizes, min_size=n_dims, max_size=n_dims)))
    dtype = draw(st.sampled_from(DTYPES))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    values = (torch.rand(shape, generator=generator) < 0.4).double()
    if draw(st.booleans()) and values.numel():
        values.view(-1)[draw(st.integers(0, values.numel() - 1))] = draw(st.sampled_from(SPECIAL))
    tensor = values.to(dtype) if dtype != torch.bool else values.bool()
    form = draw(st.sampled_from(["torch", "numpy", "list"]))
    if form == "torch" or dtype in (torch.bfloat16,):
        return tensor
    array = tensor.numpy()
    return array if form == "numpy" else array.tolist()


def spike_inputs():
    plausible = st.builds(lambda b, t, n: (torch.rand(b, t, n) < 0.4).float(), st.integers(1, 3), st.integers(1, 6),
                          st.sampled_from([N_IN, N_IN, N_IN - 1]))
    return st.one_of(plausible, arrays(), st.none(), st.text(max_size=3), st.integers(-2, 2))


def targets():
    return st.one_of(st.integers(-2, N_OUT + 1), st.integers(), st.floats(allow_nan=True), st.booleans(), st.none(),
                     st.text(max_size=2), arrays(ndim=st.integers(0, 2), sizes=st.integers(0, 4)),
                     st.lists(st.integers(-1, N_OUT), max_size=4))


def _answer(call) -> None:
    try:
        call()
    except (ValueError, TypeError) as error:
        message = str(error)
        named = message.split(":", 1)[0]
        assert any(argument in named for argument in ARGUMENTS), f"no argument named first: {message!r}"
        innermost = traceback.extract_tb(error.__traceback__)[-1].filename
        assert innermost.startswith(PACKAGE), f"{type(error).__name__} from {innermost}: {message}"


@PROPERTY_SETTINGS
@given(spike_inputs(), targets())
def test_attribution_answers_anything(input_spikes, output_neuron):
    _answer(lambda: SpikeAttributor().attribute(input_spikes, weights(), output_neuron=output_neuron))


@PROPERTY_SETTINGS
@given(spike_inputs(), targets())
def test_saliency_answers_anything(input_spikes, output_neuron):
    _answer(lambda: TemporalSaliency(network()).explain(input_spikes, output_neuron=output_neuron))


@PROPERTY_SETTINGS
@given(spike_inputs(), targets(), st.one_of(st.none(), targets()),
       st.one_of(st.sampled_from(["input", "0", "1", "2", ""]), st.integers(-1, 2), st.none()))
def test_causal_answers_anything(input_spikes, output_neuron, labels, layer):
    _answer(lambda: CausalImportance(network()).explain(input_spikes, output_neuron=output_neuron, labels=labels,
                                                        layer=layer))


@PROPERTY_SETTINGS
@given(st.lists(arrays(ndim=st.integers(0, 3), sizes=st.integers(0, 7)), max_size=3))
def test_weights_answer_anything(chain):
    _answer(lambda: SpikeAttributor().attribute((torch.rand(2, 4, N_IN) < 0.4).float(), chain))


@PROPERTY_SETTINGS
@given(spike_inputs())
def test_models_answer_anything(input_spikes):
    _answer(lambda: network().run(input_spikes))


@PROPERTY_SETTINGS
@given(spike_inputs(), st.one_of(st.none(), st.dictionaries(st.sampled_from(["1", "3", "0", "x"]),
                                                          arrays(ndim=st.integers(0, 3), sizes=st.integers(0, 6)),
                                                          max_size=2)))
def test_adapters_answer_anything(input_spikes, silence):
    from conftest import require_module

    require_module("snntorch", "snntorch")
    from .landed import snntorch_adapter

    _answer(lambda: snntorch_adapter().run(input_spikes, silence=silence))


def _anything():
    return st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                     st.text(max_size=3), arrays(ndim=st.integers(0, 1), sizes=st.integers(0, 2)))


@PROPERTY_SETTINGS
@given(_anything(), _anything(), _anything())
def test_options_answer_anything(max_memory, significance, decay):
    spikes = (torch.rand(1, 3, N_IN) < 0.4).float()
    _answer(lambda: TemporalSaliency(network(), max_memory=max_memory, significance=significance).explain(spikes))
    _answer(lambda: CausalImportance(network(), batched=max_memory).explain(spikes))
    _answer(lambda: SpikeAttributor(decay=decay, mode=significance).attribute(spikes, weights()))


@PROPERTY_SETTINGS
@given(_anything(), _anything(), _anything(), _anything())
def test_network_and_result_options_answer_anything(beta, threshold, k, sample):
    from sc_neurocore.models import LIFNetwork

    spikes = (torch.rand(2, 3, N_IN) < 0.4).float()
    _answer(lambda: LIFNetwork(weights(), beta=beta, threshold=threshold, reset=k))
    _answer(lambda: SpikeAttributor().attribute(spikes, weights()).top_k(k, sample=sample))
    _answer(lambda: CausalImportance(network()).explain(spikes).robustness_count(threshold=threshold))


@PROPERTY_SETTINGS
@given(_anything(), _anything(), _anything())
def test_fixed_point_spec_answers_anything(decay, trace_bits, weight_bits):
    from sc_neurocore.fpga import FixedPointSpec

    _answer(lambda: FixedPointSpec(decay=decay, trace_bits=trace_bits, weight_bits=weight_bits))
