"""Atomic writes: all or nothing, and published with the permissions a plain open() would give."""

import os
import stat

import pytest

from sc_neurocore.atomic import atomic_path, atomic_write


def test_complete_write_replaces_the_file(tmp_path):
    target = tmp_path / "report.txt"
    target.write_text("old")
    with atomic_write(target) as handle:
        handle.write("new")
        assert target.read_text() == "old"  # not published before the block ends
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["report.txt"]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_interrupted_write_leaves_the_old_file(tmp_path, error):
    target = tmp_path / "weights.bin"
    target.write_bytes(b"old")
    with pytest.raises(error):
        with atomic_write(target, "wb") as handle:
            handle.write(b"partial")
            raise error()
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["weights.bin"]


def test_permissions_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        with atomic_path(tmp_path / "shard.npz") as path:
            path.write_bytes(b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "shard.npz").stat().st_mode) == 0o640


def test_missing_folder_and_bad_mode(tmp_path):
    with pytest.raises(FileNotFoundError, match="path"):
        with atomic_write(tmp_path / "nope" / "file.txt"):
            pass
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(tmp_path / "file.txt", "a"):
            pass
