"""One writer per output folder (issue 16, item 2): a second live run refuses in one line, a dead run's lock
is taken over, and a folder changed behind the lock's back gets no manifest."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from sc_neurocore.distributed import FolderBusyError, explain_dataset, folder_lock, load_explanations
from sc_neurocore.distributed import lock as lock_module

from .test_resume_key import network, spikes

ROOT = Path(__file__).resolve().parents[2]

HOLDER = textwrap.dedent("""
    import sys, time
    from sc_neurocore.distributed import folder_lock
    with folder_lock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(120)
""")


def hold_lock_in_another_process(folder: Path) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_second_concurrent_run_refuses_in_one_line_and_a_killed_holder_leaves_no_lock(tmp_path, capsys):
    from sc_neurocore.cli import main

    out = tmp_path / "out"
    out.mkdir()
    data = tmp_path / "spikes.npz"
    np.savez(data, spikes=spikes().numpy())
    holder = hold_lock_in_another_process(out)
    try:
        with pytest.raises(FolderBusyError, match=rf"out_dir: .* being written by another run \(pid {holder.pid} on "):
            explain_dataset("saliency", network(), TensorDataset(spikes()), out, progress=False)
        status = main(["explain-dataset", "--model", "tests.reliability.test_resume_key:network", "--dataset",
                       str(data), "--method", "saliency", "--out", str(out), "--no-progress"])
        err = capsys.readouterr().err.strip()
        assert status == 2 and len(err.splitlines()) == 1 and f"pid {holder.pid}" in err, err
        assert not list(out.glob("shard-*"))  # the refused run wrote nothing
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The holder died without unlocking: its lock file is still there, but the kernel dropped the lock.
    assert (out / lock_module.LOCK_NAME).exists()
    summary = explain_dataset("saliency", network(), TensorDataset(spikes()), out, batch_size=4, shard_size=8,
                              progress=False)
    assert summary.explained_shards == 3


def test_without_flock_an_exclusive_lock_file_is_used_and_a_dead_holders_is_stale(tmp_path, monkeypatch):
    import fcntl

    def no_flock(*args):
        raise OSError(38, "Function not implemented")  # ENOSYS, as on some network file systems

    monkeypatch.setattr(fcntl, "flock", no_flock)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    import json
    import socket

    (tmp_path / lock_module.LOCK_NAME).write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname(),
                                                              "since": "earlier"}))
    # The dead process's lock is recognised as stale and taken over; a second taker is refused.
    with folder_lock(tmp_path), pytest.raises(FolderBusyError, match=f"pid {os.getpid()}"), folder_lock(tmp_path):
        pass
    assert not (tmp_path / lock_module.LOCK_NAME).exists()
    (tmp_path / lock_module.LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "another-host", "since": "now"}))
    with pytest.raises(FolderBusyError, match="pid 1 on another-host"), folder_lock(tmp_path):
        pass  # another host's lock is never assumed dead


def test_the_ranks_of_one_job_are_one_writer_and_the_lock_is_released(tmp_path):
    explain_dataset("saliency", network(), TensorDataset(spikes()), tmp_path, batch_size=4, shard_size=8,
                    progress=False)
    with folder_lock(tmp_path):  # released when the run returned
        pass


def test_a_shard_changed_by_another_writer_during_the_run_means_no_manifest(tmp_path, monkeypatch):
    import sc_neurocore.distributed.run as run_module

    original = run_module._explain_shards

    def meanwhile_another_run_rewrites_shard_0(*args, **kwargs):
        written = original(*args, **kwargs)
        receipt = tmp_path / "shard-00000.json"
        receipt.write_text(receipt.read_text().replace(written[0]["run_id"], "0" * 32))
        return written

    monkeypatch.setattr(run_module, "_explain_shards", meanwhile_another_run_rewrites_shard_0)
    with pytest.raises(RuntimeError, match="shard-00000.npz .* was changed by another run"):
        explain_dataset("saliency", network(), TensorDataset(spikes()), tmp_path, batch_size=4, shard_size=8,
                        progress=False)
    assert not (tmp_path / "manifest.json").exists()
    monkeypatch.setattr(run_module, "_explain_shards", original)
    explain_dataset("saliency", network(), TensorDataset(spikes()), tmp_path, batch_size=4, shard_size=8,
                    progress=False)
    assert load_explanations(tmp_path).scores.shape == (24, 10, 12) and torch.isfinite(
        load_explanations(tmp_path).scores).all()
