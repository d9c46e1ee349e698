"""What to install when an optional part is missing: the one place that writes install hints.

The distribution is called `spikexplain` on PyPI (the name `sc-neurocore` there belongs to an unrelated
project); the import name stays `sc_neurocore`. Every error about a missing extra or a missing FPGA tool
is written here, so the commands it names are right for both ways of installing: from PyPI
(`pip install 'spikexplain[snntorch]'`) and from a source checkout (`pip install -e '.[snntorch]'`).
"""

from __future__ import annotations

#: The PyPI distribution name (`pip install spikexplain`); the import name is `sc_neurocore`.
DISTRIBUTION = "spikexplain"

#: Extras declared in pyproject.toml, and what each brings.
EXTRAS = {
    "snntorch": "snnTorch",
    "norse": "Norse",
    "nir": "NIR",
    "spikingjelly": "SpikingJelly",
    "fast": "numba, for the event engine's compiled kernels",
    "fpga": "migen, LiteX and litex-boards",
    "viz": "matplotlib",
    "data": "scikit-learn and safetensors",
    "docs": "mkdocs, mkdocstrings and the notebook renderer",
    "dev": "the test, lint and docs tools",
    "all": "every optional part",
}

#: The open FPGA tools (Debian / Ubuntu package names).
TOOLCHAIN_PACKAGES = ("yosys", "nextpnr-ice40", "fpga-icestorm", "iverilog", "verilator")


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message says which extra brings it."""


class MissingToolError(FileNotFoundError):
    """An FPGA tool is not on `PATH`; the message says how to install the toolchain."""


def install_hint(extra: str) -> str:
    """The command that installs an extra, for a PyPI install and for a source checkout.

    Args:
        extra: one of `EXTRAS`.

    Returns:
        One line naming both commands.

    Raises:
        ValueError: `extra` is not an extra of this project.

    Example:
        >>> install_hint("viz")
        "pip install 'spikexplain[viz]' (from a source checkout: pip install -e '.[viz]')"
    """
    if extra not in EXTRAS:
        raise ValueError(f"extra: expected one of {sorted(EXTRAS)}, got {extra!r}")
    return f"pip install '{DISTRIBUTION}[{extra}]' (from a source checkout: pip install -e '.[{extra}]')"


def missing_extra(needs: str, extra: str) -> MissingExtraError:
    """An `ImportError` that says what is missing and how to install it; raise it `from` the original error.

    Args:
        needs: what needs the extra, as a clause (`"sc_neurocore.plot needs matplotlib"`).
        extra: the extra that provides it.

    Returns:
        The error (not raised, so that the caller's `raise ... from error` keeps the cause).

    Example:
        >>> str(missing_extra("the snnTorch adapter needs snnTorch", "snntorch"))
        "the snnTorch adapter needs snnTorch; install it with: pip install 'spikexplain[snntorch]' (from a source checkout: pip install -e '.[snntorch]')"
    """
    return MissingExtraError(f"{needs}; install it with: {install_hint(extra)}")


def toolchain_hint() -> str:
    """How to install the open FPGA toolchain, without assuming a source checkout.

    Example:
        >>> toolchain_hint().startswith("sudo apt-get install yosys nextpnr-ice40")
        True
    """
    return (
        f"sudo apt-get install {' '.join(TOOLCHAIN_PACKAGES)} (Debian / Ubuntu; from a source checkout: "
        "sudo bash scripts/install-toolchain.sh)"
    )


def missing_tool(tool: str) -> MissingToolError:
    """A `FileNotFoundError` for an FPGA tool that is not on `PATH`, with the command that installs it.

    Example:
        >>> str(missing_tool("yosys")).split(";")[0]
        'yosys is not installed (not on PATH)'
    """
    return MissingToolError(f"{tool} is not installed (not on PATH); install the toolchain with: {toolchain_hint()}")
