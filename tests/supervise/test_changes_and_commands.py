"""Spec changes (on_change) and operator commands (start, stop, restart)."""

from __future__ import annotations

import pytest
from supervise_fakes import SupervisorRig, guest

from reconciler.spec import GuestSpec
from reconciler.supervise import CommandRefused


def test_on_change_restart_stops_gracefully_then_boots_the_new_spec() -> None:
    rig = SupervisorRig(guest(cpus=1))
    pid = rig.boot_to_running()
    rig.sup.desire(guest(cpus=4))
    assert rig.ops.calls[1:] == [
        (rig.clock.now, "signal-SIGTERM", pid),
        (rig.clock.now, "destroy", None),
        (rig.clock.now, "spawn", rig.ops.calls[-1][2]),
    ]
    assert [s.cpus for s in rig.prepare.specs] == [1, 4]
    assert rig.state() == "starting"


def test_on_change_next_boot_keeps_running_until_the_guest_reboots() -> None:
    rig = SupervisorRig(guest(cpus=1))
    rig.boot_to_running()
    rig.sup.desire(guest(cpus=4, on_change="next-boot"))
    rig.clock.advance(3600)
    rig.sup.poll()
    assert rig.ops.names() == ["spawn"]
    assert rig.state() == "running"
    rig.ops.end("bhyve", 0)
    rig.sup.poll()
    # The new shape needs a fresh VM; an unchanged reboot keeps it (see the next test).
    assert rig.ops.names() == ["spawn", "destroy", "spawn"]
    assert [s.cpus for s in rig.prepare.specs] == [1, 4]


def test_unchanged_spec_reboot_keeps_the_vm_after_a_next_boot_edit_is_applied() -> None:
    rig = SupervisorRig(guest(cpus=1))
    rig.boot_to_running()
    rig.sup.desire(guest(cpus=4, on_change="next-boot"))
    rig.ops.end("bhyve", 0)
    rig.sup.poll()
    rig.boot_to_running()
    rig.ops.end("bhyve", 0)
    rig.sup.poll()
    assert rig.ops.names() == ["spawn", "destroy", "spawn", "spawn"]


@pytest.mark.parametrize(
    "changed",
    [
        guest(stop_timeout=5.0),
        guest(restart="always"),
        guest(order=3),
        guest(on_change="next-boot"),
        guest(source="/etc/x.toml"),
    ],
)
def test_policy_only_changes_do_not_restart(changed: GuestSpec) -> None:
    rig = SupervisorRig(guest())
    rig.boot_to_running()
    rig.sup.desire(changed)
    assert rig.ops.names() == ["spawn"]
    assert rig.state() == "running"


def test_policy_change_applies_to_the_next_exit() -> None:
    rig = SupervisorRig(guest())
    rig.boot_to_running()
    rig.sup.desire(guest(restart="always"))
    rig.ops.end("bhyve", 1)
    rig.sup.poll()
    assert rig.ops.names() == ["spawn", "destroy", "spawn"]


def test_same_spec_again_changes_nothing() -> None:
    rig = SupervisorRig(guest())
    rig.boot_to_running()
    rig.sup.desire(guest())
    rig.sup.desire(guest())
    assert rig.ops.names() == ["spawn"]


def test_stop_holds_until_start() -> None:
    rig = SupervisorRig(guest())
    rig.boot_to_running()
    rig.sup.stop()
    rig.sup.desire(guest())  # the periodic resync hands the same file again
    rig.clock.advance(3600)
    rig.sup.poll()
    assert rig.state() == "held"
    rig.sup.start()
    assert rig.state() == "starting"
    assert rig.ops.names() == ["spawn", "signal-SIGTERM", "destroy", "spawn"]


def test_a_changed_file_releases_a_hold() -> None:
    rig = SupervisorRig(guest())
    rig.boot_to_running()
    rig.sup.stop()
    rig.sup.desire(guest(memory="1G"))
    assert rig.state() == "starting"
    assert rig.prepare.specs[-1].memory == "1G"


def test_start_boots_a_powered_off_guest() -> None:
    rig = SupervisorRig(guest())
    rig.boot_to_running()
    rig.ops.end("bhyve", 1)
    rig.sup.poll()
    assert rig.state() == "powered-off"
    rig.sup.start()
    assert rig.state() == "starting"


def test_start_boots_a_crash_looping_guest_now_and_forgives_its_crashes() -> None:
    rig = SupervisorRig(guest())
    rig.boot_to_running()
    for _ in range(3):
        rig.ops.end("bhyve", 4)
        rig.sup.poll()
        restart_at = rig.sup.snapshot().next_restart_at
        assert restart_at is not None
        rig.clock.now = restart_at
        rig.boot_to_running()
    rig.ops.end("bhyve", 4)
    rig.sup.poll()
    assert rig.sup.snapshot().next_restart_at == rig.clock.now + 8.0
    rig.sup.start()
    assert rig.state() == "starting"
    rig.boot_to_running()
    rig.ops.end("bhyve", 4)
    rig.sup.poll()
    assert rig.sup.snapshot().next_restart_at == rig.clock.now + 1.0


def test_start_boots_a_guest_in_error() -> None:
    rig = SupervisorRig(guest(restart="never"))
    rig.boot_to_running()
    rig.ops.end("bhyve", 4)
    rig.sup.poll()
    assert rig.state() == "error"
    rig.sup.start()
    assert rig.state() == "starting"


def test_stop_cancels_a_pending_crash_restart() -> None:
    rig = SupervisorRig(guest())
    rig.boot_to_running()
    rig.ops.end("bhyve", 4)
    rig.sup.poll()
    rig.sup.stop()
    rig.clock.advance(60)
    rig.sup.poll()
    assert rig.state() == "held"
    assert rig.ops.names() == ["spawn", "destroy"]
    assert rig.sup.next_deadline() is None


def test_start_while_running_does_nothing() -> None:
    rig = SupervisorRig(guest())
    rig.boot_to_running()
    rig.sup.start()
    assert rig.ops.names() == ["spawn"]


def test_start_during_a_stop_boots_once_the_stop_ends() -> None:
    rig = SupervisorRig(guest())
    rig.boot_to_running()
    rig.ops.acpi = False
    rig.sup.stop()
    rig.sup.start()
    assert rig.state() == "stopping"
    rig.clock.advance(30)
    rig.sup.poll()
    rig.clock.advance(1)
    rig.sup.poll()
    assert rig.ops.names() == ["spawn", "signal-SIGTERM", "force-poweroff", "destroy", "spawn"]


def test_restart_stops_gracefully_then_boots() -> None:
    rig = SupervisorRig(guest())
    rig.boot_to_running()
    rig.sup.restart()
    assert rig.ops.names() == ["spawn", "signal-SIGTERM", "destroy", "spawn"]
    assert rig.sup.snapshot().boots == 2


def test_start_and_restart_refuse_a_guest_whose_file_says_stopped() -> None:
    rig = SupervisorRig(guest(state="stopped"))
    rig.sup.poll()
    with pytest.raises(CommandRefused, match="stopped"):
        rig.sup.start()
    with pytest.raises(CommandRefused, match="stopped"):
        rig.sup.restart()
    assert rig.ops.names() == []


def test_commands_refuse_a_removed_guest() -> None:
    rig = SupervisorRig(guest())
    rig.boot_to_running()
    rig.ops.end("bhyve", 1)
    rig.sup.poll()
    rig.sup.desire(None)
    with pytest.raises(CommandRefused, match="gone"):
        rig.sup.start()
