"""A read-only or full disk gets one line from the command, never a traceback, and leaves the folder sound
(issue 16). Both are real file systems: a tmpfs mounted read-only, and one too small for the results.

Mounting needs root (``CAP_SYS_ADMIN``): elsewhere these tests skip with that message, and in CI
(``SC_NEUROCORE_REQUIRE_TOOLS=1``, which runs as root) the skip is a failure.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import REQUIRE_TOOLS

from .test_resume_key import spikes


@contextlib.contextmanager
def tmpfs(folder: Path, size: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    why = None
    if os.geteuid() != 0:
        why = "mounting a tmpfs needs root"
    else:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                                 capture_output=True, text=True, check=False)
        if mounted.returncode != 0:
            why = f"mount -t tmpfs failed: {mounted.stderr.strip()}"
    if why is not None:
        message = f"{why}; run these tests as root (CI does)"
        if REQUIRE_TOOLS:
            pytest.fail(f"{message} (SC_NEUROCORE_REQUIRE_TOOLS=1 turns this skip into a failure)")
        pytest.skip(message)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def command(out: Path, data: Path, capsys) -> tuple[int, str]:
    from sc_neurocore.cli import main

    status = main(["explain-dataset", "--model", "tests.reliability.test_resume_key:network", "--dataset", str(data),
                   "--method", "saliency", "--out", str(out), "--batch-size", "4", "--shard-size", "8",
                   "--no-progress"])
    return status, capsys.readouterr().err.strip()


def test_a_read_only_folder_gets_one_line(tmp_path, capsys):
    data = tmp_path / "spikes.npz"
    np.savez(data, spikes=spikes().numpy())
    with tmpfs(tmp_path / "ro", "1m") as mount:
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        status, err = command(mount / "out", data, capsys)
        assert status == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert "error: out: cannot write" in err and "Read-only file system [errno 30]" in err, err
        assert not any(mount.iterdir())


def test_a_full_disk_gets_one_line_keeps_every_whole_shard_and_resumes(tmp_path, capsys):
    data = tmp_path / "spikes.npz"
    np.savez(data, spikes=spikes().numpy())
    with tmpfs(tmp_path / "full", "64k") as mount:  # a saliency shard is ~4 KiB of scores: a few fit
        big = np.tile(spikes().numpy(), (8, 1, 1))
        np.savez(data, spikes=big)  # 192 samples: 24 shards, far more than 64 KiB of results
        status, err = command(mount / "out", data, capsys)
        assert status == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert "error: out: cannot write" in err and "No space left on device [errno 28]" in err, err
        out = mount / "out"
        shards = sorted(p.name for p in out.glob("shard-*.npz"))
        assert shards and not (out / "manifest.json").exists()
        assert not list(out.glob(".*.tmp"))  # no half-written file is left behind
        for name in shards:  # every shard on disk is whole: its receipt is there and its checksum matches
            receipt = out / name.replace(".npz", ".json")
            if receipt.exists():
                from sc_neurocore.distributed.shards import sha256_file

                assert __import__("json").loads(receipt.read_text())["sha256"] == sha256_file(out / name)
        kept = len(list(out.glob("shard-*.json")))
        subprocess.run(["mount", "-o", "remount,size=4m", str(mount)], check=True)  # space freed
        status, err = command(out, data, capsys)
        assert status == 0, err
        manifest = __import__("json").loads((out / "manifest.json").read_text())
        assert manifest["summary"]["skipped_shards"] == kept and len(manifest["shards"]) == 24
