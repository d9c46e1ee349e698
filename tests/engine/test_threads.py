"""The thread policy for the incremental executor's small per-step ops."""

from __future__ import annotations

import pytest
import torch

from sc_neurocore.engine.threads import (
    SMALL_OP_ELEMENTS,
    STEP_BLOCK_ELEMENTS,
    THREADS_ENV,
    step_block_rows,
    thread_policy,
    threads_for,
)


def test_small_cpu_ops_run_single_threaded_large_ones_untouched(monkeypatch):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    assert threads_for(SMALL_OP_ELEMENTS - 1) == 1
    assert threads_for(SMALL_OP_ELEMENTS) is None
    assert threads_for(10, device="cuda") is None  # GPU kernels do not use the CPU thread pool


@pytest.mark.parametrize("value, expected", [("3", 3), ("0", None), ("", 1)])
def test_environment_override(monkeypatch, value, expected):
    monkeypatch.setenv(THREADS_ENV, value)
    assert threads_for(10) == expected


@pytest.mark.parametrize("value", ["two", "-1", "1.5"])
def test_bad_environment_value_names_the_variable(monkeypatch, value):
    monkeypatch.setenv(THREADS_ENV, value)
    with pytest.raises(ValueError, match=THREADS_ENV):
        threads_for(10)


def test_policy_sets_and_restores_the_thread_count(monkeypatch):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with thread_policy(100) as inside:
            assert inside == 1 and torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError, match="boom"), thread_policy(100):
            raise RuntimeError("boom")
        assert torch.get_num_threads() == 2  # restored when the block raises too
        with thread_policy(SMALL_OP_ELEMENTS * 4) as inside:
            assert inside == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)


def test_step_blocks_stay_under_the_element_limit():
    for width in (1, 10, 128, 256, 1000, STEP_BLOCK_ELEMENTS * 2):
        rows = step_block_rows(width)
        assert rows >= 1
        assert rows * width <= STEP_BLOCK_ELEMENTS or rows == 1
    assert step_block_rows(128, device="cuda") > 10**9
