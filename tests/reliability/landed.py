"""Bad-input cases for the entry points other parts of the project added: the framework adapters, the
FPGA tools and the CLI subcommands. Each group is listed only when its module is in the checkout; a
case that needs an optional framework names it in ``needs`` (skipped on a user's machine without it,
failed in CI)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from .cases import (BATCH, N_HIDDEN, N_IN, N_OUT, N_STEPS, Case, CommandFailed, causal, cli, malicious_pickle, present,
                    saliency, spikes, weights, zeros)

SNNTORCH = (("snntorch", "snntorch"),)
NORSE = (("norse", "norse"),)
FPGA = (("migen", "fpga"), ("litex", "fpga"))


_AMBIGUOUS = ("{where} checks `{arg} not in {consts}` without first checking for a str: an array of names "
              "makes NumPy raise its unnamed 'truth value of an array ... is ambiguous' ValueError")


def _NAMES():  # noqa: N802 -- reads as the constant it builds
    """An array where one name is expected (found by the fuzz tests on our own entry points)."""
    import numpy as np

    return np.array(["count", "test"])


def snntorch_stack(output: bool = True, init_hidden: bool = True):
    """``Linear(6, 5) -> Leaky -> Linear(5, 3) -> Leaky(output=True)``, seeded."""
    import snntorch as snn

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(N_IN, N_HIDDEN), snn.Leaky(beta=0.9, init_hidden=init_hidden),
                               torch.nn.Linear(N_HIDDEN, N_OUT),
                               snn.Leaky(beta=0.9, init_hidden=init_hidden, output=output))


def snntorch_adapter(**kwargs):
    from sc_neurocore.adapters import from_snntorch

    return from_snntorch(snntorch_stack(), **kwargs)


def norse_stack():
    import norse.torch as norse

    torch.manual_seed(0)
    return norse.SequentialState(torch.nn.Linear(N_IN, N_HIDDEN), norse.LIFCell(), torch.nn.Linear(N_HIDDEN, N_OUT),
                                 norse.LIFCell())


class _OwnLoop(torch.nn.Module):
    """A user module built from snnTorch neurons with its own time loop (layout unknown to the adapters)."""

    def __init__(self) -> None:
        super().__init__()
        import snntorch as snn

        self.fc = torch.nn.Linear(N_IN, N_OUT)
        self.lif = snn.Leaky(beta=0.9)

    def forward(self, x):
        mem = self.lif.init_leaky()
        out = []
        for step in x:
            spk, mem = self.lif(self.fc(step), mem)
            out.append(spk)
        return torch.stack(out)


def _zero_saliency_adapter(result) -> None:
    assert torch.equal(result.saliency_map(), torch.zeros(BATCH, N_STEPS, N_IN))
    assert not bool(result.tested_mask().any())


def _adapter_cases() -> list[Case]:
    from sc_neurocore.adapters import from_module, from_norse, from_snntorch

    fs, fn, fm = "adapters.from_snntorch", "adapters.from_norse", "adapters.from_module"
    run = "adapter.run"
    x = spikes
    return [
        Case("snn-not-module", fs, "a str instead of a model", lambda: from_snntorch("model.pt"), TypeError,
             ("model", "snnTorch nn.Module", "str"), needs=SNNTORCH),
        Case("snn-readout", fs, "readout = 'nope'", lambda: snntorch_adapter(readout="nope"), ValueError,
             ("readout", "'count'"), needs=SNNTORCH),
        Case("snn-input-shape", fs, "input_shape = 0", lambda: snntorch_adapter(input_shape=0), ValueError,
             ("input_shape", "positive"), needs=SNNTORCH),
        Case("snn-no-neuron-last", fs, "a Sequential ending in a Linear",
             lambda: from_snntorch(torch.nn.Sequential(*list(snntorch_stack())[:3])), ValueError,
             ("model", "last entry"), needs=SNNTORCH),
        Case("snn-output-false", fs, "last Leaky without output=True",
             lambda: from_snntorch(snntorch_stack(output=False)), ValueError, ("model", "output=True"), needs=SNNTORCH),
        Case("snn-init-hidden", fs, "Leaky layers with init_hidden=False inside a Sequential",
             lambda: from_snntorch(snntorch_stack(init_hidden=False)), ValueError, ("model", "init_hidden"),
             needs=SNNTORCH),
        Case("norse-not-module", fn, "an int instead of a model", lambda: from_norse(3), TypeError,
             ("model", "Norse nn.Module", "int"), needs=NORSE),
        Case("norse-readout", fn, "readout = 'spikes'", lambda: from_norse(norse_stack(), readout="spikes"),
             ValueError, ("readout", "'count'"), needs=NORSE),
        Case("module-not-module", fm, "a str instead of a model", lambda: from_module("net", time_first=True),
             TypeError, ("model", "nn.Module", "str")),
        Case("module-time-first", fm, "time_first = 'yes'",
             lambda: from_module(torch.nn.Linear(N_IN, N_OUT), time_first="yes"), TypeError,
             ("time_first", "True")),
        Case("module-neuron-layers", fm, "neuron_layers naming no submodule",
             lambda: from_module(snntorch_stack(), time_first=True, neuron_layers=["lif9"]), ValueError,
             ("neuron_layers", "'lif9'", "not submodules"), needs=SNNTORCH),
        Case("adapter-run-2d", run, "spikes (T, N) instead of (B, T, N)", lambda: snntorch_adapter().run(x()[0]),
             ValueError, ("spikes", "(B, T, 6)"), needs=SNNTORCH),
        Case("adapter-run-numpy", run, "a NumPy array (the adapters take tensors)",
             lambda: snntorch_adapter().run(x().numpy()), TypeError, ("spikes", "torch.Tensor"), needs=SNNTORCH),
        Case("adapter-run-T0", run, "empty spike train, T = 0", lambda: snntorch_adapter().run(x()[:, :0]),
             ValueError, ("spikes", "T >= 1"), needs=SNNTORCH),
        Case("adapter-silence-shape", run, "silence mask (B + 1, n)",
             lambda: snntorch_adapter().run(x(), silence={"1": torch.zeros(BATCH + 1, N_HIDDEN, dtype=torch.bool)}),
             ValueError, ("silence['1']", "(2, 5)"), needs=SNNTORCH),
        Case("adapter-silence-layer", run, "silence of a Linear (not a neuron layer)",
             lambda: snntorch_adapter().run(x(), silence={"0": torch.zeros(BATCH, N_HIDDEN, dtype=torch.bool)}),
             ValueError, ("silence", "unknown layer", "'0'"), needs=SNNTORCH),
        Case("adapter-causal-linear", f"{C}.explain", "layer = '0', a Linear of an snnTorch stack",
             lambda: causal(snntorch_adapter()).explain(x(), layer="0"), ValueError, ("layer", "['1', '3']"),
             needs=SNNTORCH),
        Case("adapter-wrong-inputs", f"{S}.explain", "input_spikes with N - 1 neurons for an snnTorch adapter",
             lambda: saliency(snntorch_adapter()).explain(x()[..., :-1]), ValueError,
             ("input_spikes", "takes 6 input neurons"), needs=SNNTORCH),
        Case("adapter-meta", f"{S}.explain", "snnTorch adapter on the 'meta' device, input on cpu",
             lambda: saliency(snntorch_adapter().to("meta")).explain(x()), ValueError,
             ("input_spikes", "model is on meta"), needs=SNNTORCH),
        Case("adapter-run-complex", run, "complex spikes given to an adapter directly",
             lambda: snntorch_adapter().run(x().to(torch.complex64)), TypeError, ("spikes", "real"), needs=SNNTORCH),
        Case("adapter-run-meta", run, "spikes on the 'meta' device given to an adapter directly",
             lambda: snntorch_adapter().run(x().to("meta")), ValueError, ("spikes", "meta"), needs=SNNTORCH),
        Case("snn-readout-array", fs, "readout = an array of names", lambda: snntorch_adapter(readout=_NAMES()),
             ValueError, ("readout", "'count'"), needs=SNNTORCH),
        Case("adapter-zeros", f"{S}.explain", "all-zero input_spikes through an snnTorch adapter (legal)",
             lambda: saliency(snntorch_adapter()).explain(zeros()),
             outcome="saliency 0 everywhere, no spike tested", check=_zero_saliency_adapter, needs=SNNTORCH),
    ]


def _spec(**kwargs):
    from sc_neurocore.fpga import FixedPointSpec

    return FixedPointSpec(**kwargs)


def _fixed_attributor(**kwargs):
    from sc_neurocore.explain import SpikeAttributor

    return SpikeAttributor(fixed_point=_spec(), **kwargs)


def _export(**kwargs):
    from sc_neurocore.explain import SpikeAttributor

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / kwargs.pop("name", "core.v")
        return SpikeAttributor(decay=0.9).export_fpga(path, **kwargs)


def _export_verilog(**kwargs):
    from sc_neurocore.fpga import FixedPointSpec, export_verilog

    with tempfile.TemporaryDirectory() as folder:
        return export_verilog(Path(folder) / "core.v", 16, 2, 4, 2, FixedPointSpec(decay=0.9), **kwargs)


def _build(**kwargs):
    """``build_bitstream`` with one bad argument: each is refused before any tool runs or any file is written."""
    from sc_neurocore.fpga.build import build_bitstream

    arguments = {"n_inputs": 16, "n_outputs": 2, "n_steps": 4, "lanes": 2, **kwargs}
    with tempfile.TemporaryDirectory() as folder:
        try:
            return build_bitstream(Path(folder) / "build", **arguments)
        finally:
            assert not (Path(folder) / "build").exists(), "a refused build left files behind"


def _driver(**kwargs):
    from sc_neurocore.fpga.driver import FpgaExplainer

    return FpgaExplainer(**kwargs)


def _fpga_cases() -> list[Case]:
    spec, attr = "fpga.FixedPointSpec", "SpikeAttributor"
    x, w = spikes, weights
    cases = [
        Case("spec-trace-overflow", spec, "trace_bits = 16: a trace plus a spike overflows the 16-bit multiplier",
             lambda: _spec(trace_bits=16), ValueError, ("trace_bits", "overflows", "<= 15")),
        Case("spec-frac-bits", spec, "frac_bits = trace_bits", lambda: _spec(frac_bits=15), ValueError,
             ("frac_bits", "[0, 14]")),
        Case("spec-weight-bits", spec, "weight_bits = 18", lambda: _spec(weight_bits=18), ValueError,
             ("weight_bits", "[2, 16]")),
        Case("spec-trace-float", spec, "trace_bits = 12.5", lambda: _spec(trace_bits=12.5), TypeError,
             ("trace_bits", "int")),
        Case("spec-decay-zero", spec, "decay = 1e-9 (rounds to 0 in 15 bits)", lambda: _spec(decay=1e-9),
             ValueError, ("decay", "rounds to 0")),
        Case("spec-decay-str", spec, "decay = 'a'", lambda: _spec(decay="a"), TypeError, ("decay", "(0, 1]")),
        Case("fixed-not-spec", f"{attr}()", "fixed_point = 'q8' (not a FixedPointSpec)",
             lambda: _fixed_attributor_raw("q8"), TypeError, ("fixed_point", "FixedPointSpec")),
        Case("fixed-decay", f"{attr}()", "fixed_point spec with another decay than the attributor",
             lambda: _fixed_attributor_raw(_spec(decay=0.9), decay=0.8), ValueError, ("fixed_point", "decay")),
        Case("fixed-gated", f"{attr}()", "fixed_point with mode='gated'",
             lambda: _fixed_attributor(mode="gated"), ValueError, ("fixed_point", "linear")),
        Case("fixed-non-binary", f"{attr}.attribute", "fixed_point with spikes of value 2",
             lambda: _fixed_attributor().attribute(x() * 2, w()), ValueError, ("input_spikes", "0 and 1")),
        Case("fixed-weight-range", f"{attr}.attribute", "fixed_point with weights beyond the 16-bit range",
             lambda: _fixed_attributor().attribute(x(), [w()[0] * 1e6, w()[1]]), ValueError,
             ("weights", "outside the 16-bit signed range")),
        Case("export-target", f"{attr}.export_fpga", "target = 'xilinx' (unknown FPGA target)",
             lambda: _export(target="xilinx"), ValueError, ("target", "'ice40'", "'xilinx'")),
    ]
    if present("sc_neurocore.fpga.export"):
        cases += [
            Case("export-lanes", f"{attr}.export_fpga", "lanes = 0", lambda: _export(lanes=0), ValueError,
                 ("lanes", "[1, "), needs=FPGA),
            Case("export-inputs", f"{attr}.export_fpga", "n_inputs that contradicts the weights",
                 lambda: _export(weights=w(), n_inputs=N_IN + 1), ValueError, ("n_inputs", "expected 6"), needs=FPGA),
            Case("export-folder", f"{attr}.export_fpga", "a path in a folder that does not exist",
                 lambda: _export(name="missing/core.v"), FileNotFoundError, ("path", "does not exist"), needs=FPGA),
            Case("export-module-name", "fpga.export_verilog", "module_name = '1core' (not a Verilog identifier)",
                 lambda: _export_verilog(module_name="1core"), ValueError, ("module_name", "Verilog identifier"),
                 needs=FPGA),
            Case("export-weights-shape", "fpga.export_verilog", "inlined weights of the wrong shape",
                 lambda: _export_verilog(weights=torch.zeros(3, 3, dtype=torch.long)), ValueError,
                 ("weights", "(16, 2)"), needs=FPGA),
        ]
    if present("sc_neurocore.fpga.build"):
        build = "fpga.build_bitstream"
        cases += [
            Case("build-board", build, "board = 'nexys' (unknown board)", lambda: _build(board="nexys"), ValueError,
                 ("board", "('icebreaker', 'icesugar')"), needs=FPGA),
            Case("build-lanes", build, "lanes = 9", lambda: _build(lanes=9), ValueError, ("lanes", "[1, 8]"), needs=FPGA),
            Case("build-inputs", build, "n_inputs = 0", lambda: _build(n_inputs=0), ValueError,
                 ("n_inputs", "positive int"), needs=FPGA),
            Case("build-steps", build, "n_steps = 10**9 (beyond the step counter)", lambda: _build(n_steps=10**9),
                 ValueError, ("n_steps", "[1, 65535]"), needs=FPGA),
            Case("build-clock", build, "sys_clk_freq = -5", lambda: _build(sys_clk_freq=-5.0), ValueError,
                 ("sys_clk_freq", "positive frequency"), needs=FPGA),
            Case("build-spec", build, "spec = 'q8'", lambda: _build(spec="q8"), TypeError, ("spec", "FixedPointSpec"),
                 needs=FPGA),
        ]
    if present("sc_neurocore.fpga.driver"):
        driver = "fpga.FpgaExplainer"
        cases += [
            Case("driver-no-link", driver, "neither uart_port nor url", lambda: _driver(csr_csv="csr.csv"),
                 ValueError, ("uart_port, url", "exactly one")),
            Case("driver-both-links", driver, "both uart_port and url",
                 lambda: _driver(uart_port="/dev/ttyUSB1", url="localhost:1234", csr_csv="csr.csv"), ValueError,
                 ("uart_port, url", "exactly one")),
            Case("driver-no-csr", driver, "no csr_csv", lambda: _driver(url="localhost:1234"), ValueError,
                 ("csr_csv", "csr.csv")),
            Case("driver-spec", driver, "spec = 'q8'", lambda: _driver(url="localhost:1234", csr_csv="csr.csv", spec="q8"),
                 TypeError, ("spec", "FixedPointSpec")),
            Case("driver-csr-missing", driver, "a csr_csv path that does not exist",
                 lambda: _driver(url="localhost:1", csr_csv="/nonexistent/csr.csv"), FileNotFoundError,
                 ("csr_csv", "/nonexistent/csr.csv"), needs=FPGA),
            Case("driver-url", driver, "url without a port", lambda: _driver(url="localhost", csr_csv="csr.csv"),
                 ValueError, ("url", "HOST:PORT"), needs=FPGA),
        ]
    return cases


def _fixed_attributor_raw(fixed_point, **kwargs):
    from sc_neurocore.explain import SpikeAttributor

    return SpikeAttributor(fixed_point=fixed_point, **kwargs)


def _cli_in_tmp(*argv_with_folder):
    """``cli(...)`` with ``{tmp}`` in the arguments replaced by a fresh temporary folder."""
    with tempfile.TemporaryDirectory() as folder:
        argv = [arg.replace("{tmp}", folder) for arg in argv_with_folder]
        if any("{pickle}" in arg for arg in argv):
            path = malicious_pickle(Path(folder))
            argv = [arg.replace("{pickle}", str(path)) for arg in argv]
        for marker, make in (("{pickled-npz}", _pickled_npz), ("{corrupt-safetensors}", _corrupt_safetensors)):
            if any(marker in arg for arg in argv):
                argv = [arg.replace(marker, str(make(Path(folder)))) for arg in argv]
        return cli(*argv)


def _pickled_npz(folder: Path) -> Path:
    """An ``.npz`` whose ``spikes`` member is a pickled object array (runs code if loaded with pickle)."""
    import numpy as np

    from .payloads import MARKER, _CreatesMarker

    path = folder / "spikes.npz"
    np.savez(path, spikes=np.array([_CreatesMarker(folder / MARKER)], dtype=object), allow_pickle=True)
    return path


def _corrupt_safetensors(folder: Path) -> Path:
    path = folder / "spikes.safetensors"
    path.write_bytes(b"not a safetensors header" * 4)
    return path


def _cli_cases() -> list[Case]:
    from sc_neurocore.cli import SUBCOMMANDS

    cases = []
    if "fpga" in SUBCOMMANDS:
        cases += [
            Case("cli-fpga-board", "sc-neurocore fpga build", "--board nexys (unknown board)",
                 lambda: _cli_in_tmp("fpga", "build", "--board", "nexys", "--out", "{tmp}"), CommandFailed,
                 ("board", "('icebreaker', 'icesugar')", "'nexys'")),
            Case("cli-fpga-lanes", "sc-neurocore fpga build", "--lanes 0",
                 lambda: _cli_in_tmp("fpga", "build", "--lanes", "0", "--out", "{tmp}"), CommandFailed,
                 ("--lanes", "positive integer")),
            Case("cli-fpga-decay", "sc-neurocore fpga build", "--decay 2",
                 lambda: _cli_in_tmp("fpga", "build", "--decay", "2", "--out", "{tmp}"), CommandFailed,
                 ("decay", "(0, 1]")),
            Case("cli-fpga-action", "sc-neurocore fpga", "no action", lambda: cli("fpga"), CommandFailed,
                 ("expected an action", "build")),
        ]
    if "explain-dataset" in SUBCOMMANDS:
        ed = "sc-neurocore explain-dataset"
        common = ("--dataset", "sc_neurocore.data.digits:nothing", "--method", "saliency", "--out", "{tmp}")
        cases += [
            Case("cli-ed-model", ed, "--model without ':factory'",
                 lambda: _cli_in_tmp("explain-dataset", "--model", "sc_neurocore.models", *common), CommandFailed,
                 ("model", "package.module:factory")),
            Case("cli-ed-factory", ed, "--model naming a missing factory",
                 lambda: _cli_in_tmp("explain-dataset", "--model", "sc_neurocore.models:nothing", *common),
                 CommandFailed, ("model", "no callable 'nothing'")),
            Case("cli-ed-method", ed, "--method lrp",
                 lambda: _cli_in_tmp("explain-dataset", "--model", "a:b", "--dataset", "x", "--method", "lrp",
                                     "--out", "{tmp}"), CommandFailed, ("--method", "invalid choice")),
            Case("cli-ed-pickle", ed, "--weights: a malicious pickle",
                 lambda: _cli_in_tmp("explain-dataset", "--model", "sc_neurocore.data.pretrained:pretrained_network",
                                     "--weights", "{pickle}", *common), CommandFailed,
                 ("weights", "refused", "weights_only=True")),
            Case("cli-ed-dataset-pickle", ed, "--dataset: an .npz holding a pickled object array",
                 lambda: _cli_in_tmp("explain-dataset", "--model", "sc_neurocore.data.pretrained:pretrained_network",
                                     "--dataset", "{pickled-npz}", "--method", "saliency", "--out", "{tmp}/out"),
                 CommandFailed, ("error: dataset:", "allow_pickle=False")),
            Case("cli-ed-dataset-corrupt", ed, "--dataset: a corrupt .safetensors file",
                 lambda: _cli_in_tmp("explain-dataset", "--model", "sc_neurocore.data.pretrained:pretrained_network",
                                     "--dataset", "{corrupt-safetensors}", "--method", "saliency", "--out", "{tmp}/out"),
                 CommandFailed, ("error: dataset:", "safetensors")),
            Case("cli-ed-weights-missing", ed, "--weights: a file that does not exist",
                 lambda: _cli_in_tmp("explain-dataset", "--model", "sc_neurocore.data.pretrained:pretrained_network",
                                     "--weights", "{tmp}/absent.safetensors", *common), CommandFailed,
                 ("weights", "no such file")),
        ]
    if "quality" in SUBCOMMANDS:
        cases.append(Case("cli-quality-samples", "sc-neurocore quality", "--samples 0",
                          lambda: cli("quality", "--samples", "0"), CommandFailed, ("--samples", "positive int")))
        cases.append(Case("cli-quality-points", "sc-neurocore quality", "--points 1 (a curve needs two ends)",
                          lambda: cli("quality", "--points", "1"), CommandFailed, ("--points", "at least 2")))
    if "bench" in SUBCOMMANDS:
        cases.append(Case("cli-bench-runs", "sc-neurocore bench", "--runs 0", lambda: cli("bench", "--quick", "--runs", "0"),
                          CommandFailed, ("--runs", "positive number of runs")))
        cases.append(Case("cli-bench-workload", "sc-neurocore bench", "--workloads nope",
                          lambda: cli("bench", "--workloads", "nope"), CommandFailed, ("--workloads", "invalid choice")))
    cases.append(Case("cli-demo-samples-0", "sc-neurocore demo", "--samples 0",
                      lambda: _cli_in_tmp("demo", "--samples", "0", "--out", "{tmp}"), CommandFailed,
                      ("samples", "positive int")))
    return cases


def _zero_curve(curve) -> None:
    # No spike to delete: every point is the unperturbed output, the model's output on silence (0 counts).
    assert torch.equal(curve.counts, torch.zeros_like(curve.counts))
    assert torch.equal(curve.values, torch.zeros_like(curve.values))


def _captum_cases() -> list[Case]:
    from sc_neurocore.captum import CausalImportanceAttr, SpikeAttributorAttr, TemporalSaliencyAttr

    attribute = "captum.TemporalSaliencyAttr.attribute"
    x = spikes
    return [
        Case("captum-target-float", attribute, "target = 1.5",
             lambda: TemporalSaliencyAttr(_net()).attribute(x(), target=1.5), TypeError, ("target", "int", "float")),
        Case("captum-target-tuple", attribute, "Captum's tuple target (0, 1)",
             lambda: TemporalSaliencyAttr(_net()).attribute(x(), target=(0, 1)), TypeError,
             ("target", "tuple and list targets are not supported")),
        Case("captum-target-length", "captum.CausalImportanceAttr.attribute", "(B + 1,) targets",
             lambda: CausalImportanceAttr(_net()).attribute(x(), target=torch.tensor([0, 1, 2])), TypeError,
             ("target", "(2,)")),
        Case("captum-two-inputs", attribute, "a tuple of two input tensors",
             lambda: TemporalSaliencyAttr(_net()).attribute((x(), x())), ValueError, ("inputs", "tuple of 2")),
        Case("captum-2d", attribute, "inputs (T, N) without the batch axis",
             lambda: TemporalSaliencyAttr(_net()).attribute(x()[0]), ValueError, ("inputs", "(B, T, N)")),
        Case("captum-numpy", attribute, "a NumPy array as inputs",
             lambda: TemporalSaliencyAttr(_net()).attribute(x().numpy()), TypeError, ("inputs", "torch.Tensor")),
        Case("captum-target-range", "captum.SpikeAttributorAttr.attribute", "target = 5 with 3 outputs",
             lambda: SpikeAttributorAttr(_net()).attribute(x(), target=5), ValueError, ("output_neuron", "[0, 3)")),
    ]


def _net():
    from .cases import network

    return network()


def _metrics_cases() -> list[Case]:
    from sc_neurocore.explain.metrics import deletion_curve, planted_pattern_task, precision_at_k, spearman
    from sc_neurocore.explain.tsa import TemporalSpikeAttribution

    x = spikes
    scores = lambda: torch.rand(BATCH, N_STEPS, N_IN, generator=torch.Generator().manual_seed(2))  # noqa: E731
    return [
        Case("deletion-scores-shape", "explain.metrics.deletion_curve", "scores of another shape than the spikes",
             lambda: deletion_curve(_net(), x(), scores()[..., :3]), ValueError, ("scores", "(2, 8, 6)")),
        Case("deletion-scores-nan", "explain.metrics.deletion_curve", "NaN scores",
             lambda: deletion_curve(_net(), x(), scores() * float("nan")), ValueError, ("scores", "finite")),
        Case("deletion-points", "explain.metrics.deletion_curve", "n_points = 0",
             lambda: deletion_curve(_net(), x(), scores(), n_points=0), ValueError, ("n_points", "positive int")),
        Case("deletion-zeros", "explain.metrics.deletion_curve", "all-zero input_spikes (legal)",
             lambda: deletion_curve(_net(), zeros(), scores()),
             outcome="nothing deleted at any point; every value is the output on silence (0 counts)",
             check=_zero_curve),
        Case("spearman-shapes", "explain.metrics.spearman", "score maps of different batch sizes",
             lambda: spearman(scores(), scores()[:1], x()), ValueError, ("scores_b", "(2, 8, 6)")),
        Case("precision-k", "explain.metrics.precision_at_k", "k = 0",
             lambda: precision_at_k(scores(), x() > 0, x(), k=0), ValueError, ("k", "positive int")),
        Case("precision-planted", "explain.metrics.precision_at_k", "planted marks where there is no spike",
             lambda: precision_at_k(scores(), torch.ones(BATCH, N_STEPS, N_IN, dtype=torch.bool), x()), ValueError,
             ("planted", "no spike")),
        Case("planted-samples", "explain.metrics.planted_pattern_task", "n_samples = 0",
             lambda: planted_pattern_task(0), ValueError, ("n_samples", "positive int")),
        Case("tsa-weights", "explain.TemporalSpikeAttribution.attribute", "bare weights instead of a model",
             lambda: TemporalSpikeAttribution().attribute(x(), weights()), TypeError, ("model", "LIFNetwork")),
        Case("tsa-decay", "explain.TemporalSpikeAttribution()", "decay = 3",
             lambda: TemporalSpikeAttribution(decay=3), ValueError, ("decay", "[0, 1]")),
    ]


def _explain_dataset(*args, **kwargs):
    from torch.utils.data import TensorDataset

    from sc_neurocore import explain_dataset

    dataset = kwargs.pop("dataset", None) or TensorDataset(spikes(10))
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "out"
        if kwargs.pop("out_is_file", False):
            out.write_text("not a folder")
        return explain_dataset(kwargs.pop("explainer", "saliency"), _net(), dataset, out, progress=False, **kwargs)


def _load_explanations_missing():
    from sc_neurocore import load_explanations

    with tempfile.TemporaryDirectory() as folder:
        return load_explanations(folder)


def _load_explanations_corrupt():
    from torch.utils.data import TensorDataset

    from sc_neurocore import explain_dataset, load_explanations

    with tempfile.TemporaryDirectory() as folder:
        explain_dataset("saliency", _net(), TensorDataset(spikes(4)), folder, batch_size=2, shard_size=2,
                        progress=False)
        shard = sorted(Path(folder).glob("*.npz"))[0]
        shard.write_bytes(shard.read_bytes()[:-10])
        return load_explanations(folder)


def _distributed_cases() -> list[Case]:
    from torch.utils.data import TensorDataset

    ed, le = "explain_dataset", "load_explanations"
    return [
        Case("ed-batch-size", ed, "batch_size = 0", lambda: _explain_dataset(batch_size=0), ValueError,
             ("batch_size", "positive int")),
        Case("ed-format", ed, "shard_format = 'pickle'", lambda: _explain_dataset(shard_format="pickle"), ValueError,
             ("shard_format", "'npz', 'safetensors'")),
        Case("ed-method", ed, "explainer = 'lrp'", lambda: _explain_dataset(explainer="lrp"), ValueError,
             ("explainer", "'attribution', 'causal', 'saliency'")),
        Case("ed-targets", ed, "targets = 'best'", lambda: _explain_dataset(targets="best"), ValueError,
             ("targets", "'predicted', 'labels'")),
        Case("ed-targets-range", ed, "targets = 7 with 3 outputs", lambda: _explain_dataset(targets=7), ValueError,
             ("targets", "[0, 3)")),
        Case("ed-layer", ed, "layer='0' with saliency (only causal silences layers)",
             lambda: _explain_dataset(layer="0"), ValueError, ("layer", "only causal importance")),
        Case("ed-out-file", ed, "out_dir is an existing file", lambda: _explain_dataset(out_is_file=True), ValueError,
             ("out_dir", "not a folder")),
        Case("ed-no-labels", ed, "targets='labels' on a dataset without labels",
             lambda: _explain_dataset(targets="labels"), ValueError, ("targets", "'labels' needs")),
        Case("ed-wrong-inputs", ed, "samples with N - 1 input neurons",
             lambda: _explain_dataset(dataset=TensorDataset(torch.zeros(4, N_STEPS, N_IN - 1))), ValueError,
             ("dataset", "input neurons")),
        Case("ed-nan", ed, "a dataset of NaN spikes",
             lambda: _explain_dataset(dataset=TensorDataset(torch.full((4, N_STEPS, N_IN), float("nan")))),
             ValueError, ("input_spikes", "finite")),
        Case("ed-metadata", ed, "metadata that is not JSON",
             lambda: _explain_dataset(metadata={"when": object()}), TypeError, ("metadata", "JSON")),
        Case("ed-other-model", ed, "an explainer built on another model than `model`",
             lambda: _explain_dataset(explainer=saliency()), ValueError, ("explainer", "different model")),
        Case("ed-format-array", ed, "shard_format = an array of names", lambda: _explain_dataset(shard_format=_NAMES()),
             ValueError, ("shard_format", "'npz'")),
        Case("le-missing", le, "a folder without a finished run", _load_explanations_missing, FileNotFoundError,
             ("out_dir", "no manifest.json")),
        Case("le-corrupt", le, "a shard truncated after the run",
             _load_explanations_corrupt, ValueError, ("out_dir", "checksum")),
    ]


def _data_cases() -> list[Case]:
    from sc_neurocore.data.encoding import encode, rate_encode

    data = (("sklearn", "data"),)
    return [
        Case("rate-negative", "data.rate_encode", "an intensity of -0.5",
             lambda: rate_encode(torch.tensor([[-0.5, 0.2]]), 10), ValueError, ("intensities", "[0, 1]")),
        Case("rate-nan", "data.rate_encode", "a NaN intensity",
             lambda: rate_encode(torch.tensor([[float("nan"), 0.2]]), 10), ValueError, ("intensities", "NaN")),
        Case("rate-steps", "data.rate_encode", "n_steps = 0",
             lambda: rate_encode(torch.tensor([[0.5]]), 0), ValueError, ("n_steps", "positive int")),
        Case("encode-kind", "data.encode", "encoding = 'burst'",
             lambda: encode(torch.tensor([[0.5]]), 5, encoding="burst"), ValueError, ("encoding", "'rate', 'latency'")),
        Case("digits-split", "data.load_digits", "split = 'val'", lambda: _load_digits(split="val"), ValueError,
             ("split", "'train', 'test'"), needs=data),
        Case("digits-split-array", "data.load_digits", "split = an array of names",
             lambda: _load_digits(split=_NAMES()), ValueError, ("split", "'train', 'test'"), needs=data),
        Case("digits-size", "data.load_digits", "size = 16", lambda: _load_digits(size=16), ValueError,
             ("size", "(8, 28)"), needs=data),
    ]


def _load_digits(**kwargs):
    from sc_neurocore.data.digits import load_digits

    return load_digits(**kwargs)


def _plot(name, *args, **kwargs):
    import numpy as np

    from sc_neurocore import plot

    return getattr(plot, name)(*[np.asarray(a) if isinstance(a, torch.Tensor) else a for a in args], **kwargs)


def _save_figure(name: str):
    import numpy as np

    from sc_neurocore import plot

    with tempfile.TemporaryDirectory() as folder:
        plot.save_figure(plot.plot_saliency_heatmap(np.zeros((3, 3))), Path(folder) / name)


def _plot_cases() -> list[Case]:
    viz = (("matplotlib", "viz"),)
    return [
        Case("plot-heatmap-1d", "plot.plot_saliency_heatmap", "a 1-D score vector",
             lambda: _plot("plot_saliency_heatmap", torch.zeros(5)), ValueError, ("scores", "(T, N)"), needs=viz),
        Case("plot-heatmap-nan", "plot.plot_saliency_heatmap", "NaN scores",
             lambda: _plot("plot_saliency_heatmap", torch.full((3, 3), float("nan"))), ValueError,
             ("scores", "finite"), needs=viz),
        Case("plot-raster-str", "plot.plot_spike_raster", "a str as spikes", lambda: _plot("plot_spike_raster", "x"),
             TypeError, ("spikes", "numeric array"), needs=viz),
        Case("plot-digit-size", "plot.plot_digit_importance", "63 importances for an 8x8 image",
             lambda: _plot("plot_digit_importance", torch.zeros(8, 8), torch.zeros(63)), ValueError,
             ("importance", "64 values"), needs=viz),
        Case("save-figure-folder", "plot.save_figure", "a path in a folder that does not exist",
             lambda: _save_figure("missing/figure.png"), FileNotFoundError, ("path", "does not exist"), needs=viz),
        Case("save-figure-format", "plot.save_figure", "a file suffix matplotlib cannot write ('.zzz')",
             lambda: _save_figure("figure.zzz"), ValueError, ("path", "zzz"), needs=viz),
    ]


S, C = "TemporalSaliency", "CausalImportance"


def cases() -> list[Case]:
    found: list[Case] = []
    if present("sc_neurocore.adapters.snntorch"):
        found += _adapter_cases()
    if present("sc_neurocore.fpga.spec"):
        found += _fpga_cases()
    found += _cli_cases()
    for module, group in (("sc_neurocore.captum", _captum_cases), ("sc_neurocore.explain.metrics", _metrics_cases),
                          ("sc_neurocore.distributed", _distributed_cases), ("sc_neurocore.data.encoding", _data_cases),
                          ("sc_neurocore.plot", _plot_cases)):
        if present(module):
            found += group()
    return found
