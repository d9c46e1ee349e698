"""The registered iCE40 multiplier both cores use, and the netlist check that every DSP port is registered.

Each lane of `TraceExplainer` and `NetworkExplainer` multiplies in one `SB_MAC16` whose A and B inputs and
whose output are registers (`A_REG = B_REG = 1`, `TOPOUTPUT_SELECT = BOTOUTPUT_SELECT = 1`): every DSP port
is then a register port, so nextpnr times every path into and out of the DSP against the clock. (With
`A_REG = B_REG = 0` and a combinational output, nextpnr 0.4 times the DSP's ports against a constant net
and icetime has no entry for the bypass mode: the multiply is on no timed path at all.)

`registered_multiplier` writes it either as an `SB_MAC16` instance (what the bitstream and the exported
Verilog hold: simulate with yosys' `ice40/cells_sim.v`, synthesise with `synth_ice40` *without* `-dsp`,
whose `ice40_dsp` pass in yosys 0.23 rewrites the registers of instantiated `SB_MAC16`s) or as the same
register stages in plain Migen (`"behavioral"`, for Migen's simulator and Verilator, which cannot run an
instance). `dsp_registration` reads yosys' JSON netlist to confirm what the build got.

Requires the `fpga` extra (`pip install 'spikexplain[fpga]'`) for `registered_multiplier`.
"""

from __future__ import annotations

import json
from pathlib import Path

#: How the lane multipliers are written.
DSP_KINDS = ("behavioral", "sb_mac16")
#: The SB_MAC16 configuration: A and B input registers, the product through the adders (plus C = D = 0)
#: into the output register, loaded when its hold is low; the configuration yosys' own ice40_dsp gives
#: `if (enable) p <= a_reg * b_reg`, simulated by yosys' `ice40/cells_sim.v`. `A_SIGNED` / `B_SIGNED`
#: are set per use (`registered_multiplier`'s `signed`).
SB_MAC16_PARAMETERS = {
    "NEG_TRIGGER": 0, "A_REG": 1, "B_REG": 1, "C_REG": 0, "D_REG": 0, "TOP_8x8_MULT_REG": 0, "BOT_8x8_MULT_REG": 0,
    "PIPELINE_16x16_MULT_REG1": 0, "PIPELINE_16x16_MULT_REG2": 0, "TOPOUTPUT_SELECT": 1, "TOPADDSUB_LOWERINPUT": 2,
    "TOPADDSUB_UPPERINPUT": 1, "TOPADDSUB_CARRYSELECT": 3, "BOTOUTPUT_SELECT": 1, "BOTADDSUB_LOWERINPUT": 2,
    "BOTADDSUB_UPPERINPUT": 1, "BOTADDSUB_CARRYSELECT": 0, "MODE_8x8": 0, "A_SIGNED": 1, "B_SIGNED": 1,
}
#: The parameters the build verifies in the netlist (every port a register port).
REGISTERED_DSP = {"A_REG": 1, "B_REG": 1, "TOPOUTPUT_SELECT": 1, "BOTOUTPUT_SELECT": 1}
#: What the build report says nextpnr times, with every SB_MAC16 registered or not.
TIMED_PATHS = {
    True: ("every path between registers, block RAM and DSP ports on the sys clock: each SB_MAC16 has "
           "A_REG = B_REG = 1 and its output register (OUTPUT_SELECT = 1), so none of its ports is combinational"),
    False: "some SB_MAC16 port is combinational: its path is not timed",
}


def check_dsp_kind(dsp) -> str:
    """`dsp` if it is one of `DSP_KINDS`, else a `ValueError` naming it.

    Example:
        >>> check_dsp_kind("sb_mac16")
        'sb_mac16'
    """
    if dsp not in DSP_KINDS:
        raise ValueError(f"dsp: expected one of {DSP_KINDS}, got {dsp!r}")
    return dsp


def registered_multiplier(module, dsp: str, a_next, b_next, a_reg, b_reg, product, enable=1,
                          signed: bool = True) -> None:
    """Add `a_reg <= a_next; b_reg <= b_next; if (enable) product <= a_reg * b_reg` to `module`.

    Args:
        module: the Migen module that gets the statements (or the instance).
        dsp: `"sb_mac16"` (an `SB_MAC16` instance; `a_reg` / `b_reg` are then left unused, the DSP's own
            registers hold the operands) or `"behavioral"`.
        a_next, b_next: the 16-bit operands entering the input registers.
        a_reg, b_reg: 16-bit registers for the behavioral form (`reset_less`).
        product: the 32-bit output register.
        enable: the output register loads when this is 1.
        signed: signed (two's complement) or unsigned operands.

    Example:
        >>> from migen import Module, Signal
        >>> module, a, b, p = Module(), Signal((16, True)), Signal((16, True)), Signal((32, True))
        >>> registered_multiplier(module, "sb_mac16", a, b, Signal(16), Signal(16), p)
        >>> [special.of for special in module.get_fragment().specials]
        ['SB_MAC16']
    """
    try:
        from migen import ClockSignal, If, Instance, Signal
    except ImportError as error:  # pragma: no cover - exercised only without the extra
        from ..extras import missing_extra

        raise missing_extra("sc_neurocore.fpga.dsp.registered_multiplier needs migen", "fpga") from error

    if check_dsp_kind(dsp) == "behavioral":
        module.sync += [a_reg.eq(a_next), b_reg.eq(b_next), If(enable, product.eq(a_reg * b_reg))]
        return
    zero = Signal(16)
    hold = Signal()
    module.comb += hold.eq(~enable if not isinstance(enable, int) else int(not enable))
    parameters = {f"p_{name}": value for name, value in SB_MAC16_PARAMETERS.items()}
    parameters["p_A_SIGNED"] = parameters["p_B_SIGNED"] = int(signed)
    module.specials += Instance(
        "SB_MAC16", **parameters,
        i_CLK=ClockSignal("sys"), i_CE=1, i_A=a_next, i_B=b_next, i_C=zero, i_D=zero,
        i_AHOLD=0, i_BHOLD=0, i_CHOLD=0, i_DHOLD=0, i_IRSTTOP=0, i_IRSTBOT=0, i_ORSTTOP=0, i_ORSTBOT=0,
        i_OLOADTOP=0, i_OLOADBOT=0, i_ADDSUBTOP=0, i_ADDSUBBOT=0, i_OHOLDTOP=hold, i_OHOLDBOT=hold,
        i_CI=0, i_ACCUMCI=0, i_SIGNEXTIN=0, o_O=product,
    )


def dsp_registration(netlist_json: str | Path) -> tuple[int, bool]:
    """`(count, all_registered)` of the `SB_MAC16` cells in yosys' JSON netlist (`write_json`).

    Example:
        >>> import json, tempfile, pathlib
        >>> cell = {"type": "SB_MAC16", "parameters": {"A_REG": "1", "B_REG": "0"}}
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "n.json"
        >>> _ = path.write_text(json.dumps({"modules": {"top": {"cells": {"m": cell}}}}))
        >>> dsp_registration(path)
        (1, False)
    """
    design = json.loads(Path(netlist_json).read_text())
    cells = [cell for module in design.get("modules", {}).values() for cell in module.get("cells", {}).values()
             if cell.get("type") == "SB_MAC16"]

    def value(text) -> int:
        return int(text, 2) if isinstance(text, str) else int(text)

    registered = all(value(cell["parameters"].get(name, "0")) == want
                     for cell in cells for name, want in REGISTERED_DSP.items())
    return len(cells), bool(cells) and registered
