"""Input checks and loaders stay within a small, fixed amount of memory (issue 16, item 5).

* The finite check of the spikes scans in chunks: it adds at most `FINITE_CHUNK` bytes, where a
  whole-input ``torch.isfinite(x).all()`` adds one byte per element (measured by `LiveBytes`).
* A gzip IDX file and a deflated ``.npz`` that inflate to more than a GiB are refused after reading a few
  bytes of them (measured by ``tracemalloc``, which sees NumPy's and Python's allocations).
"""

from __future__ import annotations

import gzip
import io
import tracemalloc
import zipfile

import numpy as np
import pytest
import torch

from sc_neurocore.inputs import FINITE_CHUNK, as_spikes, check_finite

from .memory import LiveBytes

GIB = 1 << 30


def zeros_written(handle, n_bytes: int) -> None:
    block = bytes(1 << 24)
    for _ in range(n_bytes // len(block)):
        handle.write(block)


def peak_bytes(call) -> int:
    tracemalloc.start()
    try:
        with pytest.raises(ValueError) as info:
            call()
        return tracemalloc.get_traced_memory()[1], str(info.value)
    finally:
        tracemalloc.stop()


def test_the_finite_check_adds_at_most_one_chunk():
    spikes = torch.zeros(40, 500, 1000)  # 20 M elements: a whole-input mask would be 20 MB
    tracker = LiveBytes()
    with tracker:
        checked = as_spikes(spikes)
    assert checked.spikes is spikes  # float32 is used as it is, no copy
    assert tracker.peak <= 4096, tracker.peak  # finite: one sum, a scalar
    spikes[39, 499, 999] = float("nan")  # the very last element, in the last chunk
    tracker = LiveBytes()
    with tracker, pytest.raises(ValueError, match="input_spikes: expected finite values"):
        as_spikes(spikes)
    assert tracker.peak <= 7 * FINITE_CHUNK + 4096, tracker.peak  # float32: 4 + 3 bytes per checked element
    spikes.fill_(3e38)  # finite, but its sum overflows: checked element by element, still in chunks
    tracker = LiveBytes()
    with tracker:
        as_spikes(spikes)
    assert tracker.peak <= 7 * FINITE_CHUNK + 4096, tracker.peak


def test_the_finite_check_sees_every_element_of_strided_views():
    base = torch.zeros(6, 7, 9)
    view = base.transpose(0, 2)[::2]  # non-contiguous: checked through views, never a copy
    for position in range(base.numel()):
        base.fill_(3e38)  # sums overflow: every block is checked element by element, in chunks of 5
        base.view(-1)[position] = float("nan")
        in_view = not bool(torch.isfinite(view).all())
        try:
            check_finite(view, "x", chunk=5)
            found = False
        except ValueError:
            found = True
        assert found == in_view, position


def test_an_idx_gzip_bomb_is_refused_without_inflating_it(tmp_path):
    from sc_neurocore.data.mnist import read_idx

    bomb = tmp_path / "t10k-images-idx3-ubyte.gz"
    with gzip.open(bomb, "wb", compresslevel=1) as handle:
        handle.write(bytes([0, 0, 8, 3]) + np.array([10, 28, 28], dtype=">i4").tobytes())  # says 10 images
        zeros_written(handle, GIB + (64 << 20))  # then inflates to 1.06 GiB
    assert bomb.stat().st_size < 8 << 20
    peak, message = peak_bytes(lambda: read_idx(bomb))
    assert peak < 1 << 20, peak
    assert message.startswith("path: ") and "holds more values but its header says (10, 28, 28)" in message

    claims = tmp_path / "claims.gz"
    with gzip.open(claims, "wb") as handle:  # a header claiming 3 GB of images
        handle.write(bytes([0, 0, 8, 3]) + np.array([4_000_000, 28, 28], dtype=">i4").tobytes())
    peak, message = peak_bytes(lambda: read_idx(claims))
    assert peak < 1 << 20 and "more than max_bytes" in message


def test_a_broken_gzip_or_a_non_idx_file_is_a_named_error(tmp_path):
    from sc_neurocore.data.mnist import read_idx

    truncated = tmp_path / "labels.gz"
    truncated.write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2, 3, 4, 5]))[:-12])
    with pytest.raises(ValueError, match="path: .* not a readable gzip file"):
        read_idx(truncated)
    text = tmp_path / "notes.txt"
    text.write_text("not an IDX file")
    with pytest.raises(ValueError, match="path: .* not an unsigned-byte IDX file"):
        read_idx(text)


def test_an_npz_bomb_is_refused_before_anything_is_inflated(tmp_path):
    from sc_neurocore.distributed import MAX_NPZ_BYTES, SpikeFileDataset

    bomb = tmp_path / "spikes.npz"
    n_samples = (GIB + (64 << 20)) // (250 * 1000 * 4)
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive, \
            archive.open("spikes.npy", "w", force_zip64=True) as handle:
        header = io.BytesIO()
        np.lib.format.write_array_header_2_0(header, {"descr": "<f4", "fortran_order": False,
                                                      "shape": (n_samples, 250, 1000)})
        handle.write(header.getvalue())
        zeros_written(handle, n_samples * 250 * 1000 * 4)
    assert bomb.stat().st_size < 8 << 20 and MAX_NPZ_BYTES == GIB
    peak, message = peak_bytes(lambda: SpikeFileDataset(bomb))
    assert peak < 1 << 20, peak
    assert message.startswith("dataset: ") and "more than max_bytes=1073741824" in message


def test_npz_files_that_are_damaged_or_hold_no_arrays_are_named_errors(tmp_path):
    from sc_neurocore.distributed import SpikeFileDataset

    good = tmp_path / "good.npz"
    np.savez(good, spikes=np.zeros((4, 5, 3), np.float32))
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match="dataset: .* not a readable .npz file .BadZipFile"):
        SpikeFileDataset(truncated)
    raw = tmp_path / "raw.npz"
    with zipfile.ZipFile(raw, "w") as archive:
        archive.writestr("spikes", b"\x00" * 60)  # a member that is not .npy
    with pytest.raises(ValueError, match="dataset: .* the member 'spikes' is not a .npy array"):
        SpikeFileDataset(raw)
    assert len(SpikeFileDataset(good, max_bytes=1)) == 4  # stored (uncompressed) members are not capped


def test_uncompressed_npz_spikes_are_memory_mapped_not_read(tmp_path):
    from sc_neurocore.distributed import SpikeFileDataset

    path = tmp_path / "spikes.npz"
    shape = (64, 250, 1000)  # 64 MB of float32
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive, \
            archive.open("spikes.npy", "w", force_zip64=True) as handle:
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": shape})
        handle.write(header.getvalue())
        sample = np.zeros(shape[1:], np.float32)
        for index in range(shape[0]):
            sample[index % 250, index] = 1.0  # a spike of its own in every sample
            handle.write(sample.tobytes())
            sample[index % 250, index] = 0.0
    tracemalloc.start()
    try:
        dataset = SpikeFileDataset(path)
        items = [dataset[index] for index in (0, 37, 63)]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 250 * 1000 * 4, peak  # a few samples' copies, never the 64 MB array
    for index, item in zip((0, 37, 63), items, strict=True):
        assert item.shape == (250, 1000) and float(item.sum()) == 1.0 and float(item[index % 250, index]) == 1.0
