"""Shared test configuration.

Tests that need an external tool (the FPGA toolchain, a framework extra) ask for it through
:func:`require_tool` / :func:`require_module`: on a user's machine without it they skip with the
install command; in CI (``SC_NEUROCORE_REQUIRE_TOOLS=1``, set by ``.ci/run``) they fail instead.
"""

from __future__ import annotations

import importlib
import os
import shutil

import pytest
import torch

from sc_neurocore.extras import install_hint, toolchain_hint

REQUIRE_TOOLS = os.environ.get("SC_NEUROCORE_REQUIRE_TOOLS") == "1"

# Small per-step ops run fastest single-threaded on a loaded 2-core machine, and results must not depend
# on the thread count.
torch.set_num_threads(1)


def _missing(what: str, how: str) -> None:
    message = f"{what} is not installed; install it with: {how}"
    if REQUIRE_TOOLS:
        pytest.fail(f"{message} (SC_NEUROCORE_REQUIRE_TOOLS=1 turns this skip into a failure)")
    pytest.skip(message)


def require_tool(*names: str) -> None:
    """Skip (or fail in CI) unless every command in ``names`` is on PATH."""
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        _missing(", ".join(missing), toolchain_hint())


def require_module(module: str, extra: str):
    """Import ``module`` or skip (fail in CI) with the pip extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        _missing(f"the Python package {module!r}", install_hint(extra))


@pytest.fixture(autouse=True)
def _incremental_engine_for_every_plan(monkeypatch):
    """The tests' networks are small, so ``execute`` would send most of their plans to the generic path
    (``SMALL_PLAN_MACS``); both paths give the same outputs, and the tests exist to check exactly that, so
    here every compilable CPU plan takes the incremental path. ``test_incremental.py`` checks the threshold
    itself with its real value."""
    from sc_neurocore import engine

    monkeypatch.setattr(engine, "SMALL_PLAN_MACS", 0)


@pytest.fixture
def chunks_of_any_size(monkeypatch):
    """Let the engine cut chunks down to one row, below the workable minimum it raises small budgets to
    (`sc_neurocore.engine.budget.MAX_OVERHEAD`), for tests of chunking itself on small problems."""
    import math

    from sc_neurocore.engine import budget

    monkeypatch.setattr(budget, "MAX_OVERHEAD", math.inf)
