"""Simulated makefs -t cd9660: a real ISO 9660 image, read back with pycdlib, and makefs's own
errors; and the price of pycdlib paid by makefs alone."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pycdlib
import pytest
from sim_helpers import Run

from reconciler.sim import SimulatedHost

SEED = "/var/db/seed/vm1"
USAGE = "usage: makefs [-t fs-type]"


@pytest.fixture
def seed(host: SimulatedHost) -> Path:
    directory = host.path(SEED)
    (directory / "scripts").mkdir(parents=True)
    (directory / "user-data").write_text("#cloud-config\nhostname: vm1\n")
    (directory / "meta-data").write_text("instance-id: vm1\n")
    (directory / "network-config").write_bytes(b"version: 2\n" * 500)
    (directory / "scripts" / "first.boot.sh").write_text("#!/bin/sh\n")
    return directory


def _read(iso: pycdlib.PyCdlib, rr_path: str) -> bytes:
    out = io.BytesIO()
    iso.get_file_from_iso_fp(out, rr_path=rr_path)
    return out.getvalue()


def test_a_rock_ridge_image_with_a_label(host: SimulatedHost, tool: Run, seed: Path) -> None:
    result = tool("makefs", "-t", "cd9660", "-o", "R,L=cidata", "/var/db/seed/vm1.iso", SEED)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    iso = pycdlib.PyCdlib()
    iso.open(str(host.path("/var/db/seed/vm1.iso")))
    try:
        # cd9660_arguments_set_string(): a label in lower case is raised to d-characters.
        assert iso.pvd.volume_identifier.rstrip() == b"CIDATA"
        assert iso.pvd.system_identifier.rstrip() == b"FreeBSD"
        assert iso.has_rock_ridge()
        assert _read(iso, "/user-data") == b"#cloud-config\nhostname: vm1\n"
        assert _read(iso, "/meta-data") == b"instance-id: vm1\n"
        assert _read(iso, "/network-config") == b"version: 2\n" * 500
        assert _read(iso, "/scripts/first.boot.sh") == b"#!/bin/sh\n"
        names = {child.file_identifier() for child in iso.list_children(iso_path="/")}
        assert {b"USER_DATA.;1", b"META_DATA.;1", b"SCRIPTS"} <= names
    finally:
        iso.close()


def test_an_existing_image_is_replaced(host: SimulatedHost, tool: Run, seed: Path) -> None:
    image = host.path("/var/db/seed/vm1.iso")
    image.write_bytes(b"not an image at all" * 1000)
    argv = ("makefs", "-t", "cd9660", "-o", "R", "-o", "label=CIDATA", str(image), SEED)
    assert tool(*argv).returncode == 0
    iso = pycdlib.PyCdlib()
    iso.open(str(image))
    assert _read(iso, "/meta-data") == b"instance-id: vm1\n"
    iso.close()


CD = ("-t", "cd9660")
ERRORS = [
    ((*CD, "/out.iso", "/nope"), "makefs: Can't stat `/nope': No such file or directory\n"),
    (("-t", "iso", "/out.iso", SEED), "makefs: Unknown fs type `iso'.\n"),
    ((*CD, "-o", "R,,L=x", "/out.iso", SEED), "makefs: Empty option\n"),
    ((*CD, "-o", "Q", "/out.iso", SEED), "makefs: Option `Q' doesn't contain a value\n" + USAGE),
    ((*CD, "-o", "foo=1", "/out.iso", SEED), "makefs: Unknown option `foo'\n" + USAGE),
    (
        (*CD, "-o", "L=" + "x" * 33, "/out.iso", SEED),
        "makefs: error: The Disk Label must be at most 32 characters long\n" + USAGE,
    ),
    (
        (*CD, "-o", "L=ci-data", "/out.iso", SEED),
        "makefs: error: The Disk Label must be composed of d-characters\n" + USAGE,
    ),
    ((*CD, "/out.iso"), USAGE),
    (
        (*CD, "/no/dir/out.iso", SEED),
        "makefs: cd9660_write_image: Can't open `/no/dir/out.iso' for writing: "
        "No such file or directory\n",
    ),
]


@pytest.mark.parametrize(("argv", "stderr"), ERRORS)
def test_errors(
    host: SimulatedHost, tool: Run, seed: Path, argv: tuple[str, ...], stderr: str
) -> None:
    result = tool("makefs", *argv)
    assert result.returncode == 1
    assert result.stderr.startswith(stderr)
    assert not host.path("/out.iso").exists()


def test_an_empty_directory_is_refused(host: SimulatedHost, tool: Run) -> None:
    host.path("/empty").mkdir()
    result = tool("makefs", "-t", "cd9660", "/out.iso", "/empty")
    assert (result.returncode, result.stderr) == (
        1,
        "makefs: cd9660_makefs: converted directory is empty. Tree conversion failed\n\n",
    )


def test_other_file_systems_are_not_pretended(tool: Run, seed: Path) -> None:
    result = tool("makefs", "-t", "ffs", "/out.img", SEED)
    assert (result.returncode, result.stderr) == (
        70,
        "makefs: -t ffs is not simulated (only cd9660 is)\n",
    )


@pytest.mark.parametrize(
    ("argv", "loaded"),
    [(["ifconfig", "-a"], False), (["makefs", *CD, "/out.iso", SEED], True)],
)
def test_only_makefs_imports_pycdlib(
    host: SimulatedHost, seed: Path, argv: list[str], loaded: bool
) -> None:
    code = (
        "import sys\n"
        "from reconciler.sim.tools import run_tool\n"
        f"run_tool({argv[0]!r}, {str(host.root)!r}, {argv[1:]!r})\n"
        "print('pycdlib' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert result.stdout == f"{loaded}\n"
