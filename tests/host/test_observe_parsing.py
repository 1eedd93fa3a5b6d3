"""The driver parses each observation command's output, and re-parses only when it changed."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from reconciler.host.freebsd import FreeBSDHost
from reconciler.host.runner import DEFAULT_TIMEOUT, Result
from reconciler.ledger import Ledger

KLDSTAT = """Id Refs Address                Size Name
 1   24 0xffffffff80200000  1d345b0 kernel (/boot/kernel/kernel)
\tContains modules:
\t\t Id Name
\t\t  1 if_lo
 5    1 0xffffffff83200000   340438 vmm.ko (/boot/kernel/vmm.ko)
\tContains modules:
\t\t Id Name
\t\t543 vmm
"""
IFCONFIG = """tap0: flags=8943<UP,BROADCAST,RUNNING,PROMISC,SIMPLEX,MULTICAST> metric 0 mtu 1500
\tgroups: tap
\tOpened by PID 1660
"""


class ScriptedRunner:
    """Answers each observation command with the text a test sets."""

    def __init__(self) -> None:
        self.out = {"kldstat": KLDSTAT, "sysctl": "net.link.tap.up_on_open: 1\n",
                    "ifconfig": IFCONFIG}  # fmt: skip

    def run(self, argv: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT) -> Result:
        return Result(tuple(argv), 0, self.out[argv[0]].encode(), b"")

    def spawn(self, argv: Sequence[str], *, output: Path | None = None) -> subprocess.Popen[bytes]:
        raise AssertionError("observation spawns nothing")


def test_unchanged_output_reuses_the_parse_and_a_change_is_seen(tmp_path: Path) -> None:
    runner = ScriptedRunner()
    host = FreeBSDHost(runner, root=tmp_path)
    first = host.observe({}, Ledger())
    assert first.modules is not None and first.modules >= {"vmm", "if_lo"}
    assert first.interfaces is not None and first.interfaces["tap0"].opened_by == 1660
    again = host.observe({}, Ledger())
    assert again.interfaces is first.interfaces and again.modules is first.modules

    runner.out["ifconfig"] = IFCONFIG.replace("Opened by PID 1660\n", "")
    changed = host.observe({}, Ledger())
    assert changed.interfaces is not None and changed.interfaces["tap0"].opened_by is None
    assert changed.modules is first.modules
