"""Simulated ps(1): this host's processes in FreeBSD's format, and nobody else's."""

from __future__ import annotations

import subprocess
from pathlib import Path

from sim_helpers import Boot, Run

from reconciler.processes import parse_ps
from reconciler.sim import SimulatedHost

# A UEFI guest needs no loader run first: bhyve boots its boot ROM (bhyverun.c).
UEFI = ("-l", "bootrom,/usr/local/share/uefi-firmware/BHYVE_UEFI.fd")


def test_a_running_guest_shows_its_bhyve_title(host: SimulatedHost, tool: Run, boot: Boot) -> None:
    assert tool("kldload", "vmm").returncode == 0
    boot("-c", "1", "-m", "256M", "-H", "-P", "-s", "0:0,hostbridge", "-s", "1:0,lpc", *UEFI, "web")
    pid = host.wait_for_bhyve("web")
    done = tool("ps", "-axww", "-o", "pid=,ppid=,args=")
    assert done.returncode == 0
    table = parse_ps(done.stdout.encode())
    assert table.bhyve_of(pid, "web")
    assert table.bhyves() == {"web": pid}
    assert not done.stdout.startswith("  PID")  # every header empty: no header line


def test_another_simulated_hosts_processes_are_not_listed(
    tmp_path: Path, tool: Run, boot: Boot, host: SimulatedHost
) -> None:
    other = SimulatedHost(tmp_path / "other").setup()
    subprocess.run(["kldload", "vmm"], env=other.env(), check=True)
    stranger = subprocess.Popen(
        ["bhyve", "-c", "1", "-m", "256M", "-s", "0:0,hostbridge", "-s", "1:0,lpc", *UEFI, "web"],
        env=other.env(),
    )
    try:
        other.wait_for_bhyve("web")
        listed = parse_ps(tool("ps", "-axww", "-o", "pid=,ppid=,args=").stdout.encode())
        assert listed.bhyves() == {}
    finally:
        stranger.kill()
        stranger.wait()


def test_headers_and_bad_keywords_follow_freebsd(tool: Run) -> None:
    assert tool("ps", "-ax", "-o", "pid,args").stdout.splitlines()[0].split() == ["PID", "ARGS"]
    bad = tool("ps", "-o", "pid=,wchan=")
    assert bad.returncode == 1
    assert "wchan: keyword not found" in bad.stderr
