"""Simulated bhyvectl(8): --create, --destroy, --force-reset, --force-poweroff, --get-stats.

Owns bhyvectl's order of operations and its two ways of failing (usr.sbin/bhyvectl/bhyvectl.c
main()): a VM that cannot be opened is a message on stderr and exit 1; a failing ioctl after
that prints `errno = N` on stdout and exit(-1), status 255 (reference §8.8). The VM semantics
are vmm.py's.
"""

from __future__ import annotations

from reconciler.sim import state as st
from reconciler.sim import vmm

TYPE_CHECKING = False
if TYPE_CHECKING:
    from reconciler.sim.tools import Output

_USAGE = (
    "Usage: bhyvectl --vm=<vmname>\n"
    "       [--cpu=<vcpu_number>]\n"
    "       [--create]\n"
    "       [--destroy]\n"
    "       [--get-stats]\n"
    "       [--force-reset]\n"
    "       [--force-poweroff]"
)
_FLAGS = ("--create", "--destroy", "--force-reset", "--force-poweroff", "--get-stats")


def _parse(args: list[str]) -> tuple[str | None, set[str]] | None:
    """getopt_long over the options the sim knows; None for anything else (usage)."""
    name: str | None = None
    actions: set[str] = set()
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--vm="):
            name = arg[len("--vm=") :]
        elif arg == "--vm" and i + 1 < len(args):
            i += 1
            name = args[i]
        elif arg in _FLAGS:
            actions.add(arg)
        else:
            return None
        i += 1
    return name, actions


def bhyvectl(store: st.Store, args: list[str], out: Output) -> int:
    parsed = _parse(args)
    if parsed is None or not parsed[0]:
        # bhyvectl.c usage(): the whole option list on stderr, exit(1).
        out.error(_USAGE)
        return 1
    name, actions = parsed
    assert name is not None
    if "--create" in actions:
        # bhyvectl.c main(): `error = vm_create(vmname)`; on failure the VM is never opened
        # and the tail below reports `errno = N`. (Not modelled: 15's vm_openf(CREATE).)
        try:
            vmm.vm_create(store, name)
        except vmm.VmmError as exc:
            out.print(f"errno = {exc.errno}")
            return 255
    try:
        vmm.vm_open(store, name)
    except vmm.VmmError as exc:
        out.error(f"vm_open: {name} could not be opened: {exc}")
        return 1
    if "--get-stats" in actions:
        # bhyvectl.c: printf("vcpu%d stats:\n") then "%-40s\t%ld" per counter.
        out.print("vcpu0 stats:")
        out.print(f"{'number of times in/out was intercepted':<40}\t0")
    try:
        # Source order: --force-reset, then --force-poweroff, each vm_suspend().
        if "--force-reset" in actions:
            vmm.vm_suspend(store, name, vmm.RESET)
        if "--force-poweroff" in actions:
            vmm.vm_suspend(store, name, vmm.POWEROFF)
    except vmm.VmmError as exc:
        # `if (error) printf("errno = %d\n", errno);` ... exit(error) with error == -1; the
        # --destroy that would have followed is skipped.
        out.print(f"errno = {exc.errno}")
        return 255
    if "--destroy" in actions:
        vmm.vm_destroy(store, name)
    return 0
