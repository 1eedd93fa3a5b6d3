"""A description that is not UTF-8 on any interface (reference §8.11) does not crash the daemon:
under daemon(8) -r that would be a crash loop, passes after passes."""

from __future__ import annotations

from daemon_harness import Harness, guest_toml

RAW = b"vm \xe9t\xe9 \xff"


def test_the_daemon_reads_a_description_that_is_not_utf8(harness: Harness) -> None:
    harness.put("vm1", guest_toml("vm1", tap="tap0"))
    daemon = harness.start()
    harness.wait_running("vm1")
    done = harness.sim.run(
        ["ifconfig", "tap0", "description", RAW.decode("utf-8", "surrogateescape")]
    )
    assert done.returncode == 0, done.stderr
    observed = harness.observations()

    harness.put("vm2", guest_toml("vm2", tap="tap1"))  # a pass: observe, plan, apply

    harness.wait_running("vm2")
    assert harness.observations() > observed
    assert daemon.poll() is None, harness.log_text()
    assert not harness.events("host.observe_failed")
    assert harness.sim.interfaces()["bridge0"].members == ("tap1", "tap0", "igb0")
