"""The table of bad (and borderline legal) inputs tried on every public entry point.

Each :class:`Case` is one call with one thing wrong. It says which error it must raise and which words
the message must contain -- the argument's name first, then what was expected -- or, for an input that
is legal but extreme (all-zero spikes), what the well-defined result is. ``test_bad_inputs.py`` runs
every case; ``table.py`` renders the same table as ``docs/reliability.md``, so the page lists exactly
what the tests try.

Entry points from optional extras (the framework adapters, the FPGA tools) are listed only once their
module exists in the package; a case whose module is present but whose framework is not installed is
skipped (failed in CI) by the test, never silently dropped from the table.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class Case:
    """One bad input.

    Attributes:
        id: a short unique name (the pytest id).
        entry: the public entry point called.
        bad_input: what is wrong, in words.
        call: makes the call (builds its own fresh inputs).
        raises: the exception type expected, or ``None`` when the input is legal.
        match: fragments the message must contain, the argument's name first.
        outcome: for a legal input, the well-defined result in words.
        check: for a legal input, asserts that result.
        needs: ``(module, extra)`` pairs the call imports (skipped / failed in CI when missing).
        gap: a known defect, in words: the case states the behaviour we want and is run as a strict
            ``xfail`` (so it fails loudly once fixed, to be moved into the table proper).
    """

    id: str
    entry: str
    bad_input: str
    call: Callable[[], Any]
    raises: type[BaseException] | None = None
    match: tuple[str, ...] = ()
    outcome: str = ""
    check: Callable[[Any], None] | None = None
    needs: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    gap: str = ""


# -- small fixtures, rebuilt for every call so no case sees another's objects ---------------------------

N_IN, N_HIDDEN, N_OUT, N_STEPS, BATCH = 6, 5, 3, 8, 2


def weights() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.randn(N_IN, N_HIDDEN, generator=g), torch.randn(N_HIDDEN, N_OUT, generator=g)]


def network():
    from sc_neurocore.models import LIFNetwork

    return LIFNetwork(weights(), beta=0.9, threshold=0.5)


def spikes(batch: int = BATCH) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return (torch.rand(batch, N_STEPS, N_IN, generator=g) < 0.4).float()


def zeros() -> torch.Tensor:
    return torch.zeros(BATCH, N_STEPS, N_IN)


def attributor(**kwargs):
    from sc_neurocore.explain import SpikeAttributor

    return SpikeAttributor(**kwargs)


def saliency(run_fn=None, **kwargs):
    from sc_neurocore.explain import TemporalSaliency

    return TemporalSaliency(network() if run_fn is None else run_fn, **kwargs)


def causal(run_fn=None, **kwargs):
    from sc_neurocore.explain import CausalImportance

    return CausalImportance(network() if run_fn is None else run_fn, **kwargs)


def counts_fn(batch_spikes: torch.Tensor) -> torch.Tensor:
    """A batched run_fn: per-sample spike counts of the reference network."""
    return network()(batch_spikes)


def with_nan_after_first_call():
    """A batched run_fn whose baseline is finite and whose perturbed outputs are NaN."""
    calls = [0]

    def run_fn(batch_spikes):
        calls[0] += 1
        out = torch.ones(batch_spikes.shape[0], N_OUT)
        return out if calls[0] == 1 else out * float("nan")
    return run_fn


def with_width_changing_per_call():
    """A batched run_fn that returns 3 outputs on its first call and 4 afterwards."""
    calls = [0]

    def run_fn(batch_spikes):
        calls[0] += 1
        return torch.zeros(batch_spikes.shape[0], N_OUT if calls[0] == 1 else N_OUT + 1)
    return run_fn


def with_width_changing_per_row():
    """The tutorial's unbatched NumPy run_fn, returning 3 then 4 values on alternate rows."""
    calls = [0]

    def run_fn(sample):
        calls[0] += 1
        return np.zeros(N_OUT if calls[0] % 2 else N_OUT + 1)
    return run_fn


def meta_module():
    """A plain batched nn.Module whose parameters live on the 'meta' device (a stand-in for 'cuda')."""
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(N_STEPS * N_IN, N_OUT)).to("meta")


def malicious_pickle(folder) -> str:
    """A ``.pt`` file that would create ``folder/pwned`` when unpickled (see the loading tests)."""
    from .payloads import write_malicious_pickle

    return str(write_malicious_pickle(folder))


# -- the CLI seen as an entry point --------------------------------------------------------------------

class CommandFailed(Exception):
    """``sc-neurocore ...`` exited non-zero; the message is what it printed on stderr."""

    def __init__(self, status: int, stderr: str) -> None:
        super().__init__(stderr.strip())
        self.status = status


def cli(*argv: str) -> int:
    """Run ``sc_neurocore.cli.main(argv)``; a failure becomes :class:`CommandFailed` with stderr.

    argparse reports a bad flag by ``SystemExit(2)``; our dispatcher reports bad values by returning 2.
    Both print one line on stderr, which the tests check holds no traceback.
    """
    from sc_neurocore.cli import main

    stderr, stdout = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
        try:
            status = main(list(argv))
        except SystemExit as stop:
            status = stop.code if isinstance(stop.code, int) else 1
    if status != 0:
        raise CommandFailed(status, stderr.getvalue())
    return status


def present(module: str) -> bool:
    """Whether ``module`` is part of the package as checked out (an entry point that has landed)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


# -- checks of legal but extreme inputs ----------------------------------------------------------------

def _zero_attribution(result) -> None:
    assert torch.equal(result.attribution_map(), torch.zeros(BATCH, N_STEPS, N_IN))
    assert torch.equal(result.total, torch.zeros(BATCH))


def _zero_saliency(result) -> None:
    assert torch.equal(result.saliency_map(), torch.zeros(BATCH, N_STEPS, N_IN))
    assert not bool(result.tested_mask().any())
    assert result.summary().splitlines()[:2] == ["Total spikes tested: 0", "Significant spikes: 0 (0.0%)"]


def _zero_causal(result) -> None:
    # Nothing fires, so silencing changes nothing; every neuron can be silenced within any threshold.
    assert torch.equal(result.importance_map(), torch.zeros(BATCH, N_HIDDEN))
    assert torch.equal(result.baseline, torch.zeros(BATCH))
    assert result.robustness_count(threshold=0.05).tolist() == [N_HIDDEN] * BATCH


def _same_as_int64_targets(result) -> None:
    expected = attributor().attribute(spikes(), weights(), output_neuron=torch.tensor([2, 1]))
    assert torch.equal(result.attribution_map(), expected.attribution_map())


def _zero_counts(result) -> None:
    assert torch.equal(result, torch.zeros(BATCH, N_OUT))


# -- the table -------------------------------------------------------------------------------------------

A, S, C = "SpikeAttributor", "TemporalSaliency", "CausalImportance"
ATTRIBUTE, EXPLAIN_S, EXPLAIN_C = f"{A}.attribute", f"{S}.explain", f"{C}.explain"


def _core_cases() -> list[Case]:
    x, w = spikes, weights
    return [
        # --- SpikeAttributor --------------------------------------------------------------------------
        Case("attr-1d", ATTRIBUTE, "input_spikes of 1 dimension (N,)",
             lambda: attributor().attribute(x()[0, 0], w()), ValueError, ("input_spikes", "(T, N) or (B, T, N)")),
        Case("attr-4d", ATTRIBUTE, "input_spikes of 4 dimensions",
             lambda: attributor().attribute(x()[None], w()), ValueError, ("input_spikes", "(T, N) or (B, T, N)")),
        Case("attr-complex", ATTRIBUTE, "complex64 input_spikes",
             lambda: attributor().attribute(x().to(torch.complex64), w()), TypeError,
             ("input_spikes", "real numeric dtype")),
        Case("attr-object", ATTRIBUTE, "NumPy object array as input_spikes",
             lambda: attributor().attribute(np.array([[1.0, None]], dtype=object), w()), TypeError,
             ("input_spikes", "numeric array", "object")),
        Case("attr-strings", ATTRIBUTE, "NumPy array of strings as input_spikes",
             lambda: attributor().attribute(np.array([["1", "0"]]), w()), TypeError,
             ("input_spikes", "numeric array")),
        Case("attr-str", ATTRIBUTE, "a str as input_spikes",
             lambda: attributor().attribute("spikes.npy", w()), TypeError,
             ("input_spikes", "numpy array or torch tensor", "str")),
        Case("attr-ragged", ATTRIBUTE, "ragged nested list as input_spikes",
             lambda: attributor().attribute([[0, 1], [1]], w()), ValueError, ("input_spikes", "rectangular")),
        Case("attr-nan-spikes", ATTRIBUTE, "NaN in input_spikes",
             lambda: attributor().attribute(x().masked_fill(x() > 0, float("nan")), w()), ValueError,
             ("input_spikes", "finite")),
        Case("attr-inf-weights", ATTRIBUTE, "Inf in weights[1]",
             lambda: attributor().attribute(x(), [w()[0], w()[1].fill_(float("inf"))]), ValueError,
             ("weights[1]", "finite")),
        Case("attr-neg-output", ATTRIBUTE, "output_neuron = -1",
             lambda: attributor().attribute(x(), w(), output_neuron=-1), ValueError,
             ("output_neuron", "[0, 3)", "-1")),
        Case("attr-big-output", ATTRIBUTE, "output_neuron = C (one past the last output)",
             lambda: attributor().attribute(x(), w(), output_neuron=N_OUT), ValueError, ("output_neuron", "[0, 3)")),
        Case("attr-huge-output", ATTRIBUTE, "output_neuron = 2**70 (beyond int64)",
             lambda: attributor().attribute(x(), w(), output_neuron=2**70), ValueError, ("output_neuron", "[0, 3)")),
        Case("attr-float-output", ATTRIBUTE, "output_neuron = 1.0 (a float)",
             lambda: attributor().attribute(x(), w(), output_neuron=1.0), TypeError, ("output_neuron", "int")),
        Case("attr-bool-output", ATTRIBUTE, "output_neuron = True",
             lambda: attributor().attribute(x(), w(), output_neuron=True), TypeError, ("output_neuron", "int")),
        Case("attr-targets-length", ATTRIBUTE, "(B,) targets of length B + 1",
             lambda: attributor().attribute(x(), w(), output_neuron=torch.tensor([0, 1, 2])), ValueError,
             ("output_neuron", "(2,)", "(3,)")),
        Case("attr-targets-float", ATTRIBUTE, "(B,) targets of dtype float32",
             lambda: attributor().attribute(x(), w(), output_neuron=torch.tensor([0.0, 1.0])), TypeError,
             ("output_neuron", "integer class indices")),
        Case("attr-targets-2d", ATTRIBUTE, "(B, 1) targets",
             lambda: attributor().attribute(x(), w(), output_neuron=torch.zeros(BATCH, 1, dtype=torch.long)),
             ValueError, ("output_neuron", "(2,)")),
        Case("attr-no-chain", ATTRIBUTE, "weights that do not chain ((6, 5) then (6, 5))",
             lambda: attributor().attribute(x(), [w()[0], w()[0]]), ValueError, ("weights", "do not chain")),
        Case("attr-wrong-inputs", ATTRIBUTE, "weights[0] rows != number of input neurons",
             lambda: attributor().attribute(x()[..., :-1], w()), ValueError, ("weights", "input neurons")),
        Case("attr-empty-weights", ATTRIBUTE, "an empty weights list",
             lambda: attributor().attribute(x(), []), ValueError, ("weights", "at least one")),
        Case("attr-none-weights", ATTRIBUTE, "weights = None",
             lambda: attributor().attribute(x(), None), TypeError, ("weights", "list of (n_in, n_out)")),
        Case("attr-3d-weight", ATTRIBUTE, "a 3-D weight matrix",
             lambda: attributor().attribute(x(), [torch.zeros(N_IN, N_HIDDEN, 1)]), ValueError,
             ("weights[0]", "2-D")),
        Case("attr-complex-weight", ATTRIBUTE, "complex weights",
             lambda: attributor().attribute(x(), [w()[0].to(torch.complex64), w()[1]]), TypeError,
             ("weights[0]", "real numeric dtype")),
        Case("attr-T0", ATTRIBUTE, "empty spike train, T = 0",
             lambda: attributor().attribute(torch.zeros(BATCH, 0, N_IN), w()), ValueError,
             ("input_spikes", "non-empty")),
        Case("attr-N0", ATTRIBUTE, "empty spike train, N = 0",
             lambda: attributor().attribute(torch.zeros(BATCH, N_STEPS, 0), w()), ValueError,
             ("input_spikes", "non-empty")),
        Case("attr-B0", ATTRIBUTE, "empty batch, B = 0",
             lambda: attributor().attribute(torch.zeros(0, N_STEPS, N_IN), w()), ValueError,
             ("input_spikes", "non-empty")),
        Case("attr-meta-spikes", ATTRIBUTE, "input_spikes on the 'meta' device",
             lambda: attributor().attribute(x().to("meta"), w()), ValueError, ("input_spikes", "'meta' device")),
        Case("attr-meta-weights", ATTRIBUTE, "weights on the 'meta' device (another device than the input)",
             lambda: attributor().attribute(x(), [m.to("meta") for m in w()]), ValueError,
             ("weights[0]", "'meta' device")),
        Case("attr-out-shape", ATTRIBUTE, "out= of another shape than the map",
             lambda: attributor().attribute(x(), w(), out=torch.empty(BATCH, N_STEPS, N_IN + 1)), ValueError,
             ("out", "expected shape")),
        Case("attr-out-dtype", ATTRIBUTE, "out= float64 for a float32 map",
             lambda: attributor().attribute(x(), w(), out=torch.empty(BATCH, N_STEPS, N_IN, dtype=torch.float64)),
             TypeError, ("out", "expected dtype torch.float32")),
        Case("attr-out-aliases-input", ATTRIBUTE, "out= the input spikes themselves", _out_aliasing_input,
             ValueError, ("out", "shares memory with input_spikes")),
        Case("attr-out-grad", ATTRIBUTE, "out= a tensor that requires grad",
             lambda: attributor().attribute(x(), w(), out=torch.empty(BATCH, N_STEPS, N_IN, requires_grad=True)),
             ValueError, ("out", "does not require grad")),
        Case("attr-out-numpy", ATTRIBUTE, "out= a NumPy array for torch input",
             lambda: attributor().attribute(x(), w(), out=np.empty((BATCH, N_STEPS, N_IN), np.float32)), TypeError,
             ("out", "a torch tensor for torch input_spikes")),
        Case("attr-out-strided", ATTRIBUTE, "out= a non-contiguous tensor",
             lambda: attributor().attribute(x(), w(), out=torch.empty(BATCH, N_IN, N_STEPS).transpose(1, 2)),
             ValueError, ("out", "contiguous")),
        Case("attr-out-and-sparse", ATTRIBUTE, "out= together with sparse=True",
             lambda: attributor().attribute(x(), w(), out=torch.empty(BATCH, N_STEPS, N_IN), sparse=True),
             ValueError, ("out", "not both")),
        Case("attr-sparse-str", ATTRIBUTE, "sparse = 'yes'", lambda: attributor().attribute(x(), w(), sparse="yes"),
             TypeError, ("sparse", "a bool")),
        Case("attr-gated-bare", ATTRIBUTE, "mode='gated' with bare weight matrices",
             lambda: attributor(mode="gated").attribute(x(), w()), ValueError, ("weights", "needs a model")),
        Case("attr-no-weight-paths", ATTRIBUTE, "a model with no linear weight chain (a plain callable)",
             lambda: attributor().attribute(x(), _function_model()), ValueError,
             ("weights", "not a stack of linear layers")),
        Case("attr-decay-0", f"{A}()", "decay = 0", lambda: attributor(decay=0), ValueError, ("decay", "(0, 1]")),
        Case("attr-decay-2", f"{A}()", "decay = 2", lambda: attributor(decay=2), ValueError, ("decay", "[0, 1]")),
        Case("attr-decay-nan", f"{A}()", "decay = NaN", lambda: attributor(decay=float("nan")), TypeError,
             ("decay", "float in [0, 1]")),
        Case("attr-decay-str", f"{A}()", "decay = '0.9' (a str)", lambda: attributor(decay="0.9"), TypeError,
             ("decay", "float")),
        Case("attr-mode", f"{A}()", "mode = 'lrp' (unknown)", lambda: attributor(mode="lrp"), ValueError,
             ("mode", "'linear', 'gated'")),
        Case("attr-uint64-targets", ATTRIBUTE, "NumPy uint64 targets (legal)",
             lambda: attributor().attribute(x(), w(), output_neuron=np.array([2, 1], dtype=np.uint64)),
             outcome="taken as int64 class indices: the same result as int64 targets", check=_same_as_int64_targets),
        Case("attr-zeros", ATTRIBUTE, "all-zero input_spikes (legal)", lambda: attributor().attribute(zeros(), w()),
             outcome="attribution 0 everywhere, total 0 per sample", check=_zero_attribution),
        Case("attr-gated-zeros", ATTRIBUTE, "all-zero input_spikes, mode='gated' (legal)",
             lambda: attributor(mode="gated").attribute(zeros(), network()),
             outcome="attribution 0 everywhere, total 0 per sample", check=_zero_attribution),
        # --- results --------------------------------------------------------------------------------------
        Case("topk-0", "AttributionResult.top_k", "k = 0",
             lambda: attributor().attribute(x(), w()).top_k(0), ValueError, ("k", "positive int")),
        Case("topk-sample", "AttributionResult.top_k", "sample = B (out of range)",
             lambda: attributor().attribute(x(), w()).top_k(3, sample=BATCH), ValueError, ("sample", "[0, 2)")),
        # --- TemporalSaliency -----------------------------------------------------------------------------
        Case("sal-run-fn-int", f"{S}()", "run_fn = 3 (not callable)", lambda: saliency(3), TypeError,
             ("run_fn", "callable")),
        Case("sal-batched-str", f"{S}()", "batched = 'yes'", lambda: saliency(batched="yes"), TypeError,
             ("batched", "True, False or None")),
        Case("sal-batched-model", EXPLAIN_S, "batched=False with a batched SpikingModel",
             lambda: saliency(batched=False).explain(x()), ValueError, ("batched", "plain callables only")),
        Case("sal-max-memory-0", f"{S}()", "max_memory = 0", lambda: saliency(max_memory=0), ValueError,
             ("max_memory", "positive number of bytes")),
        Case("sal-max-memory-float", f"{S}()", "max_memory = 1e6 (a float)", lambda: saliency(max_memory=1e6),
             ValueError, ("max_memory", "positive number of bytes")),
        Case("sal-max-memory-bool", f"{S}()", "max_memory = True", lambda: saliency(max_memory=True),
             ValueError, ("max_memory", "positive number of bytes")),
        Case("sal-max-memory-tiny", EXPLAIN_S, "max_memory too small for one perturbation (64 bytes)",
             lambda: _warned(lambda: saliency(max_memory=64).explain(x()).saliency_map()),
             outcome="raised to the workable minimum with a BudgetWarning naming max_memory; the same saliency",
             check=_raised_budget(lambda: saliency().explain(x()).saliency_map())),
        Case("sal-significance", f"{S}()", "significance = -1", lambda: saliency(significance=-1), ValueError,
             ("significance", ">= 0")),
        Case("sal-significance-inf", f"{S}()", "significance = Inf",
             lambda: saliency(significance=float("inf")), ValueError, ("significance", "finite")),
        Case("sal-wrong-inputs", EXPLAIN_S, "input_spikes with N - 1 neurons for the model",
             lambda: saliency().explain(x()[..., :-1]), ValueError, ("input_spikes", "takes 6 input neurons")),
        Case("sal-1d", EXPLAIN_S, "input_spikes of 1 dimension",
             lambda: saliency().explain(x()[0, 0]), ValueError, ("input_spikes", "(T, N) or (B, T, N)")),
        Case("sal-inf-spikes", EXPLAIN_S, "Inf in input_spikes",
             lambda: saliency().explain(x().masked_fill(x() > 0, float("inf"))), ValueError,
             ("input_spikes", "finite")),
        Case("sal-T0", EXPLAIN_S, "empty spike train, T = 0",
             lambda: saliency().explain(torch.zeros(BATCH, 0, N_IN)), ValueError, ("input_spikes", "non-empty")),
        Case("sal-output", EXPLAIN_S, "output_neuron = 5 with 3 outputs",
             lambda: saliency().explain(x(), output_neuron=5), ValueError, ("output_neuron", "[0, 3)")),
        Case("sal-targets-length", EXPLAIN_S, "(B,) targets of length 1 for B = 2",
             lambda: saliency().explain(x(), output_neuron=[0]), ValueError, ("output_neuron", "(2,)")),
        Case("sal-rows", EXPLAIN_S, "batched run_fn returning B + 1 rows",
             lambda: saliency(lambda s: torch.zeros(s.shape[0] + 1, N_OUT), batched=True).explain(x()),
             ValueError, ("run_fn", "shape (2, C)", "(3, 3)")),
        Case("sal-1d-output", EXPLAIN_S, "batched run_fn returning (B,) instead of (B, C)",
             lambda: saliency(lambda s: torch.zeros(s.shape[0]), batched=True).explain(x()), ValueError,
             ("run_fn", "shape (2, C)")),
        Case("sal-nan-output", EXPLAIN_S, "run_fn returning NaN",
             lambda: saliency(lambda s: torch.full((s.shape[0], N_OUT), float("nan")), batched=True).explain(x()),
             ValueError, ("run_fn", "non-finite")),
        Case("sal-nan-perturbed", EXPLAIN_S, "run_fn finite on the baseline, NaN on the perturbed copies",
             lambda: saliency(with_nan_after_first_call(), batched=True).explain(x()), ValueError,
             ("run_fn", "non-finite")),
        Case("sal-width-per-call", EXPLAIN_S, "batched run_fn returning a different C on a later call",
             lambda: saliency(with_width_changing_per_call(), batched=True).explain(x()), ValueError,
             ("run_fn", "expected outputs of shape", ", 3)", ", 4)")),
        Case("sal-width-per-row", EXPLAIN_S, "unbatched run_fn returning (3,) then (4,)",
             lambda: saliency(with_width_changing_per_row()).explain(x().numpy()), ValueError,
             ("run_fn", "same output shape")),
        Case("sal-returns-none", EXPLAIN_S, "unbatched run_fn returning None",
             lambda: saliency(lambda s: None).explain(x().numpy()), TypeError, ("run_fn", "(C,)", "NoneType")),
        Case("sal-returns-complex", EXPLAIN_S, "unbatched run_fn returning complex values",
             lambda: saliency(lambda s: np.zeros(N_OUT, complex)).explain(x().numpy()), TypeError,
             ("run_fn", "numeric outputs", "complex128")),
        Case("sal-returns-2d", EXPLAIN_S, "unbatched run_fn returning (C, 1)",
             lambda: saliency(lambda s: np.zeros((N_OUT, 1))).explain(x().numpy()), ValueError,
             ("run_fn", "(C,)", "(3, 1)")),
        Case("sal-returns-scalar", EXPLAIN_S, "unbatched run_fn returning a float",
             lambda: saliency(lambda s: 1.0).explain(x().numpy()), TypeError, ("run_fn", "(C,)", "float")),
        Case("sal-returns-inf", EXPLAIN_S, "unbatched run_fn returning Inf",
             lambda: saliency(lambda s: np.full(N_OUT, np.inf)).explain(x().numpy()), ValueError,
             ("run_fn", "non-finite")),
        Case("sal-returns-bool", EXPLAIN_S, "batched run_fn returning a bool tensor",
             lambda: saliency(lambda s: torch.ones(s.shape[0], N_OUT, dtype=torch.bool), batched=True).explain(x()),
             TypeError, ("run_fn", "real numeric outputs", "torch.bool")),
        Case("sal-returns-list", EXPLAIN_S, "batched run_fn returning a list",
             lambda: saliency(lambda s: [[0.0] * N_OUT] * s.shape[0], batched=True).explain(x()), TypeError,
             ("run_fn", "tensor or numpy array", "list")),
        Case("sal-meta-model", EXPLAIN_S, "LIFNetwork on the 'meta' device, input on cpu",
             lambda: saliency(network().to("meta")).explain(x()), ValueError, ("input_spikes", "model is on meta")),
        Case("sal-meta-module", EXPLAIN_S, "plain nn.Module on the 'meta' device, input on cpu",
             lambda: saliency(meta_module()).explain(x()), ValueError, ("input_spikes", "model is on meta")),
        Case("sal-meta-spikes", EXPLAIN_S, "input_spikes on the 'meta' device, model on cpu",
             lambda: saliency().explain(x().to("meta")), ValueError, ("input_spikes", "'meta' device")),
        Case("sal-zeros", EXPLAIN_S, "all-zero input_spikes (legal)", lambda: saliency().explain(zeros()),
             outcome="saliency 0 everywhere, no spike tested, summary says 0 tested", check=_zero_saliency),
        # --- CausalImportance -----------------------------------------------------------------------------
        Case("causal-layer", EXPLAIN_C, "layer = '9' (not a neuron layer)",
             lambda: causal().explain(x(), layer="9"), ValueError, ("layer", "['0', '1']", "'9'")),
        Case("causal-layer-int", EXPLAIN_C, "layer = 0 (an int, not a name)",
             lambda: causal().explain(x(), layer=0), ValueError, ("layer", "neuron layers")),
        Case("causal-hidden-callable", EXPLAIN_C, "a hidden layer of a plain callable",
             lambda: causal(lambda s: np.zeros(N_OUT)).explain(x().numpy(), layer="0"), ValueError,
             ("layer", "'input'")),
        Case("causal-labels-length", EXPLAIN_C, "(B,) labels of length B + 1",
             lambda: causal().explain(x(), labels=[0, 1, 2]), ValueError, ("labels", "(2,)", "(3,)")),
        Case("causal-labels-float", EXPLAIN_C, "float labels",
             lambda: causal().explain(x(), labels=[0.0, 1.0]), TypeError, ("labels", "integer class indices")),
        Case("causal-labels-range", EXPLAIN_C, "a label = 7 with 3 outputs",
             lambda: causal().explain(x(), labels=[0, 7]), ValueError, ("labels", "[0, 3)", "7")),
        Case("causal-output", EXPLAIN_C, "output_neuron = -2",
             lambda: causal().explain(x(), output_neuron=-2), ValueError, ("output_neuron", "[0, 3)")),
        Case("causal-threshold", "CausalResult.robustness_count", "threshold = 2",
             lambda: causal().explain(x()).robustness_count(threshold=2), ValueError, ("threshold", "[0, 1]")),
        Case("causal-zeros", EXPLAIN_C, "all-zero input_spikes, hidden layer '0' (legal)",
             lambda: causal().explain(zeros(), layer="0"),
             outcome="importance 0 for every neuron, baseline 0, robustness_count = all 5 neurons",
             check=_zero_causal),
        # --- LIFNetwork -----------------------------------------------------------------------------------
        Case("lif-no-chain", "LIFNetwork()", "weights (3, 4) then (5, 2)",
             lambda: _lif([torch.zeros(3, 4), torch.zeros(5, 2)]), ValueError, ("weights", "do not chain")),
        Case("lif-nan-weights", "LIFNetwork()", "NaN weights",
             lambda: _lif([torch.full((3, 4), float("nan"))]), ValueError, ("weights[0]", "finite")),
        Case("lif-beta", "LIFNetwork()", "beta = 1.5", lambda: _lif(weights(), beta=1.5), ValueError,
             ("beta", "[0.0, 1.0]")),
        Case("lif-beta-nan", "LIFNetwork()", "beta = NaN", lambda: _lif(weights(), beta=float("nan")), TypeError,
             ("beta", "finite")),
        Case("lif-beta-count", "LIFNetwork()", "3 betas for 2 layers", lambda: _lif(weights(), beta=[0.9] * 3),
             ValueError, ("beta", "2 floats")),
        Case("lif-beta-none", "LIFNetwork()", "beta = None", lambda: _lif(weights(), beta=None), TypeError,
             ("beta", "float")),
        Case("lif-threshold-inf", "LIFNetwork()", "threshold = Inf",
             lambda: _lif(weights(), threshold=float("inf")), TypeError, ("threshold", "finite")),
        Case("lif-reset", "LIFNetwork()", "reset = 'hard' (unknown)", lambda: _lif(weights(), reset="hard"),
             ValueError, ("reset", "'subtract', 'zero', 'none'")),
        Case("lif-bias-shape", "LIFNetwork()", "biases[1] of the wrong length",
             lambda: _lif(weights(), biases=[None, torch.zeros(N_OUT + 1)]), ValueError, ("biases[1]", "(3,)")),
        Case("lif-bias-count", "LIFNetwork()", "one bias for two layers",
             lambda: _lif(weights(), biases=[None]), ValueError, ("biases", "2 entries")),
        Case("lif-run-2d", "LIFNetwork.run", "spikes (T, N) instead of (B, T, N)",
             lambda: network().run(x()[0]), ValueError, ("spikes", "(B, T, 6)")),
        Case("lif-run-complex", "LIFNetwork.run", "complex spikes",
             lambda: network().run(x().to(torch.complex64)), TypeError, ("spikes", "real numeric dtype")),
        Case("lif-silence-shape", "LIFNetwork.run", "silence mask (B + 1, n)",
             lambda: network().run(x(), silence={"0": torch.zeros(BATCH + 1, N_HIDDEN, dtype=torch.bool)}),
             ValueError, ("silence['0']", "(2, 5)")),
        Case("lif-silence-layer", "LIFNetwork.run", "silence of an unknown layer",
             lambda: network().run(x(), silence={"hidden": torch.zeros(BATCH, N_HIDDEN, dtype=torch.bool)}),
             ValueError, ("silence", "unknown layer")),
        Case("lif-run-meta-network", "LIFNetwork.run", "network on the 'meta' device, spikes on cpu",
             lambda: network().to("meta").run(x()), ValueError, ("spikes", "network is on meta")),
        Case("lif-record-meta-network", "LIFNetwork.record", "network on the 'meta' device, spikes on cpu",
             lambda: network().to("meta").record(x()), ValueError, ("spikes", "network is on meta")),
        Case("lif-zeros", "LIFNetwork.run", "all-zero spikes (legal)", lambda: network().run(zeros()),
             outcome="output counts 0", check=_zero_counts),
        # --- engine ----------------------------------------------------------------------------------------
        Case("engine-max-memory-tiny", "engine.execute", "max_memory = 1 byte",
             lambda: _warned(lambda: _execute(max_memory=1)),
             outcome="raised to the workable minimum with a BudgetWarning naming max_memory; the same outputs",
             check=_raised_budget(lambda: _execute())),
        # --- loading, atomic writes -------------------------------------------------------------------------
        Case("load-missing", "loading.load_state_dict", "a path that does not exist",
             lambda: _load_from_tmp(lambda folder: folder / "absent.pt"), FileNotFoundError, ("weights", "no such file")),
        Case("load-pickle", "loading.load_state_dict", "a malicious pickle (runs code when unpickled)",
             lambda: _load_from_tmp(malicious_pickle), ValueError, ("weights", "refused", "weights_only=True")),
        Case("load-not-dict", "loading.load_state_dict", "a torch.save'd list of tensors",
             lambda: _load_from_tmp(_saved_list), ValueError, ("weights", "dict of name -> tensor")),
        Case("load-bad-safetensors", "loading.load_state_dict", "a corrupt .safetensors file",
             lambda: _load_from_tmp(_corrupt_safetensors), ValueError, ("weights", "not a valid safetensors file")),
        Case("factory-path", "loading.import_factory", "a file path instead of a module ('/tmp/net.pt:load')",
             lambda: _import_factory("/tmp/net.pt:load"), ValueError, ("model", "package.module:factory")),
        Case("factory-no-module", "loading.import_factory", "a module that does not exist",
             lambda: _import_factory("no_such_package_xyz.models:build"), ValueError,
             ("model", "cannot import", "no_such_package_xyz")),
        Case("factory-no-colon", "loading.import_factory", "'package.module' without ':factory'",
             lambda: _import_factory("sc_neurocore.models"), ValueError, ("model", "package.module:factory")),
        Case("factory-two-colons", "loading.import_factory", "'a:b:c'",
             lambda: _import_factory("a:b:c"), ValueError, ("model", "package.module:factory")),
        Case("factory-missing", "loading.import_factory", "a module without that attribute",
             lambda: _import_factory("sc_neurocore.models:no_such_factory"), ValueError,
             ("model", "no callable", "no_such_factory")),
        Case("atomic-mode", "atomic.atomic_write", "mode = 'a' (append cannot be atomic)",
             lambda: _atomic_write_mode("a"), ValueError, ("mode", "'w' or 'wb'")),
        Case("atomic-folder", "atomic.atomic_path", "a target in a folder that does not exist",
             lambda: _atomic_missing_folder(), FileNotFoundError, ("path", "does not exist")),
        # --- CLI --------------------------------------------------------------------------------------------
        Case("cli-unknown", "sc-neurocore", "an unknown subcommand", lambda: cli("explode"), CommandFailed,
             ("invalid choice", "explode")),
        Case("cli-demo-samples", "sc-neurocore demo", "--samples abc", lambda: cli("demo", "--samples", "abc"),
             CommandFailed, ("--samples", "invalid int value")),
    ]


def _function_model():
    from sc_neurocore.adapters import FunctionModel

    return FunctionModel(counts_fn, batched=True, n_inputs=N_IN)


def _lif(chain, **kwargs):
    from sc_neurocore.models import LIFNetwork

    return LIFNetwork(chain, **kwargs)


def _out_aliasing_input():
    batch = spikes()
    return attributor().attribute(batch, weights(), out=batch)


def _warned(call):
    """``(result, warnings)`` of ``call()``, every warning recorded."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = call()
    return result, caught


def _raised_budget(unconstrained):
    """A check: the budget was raised with a `BudgetWarning` naming ``max_memory``, and the result is the
    unconstrained call's."""
    def check(outcome) -> None:
        from sc_neurocore.engine import BudgetWarning

        result, caught = outcome
        raised = [w for w in caught if issubclass(w.category, BudgetWarning)]
        assert raised, [str(w.message) for w in caught]
        assert all(str(w.message).startswith("max_memory: ") and "workable minimum" in str(w.message)
                   for w in raised), [str(w.message) for w in raised]
        assert torch.equal(result, unconstrained())
    return check


def _execute(**kwargs):
    from sc_neurocore.engine import execute
    from sc_neurocore.engine.plans import remove_each_spike

    batch = spikes()
    return execute(network(), batch, remove_each_spike(batch), **kwargs)


def _load_from_tmp(make_path):
    import tempfile
    from pathlib import Path

    from sc_neurocore.loading import load_state_dict

    with tempfile.TemporaryDirectory() as folder:
        return load_state_dict(make_path(Path(folder)))


def _saved_list(folder):
    path = folder / "list.pt"
    torch.save([torch.zeros(2)], path)
    return path


def _corrupt_safetensors(folder):
    path = folder / "weights.safetensors"
    path.write_bytes(b"not a safetensors header" * 4)
    return path


def _import_factory(spec):
    from sc_neurocore.loading import import_factory

    return import_factory(spec)


def _atomic_write_mode(mode):
    import tempfile
    from pathlib import Path

    from sc_neurocore.atomic import atomic_write

    with tempfile.TemporaryDirectory() as folder:
        with atomic_write(Path(folder) / "out.txt", mode=mode) as handle:
            handle.write("never")


def _atomic_missing_folder():
    import tempfile
    from pathlib import Path

    from sc_neurocore.atomic import atomic_path

    with tempfile.TemporaryDirectory() as folder:
        with atomic_path(Path(folder) / "missing" / "out.txt"):
            pass


def all_cases() -> list[Case]:
    """Every case, for the entry points present in this checkout."""
    cases = _core_cases()
    from . import cases_scale, landed

    cases += landed.cases()
    cases += cases_scale.cases()
    return cases
