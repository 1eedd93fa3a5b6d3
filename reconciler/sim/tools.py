"""Entry point of every simulated FreeBSD tool: faults, the command log, then the tool itself.

Each wrapper in ROOT/bin calls `main(tool, root, argv)`. This module owns the dispatch and the
common prologue; each tool lives in its own module, imported only when that tool runs. It must
import nothing heavy: it runs once per simulated command.
"""

from __future__ import annotations

import os
import sys

from reconciler.sim import state as st

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    Tool = Callable[[st.Store, list[str], "Output"], int]


class Output:
    """What a tool prints; kept in memory so tests can run a tool in-process."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.err: list[str] = []
        # bhyve hands its process over to the long-running guest script once set up.
        self.exec_argv: list[str] | None = None
        self.exec_file = ""
        self.exec_fds: dict[int, int] = {}  # fd the exec'd program gets -> fd it is now

    def print(self, line: str) -> None:
        self.out.append(line + "\n")

    def error(self, line: str) -> None:
        self.err.append(line + "\n")


def _tool(name: str) -> Tool | None:
    if name in ("ifconfig",):
        from reconciler.sim import net

        return net.ifconfig
    if name in ("kldstat", "kldload", "kldunload", "sysctl"):
        from reconciler.sim import kernel

        return {
            "kldstat": kernel.kldstat,
            "kldload": kernel.kldload,
            "kldunload": kernel.kldunload,
            "sysctl": kernel.sysctl,
        }[name]
    if name == "ps":
        from reconciler.sim import ps

        return ps.ps
    if name == "zfs":
        from reconciler.sim import zfs

        return zfs.zfs
    if name == "bhyvectl":
        from reconciler.sim import bhyvectl

        return bhyvectl.bhyvectl
    if name in ("bhyveload", "grub-bhyve"):
        from reconciler.sim import loaders

        return loaders.bhyveload if name == "bhyveload" else loaders.grub_bhyve
    if name == "bhyve":
        from reconciler.sim import bhyve

        return bhyve.bhyve
    if name == "makefs":
        # Only this tool pays for pycdlib's import.
        from reconciler.sim import makefs

        return makefs.makefs
    return None


def run_tool(tool: str, root: str, args: list[str]) -> tuple[int, str, str, Output]:
    """Run one simulated tool against `root`: (status, stdout, stderr, what it printed)."""
    output = Output()
    argv = [tool, *args]
    function = _tool(tool)
    if function is None:
        return 127, "", f"{tool}: not simulated\n", output
    with st.Store(root) as store:
        fault = None if os.environ.get(st.UNLOGGED_ENV) else st.match_fault(store, argv)
        if fault is not None:
            status = fault["status"]
            text = fault["stderr"]
            output.err.append(text if text.endswith("\n") or not text else text + "\n")
        else:
            status = function(store, args, output)
    st.log_command(root, argv, None if output.exec_argv else status)
    return status, "".join(output.out), "".join(output.err), output


def main(tool: str, root: str, args: list[str]) -> int:
    status, out, err, output = run_tool(tool, root, args)
    # Host output is bytes (reference §8.11): text that came in through argv as undecodable
    # bytes (surrogateescape) goes back out as the same bytes.
    if out:
        sys.stdout.buffer.write(out.encode("utf-8", "surrogateescape"))
        sys.stdout.buffer.flush()
    if err:
        sys.stderr.buffer.write(err.encode("utf-8", "surrogateescape"))
        sys.stderr.buffer.flush()
    if output.exec_argv is not None:
        for target, source in output.exec_fds.items():
            if source != target:
                os.dup2(source, target)
                os.close(source)
            os.set_inheritable(target, True)
        os.execv(output.exec_file, output.exec_argv)
    return status
