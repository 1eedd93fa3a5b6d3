"""daemon(8) on 13.0-13.2 forwards SIGTERM and exits at once (reference §8.5): the reconciler's
output pipe loses its reader just as it starts stopping the guests. Losing it must neither kill
the daemon nor interrupt the stop."""

from __future__ import annotations

import signal
import subprocess

from daemon_harness import Harness, guest_toml


def test_a_daemon_whose_output_closes_as_sigterm_arrives_stops_every_guest(
    harness: Harness,
) -> None:
    for name in ("vm1", "vm2"):
        harness.put(name, guest_toml(name))
    proc = subprocess.Popen(
        [*harness.base_argv(), "run", "--log-format", "json"],
        stdout=subprocess.PIPE,  # daemon(8) -S reads this pipe and sends it to syslog
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    harness.daemons.append(proc)
    harness.wait_running("vm1")
    harness.wait_running("vm2")
    assert proc.stdout is not None

    proc.stdout.close()  # daemon(8) is gone: nobody reads the reconciler's output any more
    proc.send_signal(signal.SIGTERM)

    assert proc.wait(timeout=30) == 0
    assert harness.sim.vms() == frozenset()
    assert harness.bhyve_processes("vm1") == [] and harness.bhyve_processes("vm2") == []
    assert all(row.state == "stopped" for row in (harness.status() or ()).guests)  # type: ignore[union-attr]
