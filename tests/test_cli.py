"""`sc-neurocore`: --version, a light --help, one-line errors for anticipated failures, tracebacks for bugs."""

import errno
import io
import subprocess
import sys
import types

import numpy as np
import pytest

from sc_neurocore import cli
from sc_neurocore.extras import DISTRIBUTION, missing_extra, missing_tool


@pytest.fixture
def fake_command(monkeypatch):
    """A subcommand `boom` whose main raises what the test puts in `raise_`."""
    module = types.ModuleType("fake_boom")
    module.raise_ = None

    def add_arguments(parser):
        parser.add_argument("--out", default="x")

    def main(args):
        raise module.raise_

    module.add_arguments, module.main = add_arguments, main
    monkeypatch.setitem(sys.modules, "fake_boom", module)
    monkeypatch.setitem(cli.SUBCOMMANDS, "boom", ("fake_boom", "raises on purpose"))
    return module


def test_version(capsys):
    from sc_neurocore import __version__

    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"sc-neurocore {__version__} (distribution {DISTRIBUTION})"


def test_help_imports_no_subcommand_and_no_torch():
    code = (
        "import sys\nfrom sc_neurocore.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('sc_neurocore')), 'torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    modules, torch_loaded = result.stdout.strip().splitlines()[-1].rsplit("] ", 1)
    assert torch_loaded == "False"
    assert len(modules.split(",")) <= 3, modules  # sc_neurocore, .cli, .extras
    assert "demo" in result.stdout and "explain-dataset" in result.stdout  # every subcommand still listed


def test_subcommand_help_imports_only_that_subcommand():
    code = (
        "import sys\nfrom sc_neurocore.cli import main\ntry:\n    main(['bench', '--help'])\nexcept SystemExit:\n"
        "    pass\nprint('sc_neurocore.fpga.cli' in sys.modules, 'sc_neurocore.demo' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "False False"
    assert "--quick" in result.stdout


@pytest.mark.parametrize(
    "error, expected",
    [
        (ValueError("samples: expected a positive int, got 0"), "samples: expected a positive int, got 0"),
        (TypeError("dataset: expected a map-style Dataset, got int"), "dataset: expected a map-style Dataset"),
        (
            FileNotFoundError(errno.ENOENT, "No such file or directory", "w.safetensors"),
            "w.safetensors: No such file or directory",
        ),
        (
            OSError(errno.EROFS, "Read-only file system", "/mnt/out/a.png"),
            "cannot write /mnt/out/a.png: the file system is read-only; choose another output folder",
        ),
        (
            OSError(errno.ENOSPC, "No space left on device", "/data/shard.npz"),
            "cannot write /data/shard.npz: the disk is full",
        ),
        (missing_extra("sc_neurocore.plot needs matplotlib", "viz"), f"pip install '{DISTRIBUTION}[viz]'"),
        (
            missing_tool("nextpnr-ice40"),
            "nextpnr-ice40 is not installed (not on PATH); install the toolchain with: sudo apt-get install",
        ),
    ],
)
def test_anticipated_failures_are_one_line(fake_command, capsys, error, expected):
    fake_command.raise_ = error
    assert cli.main(["boom"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sc-neurocore boom: error: ") and expected in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "bug",
    [
        TypeError("unsupported operand type(s) for +: 'int' and 'str'"),
        TypeError("'NoneType' object is not callable"),
        ValueError("too many values to unpack (expected 2)"),
        ImportError("cannot import name 'x' from 'y'"),  # not a missing extra: a broken install or a bug
        OSError(errno.EBADF, "Bad file descriptor"),
        KeyError("spikes"),
    ],
)
def test_bugs_keep_their_traceback(fake_command, bug):
    fake_command.raise_ = bug
    with pytest.raises(type(bug)):
        cli.main(["boom"])


def test_corrupt_dataset_file_is_one_line(tmp_path, capsys):
    archive = tmp_path / "spikes.npz"
    np.savez(archive, spikes=np.zeros((4, 5, 6), dtype=np.float32))
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    status = cli.main(
        [
            "explain-dataset",
            "--model",
            "sc_neurocore.data:pretrained_network",
            "--dataset",
            str(truncated),
            "--method",
            "attribution",
            "--out",
            str(tmp_path / "out"),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert status == 2 and "truncated.npz' is not a readable .npz file" in err and len(err.strip().splitlines()) == 1


def test_explain_dataset_takes_the_projects_own_digits(tmp_path, capsys):
    from conftest import require_module

    require_module("sklearn", "data")
    out = tmp_path / "out"
    assert (
        cli.main(
            [
                "explain-dataset",
                "--model",
                "sc_neurocore.data:pretrained_network",
                "--dataset",
                "sc_neurocore.data:load_digits",
                "--method",
                "attribution",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    from sc_neurocore import load_explanations
    from sc_neurocore.data import load_digits

    explained = load_explanations(out)
    assert explained.scores.shape[0] == len(load_digits("test").labels)


def test_overwrite_refusal_names_the_flag(tmp_path, capsys):
    from conftest import require_module

    require_module("sklearn", "data")
    arguments = [
        "explain-dataset",
        "--model",
        "sc_neurocore.data:pretrained_network",
        "--dataset",
        "sc_neurocore.data:load_digits",
        "--out",
        str(tmp_path),
        "--no-progress",
    ]
    assert cli.main([*arguments, "--method", "attribution", "--mode", "linear"]) == 0
    assert cli.main([*arguments, "--method", "attribution", "--mode", "linear", "--decay", "0.5"]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_bench_never_prints_a_negative_time():
    from sc_neurocore.bench import _seconds

    assert _seconds(0.0123) == "12.3 ms" and _seconds(2.5) == "2.50 s"
    assert _seconds(-0.0079) == "-" and _seconds(float("nan")) == "-"


def test_progress_step_draws_a_clock():
    from sc_neurocore.progress import step

    screen = io.StringIO()
    with step("placing and routing", enabled=True, file=screen):
        pass
    assert "placing and routing: 00:00" in screen.getvalue()
    quiet = io.StringIO()
    with step("placing and routing", enabled=False, file=quiet):
        pass
    assert quiet.getvalue() == ""


def test_fpga_build_shows_its_progress(tmp_path, capsys, monkeypatch):
    from conftest import require_module

    require_module("litex", "fpga")
    from sc_neurocore.fpga import build

    def fails(*args, **kwargs):
        raise build.BuildError("the icebreaker build failed (timing-strict)")

    monkeypatch.setattr(build, "build_bitstream", fails)
    monkeypatch.setenv("SC_NEUROCORE_PROGRESS", "1")
    assert cli.main(["fpga", "build", "--out", str(tmp_path)]) == 1
    assert "building the icebreaker bitstream (LiteX, yosys, nextpnr-ice40, icepack): 00:00" in capsys.readouterr().err
