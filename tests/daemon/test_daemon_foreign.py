"""A guest someone else already runs (vmrun.sh, say): the daemon never starts a second bhyve
for it nor destroys its VM (DESIGN.md rule 4), and takes it over once it stops."""

from __future__ import annotations

import signal
import subprocess

from daemon_harness import Harness, guest_toml


def test_a_guest_run_by_vmrun_sh_is_left_alone_until_it_stops(harness: Harness) -> None:
    sim = harness.sim
    for module in ("vmm", "nmdm"):
        sim.run(["kldload", module])
    disk = sim.path("/vm/vm1/disk0.img")
    disk.parent.mkdir(parents=True)
    disk.write_bytes(b"\0" * 512)
    # What vmrun.sh would run: its loader, then the guest's tap in its own bhyve, in its own
    # session (bhyve refuses a VM no loader set up).
    loaded = sim.run(
        ["bhyveload", "-c", "/dev/nmdm-vm1.1A", "-m", "256M", "-d", "/vm/vm1/disk0.img", "vm1"]
    )
    assert loaded.returncode == 0, loaded.stderr
    outsider = subprocess.Popen(
        ["bhyve", "-c", "1", "-m", "256M", "-H", "-A", "-P", "-s", "0:0,hostbridge",
         "-s", "1:0,lpc", "-s", "2:0,virtio-net,tap0", "-s", "3:0,virtio-blk,/vm/vm1/disk0.img",
         "-l", "com1,/dev/nmdm-vm1.1A", "vm1"],
        env=sim.env(), start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        pid = sim.wait_for_bhyve("vm1")
        harness.put("vm1", guest_toml("vm1", tap="tap0"))
        harness.start()

        status = harness.wait_status(
            lambda s: any("vm1 runs outside" in e for e in s.host_errors),
            "status to report vm1 as run by someone else",
        )
        assert any(f"pid {pid}" in e for e in status.host_errors)
        assert harness.bhyve_processes("vm1") == [pid]
        assert "vm1" in sim.vms()
        ran = harness.commands_for("vm1")
        assert ["bhyvectl", "--vm=vm1", "--destroy"] not in ran
        assert [argv[0] for argv in ran if argv[0] in ("bhyveload", "bhyve")] == ["bhyve"]

        # It powers off (ACPI); the VM stays behind, as vmrun.sh's bhyve leaves it. The next
        # pass (a file event here; the periodic resync on a real host) takes the guest over.
        outsider.send_signal(signal.SIGTERM)
        assert outsider.wait(timeout=10) == 1
        harness.put("vm1", guest_toml("vm1", tap="tap0", extra="order = 1"))
        new_pid = harness.wait_running("vm1", not_pid=pid)
        assert harness.bhyve_processes("vm1") == [new_pid]
        assert ["bhyvectl", "--vm=vm1", "--destroy"] in harness.commands_for("vm1")
    finally:
        if outsider.poll() is None:
            outsider.kill()
            outsider.wait(timeout=10)
