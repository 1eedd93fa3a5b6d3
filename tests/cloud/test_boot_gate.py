"""A boot waits for the pass that makes its disks and seed ready for what it boots."""

from __future__ import annotations

from dataclasses import replace

from reconciler.bootgate import NEXT_PASS, BootGate, Wait
from reconciler.spec import Disk, GuestSpec, Lifecycle

WEB1 = GuestSpec(name="web1", disks=(Disk(path="/vm/web1.img", source="/img/x.raw"),))
PLAIN = GuestSpec(name="plain", disks=(Disk(path="/vm/plain.img"),))


def test_a_guest_with_nothing_to_prepare_never_waits() -> None:
    assert BootGate().why_wait(PLAIN) is None


def test_a_spec_no_pass_has_seen_asks_for_one() -> None:
    assert BootGate().why_wait(WEB1) == Wait(NEXT_PASS, needs_pass=True)


def test_a_guest_the_pass_made_ready_boots_and_one_it_could_not_waits_with_why() -> None:
    gate = BootGate()
    gate.note({"web1": WEB1}, frozenset(), {})
    assert gate.why_wait(WEB1) is None
    gate.note({"web1": WEB1}, frozenset(), {"web1": "the image /img/x.raw does not exist (yet)"})
    assert gate.why_wait(WEB1) == Wait("the image /img/x.raw does not exist (yet)")


def test_only_what_boots_matters() -> None:
    gate = BootGate()
    gate.note({"web1": WEB1}, frozenset(), {})
    assert gate.why_wait(replace(WEB1, lifecycle=Lifecycle(restart="always"))) is None
    grown = replace(WEB1, disks=(replace(WEB1.disks[0], size=1 << 30),))
    assert gate.why_wait(grown) == Wait(NEXT_PASS, needs_pass=True)


def test_a_running_guest_keeps_what_was_noted_for_it() -> None:
    gate = BootGate()
    gate.note({"web1": WEB1}, frozenset(), {})
    grown = replace(WEB1, disks=(replace(WEB1.disks[0], size=1 << 30),))
    # Running: its disks are not looked at, so the edit is not ready, the old spec still is.
    gate.note({"web1": grown}, frozenset({"web1"}), {})
    assert gate.why_wait(WEB1) is None
    assert gate.why_wait(grown) == Wait(NEXT_PASS, needs_pass=True)
    gate.note({"web1": grown}, frozenset(), {})  # stopped for the restart: the pass grew it
    assert gate.why_wait(grown) is None
    gate.note({}, frozenset(), {})
    assert gate.why_wait(grown) == Wait(NEXT_PASS, needs_pass=True)  # a gone guest is dropped
