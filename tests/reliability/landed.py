"""Bad-input cases for entry points that other parts of the project add (adapters, CLI subcommands,
FPGA tools). Each group is listed only when its module is present in the checkout."""

from __future__ import annotations


def cases() -> list:
    return []
