"""`sc-neurocore fpga where`: which quantised models the chip runs, measured, and the table of docs/fpga.md."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import require_module

from sc_neurocore.cli import main
from sc_neurocore.data import pretrained_network

DOCS = Path(__file__).resolve().parents[2] / "docs" / "fpga.md"


def test_where_reproduces_the_table_of_the_docs_and_every_loss_is_within_a_point(tmp_path, capsys):
    require_module("litex", "fpga")
    require_module("norse", "norse")
    require_module("snntorch", "snntorch")
    from sc_neurocore.fpga.placement import PLACEMENT_BEGIN, PLACEMENT_END

    document = tmp_path / "fpga.md"
    document.write_text(f"# FPGA\n\nprose\n\n{PLACEMENT_BEGIN}\nold\n{PLACEMENT_END}\ntail\n")
    assert main(["fpga", "where", "--report-md", str(document)]) == 0
    printed = capsys.readouterr().out
    written = document.read_text()
    assert written.startswith("# FPGA\n\nprose\n\n") and written.endswith(f"{PLACEMENT_END}\ntail\n")
    section = written.split(PLACEMENT_BEGIN, 1)[1].split(PLACEMENT_END, 1)[0]
    assert section.strip() == printed.strip()
    docs = DOCS.read_text()
    assert docs.split(PLACEMENT_BEGIN, 1)[1].split(PLACEMENT_END, 1)[0] == section, (
        "docs/fpga.md is stale: run sc-neurocore fpga where --report-md docs/fpga.md")
    rows = [line.split(" | ") for line in section.splitlines() if line.startswith("| ") and "%" in line]
    host = "host (integer reference)"
    assert [row[2] for row in rows] == ["chip and host", "chip and host", host, "chip and host", host]
    assert [row[1] for row in rows] == ["LIF", "LIF", "CUBA", "LIF", "CUBA"]
    assert all(abs(float(row[5])) <= 1.0 for row in rows)
    assert "layer 0 is current-based" in section


def test_norse_twins_quantise_to_the_shipped_gain():
    require_module("norse", "norse")
    from sc_neurocore.fpga.network_reference import quantize_network
    from sc_neurocore.fpga.placement import norse_twin

    net = pretrained_network(8)
    shipped = quantize_network(net, n_steps=25)
    box = quantize_network(norse_twin(net, "LIFBoxCell"), n_steps=25)
    assert all(torch.equal(a, b) for a, b in zip(box.weights, shipped.weights, strict=True))
    cell, sequence = (quantize_network(norse_twin(net, kind), n_steps=25) for kind in ("LIFCell", "LIF"))
    assert cell.spec == sequence.spec and cell.spec.alpha_int == (13107, 13107)
    assert all(torch.equal(a, b) for a, b in zip(cell.weights, sequence.weights, strict=True))
    assert all(torch.equal(a, torch.round(b.double() * 0.2).long()) for a, b in
               zip(cell.weights, shipped.weights, strict=True))  # a W = 0.1 * 2 W_digits8 on the 2^-8 grid
    with pytest.raises(ValueError, match="cell: expected one of"):
        norse_twin(net, "LIBoxCell")
    with pytest.raises(TypeError, match="model: expected an LIFNetwork"):
        norse_twin(torch.nn.Linear(2, 2))


def test_snntorch_synaptic_twin_quantises_to_the_shipped_gain():
    require_module("snntorch", "snntorch")
    from sc_neurocore.fpga.network_reference import quantize_network
    from sc_neurocore.fpga.placement import snntorch_twin

    net = pretrained_network(8)
    twin = quantize_network(snntorch_twin(net, alpha=0.5), n_steps=25)
    shipped = quantize_network(net, n_steps=25)
    assert twin.spec.alpha_int == (2**13, 2**13) and twin.spec.beta_int == shipped.spec.beta_int
    assert all(torch.equal(a, torch.round(b.double() * 0.5).long()) for a, b in
               zip(twin.weights, shipped.weights, strict=True))
    with pytest.raises(TypeError, match="model: expected an LIFNetwork"):
        snntorch_twin(torch.nn.Linear(2, 2))
