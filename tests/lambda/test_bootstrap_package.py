"""The installed Lambda plugin carries the bootstrap (docs/bootstrap.md) for both function architectures, as
static Linux executables that run in any image."""

from __future__ import annotations

import platform
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from sockerless_lambda.bootstrap import BOOTSTRAP_FILES, binary_path

ROOT = Path(__file__).resolve().parents[2]

# ELF e_machine values (the System V ABI's registry).
MACHINES = {"x86_64": 0x3E, "arm64": 0xB7}
PT_DYNAMIC, PT_INTERP = 2, 3


def _elf(path: Path) -> tuple[int, int, list[int]]:
    """The file type, machine and program header types of a 64-bit little-endian ELF file."""
    data = path.read_bytes()
    assert data[:4] == b"\x7fELF", f"{path} is not an ELF file"
    assert data[4] == 2 and data[5] == 1, f"{path} is not 64-bit little-endian"
    e_type, e_machine = struct.unpack_from("<HH", data, 16)
    (e_phoff,) = struct.unpack_from("<Q", data, 32)
    e_phentsize, e_phnum = struct.unpack_from("<HH", data, 54)
    types = [struct.unpack_from("<I", data, e_phoff + i * e_phentsize)[0] for i in range(e_phnum)]
    return e_type, e_machine, types


@pytest.mark.parametrize("architecture", sorted(BOOTSTRAP_FILES))
def test_the_plugin_holds_a_static_bootstrap_for_each_architecture(architecture: str) -> None:
    path = binary_path(architecture)

    e_type, e_machine, segments = _elf(path)

    assert e_machine == MACHINES[architecture]
    assert e_type == 2, "an executable (ET_EXEC), not a shared object"
    assert PT_INTERP not in segments, "no program interpreter: static"
    assert PT_DYNAMIC not in segments, "no dynamic section: static"


@pytest.mark.skipif(platform.machine() != "x86_64", reason="runs the amd64 binary")
def test_the_amd64_bootstrap_runs() -> None:
    answer = subprocess.run(
        [str(binary_path("x86_64")), "--version"], capture_output=True, text=True, check=True, timeout=30
    )

    assert answer.stdout.startswith("sockerless-bootstrap ")
    assert "payload v1" in answer.stdout


def test_an_unknown_architecture_is_refused() -> None:
    with pytest.raises(ValueError, match="riscv64"):
        binary_path("riscv64")


def test_a_wheel_of_the_plugin_carries_both_bootstraps(tmp_path: Path) -> None:
    """The package data, not only the source tree of an editable install, holds the binaries."""
    # Built from a copy, so the build leaves nothing in the work tree.
    source = tmp_path / "source"
    leftovers = shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    shutil.copytree(ROOT / "backends" / "lambda", source, ignore=leftovers)
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("sockerless_backend_lambda-*.whl")

    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        modes = {info.filename: info.external_attr >> 16 for info in archive.infolist()}

    for name in BOOTSTRAP_FILES.values():
        member = f"sockerless_lambda/bootstrap/{name}"
        assert member in names
        assert modes[member] & 0o111, f"{member} is not executable in the wheel"
