"""Readouts, as the adapters offer them: the definitions live with the model graph
(`sc_neurocore.graph.readout`), which every executor shares."""

from __future__ import annotations

from ..graph.readout import MEMBRANE_READOUTS, READOUTS, apply_readout, check_readout

__all__ = ["MEMBRANE_READOUTS", "READOUTS", "apply_readout", "check_readout"]
