"""Files are whole or absent, and long runs can be watched and interrupted.

* :mod:`sc_neurocore.atomic`: an exception or a Ctrl-C (``KeyboardInterrupt``) while writing leaves the
  old file, or no file, and no temporary file behind;
* every writer of the package goes through it (a static check of the source), and the real writers --
  exported Verilog, figures, dataset shards -- keep the old file when interrupted just before publishing;
* a long explanation shows a tqdm progress bar; Ctrl-C raised from inside the model mid-run propagates,
  closes the bar, and leaves no partial file (a dataset run keeps only whole, checksummed shards and
  resumes to the same result).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

import sc_neurocore
from conftest import require_module
from sc_neurocore.atomic import atomic_path, atomic_write
from sc_neurocore.explain import CausalImportance, TemporalSaliency
from sc_neurocore.models import LIFNetwork

PACKAGE = Path(sc_neurocore.__file__).parent
INTERRUPTS = [RuntimeError("disk full"), KeyboardInterrupt()]


def _temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("interrupt", INTERRUPTS, ids=["exception", "ctrl-c"])
@pytest.mark.parametrize("mode", ["w", "wb"])
def test_interrupted_atomic_write_keeps_the_old_file(tmp_path, interrupt, mode):
    target = tmp_path / "result.txt"
    target.write_text("old complete content")
    with pytest.raises(type(interrupt)):
        with atomic_write(target, mode=mode) as handle:
            handle.write("new partial" if mode == "w" else b"new partial")
            raise interrupt
    assert target.read_text() == "old complete content"
    assert _temporaries(tmp_path) == []


@pytest.mark.parametrize("interrupt", INTERRUPTS, ids=["exception", "ctrl-c"])
def test_interrupted_first_write_leaves_no_file(tmp_path, interrupt):
    target = tmp_path / "figure.png"
    with pytest.raises(type(interrupt)):
        with atomic_path(target) as temporary:
            temporary.write_bytes(b"\x89PNG half")
            raise interrupt
    assert list(tmp_path.iterdir()) == []


def test_completed_atomic_write_replaces_the_file(tmp_path):
    target = tmp_path / "result.txt"
    target.write_text("old")
    with atomic_write(target) as handle:
        handle.write("new")
    assert target.read_text() == "new" and _temporaries(tmp_path) == []


@pytest.fixture
def ctrl_c_before_publishing(monkeypatch):
    """Ctrl-C at the last moment of every atomic write: after the content, before the rename."""
    def interrupted(fd):
        raise KeyboardInterrupt
    monkeypatch.setattr("sc_neurocore.atomic.os.fsync", interrupted)


def test_interrupted_verilog_export_keeps_the_old_file(tmp_path, ctrl_c_before_publishing):
    require_module("migen", "fpga")
    from sc_neurocore.explain import SpikeAttributor

    target = tmp_path / "explain_ice40.v"
    target.write_text("// the previous core\n")
    with pytest.raises(KeyboardInterrupt):
        SpikeAttributor(decay=0.9).export_fpga(target, n_inputs=16, n_outputs=2, n_steps=4, lanes=2)
    assert target.read_text() == "// the previous core\n" and _temporaries(tmp_path) == []


def test_interrupted_figure_save_keeps_the_old_file(tmp_path, ctrl_c_before_publishing):
    require_module("matplotlib", "viz")
    from sc_neurocore.plot import plot_temporal_profile, save_figure

    target = tmp_path / "profile.png"
    target.write_bytes(b"old png")
    with pytest.raises(KeyboardInterrupt):
        save_figure(plot_temporal_profile(torch.arange(5.0).numpy()), target)
    assert target.read_bytes() == b"old png" and _temporaries(tmp_path) == []


# -- every writer goes through sc_neurocore.atomic ----------------------------------------------------------

#: Calls that create or overwrite a file from a path argument.
WRITERS = {"savefig", "save_file", "torch.save", "np.save", "np.savez", "np.savez_compressed", "write_text",
           "write_bytes", "copyfile", "shutil.copy", "shutil.copy2", "to_csv", "ZipFile"}
#: Writes that are not result files, each with why it need not be atomic (matched on the exact call).
NOT_RESULT_FILES = {
    ("fpga/sim.py", "open(log_path, 'w')"): "the live log of the Verilator model or litex_server, streamed by "
                                            "the running subprocess",
    ("bench/suite.py", "open('/proc/self/clear_refs', 'w')"): "a kernel control file (resets the peak-RSS "
                                                              "counter), not a file on disk",
    ("plot.py", "self.savefig(buffer, format='png', dpi=100)"): "renders into an in-memory buffer, no file",
    ("distributed/dataset.py", "zipfile.ZipFile(path, 'r')"): "opens a spike file for reading (its member sizes)",
}


def _write_calls(tree: ast.AST):
    """``(call, inside an atomic_path / atomic_write block)`` for every writing call."""
    found = []

    def visit(node, atomic: bool):
        if isinstance(node, (ast.With, ast.AsyncWith)):
            names = {ast.unparse(item.context_expr.func).split(".")[-1] for item in node.items
                     if isinstance(item.context_expr, ast.Call)}
            atomic = atomic or bool(names & {"atomic_path", "atomic_write"})
        if isinstance(node, ast.Call):
            name = ast.unparse(node.func)
            short = name.split(".")[-1]
            mode = node.args[1] if len(node.args) > 1 else next((k.value for k in node.keywords if k.arg == "mode"), None)
            opens_for_writing = short == "open" and isinstance(mode, ast.Constant) and isinstance(mode.value, str) \
                and any(flag in mode.value for flag in "wax+")
            if opens_for_writing or name in WRITERS or short in WRITERS:
                found.append((node, atomic))
        for child in ast.iter_child_nodes(node):
            visit(child, atomic)

    visit(tree, False)
    return found


def test_every_file_writer_goes_through_atomic():
    offenders, checked = [], 0
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "atomic.py":
            continue
        relative = path.relative_to(PACKAGE).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for call, atomic in _write_calls(tree):
            checked += 1
            source = ast.unparse(call)
            if atomic or (relative, source) in NOT_RESULT_FILES:
                continue
            offenders.append(f"sc_neurocore/{relative}:{call.lineno}: {source}")
    assert checked >= 3  # the scan sees the package's writers
    assert not offenders, "writes outside sc_neurocore.atomic:\n" + "\n".join(offenders)


# -- progress bars and Ctrl-C inside the model ----------------------------------------------------------------

def _problem():
    generator = torch.Generator().manual_seed(0)
    net = LIFNetwork([torch.randn(12, 8, generator=generator), torch.randn(8, 3, generator=generator)],
                     threshold=0.5)
    spikes = (torch.rand(2, 10, 12, generator=generator) < 0.3).float()
    return net, spikes


def test_progress_bar_shows_on_request_only(capsys):
    net, spikes = _problem()
    n_spikes = int(spikes.count_nonzero())
    TemporalSaliency(net, progress=True).explain(spikes)
    shown = capsys.readouterr().err
    assert "perturbation" in shown and f"/{n_spikes}" in shown
    CausalImportance(net, progress=True).explain(spikes, layer="0")
    assert f"/{2 * 8}" in capsys.readouterr().err
    # The generic engine (a model the incremental one does not compile) shows the same bar.
    generic = _interrupted(net, on_call=-1)
    TemporalSaliency(generic, progress=True).explain(spikes)
    assert f"/{n_spikes}" in capsys.readouterr().err
    TemporalSaliency(net).explain(spikes)
    assert capsys.readouterr().err == ""


class _InterruptedNet(LIFNetwork):
    """An LIFNetwork whose ``run`` raises ``KeyboardInterrupt`` on call number ``interrupt_on`` (counted
    over all copies: the counter lives on the class, so a deep copy made by the caller counts too)."""

    calls = 0
    interrupt_on = 3

    def run(self, spikes, silence=None):
        type(self).calls += 1
        if type(self).calls == type(self).interrupt_on:
            raise KeyboardInterrupt
        return super().run(spikes, silence)


def _interrupted(net: LIFNetwork, on_call: int) -> _InterruptedNet:
    model = _InterruptedNet(net.linear_weights(), beta=net.betas, threshold=net.thresholds, reset=net.reset)
    _InterruptedNet.calls, _InterruptedNet.interrupt_on = 0, on_call
    return model


def test_ctrl_c_in_the_model_propagates_and_closes_the_bar(chunks_of_any_size):
    from tqdm import tqdm

    net, spikes = _problem()
    expected = TemporalSaliency(net, max_memory=20_000).explain(spikes).saliency_map()
    model = _interrupted(net, on_call=3)
    with pytest.raises(KeyboardInterrupt):
        TemporalSaliency(model, max_memory=20_000, progress=True).explain(spikes)
    assert len(tqdm._instances) == 0
    # Nothing is left half-done in the model: the next call gives the full, correct result.
    assert torch.equal(TemporalSaliency(model, max_memory=20_000).explain(spikes).saliency_map(), expected)


def test_ctrl_c_mid_dataset_leaves_only_whole_shards_and_resumes(tmp_path):
    from sc_neurocore.distributed import MANIFEST, explain_dataset, load_explanations

    net, _ = _problem()
    samples = (torch.rand(24, 10, 12, generator=torch.Generator().manual_seed(5)) < 0.3).float()
    dataset = TensorDataset(samples)
    clean = tmp_path / "clean"
    explain_dataset("saliency", net, dataset, clean, batch_size=4, shard_size=8, progress=False)

    out = tmp_path / "interrupted"
    model = _interrupted(net, on_call=9)  # a few batches in: inside the second shard
    with pytest.raises(KeyboardInterrupt):
        explain_dataset(TemporalSaliency(model), model, dataset, out, batch_size=4, shard_size=8, progress=False)
    left = sorted(p.name for p in out.iterdir())
    assert MANIFEST not in left and _temporaries(out) == []
    shards = [name for name in left if name.endswith(".npz")]
    assert 1 <= len(shards) < 3 and all(name.replace(".npz", ".json") in left for name in shards)

    _InterruptedNet.interrupt_on = -1  # the rerun is not interrupted: it resumes and completes
    explain_dataset(TemporalSaliency(model), model, dataset, out, batch_size=4, shard_size=8, progress=False)
    resumed, reference = load_explanations(out), load_explanations(clean)
    assert torch.equal(resumed.scores, reference.scores) and torch.equal(resumed.sample_index, reference.sample_index)


def test_ctrl_c_in_the_incremental_engine_closes_the_bar(monkeypatch):
    monkeypatch.setenv("SC_NEUROCORE_ENGINE", "incremental")  # the executor under test
    import sc_neurocore.engine.incremental as incremental
    from tqdm import tqdm

    net, spikes = _problem()
    calls = []

    def interrupted_replay(*args, **kwargs):
        calls.append(1)
        raise KeyboardInterrupt

    monkeypatch.setattr(incremental, "replay", interrupted_replay)
    with pytest.raises(KeyboardInterrupt):
        TemporalSaliency(net, progress=True).explain(spikes)
    assert calls and len(tqdm._instances) == 0  # the incremental path ran, and its bar is closed
