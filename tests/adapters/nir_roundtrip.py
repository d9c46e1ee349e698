"""The upstream NIR round trips, measured: an snnTorch or Norse model, the NIR graph its exporter writes,
that graph read by `from_nir`, and the same graph imported back by the framework's own importer
(`snntorch.import_nir.import_from_nir`, `norse.torch.from_nir`), each run on the same digit spikes.

`python tests/adapters/nir_roundtrip.py` rewrites the generated table of `docs/nir.md`;
`tests/adapters/test_nir_roundtrip.py` checks that the page holds what this produces.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor

PAGE = Path(__file__).resolve().parents[2] / "docs" / "nir.md"
BEGIN, END = "<!-- nir-roundtrip:begin -->", "<!-- nir-roundtrip:end -->"


class Case(NamedTuple):
    """One model: how it is built, run, exported, read and imported back, and why they differ."""

    name: str
    build: Callable[[], torch.nn.Module]
    original: Callable[[torch.nn.Module, Tensor], Tensor]
    export: Callable[[torch.nn.Module], object]
    dt: float
    upstream: Callable[[object, Tensor], Tensor]
    why: str


def _quiet(function, *args):
    """Run an exporter or importer without its prints, warnings and log lines."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            return function(*args)
        finally:
            logging.disable(logging.NOTSET)


# -- snnTorch ----------------------------------------------------------------------------------------

def _snntorch(reset: str = "subtract", delay: bool = True, recurrent: bool = False):
    def build():
        import snntorch as snn
        from zoo.models_nir import snntorch_net

        net = snntorch_net(recurrent)
        if reset != "subtract" or not delay:
            hidden, out = net[1], net[3]
            net[1] = snn.Leaky(beta=hidden.beta.detach().clone(), threshold=hidden.threshold.detach().clone(),
                               reset_mechanism=reset, reset_delay=delay, init_hidden=True)
            net[3] = snn.Leaky(beta=out.beta.detach().clone(), threshold=out.threshold.detach().clone(),
                               reset_mechanism=reset, reset_delay=delay, init_hidden=True, output=True)
        return net
    return build


def _snntorch_scalar():
    import snntorch as snn

    torch.manual_seed(4)
    return torch.nn.Sequential(torch.nn.Linear(64, 16), snn.Leaky(beta=0.9, init_hidden=True),
                               torch.nn.Linear(16, 4), snn.Leaky(beta=0.9, init_hidden=True, output=True))


def _snntorch_forward(net, spikes: Tensor) -> Tensor:
    from toy_models import snntorch_counts

    with torch.no_grad():
        return snntorch_counts(net, spikes)


def _snntorch_export(net):
    from zoo.models_nir import snntorch_graph

    return _quiet(snntorch_graph, net)


def _snntorch_import(graph, spikes: Tensor) -> Tensor:
    import snntorch.utils
    from snntorch.import_nir import import_from_nir

    module = _quiet(import_from_nir, graph)
    snntorch.utils.reset(module)
    state, total = None, 0
    with torch.no_grad():
        for step in spikes.transpose(0, 1):
            out, state = module(step) if state is None else module(step, state)
            total = total + out
    return total


# -- Norse -------------------------------------------------------------------------------------------

def _norse(hidden: str, output: str):
    def build():
        import norse.torch as norse

        torch.manual_seed(5)
        cells = {"lif_box": norse.LIFBoxCell, "lif": norse.LIFCell, "iaf": norse.IAFCell, "li_box": norse.LIBoxCell}
        net = norse.SequentialState(torch.nn.Linear(64, 16), cells[hidden](), torch.nn.Linear(16, 4), cells[output]())
        with torch.no_grad():
            net[0].weight.mul_(40.0 if hidden != "iaf" else 2.0)
            net[2].weight.mul_(60.0)
        return net
    return build


def _norse_steps(module, spikes: Tensor) -> Tensor:
    state, outputs = None, []
    with torch.no_grad():
        for step in spikes.transpose(0, 1):
            out, state = module(step, state)
            outputs.append(out)
    return torch.stack(outputs)


def _norse_forward(net, spikes: Tensor) -> Tensor:
    import norse.torch as norse

    outputs = _norse_steps(net, spikes)
    return outputs.amax(0) if isinstance(net[-1], norse.LIBoxCell) else outputs.sum(0)


def _norse_export(net):
    from zoo.models_nir import norse_graph

    return _quiet(norse_graph, net)


def _norse_import(graph, spikes: Tensor) -> Tensor:
    import nir
    import norse.torch as norse

    module = _quiet(norse.from_nir, graph)
    outputs = _norse_steps(module, spikes)
    last = [node for node in graph.nodes.values() if not isinstance(node, (nir.Input, nir.Output))][-1]
    return outputs.amax(0) if isinstance(last, nir.LI) else outputs.sum(0)


NORSE_DT = 1e-3

CASES = [
    Case("snnTorch Leaky, reset by subtraction on the next step (its default)", _snntorch(), _snntorch_forward,
         _snntorch_export, 1e-4, _snntorch_import,
         "NIR's LIF resets to v_reset in the step that fires; snnTorch's default subtracts the threshold one step "
         "later. snnTorch's importer builds Leaky(reset_mechanism='zero', reset_delay=False), as NIR says, with "
         "beta = 1 - dt/tau."),
    Case("snnTorch Leaky with a scalar beta and threshold (as its tutorials build it)", _snntorch_scalar,
         _snntorch_forward, _snntorch_export, 1e-4, _snntorch_import,
         "snnTorch#384 / NIR#155: scalar beta and threshold give the exported LIF 0-d parameters, so its type "
         "is a scalar and NIR's type check rejects the edge from the 16-wide Affine (with only one of them "
         "per-neuron, NIR's LIF refuses parameters of different shapes); build both as per-neuron tensors."),
    Case("snnTorch Leaky, reset to zero in the same step", _snntorch("zero", False), _snntorch_forward,
         _snntorch_export, 1e-4, _snntorch_import,
         "The reset is NIR's, and from_nir's v + (dt/tau)((0 - v) + R x), with dt/tau = 1 - beta and R = tau/dt, "
         "is snnTorch's beta v + x in exact arithmetic; in float32 the two can round apart near a threshold."),
    Case("snnTorch RLeaky + Synaptic", _snntorch(recurrent=True), _snntorch_forward, _snntorch_export, 1e-4,
         _snntorch_import,
         "The recurrent edge is exported as an Affine loop on the LIF node, which from_nir keeps (the loop's "
         "bias enters from the first step, as in RLeaky); the resets differ as above, and Synaptic becomes a "
         "CubaLIF with w_in = tau_syn/dt, integrated as alpha i + x. snnTorch's importer rebuilds the loop as "
         "Input -> w_rec -> LIF with LIF -> w_rec (its _create_rnn_subgraph), so the imported model applies "
         "the recurrent weights to the feed-forward input as well."),
    Case("Norse LIFBoxCell", _norse("lif_box", "lif_box"), _norse_forward, _norse_export, NORSE_DT ** 2,
         _norse_import,
         "Norse writes tau = dt / tau_mem_inv (NIR means 1 / tau_mem_inv), so the graph's time constants are dt "
         "times Norse's: from_nir reads it at dt = 1e-6 = dt^2 to integrate with Norse's own dt * tau_mem_inv = "
         "0.1; Norse's importer reads tau_mem_inv = 1 / tau at dt = 1e-3, a factor of 100 per step. Norse's "
         "LIFBoxCell adds (x + v_leak - v), from_nir ((v_leak - v) + R x): the same up to rounding."),
    Case("Norse LIFCell (current-based)", _norse("lif", "lif"), _norse_forward, _norse_export, NORSE_DT ** 2,
         _norse_import,
         "Exported as CubaLIF with w_in = 1 and R = 1: from_nir's synapse moves by (dt/tau_syn)(x - i) per "
         "step, Norse's LIFCell adds x in full and decays afterwards, so the input is weighed dt/tau_syn apart "
         "(w_in = tau_syn/dt, as snnTorch writes, would match the jump); the time constants carry the dt factor "
         "above. Norse's importer chains an LIBoxCell synapse and an LIFBoxCell at dt = 1e-3."),
    Case("Norse IAFCell + LIBoxCell", _norse("iaf", "li_box"), _norse_forward, _norse_export, NORSE_DT ** 2,
         _norse_import,
         "Exported as IF (R = 1) and LI: NIR's IF integrates dt R x per step, Norse's IAFCell adds x (it ignores "
         "dt), so no single dt reproduces both the IF and the LI layer."),
]


def _compare(a: Tensor | None, b: Tensor | None) -> str:
    if a is None or b is None:
        return "n/a"
    if a.shape != b.shape:
        return f"shapes {tuple(a.shape)} vs {tuple(b.shape)}"
    if torch.equal(a, b):
        return "equal bit for bit"
    differ = int((a != b).sum())
    return f"{differ}/{a.numel()} outputs differ, max abs diff {float((a - b).abs().max()):.3g}"


def rows(batch: int = 8, steps: int = 12) -> list[tuple[str, ...]]:
    """One row per case: name, exported nodes, dt, and the three comparisons."""
    import nir
    from zoo.models_nir import digits

    from sc_neurocore.adapters import from_nir

    spikes = digits(batch, steps)
    table = []
    for case in CASES:
        net = case.build()
        original = case.original(net, spikes)
        try:
            graph = case.export(net)
        except Exception as error:  # noqa: BLE001 -- an exporter's failure is what the table reports
            failed = f"export fails: {type(error).__name__}: {str(error).splitlines()[0][:80]}"
            table.append((case.name, failed, "", "", "", "", case.why))
            continue
        nodes = " -> ".join(type(node).__name__ for node in graph.nodes.values()
                            if not isinstance(node, (nir.Input, nir.Output)))
        ours = from_nir(graph, dt=case.dt).run(spikes)
        try:
            upstream, failure = case.upstream(graph, spikes), ""
        except Exception as error:  # noqa: BLE001 -- an importer's failure is what the table reports
            upstream, failure = None, f"import fails: {type(error).__name__}: {str(error).splitlines()[0][:80]}"
        table.append((case.name, nodes, f"{case.dt:g}", _compare(ours, original),
                      failure or _compare(upstream, original), failure or _compare(ours, upstream), case.why))
    return table


def render(table: list[tuple[str, ...]]) -> str:
    header = ("model", "exported NIR nodes", "from_nir dt", "from_nir vs original", "upstream import vs original",
              "from_nir vs upstream import", "why")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in table]
    return "\n".join(lines)


def page_with(table: str, text: str) -> str:
    """`text` with the part between the markers replaced by `table`."""
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table}\n{END}{tail}"


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    torch.set_num_threads(1)
    from sc_neurocore.atomic import atomic_write

    new = page_with(render(rows()), PAGE.read_text())
    with atomic_write(PAGE) as handle:
        handle.write(new)
    print(f"wrote {PAGE}")
