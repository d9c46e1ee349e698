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
        Case("snn-bare-own-loop", f"{S}.explain", "a bare snnTorch module with its own time loop (layout unknown)",
             lambda: saliency(_OwnLoop()).explain(x()), TypeError, ("run_fn", "from_module"), needs=SNNTORCH),
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
                 ("csr_csv", "/nonexistent/csr.csv"), needs=FPGA,
                 gap="fpga/driver.py hands csr_csv to LiteX unchecked: the error is LiteX's bare "
                     "'[Errno 2] No such file or directory', raised inside litex, not naming csr_csv"),
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
        return cli(*argv)


def _cli_cases() -> list[Case]:
    from sc_neurocore.cli import SUBCOMMANDS

    cases = []
    if "fpga" in SUBCOMMANDS:
        cases += [
            Case("cli-fpga-board", "sc-neurocore fpga build", "--board nexys (unknown board)",
                 lambda: _cli_in_tmp("fpga", "build", "--board", "nexys", "--out", "{tmp}"), CommandFailed,
                 ("board", "['icebreaker']", "'nexys'")),
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
            Case("cli-ed-weights-missing", ed, "--weights: a file that does not exist",
                 lambda: _cli_in_tmp("explain-dataset", "--model", "sc_neurocore.data.pretrained:pretrained_network",
                                     "--weights", "{tmp}/absent.safetensors", *common), CommandFailed,
                 ("weights", "no such file")),
        ]
    if "quality" in SUBCOMMANDS:
        cases.append(Case("cli-quality-samples", "sc-neurocore quality", "--samples 0",
                          lambda: cli("quality", "--samples", "0"), CommandFailed, ("--samples", "positive int")))
    return cases


S, C = "TemporalSaliency", "CausalImportance"


def cases() -> list[Case]:
    found: list[Case] = []
    if present("sc_neurocore.adapters.snntorch"):
        found += _adapter_cases()
    if present("sc_neurocore.fpga.spec"):
        found += _fpga_cases()
    found += _cli_cases()
    return found
