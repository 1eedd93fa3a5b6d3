"""Status 1 decided with context (reference §8.2, §8.3), on a fake clock with fake ops: a
loader that could not create its VM and a bhyve whose VM was destroyed under it are failures,
retried with backoff and shown as such; a menu quit and a power-off still stop the guest."""

from __future__ import annotations

from structlog.testing import capture_logs
from supervise_fakes import SupervisorRig, guest

from reconciler.policy import ExitStatus
from reconciler.supervise import BootRecord

ENOMEM = b"vm_create: Cannot allocate memory\n"


def test_a_loader_that_cannot_create_its_vm_is_retried_with_backoff() -> None:
    rig = SupervisorRig(guest())
    rig.sup.poll()
    rig.ops.run_loader()
    rig.ops.vm = False  # vm_create failed: there is no VM
    rig.ops.output = b"Consoles: userboot\n" + ENOMEM
    rig.ops.end("loader", 1)
    with capture_logs() as logs:
        rig.sup.poll()
    snap = rig.sup.snapshot()
    assert snap.state == "crash-loop"
    assert (snap.last_exit, snap.last_exit_meaning) == (1, "loader-error")
    assert snap.last_error == (
        "loader exited with status 1 (loader-error): vm_create: Cannot allocate memory"
    )
    assert snap.next_restart_at == rig.clock.now + 1.0
    exited = next(e for e in logs if e["event"] == "guest.exited")
    assert exited["meaning"] == "loader-error"
    assert exited["reason"] == "vm_create: Cannot allocate memory"

    rig.clock.advance(1.0)
    rig.sup.poll()
    assert rig.ops.names().count("spawn") == 2
    rig.ops.run_loader()
    rig.ops.run_bhyve()
    rig.sup.poll()
    assert rig.sup.state == "running"
    assert rig.sup.snapshot().last_error is None


def test_a_menu_quit_still_stops_the_guest() -> None:
    rig = SupervisorRig(guest())
    rig.sup.poll()
    rig.ops.run_loader()
    rig.ops.output = b"Consoles: userboot\n\nType '?' for a list of commands.\nOK quit\n"
    rig.ops.end("loader", 1)
    rig.sup.poll()
    rig.clock.advance(3600)
    rig.sup.poll()
    snap = rig.sup.snapshot()
    assert (snap.state, snap.last_exit_meaning, snap.last_error) == (
        "powered-off",
        "loader-quit",
        None,
    )


def test_a_vm_destroyed_from_outside_is_a_failure_not_a_power_off() -> None:
    rig = SupervisorRig(guest())
    rig.boot_to_running()
    rig.ops.vm = False  # bhyvectl --destroy behind the daemon's back
    rig.ops.output = b"vm_run error -1, errno 6\n"
    rig.ops.end("bhyve", 1)
    rig.sup.poll()
    snap = rig.sup.snapshot()
    assert (snap.state, snap.last_exit, snap.last_exit_meaning) == ("crash-loop", 1, "vm-destroyed")
    assert snap.last_error == (
        "bhyve exited with status 1 (vm-destroyed): its VM was destroyed under it; "
        "bhyve said: vm_run error -1, errno 6"
    )
    rig.clock.advance(1.0)
    rig.sup.poll()
    assert rig.ops.names() == ["spawn", "spawn"]  # no VM to destroy: booted again


def test_a_guest_power_off_keeps_its_vm_until_we_destroy_it() -> None:
    rig = SupervisorRig(guest())
    rig.boot_to_running()
    rig.ops.end("bhyve", 1)  # the VM stays, suspended, as after an ACPI power-off
    rig.sup.poll()
    assert rig.sup.state == "powered-off"
    assert rig.ops.names() == ["spawn", "destroy"]


def test_our_own_stop_is_a_stop_whatever_bhyve_says() -> None:
    rig = SupervisorRig(guest())
    rig.boot_to_running()
    rig.ops.acpi = False
    rig.sup.stop()
    rig.ops.vm = False
    rig.ops.output = b"vm_run error -1, errno 6\n"
    rig.ops.end("bhyve", 1)
    rig.sup.poll()
    snap = rig.sup.snapshot()
    assert (snap.state, snap.last_exit_meaning) == ("held", "poweroff")


def test_an_exit_found_in_an_old_record_does_not_read_the_vm_now() -> None:
    # The guest powered off while no daemon ran; its VM may have been destroyed since (by a
    # person, by vm-bhyve): only what bhyve printed can say it failed.
    rig = SupervisorRig(None)
    rig.ops.set_record(BootRecord(shim_pid=7, exit=ExitStatus.from_shell("bhyve", 1)), vm=False)
    adopted = SupervisorRig(guest(), ops=rig.ops, clock=rig.clock)
    assert adopted.sup.state == "powered-off"
    assert adopted.sup.snapshot().last_exit_meaning == "poweroff"


def test_an_old_record_with_a_printed_failure_is_retried() -> None:
    rig = SupervisorRig(None)
    rig.ops.set_record(BootRecord(shim_pid=7, exit=ExitStatus.from_shell("loader", 1)), vm=False)
    rig.ops.output = ENOMEM
    adopted = SupervisorRig(guest(), ops=rig.ops, clock=rig.clock)
    assert adopted.sup.state == "crash-loop"
    assert adopted.sup.snapshot().last_exit_meaning == "loader-error"
